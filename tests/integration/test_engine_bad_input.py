"""The engine fed bad input from the outside: image archives with malformed or mistyped
JSON, image configs of the wrong shape at run, malformed seccomp profiles, decompression
bombs, a non-root user, and `exec` into a container whose init moved itself into a new
user namespace. Every refusal is one line on stderr, exit 125, no traceback, and leaves the
store (and the temp directory) as it was."""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import os
import random
import resource
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from engine_cli import REPO, SANGJA, Cli, remove_everything, wait_no_leaks

pytestmark = pytest.mark.root

MiB = 1 << 20
_DB_FILES = ("images.db", "containers.db", "gc.lock")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """A private engine (busybox bootstrapped): these tests load and remove images, which
    the worker's shared engine must not see."""
    from sangja.image.busybox import BusyboxNotFound, find_static_busybox

    if not SANGJA.exists():
        pytest.skip("run `make install` first: no .venv/bin/sangja")
    try:
        find_static_busybox()
    except BusyboxNotFound as e:
        pytest.skip(str(e))
    top = tmp_path_factory.mktemp("badinput")
    cli = Cli(top / "root", top / "run")
    cli.ok("bootstrap", "busybox")
    cli.ok("save", "-o", str(top / "busybox.tar"), "busybox")
    cli.ok("save", "--format", "oci-archive", "-o", str(top / "busybox-oci.tar"), "busybox")
    # as a load leaves the store: the layer unpacked, a container's directories made
    cli.ok("load", "-i", str(top / "busybox.tar"))
    cli.ok("rm", cli.create("busybox"))
    cli.tmp = top / "tmp"  # TMPDIR of every command: must stay empty
    cli.tmp.mkdir()
    yield cli
    remove_everything(cli, networks=True)
    wait_no_leaks(cli, keepers=True)


@pytest.fixture
def cli(engine):
    yield engine
    remove_everything(engine, networks=False)
    wait_no_leaks(engine, keepers=False)


def run(cli: Cli, *args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """sangja with TMPDIR pointing at the engine's private (checked) temp directory."""
    full = {**os.environ, "TMPDIR": str(cli.tmp), **(env or {})}
    return cli(*args, env=full, **kw)


def refused(cli: Cli, *args: str, env: dict | None = None, mentions=(), **kw) -> str:
    """Run a command that must fail with exit 125 and one line, no traceback, leaving the
    store and the temp directory as they were; return the line."""
    before = store_state(cli)
    r = run(cli, *args, env=env, **kw)
    lines = r.stderr.splitlines()
    assert r.returncode == 125, (args, r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("sangja: "), r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    for m in [mentions] if isinstance(mentions, str) else mentions:
        assert m in lines[0], lines[0]
    same_store(before, store_state(cli))
    return lines[0]


def same_store(before: dict, after: dict) -> None:
    added = sorted(set(after["paths"]) - set(before["paths"]))
    gone = sorted(set(before["paths"]) - set(after["paths"]))
    assert after == before, f"store changed: added {added[:20]}, removed {gone[:20]}"


def store_state(cli: Cli) -> dict:
    """Every file and directory of the store (but the databases), what they hold in bytes,
    the images it lists, and whatever is in the temp directory."""
    paths, size = [], 0
    for dirpath, dirs, files in os.walk(cli.root):
        for name in dirs + files:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, cli.root)
            if rel in _DB_FILES or rel.startswith(_DB_FILES) and rel.endswith(("-wal", "-shm")):
                continue
            paths.append(rel)
            size += os.lstat(full).st_blocks * 512
    images = sorted(json.dumps(json.loads(line), sort_keys=True)
                    for line in cli.ok("images", "--format", "json").splitlines())
    return {"paths": sorted(paths), "bytes": size, "images": sorted(images),
            "tmp": sorted(os.listdir(cli.tmp)), "var_tmp_sangja": _sangja_temp_files()}


def _sangja_temp_files() -> list[str]:
    """Temp files sangja would name (.layer-, .load-, .import-, .unpack-) in the shared
    temp directories: none may be ours (other programs' files there are not looked at)."""
    out = []
    for d in ("/tmp", "/var/tmp"):
        try:
            out += [f"{d}/{n}" for n in os.listdir(d)
                    if n.startswith((".layer-", ".load-", ".import-", ".unpack-"))]
        except OSError:
            pass
    return sorted(out)


# ---------------------------------------------------------------------------- archives


def read_archive(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}


def write_archive(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return path


def docker_archive(cli: Cli, dest: Path, *, manifest=None, config=None,
                   config_bytes: bytes | None = None, manifest_bytes: bytes | None = None,
                   tag: str = "localhost/bad:latest") -> Path:
    """busybox's docker-archive with its manifest.json and/or config replaced (a document
    to serialize, a function changing the original, or raw bytes)."""
    members = read_archive(cli.root.parent / "busybox.tar")
    (entry,) = json.loads(members["manifest.json"])
    entry["RepoTags"] = [tag]
    cfg_name = entry["Config"]
    cfg = json.loads(members[cfg_name])
    if callable(config):
        changed = config(cfg)
        cfg = cfg if changed is None else changed
    elif config is not None:
        cfg = config
    members[cfg_name] = config_bytes if config_bytes is not None else json.dumps(cfg).encode()
    doc = [entry]
    if callable(manifest):
        changed = manifest(doc)
        doc = doc if changed is None else changed
    elif manifest is not None:
        doc = manifest
    members["manifest.json"] = (manifest_bytes if manifest_bytes is not None
                                else json.dumps(doc).encode())
    return write_archive(dest, members)


def _set(path: str, value):
    """A config mutator: set a dotted path ('config.Env') to value."""
    def mutate(doc):
        *parents, last = path.split(".")
        d = doc
        for p in parents:
            d = d.setdefault(p, {})
        d[last] = value
    return mutate


MALFORMED_JSON = [
    # raw bytes, what the line says
    (b'{"architecture": "amd64"', "expecting ',' delimiter"),
    (b'{"architecture" "amd64"}', "expecting ':' delimiter at line 1 column 17"),
    (b'{"architecture": "amd64",}', "expecting property name"),
    (b'{"rootfs": {"diff_ids": [1 2]}}', "expecting ',' delimiter"),
    (b'{"os": "lin', "unterminated string"),
    (b'{"os": "li\x01nux"}', "invalid control character"),
    (b'{"os": NaN}', "NaN is not allowed"),
    (b"[" * 100_000, "nested deeper than 100 levels"),
    (b'{"a":' * 3000 + b"1" + b"}" * 3000, "nested deeper than 100 levels"),
    (b'{"os": "\xff"}', "not UTF-8"),
    (b"{} {}", "extra data"),
    (b"", "expecting a value"),
]


@pytest.mark.parametrize("data,why", MALFORMED_JSON, ids=[repr(d[:16]) for d, _ in MALFORMED_JSON])
@pytest.mark.parametrize("where", ["config", "manifest.json"])
def test_malformed_json_in_an_archive(cli, tmp_path, data, why, where):
    kw = {"config_bytes": data} if where == "config" else {"manifest_bytes": data}
    archive = docker_archive(cli, tmp_path / "a.tar", **kw)
    line = refused(cli, "load", "-i", str(archive), mentions=("invalid JSON", why))
    name = "manifest.json" if where == "manifest.json" else ".json"
    assert name in line


@pytest.mark.parametrize("data,why", MALFORMED_JSON[:8], ids=[repr(d[:16]) for d, _ in
                                                             MALFORMED_JSON[:8]])
def test_malformed_index_json_in_an_oci_archive(cli, tmp_path, data, why):
    members = read_archive(cli.root.parent / "busybox-oci.tar")
    members["index.json"] = data
    archive = write_archive(tmp_path / "a.tar", members)
    refused(cli, "load", "-i", str(archive), mentions=("index.json", "invalid JSON", why))


WRONG_CONFIG = [
    ("config.Env", "PATH=/bin"), ("config.Env", ["A=1", 5]), ("config.Cmd", 5),
    ("config.Cmd", {"sh": 1}), ("config.Entrypoint", 1.5), ("config.ExposedPorts", ["80"]),
    ("config.ExposedPorts", {"80/tcp": "yes"}), ("config.User", 1000), ("config.Volumes", ["/v"]),
    ("config.Labels", {"a": 1}), ("config.Labels", ["a=b"]), ("config.WorkingDir", ["/"]),
    ("config.StopSignal", 9), ("config.Healthcheck", "true"), ("config", "sh"),
    ("history", {"a": 1}), ("history", ["x"]), ("created", 12), ("os", ["linux"]),
    ("rootfs", "layers"), ("rootfs.diff_ids", "sha256:0"),
]


@pytest.mark.parametrize("path,value", WRONG_CONFIG, ids=[f"{p}={v!r}" for p, v in WRONG_CONFIG])
def test_config_of_the_wrong_shape_is_refused_at_load(cli, tmp_path, path, value):
    """As docker load (Go's decoder refuses them), one line naming the field."""
    archive = docker_archive(cli, tmp_path / "a.tar", config=_set(path, value))
    line = refused(cli, "load", "-i", str(archive))
    assert path.split(".")[-1] in line and "expected" in line or "diff_ids" in line, line


WRONG_MANIFEST = [
    ({"Config": 5}, "Config"), ("x", "manifest.json"), ([], "manifest.json"),
    ([{"Config": None}], "Config"), ({"Layers": "x"}, "Layers"), ({"Layers": [5]}, "archive"),
    ({"RepoTags": "busybox"}, "RepoTags"), ({"RepoTags": [5]}, "RepoTags"),
    ({"LayerSources": {"sha256:" + "0" * 64: []}, "Layers": ["nope"]}, "nope"),
]


@pytest.mark.parametrize("change,mentions", WRONG_MANIFEST,
                         ids=[json.dumps(c)[:30] for c, _ in WRONG_MANIFEST])
def test_manifest_of_the_wrong_shape_is_refused(cli, tmp_path, change, mentions):
    def mutate(doc):
        if not isinstance(change, dict):
            return change
        doc[0].update(change)
    archive = docker_archive(cli, tmp_path / "a.tar", manifest=mutate)
    refused(cli, "load", "-i", str(archive), mentions=mentions)


# ------------------------------------------------------------------- image configs at run


def add_raw_image(cli: Cli, tag: str, config: dict) -> str:
    """Put an image whose config is `config` (busybox's layer) straight into the store, as
    an older sangja (before load checked configs) or another writer may have: the engine
    must not trust what it finds there either."""
    from sangja.image.store import ImageStore

    store = ImageStore(str(cli.root))
    base = store.resolve("localhost/busybox:latest")
    by_id = {la.diff_id: la for la in store.db.layers()}
    layers = [by_id[d] for d in base.layers]
    config = {**config, "rootfs": {"type": "layers", "diff_ids": list(base.layers)}}
    desc = store.blobs.put(json.dumps(config).encode())
    with store.lock.shared(), store.db.transaction():
        store.db.add_image(desc.digest, layers=layers, size=base.size, os="linux",
                           architecture=base.architecture)
        store.db.tag(tag, desc.digest)
    return desc.digest


RUN_CONFIGS = [
    ("Env", "PATH=/bin"), ("Env", [1]), ("Cmd", 5), ("Cmd", [["sh"]]), ("Entrypoint", {}),
    ("ExposedPorts", ["80/tcp"]), ("User", 0), ("Volumes", ["/data"]), ("Volumes", "/data"),
    ("Labels", {"a": ["b"]}), ("WorkingDir", 5), ("StopSignal", ["TERM"]),
]


@pytest.mark.parametrize("key,value", RUN_CONFIGS, ids=[f"{k}={v!r}" for k, v in RUN_CONFIGS])
def test_config_of_the_wrong_shape_at_run(cli, key, value):
    image_id = add_raw_image(cli, "localhost/raw:bad", {
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["true"], key: value}})
    try:
        for mode in (["run", "--rm"], ["run", "-d"], ["create"]):
            before = cli.ps()
            line = refused(cli, *mode, "localhost/raw:bad", mentions=(f"config.{key}",
                                                                     "expected", image_id))
            assert cli.ps() == before, line
    finally:
        cli.ok("rmi", "localhost/raw:bad")


def test_string_cmd_runs_as_one_word(cli):
    """Docker reads a string Cmd as one word (StrSlice), not as a list of characters."""
    add_raw_image(cli, "localhost/raw:str", {"architecture": "amd64", "os": "linux",
                                             "config": {"Env": ["PATH=/bin"], "Cmd": "pwd"}})
    try:
        assert cli.out("localhost/raw:str") == "/\n"
    finally:
        cli.ok("rmi", "localhost/raw:str")


# ---------------------------------------------------------------------------- seccomp files


def _profile(**changes) -> bytes:
    prof = {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                          "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}
    for k, v in changes.items():
        if k.startswith("call_"):
            prof["syscalls"][0][k[5:]] = v
        else:
            prof[k] = v
    return json.dumps(prof).encode()


SECCOMP_FILES = [
    (b'{"defaultAction": "SCMP_ACT_ALLOW"', "invalid JSON"),
    (b'{"defaultAction" "SCMP_ACT_ALLOW"}', "invalid JSON"),
    (b"[" * 50_000, "nested deeper"),
    (_profile(syscalls="mkdir"), "syscalls"),
    (_profile(call_names=5), "syscalls[0].names"),
    (_profile(call_names=[5]), "syscalls[0].names"),
    (_profile(call_includes="CAP_SYS_ADMIN"), "syscalls[0].includes"),
    (_profile(call_includes={"caps": "CAP_SYS_ADMIN"}), "syscalls[0].includes.caps"),
    (_profile(call_excludes={"arches": 5}), "syscalls[0].excludes.arches"),
    (_profile(call_args=5), "syscalls[0].args"),
    (_profile(call_args=[5]), "syscalls[0].args[0]"),
    (_profile(archMap=5), "archMap"),
    (_profile(archMap=[{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": 5}]),
     "subArchitectures"),
    (_profile(defaultAction=["SCMP_ACT_ALLOW"]), "defaultAction"),
]


@pytest.mark.parametrize("data,mentions", SECCOMP_FILES,
                         ids=[repr(d[:24]) for d, _ in SECCOMP_FILES])
@pytest.mark.parametrize("mode", [["run", "--rm"], ["run", "-d"], ["create"]])
def test_malformed_seccomp_profile(cli, tmp_path, data, mentions, mode):
    """One line naming the field (or the file), no container left running. A profile is
    read when the container is made or, at the latest, when it starts (then `start` is
    what fails, as `docker start` does for what only the start can tell)."""
    profile = tmp_path / "profile.json"
    profile.write_bytes(data)
    before = cli.ps()
    r = run(cli, *mode, "--security-opt", f"seccomp={profile}", "busybox", "true")
    if mode == ["create"] and r.returncode == 0:
        cid = r.stdout.strip()
        r = run(cli, "start", cid)
        assert r.returncode != 0, r
        cli.ok("rm", "-f", cid)
    else:
        assert r.returncode == 125, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sangja: "), r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert mentions in lines[0], lines[0]
    after = cli.ps()
    if mode == ["run", "-d"]:  # as Docker: a container whose start failed stays created
        made = [c for c in after if c not in before]
        assert all(c["State"] == "created" for c in made), made
        for c in made:
            cli.ok("rm", c["ID"])
        after = cli.ps()
    assert after == before


# ---------------------------------------------------------------------------- fuzz

_FUZZ_DRIVER = r"""
import contextlib, io, json, sys
sys.path.insert(0, sys.argv[1])
from sangja.cli.engine import main
root, run, cases = sys.argv[2], sys.argv[3], json.load(open(sys.argv[4]))
g = ["--root", root, "--runroot", run]

def sangja(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(g + list(args))
        except BaseException as e:
            import traceback
            err.write("Traceback: " + "".join(traceback.format_exception(e)))
            code = -1
    return {"argv": list(args), "code": code, "stdout": out.getvalue(),
            "stderr": err.getvalue()}

for case in cases:
    steps = [sangja("load", "-i", case["archive"])]
    loaded = [line.split(": ", 1)[1] for line in steps[0]["stdout"].splitlines()
              if line.startswith("Loaded image")]
    if steps[0]["code"] == 0 and loaded:
        steps.append(sangja("create", loaded[0]))
        if steps[-1]["code"] == 0:
            steps.append(sangja("rm", steps[-1]["stdout"].strip()))
        steps.append(sangja("rmi", *loaded))
    print(json.dumps({"i": case["i"], "steps": steps}), flush=True)
"""

_WRONG = ["x", "", 0, -1, 2**64, 2**200, 1.5, True, False, None, [], {}, [1], ["x"], [None],
          [{}], {"a": 1}, {"": []}, "\ud800", "A" * 5000, "/nonexistent-sangja-fuzz"]


def _nodes(doc, path=()):
    yield path
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _nodes(v, (*path, i))


def mutate(rng: random.Random, doc):
    """One random change: a node replaced by a value of the wrong kind, a key removed, an
    unknown key added, or the node nested 150 levels deep."""
    doc = copy.deepcopy(doc)
    nodes = [p for p in _nodes(doc) if p]
    path = rng.choice(nodes)
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    kind = rng.random()
    if kind < 0.7:
        parent[path[-1]] = rng.choice(_WRONG)
    elif kind < 0.8 and isinstance(parent, dict):
        del parent[path[-1]]
    elif kind < 0.9 and isinstance(parent, dict):
        parent[f"zz{rng.randrange(100)}"] = rng.choice(_WRONG)
    else:
        v = parent[path[-1]]
        for _ in range(150):
            v = [v]
        parent[path[-1]] = v
    return doc


def text_mutate(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data))
    how = rng.randrange(3)
    if how == 0:
        return data[:at]
    if how == 1:
        return data[:at] + bytes([rng.choice(b'{}[]",:\\\x00\xff')]) + data[at:]
    return data[:at] + data[at + 1:]


def test_fuzz_image_config_and_manifest(cli, tmp_path):
    """300 seeded random changes of busybox's config and manifest.json (wrong kinds of
    value, removed and added keys, deep nesting, broken text), each loaded and, if it
    loads, created and removed through the CLI: never a traceback, only one line and exit
    125 when refused, and the store as it was at the end."""
    rng = random.Random(20261203)
    members = read_archive(cli.root.parent / "busybox.tar")
    (entry,) = json.loads(members["manifest.json"])
    config = json.loads(members[entry["Config"]])
    cases = []
    for i in range(300):
        tag = f"localhost/fuzz:{i}"
        which = rng.random()
        kw: dict = {"tag": tag}
        if which < 0.55:
            kw["config"] = mutate(rng, config)
        elif which < 0.8:
            kw["config_bytes"] = text_mutate(rng, json.dumps(config).encode())
        elif which < 0.95:
            kw["manifest"] = mutate(rng, [{**entry, "RepoTags": [tag]}])
        else:
            kw["manifest_bytes"] = text_mutate(rng, json.dumps([{**entry, "RepoTags": [tag]}])
                                               .encode())
        try:
            archive = docker_archive(cli, tmp_path / f"{i}.tar", **kw)
        except (UnicodeEncodeError, ValueError):  # "\ud800" cannot be written as UTF-8
            continue
        cases.append({"i": i, "archive": str(archive), "tag": tag})
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    before = store_state(cli)
    r = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", _FUZZ_DRIVER,
                        str(REPO / "src"), str(cli.root), str(cli.runroot),
                        str(tmp_path / "cases.json")], capture_output=True, text=True,
                       timeout=600, env={**os.environ, "TMPDIR": str(cli.tmp)})
    assert r.returncode == 0, r.stderr[-3000:]
    results = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(results) == len(cases)
    refused_count = 0
    for res in results:
        for step in res["steps"]:
            lines = step["stderr"].splitlines()
            assert "Traceback" not in step["stderr"], (res["i"], step)
            assert "internal error" not in step["stderr"], (res["i"], step)
            assert step["code"] in (0, 125), (res["i"], step)
            if step["code"]:
                assert len(lines) == 1 and lines[0].startswith("sangja: "), (res["i"], step)
        # a container made of a mutated image is removed, the image too
        assert all(step["code"] == 0 for step in res["steps"][2:]), res
        refused_count += res["steps"][0]["code"] != 0
    assert refused_count > 100  # the mutations do reach the checks
    same_store(before, store_state(cli))


# ---------------------------------------------------------------------------- bombs


def gzip_bomb(path: Path, size: int = 2 << 30) -> Path:
    """A gzip'ed layer tar holding one file of `size` zero bytes (2 GiB: about 2 MiB),
    made of repeated gzip members so that making it costs nothing."""
    block = 16 * MiB
    head = tarfile.TarInfo("zeros")
    head.size = size
    member = gzip.compress(b"\0" * block, 9)
    with open(path, "wb") as f:
        f.write(gzip.compress(head.tobuf(format=tarfile.GNU_FORMAT), 9))
        for _ in range(size // block):
            f.write(member)
        f.write(gzip.compress(b"\0" * 1024, 9))
    return path


def bomb_archive(tmp_path: Path) -> Path:
    """A docker-archive whose one layer is the gzip bomb. Its diff_id is made up: an
    attacker need not know it, the layer is expanded before it can be checked."""
    layer = gzip_bomb(tmp_path / "layer.tar.gz")
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}
    cfg = json.dumps(config).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    manifest = [{"Config": cfg_name, "RepoTags": ["localhost/bomb:latest"],
                 "Layers": ["layer.tar.gz"]}]
    return write_archive(tmp_path / "bomb.tar", {cfg_name: cfg,
                                                 "manifest.json": json.dumps(manifest).encode(),
                                                 "layer.tar.gz": layer.read_bytes()})


def _fsize_limit(n: int):
    """preexec: no file the command writes may grow past n bytes (SIGXFSZ kills it), so a
    command that wrote the bomb out would die instead of refusing it in one line."""
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
    return apply


@pytest.mark.parametrize("how", ["load", "load-compressed", "load-stdin", "import"])
def test_decompression_bomb_is_refused(cli, tmp_path, how):
    archive = bomb_archive(tmp_path)
    assert archive.stat().st_size < 4 * MiB
    env = {"SANGJA_LAYER_MAX_SIZE": "64m"}
    fsize = _fsize_limit(128 * MiB)
    if how == "load":
        args, kw = ["load", "-i", str(archive)], {}
    elif how == "load-compressed":  # the archive's own compression: bounded as well
        packed = tmp_path / "bomb.tar.gz"
        packed.write_bytes(gzip.compress(archive.read_bytes()))
        args, kw = ["load", "-i", str(packed)], {}
    elif how == "load-stdin":
        args, kw = ["load"], {"stdin": open(archive, "rb")}
    else:
        args, kw = ["import", str(tmp_path / "layer.tar.gz"), "localhost/bomb:imported"], {}
    # load's one-pass unpack refuses the member's header (it declares 2 GiB) before
    # inflating its data; import inflates the stream first
    bound = "has files adding up to more than" if how.startswith("load") else "expands past"
    try:
        line = refused(cli, *args, env=env, preexec_fn=fsize, mentions=(
            f"{bound} 64 MiB", "SANGJA_LAYER_MAX_SIZE"), **kw)
    finally:
        if "stdin" in kw:
            kw["stdin"].close()
    assert ("layer.tar.gz" in line) if how.startswith("load") else ("tarball" in line)


def test_bomb_refused_by_the_default_ratio(cli, tmp_path):
    """With no setting at all: a 2 MiB layer may expand to 256 MiB (the ratio's floor), not
    to 2 GiB."""
    archive = bomb_archive(tmp_path)
    env = {k: "" for k in ("SANGJA_LAYER_MAX_SIZE", "SANGJA_LAYER_MAX_RATIO",
                           "SANGJA_LAYER_RATIO_FLOOR", "SANGJA_LAYER_MAX_ENTRIES")}
    refused(cli, "load", "-i", str(archive), env=env, preexec_fn=_fsize_limit(320 * MiB),
            mentions=("adding up to more than 256 MiB", "SANGJA_LAYER_MAX_RATIO=100",
                      "SANGJA_LAYER_RATIO_FLOOR"))


def test_ratio_and_entries_settings(cli, tmp_path):
    archive = bomb_archive(tmp_path)
    refused(cli, "load", "-i", str(archive), preexec_fn=_fsize_limit(64 * MiB),
            env={"SANGJA_LAYER_MAX_RATIO": "5", "SANGJA_LAYER_RATIO_FLOOR": "1m"},
            mentions="SANGJA_LAYER_MAX_RATIO=5 times")
    # many empty entries: a small tar, but each entry costs memory to check
    tar = tmp_path / "many.tar"
    with tarfile.open(tar, "w") as tf:
        for i in range(3000):
            tf.addfile(tarfile.TarInfo(f"f{i}"))
    refused(cli, "import", str(tar), "localhost/many:1", env={"SANGJA_LAYER_MAX_ENTRIES": "1000"},
            mentions="has more than 1000 entries (see SANGJA_LAYER_MAX_ENTRIES)")
    refused(cli, "load", "-i", str(archive), env={"SANGJA_LAYER_MAX_SIZE": "lots"},
            mentions="SANGJA_LAYER_MAX_SIZE='lots'")


def test_sparse_entry_bomb(cli, tmp_path):
    """A sparse tar entry declares a terabyte in a few kilobytes: refused before a byte of
    it is written."""
    if not shutil.which("tar"):
        pytest.skip("no GNU tar")
    (tmp_path / "src").mkdir()
    with open(tmp_path / "src" / "holes", "wb") as f:
        f.truncate(1 << 40)
    tar = tmp_path / "sparse.tar"
    subprocess.run(["tar", "-S", "-cf", str(tar), "-C", str(tmp_path / "src"), "holes"],
                   check=True)
    assert tar.stat().st_size < MiB
    refused(cli, "import", str(tar), "localhost/sparse:1", preexec_fn=_fsize_limit(64 * MiB),
            mentions="has files adding up to more than 256 MiB")


def test_within_the_limits_loads(cli, tmp_path):
    """The limits refuse bombs, not layers: busybox loads with them set low."""
    members = read_archive(cli.root.parent / "busybox.tar")
    (entry,) = json.loads(members["manifest.json"])
    entry["RepoTags"] = ["localhost/small:1"]
    members["manifest.json"] = json.dumps([entry]).encode()
    archive = write_archive(tmp_path / "small.tar", members)
    cli.ok("rmi", "localhost/busybox:latest")  # so its layer is unpacked again
    try:
        r = run(cli, "load", "-i", str(archive), env={"SANGJA_LAYER_MAX_SIZE": "8m"})
        assert r.returncode == 0, r.stderr
        assert cli.out("localhost/small:1", "echo", "hi") == "hi\n"
    finally:
        r = run(cli, "load", "-i", str(cli.root.parent / "busybox.tar"))
        assert r.returncode == 0, r.stderr
        cli.ok("rmi", "localhost/small:1")


def test_limits_do_not_apply_to_the_stores_own_layers(tmp_path):
    """The limits are for what comes in: a layer the store made itself (bootstrap, commit)
    is unpacked when a container first needs it, whatever they are set to."""
    own = Cli(tmp_path / "root", tmp_path / "run")
    own.ok("bootstrap", "busybox")
    assert os.listdir(tmp_path / "root" / "layers") == []  # unpacked when first run
    tight = {**os.environ, "SANGJA_LAYER_MAX_SIZE": "1m", "SANGJA_LAYER_MAX_ENTRIES": "10"}
    r = own("run", "--rm", "busybox", "echo", "hi", env=tight)
    assert (r.returncode, r.stdout, r.stderr) == (0, "hi\n", "")
    remove_everything(own)
    wait_no_leaks(own)


# ---------------------------------------------------------------------------- non-root


def as_nobody(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           *argv], capture_output=True, text=True, timeout=60,
                          cwd="/", **kw)


@pytest.mark.parametrize("args", [
    ["images"], ["ps", "-a"], ["run", "--rm", "busybox", "true"], ["create", "busybox"],
    ["load", "-i", "/dev/null"], ["volume", "ls"], ["system", "df"], ["rm", "-f", "x"],
    ["image", "inspect", "busybox"], ["bootstrap", "busybox"], ["exec", "x", "true"],
])
def test_non_root_is_told_root_is_needed(tmp_path, nobody_bin, args):
    root = tmp_path / "nobody-root"
    r = as_nobody(str(nobody_bin / "sangja"), "--root", str(root), "--runroot",
                  str(tmp_path / "run"), *args)
    assert r.returncode == 125, r
    assert r.stderr.splitlines() == [
        f"sangja: {args[0]}{' ' + args[1] if args[0] in ('volume', 'system', 'image') else ''}"
        " needs root: run sangja as root (rootless mode is not supported yet)"]
    assert not root.exists()


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["version"], ["info"]])
def test_non_root_can_ask_for_help_and_version(nobody_bin, args):
    r = as_nobody(str(nobody_bin / "sangja"), *args)
    assert r.returncode == 0, r.stderr
    assert r.stdout and not r.stderr


# ---------------------------------------------------------------------------- exec


def test_exec_into_a_container_whose_init_unshared_its_user_namespace(cli):
    """The init moved itself into a user namespace of its own (`unshare -U`) after it
    started: exec still works and, as with runc, joins the container's namespaces at the
    init's current ones but for that user namespace, which is not the container's."""
    cid = cli.detach("busybox", "unshare", "-U", "sh", "-c", "sleep 1000")
    pid = cli.inspect(cid)["State"]["Pid"]

    def ns(p, t):
        return os.readlink(f"/proc/{p}/ns/{t}")

    def moved():
        return ns(pid, "user") != ns("self", "user")

    from engine_cli import wait_until

    wait_until(moved, 10, message="the init to unshare its user namespace")
    r = run(cli, "exec", cid, "sh", "-c", "for n in user mnt pid net; do "
            "readlink /proc/self/ns/$n; done; id -u")
    assert r.returncode == 0 and not r.stderr, r
    user, mnt, pidns, net, uid = r.stdout.split()
    assert user == ns("self", "user") != ns(pid, "user")
    assert (mnt, pidns, net) == (ns(pid, "mnt"), ns(pid, "pid"), ns(pid, "net"))
    assert uid == "0"
    cli.ok("rm", "-f", cid)

