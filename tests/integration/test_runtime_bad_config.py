"""sangja-runtime fed bad input from the outside: config.json that does not parse or has
the wrong shape anywhere, process.json for `exec --process`, --resources files, hundreds of
seeded random mutations of a valid config; a non-root user; `exec` into a container whose
init moved itself into a user namespace of its own. Every refusal is one line
(`sangja-runtime: config.json: FIELD: expected ...`), exit 1 (runc's), no traceback, and
nothing left behind."""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
from pathlib import Path

import pytest

from conftest import (
    BASE_CONFIG,
    REPO,
    host_mountinfo,
    new_id,
    processes_referencing,
    sh,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.root


def _one_line_failure(r, *mentions: str) -> str:
    lines = r.stderr.splitlines()
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("sangja-runtime: "), r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    for m in mentions:
        assert m in lines[0], lines[0]
    return lines[0]


def _left_nothing(runtime, bundle: Path, cid: str) -> None:
    assert runtime.ids() == []
    assert not (runtime.root / cid).exists()
    assert not processes_referencing(cid, str(bundle))
    assert str(bundle) not in host_mountinfo()


# ---------------------------------------------------------------------------- config.json

MALFORMED = [
    # the text of config.json, what the line says
    ('{"ociVersion": "1.0.2", "process": ', "expecting a value at line 1 column 36"),
    ('{"ociVersion" "1.0.2"}', "expecting ':' delimiter at line 1 column 15"),
    ('{"ociVersion": "1.0.2",}', "expecting property name"),
    ('{"ociVersion": "1.0.2"\n "root": {}}', "expecting ',' delimiter at line 2 column 2"),
    ('{"ociVersion": "1.0', "unterminated string"),
    ('{"ociVersion": "1.0\x01"}', "invalid control character"),
    ('{"ociVersion": NaN}', "NaN is not allowed"),
    ("[" * 100_000, "nested deeper than 100 levels"),
    ('{"a":' * 5000 + "1" + "}" * 5000, "nested deeper than 100 levels"),
    ("{} {}", "extra data after the document"),
    ("", "expecting a value"),
    (b'{"ociVersion": "\xff"}', "not UTF-8"),
    (b" " * (17 << 20) + b"{}", "larger than 16777216 bytes"),
]


@pytest.mark.sangja_only  # the messages are ours; runc's exit code is the same
@pytest.mark.parametrize("text,why", MALFORMED, ids=[repr(t[:20]) for t, _ in MALFORMED])
@pytest.mark.parametrize("command", ["create", "run"])
def test_malformed_config_json(runtime, make_bundle, text, why, command):
    bundle = make_bundle(args=["true"])
    path = bundle / "config.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    cid = new_id()
    _one_line_failure(runtime.run(command, "--bundle", bundle, cid),
                      f"{path}: invalid JSON: ", why)
    _left_nothing(runtime, bundle, cid)


def _at(path: str, value):
    """A make_bundle mutator setting the dotted path (list indexes as numbers) to value;
    "$" replaces the whole document."""
    def mutate(config):
        if path == "$":
            return value
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        d = config
        for p in parents:
            d = d[p] if not isinstance(d, dict) or p in d else d.setdefault(p, {})
        d[last] = value
    return mutate


SECCOMP = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}

WRONG_SHAPE = [
    # path, value, what the line says after "config.json: "
    ("$", [], "expected a JSON object, got an array"),
    ("ociVersion", 1, "ociVersion: expected a string, got an integer"),
    ("process", "sh", "process: expected an object, got a string"),
    ("process.args", "sh -c true", "process.args: expected an array, got a string"),
    ("process.args", ["sh", 1], "process.args[1]: expected a string, got an integer"),
    ("process.env", {"A": "1"}, "process.env: expected an array, got an object"),
    ("process.cwd", 5, "process.cwd: expected a string, got an integer"),
    ("process.terminal", "no", "process.terminal: expected a boolean, got a string"),
    ("process.user", "root", "process.user: expected an object, got a string"),
    ("process.user.uid", "0", "process.user.uid: expected an integer, got a string"),
    ("process.user.uid", -1, "process.user.uid: expected an integer from 0 to 4294967295"),
    ("process.user.gid", 1.5, "process.user.gid: expected an integer, got a number"),
    ("process.user.additionalGids", [1 << 40], "process.user.additionalGids[0]: expected an "
     "integer from 0 to 4294967295"),
    ("process.capabilities", ["CAP_KILL"], "process.capabilities: expected an object"),
    ("process.capabilities.bounding", "CAP_KILL",
     "process.capabilities.bounding: expected an array, got a string"),
    ("process.rlimits", {}, "process.rlimits: expected an array, got an object"),
    ("process.rlimits.0", "RLIMIT_NOFILE", "process.rlimits[0]: expected an object"),
    ("process.rlimits.0.hard", "1024", "process.rlimits[0].hard: expected an integer"),
    ("process.rlimits.0.soft", 1 << 70, "process.rlimits[0].soft: expected an integer from 0"),
    ("process.consoleSize", [24, 80], "process.consoleSize: expected an object"),
    ("process.oomScoreAdj", "5", "process.oomScoreAdj: expected an integer"),
    ("process.noNewPrivileges", 1, "process.noNewPrivileges: expected a boolean"),
    ("root", "rootfs", "root: expected an object, got a string"),
    ("root.path", 5, "root.path: expected a string, got an integer"),
    ("root.readonly", "yes", "root.readonly: expected a boolean"),
    ("hostname", ["a"], "hostname: expected a string, got an array"),
    ("mounts", {"destination": "/x"}, "mounts: expected an array, got an object"),
    ("mounts.0", "/proc", "mounts[0]: expected an object, got a string"),
    ("mounts.1.options", "ro", "mounts[1].options: expected an array, got a string"),
    ("mounts.1.options", [1], "mounts[1].options[0]: expected a string"),
    ("mounts.0.destination", None, "mounts[0].destination: is required"),
    ("hooks", [], "hooks: expected an object, got an array"),
    ("hooks.prestart", {"path": "/bin/true"}, "hooks.prestart: expected an array"),
    ("hooks.poststop", [{"path": 5}], "hooks.poststop[0].path: expected a string"),
    ("annotations", {"a": 1}, "annotations.a: expected a string, got an integer"),
    ("annotations", "a=b", "annotations: expected an object"),
    ("linux", [], "linux: expected an object, got an array"),
    ("linux.namespaces", {"type": "pid"}, "linux.namespaces: expected an array"),
    ("linux.namespaces.0", "pid", "linux.namespaces[0]: expected an object"),
    ("linux.namespaces.0.type", 1, "linux.namespaces[0].type: expected a string"),
    ("linux.devices", {}, "linux.devices: expected an array"),
    ("linux.resources", [], "linux.resources: expected an object, got an array"),
    ("linux.maskedPaths", "/proc/kcore", "linux.maskedPaths: expected an array"),
    ("linux.readonlyPaths", ["/proc/sys", 1], "linux.readonlyPaths[1]: expected a string, "
     "got an integer"),
    ("linux.sysctl", ["a=b"], "linux.sysctl: expected an object"),
    ("linux.cgroupsPath", 5, "linux.cgroupsPath: expected a string"),
]

# fields checked where they are used: the line names the field, without the prefix
WRONG_SHAPE_LATER = [
    ("linux.resources.memory", 5, "linux.resources.memory"),
    ("linux.resources.memory.limit", "1g", "linux.resources.memory.limit"),
    ("linux.resources.pids.limit", [1], "linux.resources.pids.limit"),
    ("linux.resources.devices.0", "a", "linux.resources.devices[0]"),
    ("linux.uidMappings", {}, "linux.uidMappings"),
    ("linux.seccomp", [], "linux.seccomp"),
    ("linux.seccomp", dict(SECCOMP, syscalls="mkdir"), "linux.seccomp.syscalls"),
    ("linux.seccomp", dict(SECCOMP, defaultAction=1), "linux.seccomp.defaultAction"),
    ("linux.seccomp", dict(SECCOMP, flags=[["x"]]), "linux.seccomp.flags[0]"),
    ("linux.seccomp.syscalls.0.names", 5, "linux.seccomp.syscalls[0].names"),
    ("linux.seccomp.syscalls.0.args.0.op", [], "linux.seccomp.syscalls[0].args[0].op"),
    ("linux.seccomp.syscalls.0.args.0.index", "0", "linux.seccomp.syscalls[0].args[0].index"),
    ("linux.personality", {"domain": ["LINUX"]}, "linux.personality.domain"),
    ("process.scheduler", {"policy": []}, "process.scheduler.policy"),
    ("process.scheduler", {"policy": "SCHED_OTHER", "flags": 5}, "process.scheduler.flags"),
    ("process.ioPriority", 5, "process.ioPriority.class"),
    ("process.ioPriority", {"class": {}}, "process.ioPriority.class"),
    ("process.rlimits.0.type", 7, "process.rlimits[0].type"),
]


@pytest.mark.sangja_only
@pytest.mark.parametrize("path,value,why", WRONG_SHAPE,
                         ids=[f"{p}={json.dumps(v)[:20]}" for p, v, _ in WRONG_SHAPE])
def test_config_of_the_wrong_shape(runtime, make_bundle, path, value, why):
    bundle = make_bundle(_at(path, value), args=["true"])
    cid = new_id()
    line = _one_line_failure(runtime.run("create", "--bundle", bundle, cid))
    assert line == f"sangja-runtime: config.json: {why}" or \
        line.startswith(f"sangja-runtime: config.json: {why}"), line
    _left_nothing(runtime, bundle, cid)


@pytest.mark.sangja_only
@pytest.mark.parametrize("path,value,field", WRONG_SHAPE_LATER,
                         ids=[f"{p}={json.dumps(v)[:20]}" for p, v, _ in WRONG_SHAPE_LATER])
def test_config_of_the_wrong_shape_checked_later(runtime, make_bundle, path, value, field):
    def seccomp(config):
        if path.startswith("linux.seccomp."):
            config["linux"]["seccomp"] = copy.deepcopy(SECCOMP)
        if path.startswith("linux.resources.pids"):
            config["linux"]["resources"]["pids"] = {"limit": 10}

    bundle = make_bundle(seccomp, _at(path, value), args=["true"])
    cid = new_id()
    _one_line_failure(runtime.run("run", "--bundle", bundle, cid), field)
    _left_nothing(runtime, bundle, cid)


def test_config_wrong_types_fail_as_runc_does(runtime, make_bundle):
    """The exit code and the one line hold for runc too (its own words)."""
    for path, value in (("process.args", "sh"), ("process.user.uid", "0"), ("root", "x"),
                        ("mounts", {}), ("linux.namespaces", "pid")):
        bundle = make_bundle(_at(path, value), args=["true"])
        cid = new_id()
        r = runtime.run("create", "--bundle", bundle, cid)
        assert r.returncode == 1 and r.stderr.strip(), r
        assert "Traceback" not in r.stderr
        _left_nothing(runtime, bundle, cid)


@pytest.mark.sangja_only
@pytest.mark.parametrize("text,why", [
    ('{"memory": {"limit": ', "invalid JSON: expecting a value"),
    ("[" * 10_000, "nested deeper than 100 levels"),
    ("[]", "expected a JSON object"),
])
def test_malformed_resources_file(runtime, make_bundle, tmp_path, text, why):
    bundle = make_bundle(args=["sleep", "1000"])
    cid = new_id()
    runtime.create(bundle, cid)
    res = tmp_path / "res.json"
    res.write_text(text)
    _one_line_failure(runtime.run("update", "--resources", res, cid), f"--resources {res}",
                      why)
    assert runtime.state(cid)["status"] == "created"


# ---------------------------------------------------------------------------- process.json

PROCESS = {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["true"],
           "env": ["PATH=/bin"], "cwd": "/"}

BAD_PROCESS = [
    ("text", '{"args": ["true"]', "invalid JSON: expecting ',' delimiter"),
    ("text", '{"args" ["true"]}', "invalid JSON: expecting ':' delimiter"),
    ("text", "[" * 50_000, "nested deeper than 100 levels"),
    ("$", ["true"], "expected a JSON object, got an array"),
    ("args", "true", "process.args: expected an array, got a string"),
    ("args", [1], "process.args[0]: expected a string"),
    ("cwd", None, "process.cwd: is required"),
    ("cwd", "tmp", "process.cwd must be an absolute path"),
    ("env", "A=1", "process.env: expected an array"),
    ("user", [0], "process.user: expected an object"),
    ("user", {"uid": "0"}, "process.user.uid: expected an integer"),
    ("capabilities", {"bounding": "CAP_KILL"}, "process.capabilities.bounding"),
    ("capabilities", {"bounding": ["CAP_NOPE"]}, "CAP_NOPE"),
    ("rlimits", [{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}], "process.rlimits[0].type"),
    ("rlimits", [{"type": 1, "soft": 1, "hard": 1}], "process.rlimits[0].type"),
    ("scheduler", "x", "process.scheduler"),
    ("scheduler", {"policy": [[]]}, "process.scheduler.policy"),
    ("scheduler", {"policy": "SCHED_OTHER", "flags": [[]]}, "process.scheduler.flags"),
    ("ioPriority", 5, "process.ioPriority.class"),
    ("ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": "x"}, "process.ioPriority"),
    ("terminal", "yes", "process.terminal: expected a boolean"),
]


@pytest.fixture(scope="module")
def sleeper(tmp_path_factory, busybox_rootfs):
    """One running container for the exec tests of this module."""
    from conftest import Runtime, runtime_binary, runtime_is_runc

    top = tmp_path_factory.mktemp("exec-bad")
    rt = Runtime(runtime_binary(), top / "state", runtime_is_runc())
    (top / "state").mkdir()
    bundle = top / "bundle"
    bundle.mkdir()
    subprocess.run(["cp", "-a", str(busybox_rootfs), str(bundle / "rootfs")], check=True)
    config = copy.deepcopy(BASE_CONFIG)
    config["process"]["args"] = ["sleep", "1000"]
    write_config(bundle, config)
    cid = new_id()
    r = rt.run("run", "-d", "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    yield rt, cid, top
    rt.cleanup()


@pytest.mark.sangja_only
@pytest.mark.parametrize("key,value,why", BAD_PROCESS,
                         ids=[f"{k}={json.dumps(v)[:20]}" for k, v, _ in BAD_PROCESS])
def test_malformed_process_json(sleeper, key, value, why):
    rt, cid, top = sleeper
    pj = top / f"process-{new_id()}.json"
    if key == "text":
        pj.write_text(value)
    else:
        doc = copy.deepcopy(PROCESS)
        if key == "$":
            doc = value
        else:
            doc[key] = value
        pj.write_text(json.dumps(doc))
    pid = rt.state(cid)["pid"]
    before = _children(pid)
    r = rt.run("exec", "--process", pj, cid)
    _one_line_failure(r, str(pj), why)
    assert rt.state(cid)["status"] == "running" and rt.state(cid)["pid"] == pid
    assert _children(pid) == before and not processes_referencing(str(pj))


def _children(pid: int) -> list[str]:
    """Processes in the container's pid namespace (an exec that half-happened shows)."""
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    out = []
    for e in os.listdir("/proc"):
        try:
            if e.isdigit() and os.readlink(f"/proc/{e}/ns/pid") == ns:
                out.append(e)
        except OSError:
            pass
    return sorted(out)


# ---------------------------------------------------------------------------- fuzz

_DRIVER = r"""
import contextlib, io, json, sys
sys.path.insert(0, sys.argv[1])
from sangja.cli.runtime import main
state, cases = sys.argv[2], json.load(open(sys.argv[3]))
for case in cases:
    out = []
    for argv in (["create", "--bundle", case["bundle"], case["id"]],
                 ["delete", "--force", case["id"]]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(["--root", state, *argv])
            except BaseException as e:
                import traceback
                err.write("Traceback: " + "".join(traceback.format_exception(e)))
                code = -1
        out.append({"argv": argv[0], "code": code, "stderr": err.getvalue()})
    print(json.dumps({"i": case["i"], "steps": out}), flush=True)
"""

_WRONG = ["x", "", 0, -1, 2**64, 2**200, 1.5, True, False, None, [], {}, [1], ["x"], [None],
          [{}], {"a": 1}, {"": []}, "A" * 5000, "/nonexistent-sangja-fuzz", "\u00e9\u4e2d"]


def _nodes(doc, path=()):
    yield path
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _nodes(v, (*path, i))


def _mutate(rng: random.Random, doc):
    doc = copy.deepcopy(doc)
    path = rng.choice([p for p in _nodes(doc) if p])
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    kind = rng.random()
    if kind < 0.7:
        parent[path[-1]] = copy.deepcopy(rng.choice(_WRONG))
    elif kind < 0.8 and isinstance(parent, dict):
        del parent[path[-1]]
    elif kind < 0.9 and isinstance(parent, dict):
        parent[f"zz{rng.randrange(100)}"] = copy.deepcopy(rng.choice(_WRONG))
    else:
        v = parent[path[-1]]
        for _ in range(150):
            v = [v]
        parent[path[-1]] = v
    return doc


@pytest.mark.sangja_only  # drives sangja's CLI entry point in one process (fast)
def test_fuzz_config_json(runtime, tmp_path, busybox_rootfs):
    """400 seeded random changes of a valid config.json (wrong kinds of value, removed and
    added keys, deep nesting, broken text), each through `create` (and `delete --force`):
    never a traceback or an internal error, one line when refused, and nothing left."""
    rng = random.Random(20261203)
    base = copy.deepcopy(BASE_CONFIG)
    base["process"]["args"] = ["true"]
    # a copy: a changed config may make the root writable and the runtime then makes
    # /dev nodes in it (the session's shared rootfs must stay as built)
    rootfs = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", str(busybox_rootfs), str(rootfs)], check=True)
    base["root"] = {"path": str(rootfs), "readonly": True}
    base["linux"]["seccomp"] = copy.deepcopy(SECCOMP)
    base["linux"]["resources"]["pids"] = {"limit": 100}
    base["process"]["scheduler"] = {"policy": "SCHED_OTHER", "nice": 0}
    base["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 4}
    base["hooks"] = {"poststop": [{"path": "/bin/true", "args": ["true"]}]}
    base["annotations"] = {"a": "b"}
    cases = []
    for i in range(400):
        bundle = tmp_path / f"b{i}"
        bundle.mkdir()
        if rng.random() < 0.8:
            text = json.dumps(_mutate(rng, base))
        else:
            text = json.dumps(base, indent=1)
            at = rng.randrange(len(text))
            text = rng.choice([text[:at], text[:at] + rng.choice('{}[]",:\\') + text[at:],
                               text[:at] + text[at + 1:]])
        (bundle / "config.json").write_text(text)
        cases.append({"i": i, "bundle": str(bundle), "id": f"fz{i}-{new_id()}"})
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    r = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", _DRIVER,
                        str(REPO / "src"), str(runtime.root), str(tmp_path / "cases.json")],
                       capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-3000:]
    results = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(results) == len(cases)
    refused = 0
    for res in results:
        create, delete = res["steps"]
        for step in (create, delete):
            assert "Traceback" not in step["stderr"], (res["i"], step)
            assert "internal error" not in step["stderr"], (res["i"], step)
        assert create["code"] in (0, 1), (res["i"], create)
        if create["code"]:
            refused += 1
            lines = create["stderr"].splitlines()
            assert len(lines) == 1 and lines[0].startswith("sangja-runtime: "), (res["i"],
                                                                               create)
        assert delete["code"] == 0, (res["i"], delete)
    assert refused > 250  # the mutations reach the checks
    assert runtime.ids() == [] and os.listdir(runtime.root) in ([], ["~seccomp"])
    wait_until(lambda: not processes_referencing(str(tmp_path)), 10)


# ---------------------------------------------------------------------------- non-root


def _as_nobody(*argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           *map(str, argv)], capture_output=True, text=True, timeout=60, **kw)


@pytest.mark.sangja_only  # runc has a rootless mode
@pytest.mark.parametrize("args", [["create", "--bundle", "B", "x"], ["run", "-b", "B", "x"],
                                  ["start", "x"], ["state", "x"], ["list"], ["delete", "x"],
                                  ["kill", "x", "KILL"], ["exec", "x", "true"], ["ps", "x"],
                                  ["pause", "x"], ["update", "--pids-limit", "5", "x"]])
def test_non_root_is_told_root_is_needed(runtime, make_bundle, tmp_path, nobody_bin, args):
    bundle = make_bundle(args=["true"])
    state = tmp_path / "nobody-state"
    argv = [str(bundle) if a == "B" else a for a in args]
    r = _as_nobody(nobody_bin / "sangja-runtime", "--root", state, *argv, cwd="/")
    _one_line_failure(r, f"{args[0]} needs root: run sangja-runtime as root "
                      "(rootless containers are not supported yet)")
    assert not state.exists()


@pytest.mark.sangja_only
def test_non_root_can_use_what_needs_no_root(runtime, nobody_bin):
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="sangja-nobody-"))
    d.chmod(0o777)
    for args in (["--help"], ["--version"], ["features"], ["create", "--help"],
                 ["spec", "--bundle", d]):
        r = _as_nobody(nobody_bin / "sangja-runtime", *args, cwd="/")
        assert r.returncode == 0 and not r.stderr, (args, r)
    assert json.loads((d / "config.json").read_text())["ociVersion"]
    (d / "config.json").unlink()
    d.rmdir()


# ---------------------------------------------------------------------------- exec after unshare


def _ns(pid, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_exec_after_the_init_unshared_its_user_namespace(runtime, make_bundle):
    """The init moved itself into a user namespace of its own after it started. runc joins
    the container's namespaces at the init's current ones, but not that user namespace (it
    is not the container's: joining it would drop the rights over the others), and so
    must we: before, exec failed with an UnboundLocalError."""
    bundle = make_bundle(args=["unshare", "-U", "sleep", "1000"])
    cid = new_id()
    r = runtime.run("run", "-d", "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    pid = runtime.state(cid)["pid"]
    wait_until(lambda: _ns(pid, "user") != _ns("self", "user"), 10)
    r = runtime.run("exec", cid, "sh", "-c",
                    "for n in user mnt pid uts ipc net; do readlink /proc/self/ns/$n; done")
    assert r.returncode == 0 and not r.stderr.strip(), r
    user, *rest = r.stdout.split()
    assert user == _ns("self", "user") != _ns(pid, "user")
    assert rest == [_ns(pid, k) for k in ("mnt", "pid", "uts", "ipc", "net")]


@pytest.mark.sangja_only  # runc fails here too, with its own words
def test_exec_after_a_nested_unshare_in_a_user_namespace_fails_cleanly(runtime, make_bundle,
                                                                       tmp_path):
    """In a container with its own user namespace, an init that made a nested one cannot
    be joined (that one is the init's current; from inside it the container's other
    namespaces are out of reach): one line, the container untouched, nothing left."""
    p = tmp_path
    while str(p) not in ("/", "/tmp"):  # the mapped root must reach its bundle
        p.chmod(p.stat().st_mode | 0o011)
        p = p.parent

    def userns(config):
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    bundle = make_bundle(userns, args=sh("exec unshare -U sleep 1000"))
    cid = new_id()
    r = runtime.run("run", "-d", "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    pid = runtime.state(cid)["pid"]
    wait_until(lambda: _ns(pid, "user") != _ns("self", "user") and
               b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes(), 10)
    before = _children(pid)
    r = runtime.run("exec", cid, "true")
    line = _one_line_failure(r, "cannot join the container's")
    assert "namespace" in line
    assert runtime.state(cid)["status"] == "running"
    assert _children(pid) == before
