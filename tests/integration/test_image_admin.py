"""Store administration through the real CLI: history, import, image/system prune, system df,
system check, the gc lock under concurrent processes, kill -9 during load, and reproducible
busybox bootstraps."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
BUSYBOX_LAYER_FILES = ("bin/busybox",)


def sangja_exe() -> list[str]:
    exe = REPO / ".venv" / "bin" / "sangja"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sangja.cli.engine"]


def run(root, *args: str, input: bytes | str | None = None, env: dict | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*sangja_exe(), "--root", str(root), *args],
        capture_output=True, input=input.encode() if isinstance(input, str) else input,
        timeout=timeout, env=env,
    )


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, (r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"))
    return r.stdout.decode()


def bad(r: subprocess.CompletedProcess, *needles: str) -> str:
    err = r.stderr.decode()
    assert r.returncode == 125, (r.returncode, r.stdout, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sangja: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    return err


def need_busybox() -> None:
    from sangja.image.busybox import BusyboxNotFound, find_static_busybox

    try:
        find_static_busybox()
    except BusyboxNotFound as e:
        pytest.skip(str(e))


def store_files(root: Path) -> dict[str, list[str]]:
    """What is on disk in the store, temp areas included (for "nothing half-created")."""
    def ls(p: Path) -> list[str]:
        return sorted(os.listdir(p)) if p.exists() else []

    return {
        "blobs": ls(root / "blobs" / "sha256"),
        "tmp": ls(root / "blobs" / "tmp"),
        "layers": ls(root / "layers"),
        "root": sorted(n for n in ls(root) if n.startswith(".")),
    }


def db_rows(root: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(root / "images.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def columns(text: str, header: list[str]) -> list[list[str]]:
    """Rows of a table printed by the CLI, cut at the header's column positions."""
    lines = text.splitlines()
    starts = [lines[0].index(h) for h in header]
    assert starts == sorted(starts), lines[0]
    rows = []
    for line in lines[1:]:
        bounds = [*starts[1:], None]
        rows.append([line[a:b].strip() for a, b in zip(starts, bounds, strict=True)])
    return rows


HISTORY = ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]


# ---------------------------------------------------------------------------- archives


def tar_bytes(files: dict[str, bytes | None], *, mtime: int = 1_600_000_000,
              extra: list[tarfile.TarInfo] | None = None) -> bytes:
    """A layer tar: name -> content (None: directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.mtime = mtime
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
        for ti in extra or []:
            tf.addfile(ti)
    return buf.getvalue()


def docker_archive(path: Path, layers: list[bytes], *, tags: list[str],
                   history: list[dict] | None = None, created: str = "2024-01-02T03:04:05Z",
                   cmd: list[str] | None = None) -> str:
    """Write a docker-archive with these (uncompressed) layer tars; return the image id."""
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    if history is None:
        history = [{"created": created, "created_by": f"layer {i}"} for i in range(len(layers))]
    config = {
        "architecture": "amd64", "os": "linux", "created": created,
        "config": {"Cmd": cmd or ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    config_bytes = json.dumps(config).encode()
    config_hex = hashlib.sha256(config_bytes).hexdigest()
    with tarfile.open(path, "w") as tf:
        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))

        add(f"{config_hex}.json", config_bytes)
        names = []
        for d, layer in zip(diff_ids, layers, strict=True):
            names.append(f"{d[7:]}/layer.tar")
            add(names[-1], layer)
        add("manifest.json", json.dumps(
            [{"Config": f"{config_hex}.json", "RepoTags": tags, "Layers": names}]).encode())
    return f"sha256:{config_hex}"


# ---------------------------------------------------------------------------- bootstrap


def test_bootstrap_busybox_is_reproducible(tmp_path):
    need_busybox()
    a = ok(run(tmp_path / "a", "bootstrap", "busybox")).strip()
    time.sleep(1.1)
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    b = ok(run(tmp_path / "b", "bootstrap", "busybox", env=dict(env, TZ="Asia/Seoul"))).strip()
    assert a == b and a.startswith("sha256:")
    assert store_files(tmp_path / "a")["blobs"] == store_files(tmp_path / "b")["blobs"]
    # the image's time is the busybox binary's, not the bootstrap's
    (info,) = json.loads(ok(run(tmp_path / "a", "image", "inspect", a)))
    from sangja.image.busybox import find_static_busybox

    mtime = int(os.stat(find_static_busybox()).st_mtime)
    assert info["Created"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))
    # SOURCE_DATE_EPOCH wins
    c = ok(run(tmp_path / "c", "bootstrap", "busybox",
               env=dict(env, SOURCE_DATE_EPOCH="1700000000"))).strip()
    assert c != a
    (info,) = json.loads(ok(run(tmp_path / "c", "image", "inspect", c)))
    assert info["Created"] == "2023-11-14T22:13:20Z"


# ---------------------------------------------------------------------------- history


def test_history_of_bootstrapped_image(tmp_path):
    need_busybox()
    root = tmp_path / "root"
    image_id = ok(run(root, "bootstrap", "busybox")).strip()
    lines = ok(run(root, "history", "busybox")).splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    assert len(lines) == 2
    cols = re.split(r"\s{2,}", lines[1].strip())
    assert cols[0] == image_id[7:19] and cols[2] == "sangja bootstrap busybox"
    assert cols[3].endswith("MB") and 1.0 <= float(cols[3][:-2]) <= 4.0
    assert ok(run(root, "history", "-q", "busybox")).split() == [image_id[7:19]]
    assert ok(run(root, "image", "history", "--no-trunc", "-q", image_id[7:19])).split() == [
        image_id]


def test_history_layers_sizes_and_truncation(tmp_path):
    root = tmp_path / "root"
    base = tar_bytes({"bin": None, "bin/tool": b"x" * 3000, "etc": None, "etc/a": b"a" * 500})
    top = tar_bytes({"etc": None, "etc/b": b"b" * 1_500_000})
    long_cmd = "/bin/sh -c apt-get update && apt-get install -y --no-install-recommends\tcurl"
    history = [
        {"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in /"},
        {"created": "2024-01-01T00:00:01Z", "created_by": '/bin/sh -c #(nop)  CMD ["sh"]',
         "empty_layer": True},
        {"created": "2024-01-01T00:00:02Z", "created_by": long_cmd, "comment": "big one"},
        {"created": "2024-01-01T00:00:03Z", "created_by": "/bin/sh -c #(nop) LABEL a=b",
         "empty_layer": True},
    ]
    image_id = docker_archive(tmp_path / "img.tar", [base, top], tags=["hist:v1"],
                              history=history)
    ok(run(root, "load", "-i", str(tmp_path / "img.tar")))
    rows = columns(ok(run(root, "history", "hist:v1")), HISTORY)
    assert [r[0] for r in rows] == [image_id[7:19], "<missing>", "<missing>", "<missing>"]
    assert [r[3] for r in rows] == ["0B", "1.5MB", "0B", "3.5kB"]
    created_by = rows[1][2]
    assert len(created_by) == 45 and created_by.endswith("…")
    assert created_by[:-1] == long_cmd.replace("\t", " ")[:44]
    assert rows[1][4] == "big one"
    full = ok(run(root, "history", "--no-trunc", "hist:v1"))
    assert long_cmd.replace("\t", " ") in full and image_id in full
    assert ok(run(root, "history", "-q", "hist:v1")).split() == [
        image_id[7:19], "<missing>", "<missing>", "<missing>"]
    raw = columns(ok(run(root, "history", "--human=false", "hist:v1")), HISTORY)
    assert raw[1][3] == "1500000" and raw[1][1] == "2024-01-01T00:00:02Z"
    data = history_json(root, "--no-trunc", "--human=false", "hist:v1")
    assert [d["Size"] for d in data] == ["0", "1500000", "0", "3500"]
    assert data[0]["ID"] == image_id and data[1]["ID"] == "<missing>"
    assert data[1]["CreatedBy"] == long_cmd.replace("\t", " ")
    assert data[1]["Comment"] == "big one"
    assert data[3]["CreatedAt"] == "2024-01-01T00:00:00Z"
    assert history_json(root, "hist:v1")[1]["Size"] == "1.5MB"  # docker's: one per line
    r = run(root, "history", "nosuch")  # docker: a missing image is exit 1
    assert r.returncode == 1 and r.stderr.decode() == "sangja: image 'nosuch' not found\n"
    bad(run(root, "history"))


def history_json(root, *args: str) -> list[dict]:
    """`history --format json`: one object per line, docker's strings."""
    out = ok(run(root, "history", "--format", "json", *args))
    return [json.loads(line) for line in out.splitlines()]


def test_history_on_a_schema_v1_database(tmp_path):
    """A store made before layer content sizes were recorded: history computes them, records
    them, and the database is migrated in place."""
    root = tmp_path / "root"
    base = tar_bytes({"f": b"z" * 12345})
    docker_archive(tmp_path / "img.tar", [base], tags=["old:v1"])
    ok(run(root, "load", "-i", str(tmp_path / "img.tar")))
    conn = sqlite3.connect(root / "images.db")
    conn.execute("ALTER TABLE layers DROP COLUMN content_size")
    conn.execute("ALTER TABLE image_layers DROP COLUMN blob_digest")  # v3's
    conn.execute("ALTER TABLE image_layers DROP COLUMN blob_size")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    data = history_json(root, "--human=false", "old:v1")
    assert [d["Size"] for d in data] == ["12345"]
    assert db_rows(root, "PRAGMA user_version")[0][0] >= 2
    assert db_rows(root, "SELECT content_size FROM layers") == [(12345,)]


# ---------------------------------------------------------------------------- import


@pytest.fixture(scope="module")
def rootfs_tars(tmp_path_factory):
    d = tmp_path_factory.mktemp("tars")
    fs = d / "fs"
    (fs / "bin").mkdir(parents=True)
    (fs / "etc").mkdir()
    (fs / "etc" / "hello").write_text("hello from import\n")
    (fs / "bin" / "tool").write_bytes(os.urandom(100_000))
    os.symlink("tool", fs / "bin" / "alias")
    plain = d / "fs.tar"
    subprocess.run(["tar", "-C", str(fs), "-cf", str(plain), "."], check=True)
    out = {"tar": plain}
    for ext, cmd in (("gz", ["gzip", "-k"]), ("zst", ["zstd", "-q", "-k"]), ("xz", ["xz", "-k"]),
                     ("bz2", ["bzip2", "-k"])):
        if shutil.which(cmd[0]):
            subprocess.run([*cmd, str(plain)], check=True)
            out[ext] = d / f"fs.tar.{ext}"
    return out


def test_import_every_compression_gives_one_layer(tmp_path, rootfs_tars):
    root = tmp_path / "root"
    diff_id = "sha256:" + hashlib.sha256(rootfs_tars["tar"].read_bytes()).hexdigest()
    for ext, path in rootfs_tars.items():
        image_id = ok(run(root, "import", str(path), f"imp:{ext}")).strip()
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
        (info,) = json.loads(ok(run(root, "image", "inspect", f"imp:{ext}")))
        assert info["Id"] == image_id
        assert info["RootFS"]["Layers"] == [diff_id], ext
        assert info["Size"] == 100_000 + len("hello from import\n")
    layer = root / "layers" / diff_id[7:]
    assert (layer / "etc" / "hello").read_text() == "hello from import\n"
    assert os.readlink(layer / "bin" / "alias") == "tool"
    hist = history_json(root, "--human=false", "imp:tar")
    assert len(hist) == 1 and hist[0]["Comment"] == "Imported from -"
    assert hist[0]["CreatedBy"] == "" and hist[0]["Size"] == "100018"
    assert ok(run(root, "system", "check")).strip() == "no problems found"


def test_import_changes_message_platform_stdin_and_url(tmp_path, rootfs_tars):
    root = tmp_path / "root"
    changes = ["-c", 'CMD ["/bin/tool", "--serve"]', "-c", 'ENV A=1 B="two words"',
               "-c", "ENV PATH /usr/bin:/bin", "-c", "WORKDIR /srv", "-c", "WORKDIR app",
               "--change", "USER 1000:1000", "--change=EXPOSE 80 53/udp",
               "-c", "LABEL org.example=yes", "-c", "VOLUME /data", "-c", "STOPSIGNAL SIGINT",
               "-c", "ONBUILD RUN echo hi", "-m", "made by a test"]
    image_id = ok(run(root, "import", *changes, "-", "example.com/team/app:1",
                      input=rootfs_tars["gz"].read_bytes())).strip()
    (info,) = json.loads(ok(run(root, "image", "inspect", "example.com/team/app:1")))
    assert info["Id"] == image_id and info["RepoTags"] == ["example.com/team/app:1"]
    set_fields = {k: v for k, v in info["Config"].items() if v not in ("", None, False)}
    assert set_fields == {
        "Cmd": ["/bin/tool", "--serve"],
        "Env": ["A=1", "B=two words", "PATH=/usr/bin:/bin"],
        "WorkingDir": "/srv/app",
        "User": "1000:1000",
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
        "Labels": {"org.example": "yes"},
        "Volumes": {"/data": {}},
        "StopSignal": "SIGINT",
        "OnBuild": ["RUN echo hi"],
    }
    assert info["History"][0]["comment"] == "made by a test"
    url = f"file://{rootfs_tars['xz']}"
    image2 = ok(run(root, "import", "--platform", "linux/arm64/v8", "-c", "ENTRYPOINT /bin/tool",
                    url)).strip()
    (info,) = json.loads(ok(run(root, "image", "inspect", image2)))
    assert info["Architecture"] == "arm64" and info["RepoTags"] == []
    assert {k: v for k, v in info["Config"].items() if v not in ("", None, False)} == {
        "Entrypoint": ["/bin/sh", "-c", "/bin/tool"]}
    assert info["History"][0]["comment"] == f"Imported from {url}"


def test_import_from_http(tmp_path, rootfs_tars):
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(rootfs_tars["tar"].parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    try:
        root = tmp_path / "root"
        url = f"http://127.0.0.1:{server.server_address[1]}/fs.tar.gz"
        image_id = ok(run(root, "import", url, "web:1", env=env)).strip()
        (info,) = json.loads(ok(run(root, "image", "inspect", "web:1")))
        assert info["Id"] == image_id
        assert info["History"][0]["comment"] == f"Imported from {url}"
        before = store_files(root)
        bad(run(root, "import", url.replace("fs.tar.gz", "missing.tar"), env=env),
            "cannot fetch", "404")
        assert store_files(root) == before
    finally:
        server.shutdown()
        server.server_close()


def hostile(name: str, kind: str = "file", linkname: str = "") -> bytes:
    ti = tarfile.TarInfo(name)
    if kind == "symlink":
        ti.type, ti.linkname = tarfile.SYMTYPE, linkname
    elif kind == "hardlink":
        ti.type, ti.linkname = tarfile.LNKTYPE, linkname
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        tf.addfile(tarfile.TarInfo("ok.txt"), io.BytesIO(b""))
        if kind == "via-symlink":
            link = tarfile.TarInfo("escape")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc"
            tf.addfile(link)
        tf.addfile(ti, io.BytesIO(b"") if kind in ("file", "via-symlink") else None)
    return buf.getvalue()


@pytest.mark.parametrize(
    "data, entry",
    [
        (hostile("../outside"), "../outside"),
        (hostile("/etc/abs"), "/etc/abs"),
        (hostile("a/../../up"), "a/../../up"),
        (hostile("escape/passwd", "via-symlink"), "escape/passwd"),
        (hostile("hl", "hardlink", "../../etc/shadow"), "hl"),
    ],
)
def test_import_refuses_hostile_tarballs(tmp_path, data, entry):
    root = tmp_path / "root"
    ok(run(root, "images"))
    before = store_files(root)
    for payload in (data, gzip.compress(data)):
        err = bad(run(root, "import", "-", "evil:latest", input=payload), "unsafe layer entry")
        assert repr(entry) in err, err
        assert store_files(root) == before
    assert ok(run(root, "images", "-q")) == ""
    assert ok(run(root, "system", "check")).strip() == "no problems found"


def test_import_bad_input_leaves_nothing(tmp_path, rootfs_tars):
    root = tmp_path / "root"
    ok(run(root, "images"))
    before = store_files(root)
    good = str(rootfs_tars["tar"])
    (tmp_path / "garbage").write_bytes(b"this is not a tar archive\n" * 100)
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "trunc.gz").write_bytes(rootfs_tars["gz"].read_bytes()[:20_000])
    (tmp_path / "trunc.tar").write_bytes(rootfs_tars["tar"].read_bytes()[:50_000])
    unreadable = tmp_path / "dir"
    unreadable.mkdir()
    cases = [
        (("import", "-c", "RUN make", good), "RUN is not a valid change command"),
        (("import", "-c", "FROBNICATE x", good), "FROBNICATE"),
        (("import", "-c", "EXPOSE nope", good), "EXPOSE"),
        (("import", "-c", "ENV A", good), "ENV"),
        (("import", str(tmp_path / "nonexistent.tar")), "nonexistent.tar"),
        (("import", str(unreadable)), "directory"),
        (("import", str(tmp_path / "garbage")), "not a valid tar archive"),
        (("import", str(tmp_path / "empty")), "empty"),
        (("import", str(tmp_path / "trunc.gz")), "gzip"),
        (("import", str(tmp_path / "trunc.tar")), "tar"),
        (("import", good, "Bad/Name"), "Bad/Name"),
        (("import", "--platform", "windows/amd64", good), "windows"),
        (("import", "ftp://example.com/x.tar"), "ftp"),
        (("import",), "usage"),
        (("import", "a", "b", "c"), "usage"),
    ]
    for args, needle in cases:
        bad(run(root, *args), needle)
        assert store_files(root) == before, args
    assert ok(run(root, "images", "-q")) == ""


# ---------------------------------------------------------------------------- image prune


def fake_container(root: Path, image_id: str) -> None:
    """A container record, as the engine keeps them (only image_id matters here)."""
    import time

    from sangja.engine.records import open_db

    cid = os.urandom(32).hex()
    with open_db(str(root)) as db:
        db.insert({"id": cid, "name": "c" + cid[:12], "image_id": image_id,
                   "image_name": image_id, "created": time.time(), "options": "{}",
                   "state": "created"})
    (root / "containers" / cid).mkdir(parents=True)  # as `create` makes it


@pytest.fixture
def three_images(tmp_path):
    """Images sharing a base layer: a (tagged), b (tagged, in use), c (dangling)."""
    root = tmp_path / "root"
    base = tar_bytes({"base": b"B" * 200_000})
    ids = {}
    for name, extra in (("a", b"A"), ("b", b"BB"), ("c", b"CCC")):
        layer = tar_bytes({f"own-{name}": extra * 50_000})
        path = tmp_path / f"{name}.tar"
        tags = [] if name == "c" else [f"img-{name}:latest"]
        ids[name] = docker_archive(path, [base, layer], tags=tags)
        ok(run(root, "load", "-i", str(path)))
    fake_container(root, ids["b"])
    return root, ids


def test_image_prune_dangling_then_all(three_images):
    root, ids = three_images
    out = ok(run(root, "image", "prune", "-f"))
    lines = out.splitlines()
    assert lines[0] == "Deleted Images:"
    assert f"deleted: {ids['c']}" in lines
    assert not any(ids["a"] in line or ids["b"] in line for line in lines)
    assert lines[-2] == "" and lines[-1].startswith("Total reclaimed space: ")
    size = lines[-1].split(": ")[1]
    assert re.fullmatch(r"[\d.]+(B|kB|MB)", size) and not size.startswith("0B")
    left = set(ok(run(root, "images", "-q")).split())
    assert left == {ids["a"][7:19], ids["b"][7:19]}
    assert ok(run(root, "image", "prune", "-f")).strip() == "Total reclaimed space: 0B"
    out = ok(run(root, "image", "prune", "-a", "-f"))
    assert "untagged: localhost/img-a:latest" in out
    assert re.search(r"untagged: localhost/img-a@sha256:[0-9a-f]{64}", out)
    assert f"deleted: {ids['a']}" in out and ids["b"] not in out
    assert set(ok(run(root, "images", "-q")).split()) == {ids["b"][7:19]}
    assert ok(run(root, "system", "check")).strip() == "no problems found"
    # the container database lost while a container exists: nothing is deleted on a guess
    os.unlink(root / "containers.db")
    before = store_files(root)
    bad(run(root, "image", "prune", "-a", "-f"), "containers.db is missing", "--rebuild")
    assert store_files(root) == before
    # no container left at all: a store without containers, so nothing is in use
    shutil.rmtree(root / "containers")
    ok(run(root, "image", "prune", "-a", "-f"))
    assert store_files(root) == {"blobs": [], "tmp": [], "layers": [], "root": []}


def test_image_prune_asks_first(three_images):
    root, ids = three_images
    r = run(root, "image", "prune", input="n\n")
    assert r.returncode == 0
    assert b"WARNING! This will remove all dangling images." in r.stdout
    assert len(ok(run(root, "images", "-q")).split()) == 3
    r = run(root, "image", "prune", "-a", input="")  # EOF: no
    assert b"without at least one container" in r.stdout
    assert len(ok(run(root, "images", "-q")).split()) == 3
    out = ok(run(root, "image", "prune", input="y\n"))
    assert f"deleted: {ids['c']}" in out
    assert len(ok(run(root, "images", "-q")).split()) == 2


def test_system_prune_collects_leftovers(three_images):
    root, ids = three_images
    from sangja.image.blobs import BlobStore

    stray = BlobStore(str(root)).put(b"nobody references me")
    (root / "blobs" / "tmp" / "put-leftover").write_bytes(b"x" * 1000)
    (root / "layers" / ".unpack-leftover").mkdir()
    (root / "layers" / ("ab" * 32)).mkdir()  # a layer dir with no record
    (root / ".import-leftover").mkdir()
    r = run(root, "system", "prune", input="no\n")
    assert r.returncode == 0 and b"all dangling images" in r.stdout
    assert (root / "blobs" / "tmp" / "put-leftover").exists()
    out = ok(run(root, "system", "prune", "-f"))
    assert f"deleted: {ids['c']}" in out and "Total reclaimed space:" in out
    # b's container is stopped (never started): system prune removes it first
    assert out.startswith("Deleted Containers:\n") and ids["b"] not in out
    assert not (root / "blobs" / "sha256" / stray.digest[7:]).exists()
    assert store_files(root)["tmp"] == [] and store_files(root)["root"] == []
    assert ("ab" * 32) not in store_files(root)["layers"]
    assert [n for n in store_files(root)["layers"] if n.startswith(".")] == []
    assert ok(run(root, "system", "check")).strip() == "no problems found"
    out = ok(run(root, "system", "prune", "-a", "-f", "--volumes"))
    assert f"deleted: {ids['a']}" in out and f"deleted: {ids['b']}" in out  # b: now unused


# ---------------------------------------------------------------------------- system df


def test_system_df(three_images):
    root, ids = three_images
    lines = ok(run(root, "system", "df")).splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    rows = {r[0]: r[1:] for r in (re.split(r"\s{2,}", line.strip()) for line in lines[1:])}
    assert list(rows) == ["Images", "Containers", "Local Volumes", "Build Cache"]
    assert rows["Images"][:2] == ["3", "1"]
    assert rows["Build Cache"] == ["0", "0", "0B", "0B"]
    data = {d["Type"]: d for d in map(json.loads, ok(run(root, "system", "df", "--format",
                                                          "json")).splitlines())}
    base, own = 200_000, {"a": 50_000, "b": 100_000, "c": 150_000}
    # each layer counted once: the base layer is shared by all three images; docker's
    # json lines have its strings
    assert data["Images"]["Size"] == "500kB"  # base + a + b + c
    assert data["Images"]["Reclaimable"] == "200kB (40%)"  # a + c: b (and the base) in use
    assert data["Images"]["TotalCount"] == "3" and data["Images"]["Active"] == "1"
    assert rows["Images"][2] == "500kB" and rows["Images"][3] == "200kB (40%)"
    verbose = ok(run(root, "system", "df", "-v"))
    assert "Images space usage:" in verbose and "SHARED SIZE" in verbose
    assert "Containers space usage:" in verbose and "Local Volumes space usage:" in verbose
    v = json.loads(ok(run(root, "system", "df", "-v", "--format", "json")))
    by_id = {i["id"]: i for i in v["Images"]}
    assert by_id[ids["b"]]["shared_size"] == base and by_id[ids["b"]]["containers"] == 1
    assert by_id[ids["a"]]["unique_size"] == own["a"]
    assert by_id[ids["a"]]["size"] == base + own["a"]


# ---------------------------------------------------------------------------- system check


def check(root: Path, *args: str) -> tuple[int, list[str]]:
    r = run(root, "system", "check", *args)
    assert r.returncode in (0, 1), r.stderr
    assert not r.stderr, r.stderr
    return r.returncode, r.stdout.decode().splitlines()


def test_check_finds_and_repairs(three_images):
    root, ids = three_images
    assert check(root) == (0, ["no problems found"])
    layer_blobs = dict(db_rows(root, "SELECT diff_id, blob_digest FROM layers"))
    a_layers = [d for (d,) in db_rows(
        root, f"SELECT diff_id FROM image_layers WHERE image_id = '{ids['a']}' AND position = 1")]
    # damage: a corrupt layer blob of image a, a missing config of image c, leftovers
    corrupt = root / "blobs" / "sha256" / layer_blobs[a_layers[0]][7:]
    os.chmod(corrupt, 0o644)
    corrupt.write_bytes(b"rotten")
    os.unlink(root / "blobs" / "sha256" / ids["c"][7:])
    (root / "blobs" / "tmp" / "put-abc").write_bytes(b"half a blob")
    (root / "blobs" / "sha256" / "not-a-digest").write_bytes(b"?")
    (root / "layers" / ("cd" * 32)).mkdir()
    from sangja.image.blobs import BlobStore

    stray = BlobStore(str(root)).put(b"unreferenced").digest
    # a layer recorded as unpacked whose directory is gone
    from sangja.image.store import ImageStore

    with ImageStore(root) as s:
        (base_dir, _) = s.unpacked_layers(ids["b"])
    shutil.rmtree(base_dir)
    conn = sqlite3.connect(root / "images.db")  # a tag whose image is gone (FKs off)
    conn.execute("INSERT INTO tags VALUES ('localhost/ghost:latest', 'sha256:' || ?)",
                 ("ee" * 32,))
    conn.commit()
    conn.close()

    rc, lines = check(root)
    assert rc == 1
    text = "\n".join(lines)
    assert "temp: blobs/tmp/put-abc: left by an interrupted writer (--repair would remove it)" \
        in lines
    assert f"corrupt blob: {layer_blobs[a_layers[0]]}: content does not match" in text
    assert re.search(rf"broken image: {ids['a']} \(localhost/img-a:latest\): blob of layer "
                     rf"{a_layers[0]} is corrupt", text)
    assert re.search(rf"broken image: {ids['c']}: config blob is missing", text)
    assert "(--repair -f would remove the image)" in text
    assert "stray file: blobs/sha256/not-a-digest" in text
    assert f"orphan layer dir: layers/{'cd' * 32}" in text
    assert f"unreferenced blob: {stray}" in text
    assert "stale layer path: sha256:" in text
    assert "dangling tag: localhost/ghost:latest" in text
    assert re.search(r"^\d+ problems found$", lines[-2]) and "--repair" in lines[-1]

    rc, lines = check(root, "--repair")
    assert rc == 1  # the broken images remain without -f
    assert "temp: blobs/tmp/put-abc: left by an interrupted writer: repaired (remove it)" \
        in lines
    assert re.search(r"^\d+ problems found, \d+ repaired, 2 remaining$", lines[-2])
    assert not corrupt.exists() and not (root / "blobs" / "tmp" / "put-abc").exists()
    rc, lines = check(root)
    assert rc == 1 and [line.split(":")[0] for line in lines[:-2]] == ["broken image"] * 2
    assert "blob of layer" in lines[0] + lines[1] and "is missing" in lines[0] + lines[1]

    rc, lines = check(root, "--repair", "-f")
    assert rc == 0, lines
    assert any(line.startswith(f"broken image: {ids['a']}") and "repaired" in line
               for line in lines)
    assert check(root) == (0, ["no problems found"])
    assert set(ok(run(root, "images", "-q")).split()) == {ids["b"][7:19]}
    with ImageStore(root) as s:
        assert os.path.isdir(s.unpacked_layers(ids["b"])[0])  # unpacked again on demand
    assert check(root) == (0, ["no problems found"])


def big_docker_archive(tmp_path: Path, archive: Path, *, files: int, size: int) -> str:
    """A docker-archive with a big layer of random files, written without holding it in
    memory; returns the image id."""
    layer = tmp_path / "big-layer.tar"
    with tarfile.open(layer, "w") as tf:
        for i in range(files):
            blob = tmp_path / f"blob{i}"
            with open(blob, "wb") as f:
                for _ in range(size >> 20):
                    f.write(os.urandom(1 << 20))
            tf.add(blob, arcname=f"big{i}")
            blob.unlink()
    h = hashlib.sha256()
    with open(layer, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    small = tar_bytes({"small": b"s" * 1000})
    diff_ids = [f"sha256:{h.hexdigest()}", "sha256:" + hashlib.sha256(small).hexdigest()]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "big"}, {"created_by": "small"}],
    }).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    with tarfile.open(archive, "w") as tf:
        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))

        add(f"{config_hex}.json", config)
        tf.add(layer, arcname=f"{diff_ids[0][7:]}/layer.tar")
        add(f"{diff_ids[1][7:]}/layer.tar", small)
        add("manifest.json", json.dumps([{
            "Config": f"{config_hex}.json", "RepoTags": ["big:latest"],
            "Layers": [f"{d[7:]}/layer.tar" for d in diff_ids]}]).encode())
    layer.unlink()
    return f"sha256:{config_hex}"


def test_check_kill_9_during_load(tmp_path):
    """kill -9 a big load at random moments: only repairable leftovers, all repaired, and
    the same archive loads afterwards."""
    root = tmp_path / "root"
    archive = tmp_path / "big.tar"
    image_id = big_docker_archive(tmp_path, archive, files=4, size=16 << 20)
    t0 = time.monotonic()
    ok(run(root, "load", "-i", str(archive)))
    full = time.monotonic() - t0
    ok(run(root, "rmi", "big"))
    assert check(root) == (0, ["no problems found"])
    rng = random.Random(4)
    repairable = {"temp", "unreferenced blob", "unreferenced layer", "orphan layer dir"}
    kinds_seen: set[str] = set()
    for n in range(8):
        delay = rng.uniform(0.02, full) if n else full * 0.6
        proc = subprocess.Popen([*sangja_exe(), "--root", str(root), "load", "-i", str(archive)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rc, lines = check(root)
        findings = lines[:-2] if rc else []
        kinds = {line.split(":")[0] for line in findings}
        kinds_seen |= kinds
        assert kinds <= repairable, lines
        rc, lines = check(root, "--repair")
        assert rc == 0, lines
        assert check(root) == (0, ["no problems found"])
        ok(run(root, "load", "-i", str(archive)))
        (info,) = json.loads(ok(run(root, "image", "inspect", "big")))
        assert info["Id"] == image_id
        assert check(root) == (0, ["no problems found"])
        ok(run(root, "rmi", "big"))
    assert kinds_seen  # some kill hit mid-way


# ---------------------------------------------------------------------------- gc lock


def test_gc_lock_concurrent_loads_and_prunes(tmp_path):
    """Loads racing rmi, image prune and system prune for a few seconds (real processes):
    every load succeeds, every image that exists afterwards is complete (its blobs verify,
    its layers unpack), and nothing is left behind. Without the gc lock this fails within
    seconds (blobs removed under a load that found them present, temp files removed under a
    writer)."""
    import threading

    root = tmp_path / "root"
    common = tar_bytes({"common": os.urandom(24 << 20)})
    archives = []
    for i in range(4):
        path = tmp_path / f"c{i}.tar"
        docker_archive(path, [common, tar_bytes({f"own{i}": os.urandom(8 << 20)})],
                       tags=[f"conc{i}:latest"])
        archives.append(path)
    exe = [*sangja_exe(), "--root", str(root)]
    deadline = time.monotonic() + 8
    failures: list[str] = []
    counts = {"load": 0, "gc": 0}

    def loop(commands: list[list[str]], kind: str, allowed: tuple[int, ...]) -> None:
        n = 0
        while time.monotonic() < deadline and not failures:
            args = commands[n % len(commands)]
            n += 1
            r = subprocess.run([*exe, *args], capture_output=True, timeout=300)
            counts[kind] += 1
            if r.returncode not in allowed or (r.returncode and b"not found" not in r.stderr):
                failures.append(f"{args}: {r.returncode} {r.stderr.decode(errors='replace')}")

    threads = [threading.Thread(target=loop, args=([["load", "-i", str(a)]], "load", (0,)))
               for a in archives]
    threads.append(threading.Thread(target=loop, args=(
        [["rmi", "-f", f"conc{i}"] for i in range(4)], "gc", (0, 1))))
    threads.append(threading.Thread(target=loop, args=(
        [["image", "prune", "-a", "-f"], ["system", "prune", "-f"]], "gc", (0,))))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[0]
    assert counts["load"] >= 8 and counts["gc"] >= 8, counts
    from sangja.image.store import ImageStore

    def complete() -> int:
        with ImageStore(root) as s:
            layers = {la.diff_id: la for la in s.db.layers()}
            images = s.db.images()
            for img in images:
                for digest in [img.id, img.manifest_digest,
                               *(layers[d].blob_digest for d in img.layers)]:
                    assert s.blobs.verify(digest), (img.id, digest)
                paths = s.unpacked_layers(img.id)
                assert len(paths) == 2 and all(os.path.isdir(p) for p in paths)
            return len(images)

    complete()
    assert check(root) == (0, ["no problems found"])
    for a in archives:  # and with nothing racing, all four are there and whole
        ok(run(root, "load", "-i", str(a)))
    assert complete() == 4
    assert check(root) == (0, ["no problems found"])
