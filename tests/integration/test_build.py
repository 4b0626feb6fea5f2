"""`sangja build` from the outside: every instruction observed in the resulting image (its
config) and in a container run from it; multi-stage builds, .dockerignore, ADD of a
local tar, heredocs, the cache and its pruning, reproducible ids; errors that name the
Containerfile and line and leave nothing behind; and hostile stages and contexts (links
pointing out, device nodes) that must not reach the host. Each test uses the worker's
engine (busybox bootstrapped) through engine_cli's `cli` fixture, which checks that no
container, mount, snapshot or process is left."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from engine_cli import mounts_under

pytestmark = pytest.mark.root


def context(tmp_path: Path, containerfile: str, files: dict[str, str | bytes] | None = None,
            name: str = "ctx") -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "Containerfile").write_text(containerfile)
    for rel, data in (files or {}).items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)
    return d


def build(cli, ctx: Path, *flags: str) -> str:
    out = cli.ok("build", "-q", *flags, str(ctx), timeout=180).strip()
    assert out.startswith("sha256:") and len(out) == 71, out
    return out


def config(cli, image: str) -> dict:
    (doc,) = json.loads(cli.ok("image", "inspect", image))
    return doc


def image_ids(cli) -> set[str]:
    return set(cli.ok("images", "-a", "-q").split())


# ---------------------------------------------------------------------------- instructions


def test_every_instruction_in_the_image_and_in_a_container(cli, tmp_path):
    ctx = context(tmp_path, """\
FROM busybox
ARG GREETING=hello
ENV APP_HOME=/srv/app PATH=/srv/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL org.example.title="sangja test" version=1
WORKDIR $APP_HOME
COPY --chmod=0755 tool.sh bin/tool
COPY --chown=1234:5678 data/ ./data/
RUN echo "$GREETING from RUN" > /greeting && echo "app:x:1000:1000::/srv/app:/bin/sh" >> /etc/passwd
USER app
EXPOSE 8080 53/udp
VOLUME ["/srv/app/state"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=5s --retries=2 CMD tool
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo child
ENTRYPOINT ["tool"]
CMD ["arg1"]
""", {"tool.sh": "#!/bin/sh\necho \"tool $* user=$(id -u) pwd=$PWD greeting=$(cat /greeting)\"\n",
      "data/a.txt": "a", "data/sub/b.txt": "b"})
    image = build(cli, ctx, "-t", "localhost/every:1", "--label", "extra=yes")
    doc = config(cli, "localhost/every:1")
    c = doc["Config"]
    assert doc["Id"] == image
    assert "APP_HOME=/srv/app" in c["Env"] and not any(e.startswith("GREETING") for e in c["Env"])
    assert c["Labels"] == {"org.example.title": "sangja test", "version": "1", "extra": "yes"}
    assert c["WorkingDir"] == "/srv/app" and c["User"] == "app"
    assert set(c["ExposedPorts"]) == {"8080/tcp", "53/udp"}
    assert c["Volumes"] == {"/srv/app/state": {}} and c["StopSignal"] == "SIGINT"
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "tool"], "Interval": 30 * 10**9,
                                "Timeout": 5 * 10**9, "Retries": 2}
    assert c["Shell"] == ["/bin/sh", "-ec"] and c["OnBuild"] == ["RUN echo child"]
    assert c["Entrypoint"] == ["tool"] and c["Cmd"] == ["arg1"]
    # in a container: the entrypoint, its user, its directory, the RUN's file
    out = cli.out("localhost/every:1")
    assert out.strip() == "tool arg1 user=1000 pwd=/srv/app greeting=hello from RUN"
    listing = cli.out("--entrypoint", "sh", "localhost/every:1", "-c",
                      "stat -c '%a %u:%g %n' bin/tool data/a.txt data/sub/b.txt")
    assert listing.split("\n")[:3] == ["755 0:0 bin/tool", "644 1234:5678 data/a.txt",
                                       "644 1234:5678 data/sub/b.txt"]
    # ONBUILD runs in a child image
    child = context(tmp_path, "FROM localhost/every:1\nUSER root\n", name="child")
    out = cli.ok("build", str(child), timeout=120)
    assert "child" in out
    cli.ok("rmi", "localhost/every:1")


def test_build_args_and_substitution(cli, tmp_path):
    ctx = context(tmp_path, """\
ARG BASE=busybox
FROM $BASE
ARG A
ARG B=b-default
ENV C=${A:-a-default}-${B:+set} D="\\$A" E='$B'
RUN echo "A=$A B=$B C=$C" > /args
""")
    build(cli, ctx, "-t", "localhost/args:1", "--build-arg", "A=given")
    assert cli.out("localhost/args:1", "cat", "/args").strip() == "A=given B=b-default C=given-set"
    env = config(cli, "localhost/args:1")["Config"]["Env"]
    assert "C=given-set" in env and "D=$A" in env and "E=$B" in env
    assert not any(e.startswith(("A=", "B=")) for e in env)  # ARGs are not kept


def test_heredocs(cli, tmp_path):
    ctx = context(tmp_path, """\
FROM busybox
ARG WHO=heredoc
RUN <<EOF
echo "first line by $WHO" > /one
echo second >> /one
EOF
COPY <<-EOT <<'RAW' /files/
\tmade by $WHO
\tEOT
not $WHO
RAW
""")
    build(cli, ctx, "-t", "localhost/heredoc:1")
    assert cli.out("localhost/heredoc:1", "cat", "/one") == "first line by heredoc\nsecond\n"
    assert cli.out("localhost/heredoc:1", "cat", "/files/EOT") == "made by heredoc\n"
    assert cli.out("localhost/heredoc:1", "cat", "/files/RAW") == "not $WHO\n"


def test_multi_stage_copy_from_and_parallel_stages(cli, tmp_path):
    ctx = context(tmp_path, """\
FROM busybox AS left
RUN echo left > /left && mkdir -p /tree/d && echo x > /tree/d/x

FROM busybox AS right
RUN echo right > /right

FROM busybox AS never
RUN exit 1

FROM scratch
COPY --from=left /left /tree/ /out/
COPY --from=1 /right /out/right
COPY --from=busybox /bin/busybox /bin/sh
""")
    out = cli.ok("build", "-t", "localhost/multi:1", str(ctx), timeout=180)
    assert "[1/3]" in out and "[3/3]" in out and "RUN exit 1" not in out  # never built
    got = cli.out("localhost/multi:1", "/bin/sh", "-c",
              "cat /out/left /out/d/x /out/right")
    assert got.split() == ["left", "x", "right"]


def test_dockerignore_with_exceptions(cli, tmp_path):
    ctx = context(tmp_path, "FROM busybox\nCOPY . /c/\n", {
        ".dockerignore": "secret*\nlogs\n!logs/keep.log\n**/*.tmp\n",
        "app.txt": "app", "secret.key": "s", "logs/keep.log": "k", "logs/drop.log": "d",
        "deep/a/b.tmp": "t", "deep/a/c.txt": "c"})
    build(cli, ctx, "-t", "localhost/ignore:1")
    files = cli.out("localhost/ignore:1", "find", "/c", "-type", "f").split()
    assert sorted(files) == ["/c/.dockerignore", "/c/Containerfile", "/c/app.txt",
                             "/c/deep/a/c.txt", "/c/logs/keep.log"]
    bad = context(tmp_path, "FROM busybox\nCOPY secret.key /\n",
                  {".dockerignore": "secret*\n", "secret.key": "s"}, name="bad")
    line = cli.fails(125, "build", "-q", str(bad))
    assert "Containerfile:2" in line and "secret.key" in line


def test_add_local_tar_extracts(cli, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("pkg/bin/run", b"#!/bin/sh\necho ran\n"), ("pkg/README", b"r")):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o755
            tf.addfile(ti, io.BytesIO(data))
    ctx = context(tmp_path, "FROM busybox\nADD pkg.tar.gz /opt/\nCOPY pkg.tar.gz /kept/\n",
                  {"pkg.tar.gz": buf.getvalue()})
    build(cli, ctx, "-t", "localhost/add:1")
    assert cli.out("localhost/add:1", "/opt/pkg/bin/run") == "ran\n"
    assert cli.out("localhost/add:1", "ls", "/kept").split() == ["pkg.tar.gz"]  # COPY: as is


def test_copy_semantics(cli, tmp_path):
    ctx = context(tmp_path, """\
FROM busybox
COPY one.txt /renamed
COPY one.txt two.txt /dir/
COPY *.md /docs/
COPY tree /merged/
WORKDIR /w
COPY one.txt rel/
""", {"one.txt": "1", "two.txt": "2", "a.md": "a", "b.md": "b", "tree/x/y": "y"})
    build(cli, ctx, "-t", "localhost/copy:1")
    out = cli.out("localhost/copy:1", "sh", "-c",
                  "cat /renamed; ls /dir /docs /merged /merged/x /w/rel | tr '\\n' ' '")
    assert out.split() == ["1/dir:", "one.txt", "two.txt", "/docs:", "a.md", "b.md",
                           "/merged:", "x", "/merged/x:", "y", "/w/rel:", "one.txt"]
    many = context(tmp_path, "FROM busybox\nCOPY a b /nodir\n", {"a": "", "b": ""}, "many")
    assert "must be a directory and end with a /" in cli.fails(125, "build", str(many))


# ---------------------------------------------------------------------------- cache


def test_cache_hits_invalidation_no_cache_and_reproducible_ids(cli, tmp_path):
    ctx = context(tmp_path, """\
FROM busybox
ARG V=1
COPY a.txt /a.txt
RUN cat /a.txt > /b.txt && head -c 16 /dev/urandom | od -An -tx1 > /stamp
COPY c.txt /c.txt
""", {"a.txt": "a", "c.txt": "c"})
    first = cli.ok("build", "-t", "localhost/cache:1", str(ctx), timeout=120)
    assert "Using cache" not in first
    second = cli.ok("build", "-t", "localhost/cache:1", str(ctx), timeout=120)
    assert second.count("Using cache") == 3
    assert second.splitlines()[-1] == first.splitlines()[-1]  # same image
    (ctx / "c.txt").write_text("changed")  # only the last step runs again
    third = cli.ok("build", str(ctx), timeout=120)
    assert third.count("Using cache") == 2
    fourth = cli.ok("build", "--build-arg", "V=2", str(ctx), timeout=120)
    assert fourth.count("Using cache") == 0  # the arg is in every key after it
    stamp = cli.out("localhost/cache:1", "cat", "/stamp")
    # --no-cache runs everything again: the RUN writes a new stamp, so its image differs...
    a = build(cli, ctx, "--no-cache")
    assert cli.out(a, "cat", "/stamp") != stamp
    # ...but a build of files only gives the same id every time (reproducible)
    files = context(tmp_path, "FROM busybox\nCOPY a.txt /\nENV X=1\nCOPY c.txt /x/\n",
                    {"a.txt": "a", "c.txt": "c"}, name="files")
    ids = {build(cli, files, "--no-cache") for _ in range(2)}
    os.utime(files / "a.txt")  # a newer time is clamped: the content decides
    ids.add(build(cli, files, "--no-cache"))
    assert len(ids) == 1


def test_context_digests_remembered_by_stat(cli, tmp_path):
    """An unchanged context file is not read again: its digest comes from the stat-keyed
    cache (shown by planting a wrong digest there: the step's key changes with it); a
    rewrite that keeps size and mtime changes ctime, and is read again."""
    import time

    ctx = context(tmp_path, "FROM busybox\nCOPY f /f\n", {"f": "one"})
    time.sleep(2.2)  # a file changed within 2 s of being read is not remembered (racy)
    f = ctx / "f"
    build(cli, ctx)
    cache = cli.root / "build-cache" / "context-digests.json"
    st = f.stat()
    entries = json.loads(cache.read_text())["files"]
    key = f"{st.st_dev}:{st.st_ino}"
    assert entries[key][:3] == [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    assert "Using cache" in cli.ok("build", str(ctx))
    # a planted digest is believed while the stat matches: the step's key changes
    entries[key][3] = "00" * 32
    cache.write_text(json.dumps({"files": entries}))
    assert "Using cache" not in cli.ok("build", str(ctx))
    # the same size and mtime, other content: ctime moved, the file is read again
    f.write_text("two")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    image = build(cli, ctx)
    assert cli.out("--network", "none", image, "cat", "/f") == "two"


def test_reproducible_with_source_date_epoch(cli, tmp_path):
    ctx = context(tmp_path, "FROM busybox\nRUN echo same > /f && touch /g\n")
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    ids = {cli.ok("build", "-q", "--no-cache", str(ctx), env=env, timeout=120).strip()
           for _ in range(2)}
    assert len(ids) == 1
    (image,) = ids
    assert config(cli, image)["Created"] == "2023-11-14T22:13:20Z"
    out = cli.out(image, "stat", "-c", "%Y", "/f", "/g")
    assert out.split() == ["1700000000", "1700000000"]


def test_cache_in_system_df_and_builder_prune(cli, tmp_path):
    ctx = context(tmp_path, "FROM busybox\nRUN head -c 100000 /dev/zero > /zeros\n"
                  "RUN echo 1 > /one\n")
    build(cli, ctx, "-t", "localhost/pruned:1")
    df = [json.loads(x) for x in cli.ok("system", "df", "--format", "json").splitlines()]
    row = next(r for r in df if r["Type"] == "Build Cache")
    assert int(row["TotalCount"]) >= 2
    hidden = image_ids(cli) - set(cli.ok("images", "-q").split())
    assert hidden  # the step images: `images` hides them, `images -a` shows them
    cli.ok("rmi", "localhost/pruned:1")
    out = cli.ok("builder", "prune", "-f")
    assert "Deleted build cache objects" in out
    assert not image_ids(cli) & hidden
    again = cli.ok("build", str(ctx), timeout=120)
    assert "Using cache" not in again
    cli.ok("system", "prune", "-a", "-f")
    df = [json.loads(x) for x in cli.ok("system", "df", "--format", "json").splitlines()]
    assert next(r for r in df if r["Type"] == "Build Cache")["TotalCount"] == "0"
    cli.ok("bootstrap", "busybox")  # the next tests' base image


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize("containerfile, where, message", [
    ("FROM busybox\nBOGUS x\n", "Containerfile:2", "unknown instruction: BOGUS"),
    ("FROM busybox\nCOPY missing.txt /\n", "Containerfile:2", "'missing.txt' not found"),
    ("FROM busybox\nCOPY --from=nostage /x /\n", "Containerfile:2",
         "'nostage' names no registry"),
    ("FROM localhost/no-such-image\n", "Containerfile:1",
         "'localhost/no-such-image' names no registry"),
    ("FROM busybox\nCOPY --bogus a /\n", "Containerfile:2", "unknown flag --bogus"),
    ("FROM busybox\nENV A=${\n", "Containerfile:2", "missing '}'"),
    ("FROM busybox\nRUN <<EOF\necho\n", "Containerfile:2", "unterminated heredoc"),
    ("FROM busybox\nRUN --mount=type=tmpfs,dst= true\n", "Containerfile:2",
         "target is required"),  # an empty dst= with no destination= was a KeyError
])
def test_errors_name_the_file_and_line(cli, tmp_path, containerfile, where, message):
    ctx = context(tmp_path, containerfile)
    before = image_ids(cli)
    line = cli.fails(125, "build", "-t", "localhost/never:1", str(ctx))
    assert where in line and message in line, line
    assert "localhost/never" not in cli.ok("images")
    assert image_ids(cli) == before


def test_failing_run_stops_the_build_and_leaves_nothing(cli, tmp_path):
    ctx = context(tmp_path, "FROM busybox\nRUN echo made > /f\n"
                  "RUN echo first; echo 'the reason' >&2; exit 7\nRUN echo never\n")
    r = cli("build", "-t", "localhost/failed:1", str(ctx), timeout=120)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "Containerfile:3: RUN exited with code 7" in lines[0]
    assert "first | the reason" in lines[0]  # the tail of its output
    assert "never" not in r.stdout
    assert "localhost/failed" not in cli.ok("images")
    assert cli.ps() == []  # no build container left (the fixture checks mounts, dirs)
    assert build_mounts(cli) == []


def build_mounts(cli) -> list[str]:
    """Mounts under the store but the default network's keeper (it stays while the network
    exists: engine_cli's fixture removes it with the network at the module's end)."""
    return [m for m in mounts_under(cli.root, cli.runroot) if "/netns/keeper-" not in m]


def test_context_on_stdin(cli, tmp_path):
    out = cli.ok("build", "-q", "-", input="FROM busybox\nRUN echo piped > /p\n",
                 timeout=120).strip()
    assert cli.out(out, "cat", "/p") == "piped\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("Containerfile", b"FROM busybox\nCOPY f /f\n"), ("f", b"tar")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    out = cli.ok("build", "-q", "-", input=buf.getvalue(), text=False, timeout=120)
    image = out.decode().strip() if isinstance(out, bytes) else out.strip()
    assert cli.out(image, "cat", "/f") == "tar"
    line = cli.fails(125, "build", "-", input="FROM busybox\nCOPY f /\n")
    assert "needs a build context" in line


# ---------------------------------------------------------------------------- hostile input


def test_links_in_a_stage_never_lead_to_the_host(cli, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("HOST SECRET")
    outside = tmp_path / "host-dir"
    ctx = context(tmp_path, f"""\
FROM busybox AS evil
RUN ln -s {secret} /abs && ln -s ../../../../../../..{secret} /rel \\
 && mkdir /d && ln -s {secret} /d/inner && ln -s {tmp_path} /hostdir

FROM busybox
COPY --from=evil /d/ /copied/
COPY --from=evil /hostdir/ /via-dir/
""", {"f": "data"})
    line = cli.fails(125, "build", "-q", str(ctx))
    assert "not found" in line  # /hostdir resolves inside the stage: no such directory
    # the links themselves are copied as links, never followed
    ok = context(tmp_path, f"""\
FROM busybox AS evil
RUN mkdir /d && ln -s {secret} /d/inner && ln -s {outside} /target

FROM evil
COPY f /target/
COPY --from=evil /d/ /copied/
""", {"f": "data"}, name="ok")
    build(cli, ok, "-t", "localhost/links:1")
    assert not outside.exists()  # the destination link resolved inside the image
    out = cli.out("localhost/links:1", "sh", "-c",
                  f"readlink /copied/inner; cat {outside}/f")
    assert out.split() == [str(secret), "data"]
    assert "HOST SECRET" not in cli.out("localhost/links:1", "sh", "-c",
                                        "cat /copied/inner 2>&1 || true")


def test_copy_from_a_device_node_makes_a_node_never_reads_it(cli, tmp_path):
    ctx = context(tmp_path, """\
FROM busybox AS evil
RUN mknod /zero c 1 5 && mknod /disk b 8 0 && mkfifo /fifo

FROM busybox
COPY --from=evil /zero /disk /fifo /nodes/
""")
    image = build(cli, ctx, "-t", "localhost/nodes:1")  # reading /zero would never end
    (doc,) = json.loads(cli.ok("image", "inspect", image))
    top = doc["RootFS"]["Layers"][-1]
    with tarfile.open(cli.root / "blobs" / "sha256" / top.partition(":")[2]) as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert members["nodes/zero"].ischr() and members["nodes/zero"].size == 0
    assert (members["nodes/zero"].devmajor, members["nodes/zero"].devminor) == (1, 5)
    assert members["nodes/disk"].isblk() and members["nodes/fifo"].isfifo()


def test_context_symlink_pointing_out(cli, tmp_path):
    secret = tmp_path / "outside.txt"
    secret.write_text("OUTSIDE")
    ctx = context(tmp_path, "FROM busybox\nCOPY link /got\n")
    os.symlink(str(secret), ctx / "link")
    line = cli.fails(125, "build", "-q", str(ctx))
    assert "'link' not found" in line  # resolved inside the context, not followed out
    whole = context(tmp_path, "FROM busybox\nCOPY . /ctx/\n", name="whole")
    os.symlink(str(secret), whole / "link")
    build(cli, whole, "-t", "localhost/ctxlink:1")
    out = cli.out("localhost/ctxlink:1", "sh", "-c", "readlink /ctx/link; cat /ctx/link "
                  "2>&1 || true")
    assert out.splitlines()[0] == str(secret) and "OUTSIDE" not in out


def test_add_of_a_hostile_tar_is_refused(cli, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("../../../../escaped")
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"x"))
    ctx = context(tmp_path, "FROM busybox\nADD evil.tar /x/\n", {"evil.tar": buf.getvalue()})
    line = cli.fails(125, "build", "-q", str(ctx))
    assert "Containerfile:2" in line and "'..'" in line
