"""containerd drives the runtime through its runc shim (io.containerd.runc.v2 with the shim
option BinaryName: `ctr run --runc-binary`), the way a Kubernetes node runs containers:
run, exec, ps, pause/resume, metrics, kill, delete, the event stream, a terminal, and a
"pod" whose second container joins the first one's namespaces by path.

containerd is Debian's (1.6), private to this module: its own root, state, sockets and
config (the CRI and /opt plugins off), a namespace of its own, the runtime's state root
(`--runc-root`) and the I/O fifos (`--fifo-dir`) in its directory. The busybox image comes
from `sangja save` through `ctr images import`. Teardown deletes every task and container,
stops containerd, and checks that no shim or container process, mount or cgroup is left;
it removes containerd's fixed directories (/run/containerd/s, the shims' sockets) when it
made them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from engine_cli import Pty

from conftest import processes_referencing, runtime_binary, stop_private_daemon, wait_until

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
CONTAINERD = shutil.which("containerd")
CTR = shutil.which("ctr")
SHIM = shutil.which("containerd-shim-runc-v2")
IMAGE = "localhost/busybox:latest"
FIXED = ["/run/containerd/s", "/run/containerd"]  # the shims' sockets, whatever the roots


def _cgroup_dirs(name: str) -> list[str]:
    """Directories named `name` directly under each hierarchy (ctr's cgroup parent)."""
    found = []
    for h in Path("/sys/fs/cgroup").iterdir():
        for d in (h / name, h / "unified" / name) if h.name == "unified" else (h / name,):
            if d.is_dir():
                found.append(str(d))
    return found


def _rmdir_tree(path: str) -> None:
    """A cgroup directory and its (empty) children, deepest first."""
    for sub in sorted((str(p) for p in Path(path).rglob("*") if p.is_dir()),
                      key=len, reverse=True):
        try:
            os.rmdir(sub)
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


class Containerd:
    def __init__(self, base: Path, runtime: str):
        self.base = base
        self.runtime = runtime
        self.ns = f"sangja-test-{os.urandom(4).hex()}"
        self.sock = str(base / "c.sock")
        self.runtime_root = base / "rt"
        self.fifo = base / "fifo"

    def ctr(self, *args, check: bool = True, timeout: float = 60,
            **kw) -> subprocess.CompletedProcess:
        r = subprocess.run([CTR, "-a", self.sock, "-n", self.ns, *map(str, args)],
                           capture_output=True, text=True, timeout=timeout,
                           stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"ctr {' '.join(map(str, args))} exited {r.returncode}\n"
                                 f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def run_args(self) -> list[str]:
        """What makes ctr use the runtime under test through the runc shim."""
        return ["--runc-binary", self.runtime, "--runc-root", str(self.runtime_root),
                "--fifo-dir", str(self.fifo)]

    def run(self, *args, **kw) -> subprocess.CompletedProcess:
        return self.ctr("run", *self.run_args(), *args, **kw)

    def state(self, cid: str) -> dict | None:
        """The runtime's own view of the container (so we know which runtime made it)."""
        r = subprocess.run([self.runtime, "--root", str(self.runtime_root / self.ns),
                            "state", cid], capture_output=True, text=True, timeout=30)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def tasks(self) -> dict[str, str]:
        """`ctr task ls`: id -> status."""
        lines = self.ctr("task", "ls").stdout.splitlines()[1:]
        return {f[0]: f[2] for f in (line.split() for line in lines) if len(f) >= 3}

    def remove(self, cid: str) -> None:
        """Kill, delete the task, remove the container (whatever of it exists)."""
        self.ctr("task", "kill", "-a", "-s", "SIGKILL", cid, check=False)
        try:
            wait_until(lambda: self.tasks().get(cid) in (None, "STOPPED"), timeout=20)
        except AssertionError:
            pass
        self.ctr("task", "delete", "--force", cid, check=False)
        self.ctr("container", "delete", cid, check=False)


def _sangja_exe() -> list[str]:
    exe = REPO / ".venv" / "bin" / "sangja"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sangja.cli.engine"]


@pytest.fixture(scope="module")
def ctrd():
    for path, name in ((CONTAINERD, "containerd"), (CTR, "ctr"),
                       (SHIM, "containerd-shim-runc-v2")):
        if path is None:
            pytest.skip(f"{name} not installed (apt-get install containerd)")
    rt = runtime_binary()
    if rt is None:
        pytest.skip("no runtime binary found")
    from sangja.image.busybox import BusyboxNotFound, find_static_busybox

    try:
        find_static_busybox()
    except BusyboxNotFound as e:
        pytest.skip(str(e))
    base = Path(tempfile.mkdtemp(prefix="sj-ct-", dir="/tmp"))  # unix socket paths are short
    fixed_before = {d for d in FIXED if os.path.lexists(d)}
    c = Containerd(base, rt)
    (base / "config.toml").write_text(
        "version = 2\n"
        f'root = "{base}/root"\n'
        f'state = "{base}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", '
        '"io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", '
        '"io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]\n'
        "[grpc]\n"
        f'  address = "{c.sock}"\n'
        "[ttrpc]\n"
        f'  address = "{c.sock}.ttrpc"\n')
    with open(base / "log", "wb") as log:
        proc = subprocess.Popen([CONTAINERD, "--config", str(base / "config.toml"),
                                 "--log-level", "warn"], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up() -> bool:
            return proc.poll() is not None or subprocess.run(
                [CTR, "-a", c.sock, "version"], capture_output=True, timeout=30).returncode == 0

        wait_until(up, timeout=60, interval=0.2, message="containerd")
        if proc.poll() is not None:
            pytest.skip(f"containerd does not start here: {(base / 'log').read_text()[-500:]}")
        engine_root = base / "sangja"
        for args in (["bootstrap", "busybox"], ["save", "-o", str(base / "bb.tar"), "busybox"]):
            r = subprocess.run([*_sangja_exe(), "--root", str(engine_root), *args],
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
        c.ctr("images", "import", base / "bb.tar", timeout=120)
        yield c
    finally:
        _teardown(c, proc, fixed_before)


def _teardown(c: Containerd, proc: subprocess.Popen, fixed_before: set[str]) -> None:
    if proc.poll() is None:
        for cid in c.ctr("container", "ls", "-q", check=False).stdout.split():
            c.remove(cid)
    # a shim outlives containerd by design: one left here is a task nobody deleted
    leftovers, leaked_mounts = stop_private_daemon(proc, c.base, FIXED, fixed_before, c.ns)
    cgroups = [str(p) for d in _cgroup_dirs(c.ns) for p in Path(d).iterdir() if p.is_dir()]
    for d in _cgroup_dirs(c.ns):  # ctr's parent /<namespace>: containerd leaves it
        _rmdir_tree(d)
    assert leftovers == [], f"left processes: {leftovers}"
    assert leaked_mounts == [], f"left mounts: {leaked_mounts}"
    assert cgroups == [], f"left container cgroups: {cgroups}"
    assert not _cgroup_dirs(c.ns), _cgroup_dirs(c.ns)


@pytest.fixture
def cid(ctrd):
    """A fresh container id; whatever the test leaves of it is removed."""
    name = f"c{os.urandom(4).hex()}"
    yield name
    ctrd.remove(name)
    assert ctrd.state(name) is None, f"the runtime still knows {name}"
    assert not processes_referencing(name), processes_referencing(name)


# --------------------------------------------------------------------------------------------
# run in the foreground
# --------------------------------------------------------------------------------------------


def test_run_rm(ctrd, cid):
    r = ctrd.run("--rm", IMAGE, cid, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert r.returncode == 3, r
    assert r.stdout == "out\n" and "err" in r.stderr, r
    assert ctrd.ctr("container", "ls", "-q").stdout.split() == []


def test_create_error_reaches_ctr(ctrd, cid):
    """The shim reads the runtime's --log (JSON lines): our error is what ctr shows."""
    r = ctrd.run("--rm", IMAGE, cid, "no-such-program", check=False)
    assert r.returncode != 0
    assert "no-such-program" in r.stderr and "not found" in r.stderr, r.stderr


def test_terminal(ctrd, cid):
    """`ctr run -t`: the pty comes over the shim's --console-socket."""
    t = Pty([CTR, "-a", ctrd.sock, "-n", ctrd.ns, "run", "-t", "--rm", *ctrd.run_args(),
             IMAGE, cid, "sh", "-c", "tty; exit 4"])
    try:
        t.expect(r"/dev/pts/\d+")
        assert t.wait(timeout=30) == 4
    finally:
        t.close()


# --------------------------------------------------------------------------------------------
# a detached task through its whole life, with the event stream
# --------------------------------------------------------------------------------------------


def _freezer_state(cid: str, ns: str) -> str:
    return Path(f"/sys/fs/cgroup/freezer/{ns}/{cid}/freezer.state").read_text().strip()


@pytest.mark.slow
def test_detached_lifecycle(ctrd, cid):
    events_out = ctrd.base / f"events-{cid}"
    with open(events_out, "w") as f:
        events = subprocess.Popen([CTR, "-a", ctrd.sock, "-n", ctrd.ns, "events"],
                                  stdout=f, stderr=subprocess.STDOUT)
    try:
        time.sleep(0.5)  # subscribed before the first event
        script = 'trap "echo got-term; exit 3" TERM; echo up; while :; do sleep 0.1; done'
        ctrd.run("-d", IMAGE, cid, "sh", "-c", script)
        assert ctrd.tasks() == {cid: "RUNNING"}
        st = ctrd.state(cid)
        assert st is not None and st["status"] == "running", st
        pid = st["pid"]
        assert int(ctrd.ctr("task", "ls").stdout.split()[-2]) == pid

        r = ctrd.ctr("task", "exec", "--fifo-dir", ctrd.fifo, "--exec-id", "e1", cid,
                     "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; exit 5", check=False)
        assert r.returncode == 5 and r.stdout.startswith("sh -c trap"), r
        assert str(pid) in ctrd.ctr("task", "ps", cid).stdout.split()

        ctrd.ctr("task", "pause", cid)
        assert ctrd.tasks() == {cid: "PAUSED"}
        assert ctrd.state(cid)["status"] == "paused"
        assert _freezer_state(cid, ctrd.ns) == "FROZEN"
        ctrd.ctr("task", "resume", cid)
        assert ctrd.tasks() == {cid: "RUNNING"}
        assert _freezer_state(cid, ctrd.ns) == "THAWED"

        metrics = ctrd.ctr("task", "metrics", cid).stdout
        assert re.search(r"pids\.current\s+[1-9]", metrics), metrics

        ctrd.ctr("task", "kill", cid)  # SIGTERM: the trap's exit status comes back
        wait_until(lambda: ctrd.tasks().get(cid) == "STOPPED", timeout=20)
        ctrd.ctr("task", "delete", cid)
        ctrd.ctr("container", "delete", cid)
        assert ctrd.state(cid) is None
        assert not _cgroup_dirs(f"{ctrd.ns}/{cid}")

        def seen() -> list[str]:
            return re.findall(r" (/tasks/[\w-]+) ", events_out.read_text())

        wait_until(lambda: "/tasks/delete" in seen(), timeout=10)
    finally:
        events.kill()
        events.wait()
    topics = seen()
    for topic in ("/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started",
                  "/tasks/paused", "/tasks/resumed", "/tasks/exit", "/tasks/delete"):
        assert topic in topics, (topic, topics)
    exits = [json.loads(line.split(" /tasks/exit ", 1)[1])
             for line in events_out.read_text().splitlines() if " /tasks/exit " in line]
    assert {"id": cid, "exit_status": 3} in [
        {"id": e["id"], "exit_status": e.get("exit_status", 0)} for e in exits], exits


def test_kill_all_reaches_exec_processes(ctrd, cid):
    """`task kill -a` (runtime `kill --all`) ends the exec'd processes too."""
    ctrd.run("-d", IMAGE, cid, "sleep", "1000")
    ctrd.ctr("task", "exec", "-d", "--fifo-dir", ctrd.fifo, "--exec-id", "bg", cid,
             "sleep", "999")
    wait_until(lambda: len(ctrd.ctr("task", "ps", cid).stdout.split()) >= 6, timeout=10)
    pids = [int(p) for p in ctrd.ctr("task", "ps", cid).stdout.split()[2::2]]
    assert len(pids) == 2, pids
    ctrd.ctr("task", "kill", "-a", "-s", "SIGKILL", cid)
    wait_until(lambda: ctrd.tasks().get(cid) == "STOPPED", timeout=20)
    wait_until(lambda: not any(os.path.exists(f"/proc/{p}") for p in pids), timeout=10)


# --------------------------------------------------------------------------------------------
# a pod: the second container joins the first one's namespaces by path (Kubernetes' way)
# --------------------------------------------------------------------------------------------


def test_pod_namespaces_by_path(ctrd, cid):
    sandbox = f"{cid}-pause"
    try:
        ctrd.run("-d", IMAGE, sandbox, "sleep", "1000")
        pid = ctrd.state(sandbox)["pid"]
        joins = [f"--with-ns={t}:/proc/{pid}/ns/{n}"
                 for t, n in (("network", "net"), ("ipc", "ipc"), ("uts", "uts"))]
        r = ctrd.run("--rm", *joins, IMAGE, cid, "sh", "-c",
                     "for n in net ipc uts mnt; do readlink /proc/self/ns/$n; done")
        inner = r.stdout.split()
        outer = [os.readlink(f"/proc/{pid}/ns/{n}") for n in ("net", "ipc", "uts", "mnt")]
        assert inner[:3] == outer[:3], (inner, outer)
        assert inner[3] != outer[3]  # its own mount namespace
    finally:
        ctrd.remove(sandbox)
    assert ctrd.state(sandbox) is None

