"""The engine under bad input, killed processes and load: a clear one-line error and
nothing half-created; after a `kill -9` of the monitor or of the CLI, `ps` still tells the
truth and `stop`/`rm -f` leave nothing; 50 containers started and removed in parallel."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from engine_cli import (
    HEX64,
    Cli,
    cgroups_of,
    leaks,
    monitors_of,
    mounts_under,
    remove_everything,
    wait_no_leaks,
    wait_until,
)

pytestmark = pytest.mark.root


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def processes_rooted_in(root) -> list[str]:
    """Live processes in another mount namespace whose / is an overlay of our storage
    root: containers' processes. (Only the "/" mount counts: a container of anyone else
    being set up briefly sees a copy of the host's mount table, ours included.)"""
    out = []
    mine = os.readlink("/proc/self/ns/mnt")
    needle = str(root).rstrip("/") + "/"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/mnt") == mine:
                continue
            with open(f"/proc/{entry}/mountinfo") as f:
                roots = [line for line in f if line.split(" ", 5)[4] == "/"]
            if not roots or needle not in roots[-1]:
                continue
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    out.append(entry)
        except OSError:
            pass
    return out


def footprint(cli: Cli) -> dict:
    """Everything a container would leave: rows, directories, volumes, mounts, monitors,
    container processes."""
    def names(d):
        # "~seccomp" is the runtime's cache of compiled filters, shared by all containers
        return sorted(n for n in os.listdir(d) if n != "~seccomp") if os.path.isdir(d) else []

    def query(sql):
        db = cli.root / "containers.db"
        if not db.exists():
            return []
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return sorted(r[0] for r in conn.execute(sql))
        finally:
            conn.close()

    return {
        "rows": query("SELECT id FROM containers"),
        "containers": names(cli.root / "containers"),
        "snapshots": [n for n in names(cli.root / "snapshots" / "overlay") if HEX64.fullmatch(n)],
        "engine": names(cli.runroot / "engine"),
        "runtime": names(cli.runroot / "runtime"),
        "volumes": query("SELECT name FROM volumes"),
        "mounts": [m for m in mounts_under(cli.root, cli.runroot)  # not a network's keeper
                   if not m.startswith(str(cli.runroot / "netns" / "keeper-"))],
        "monitors": monitors_of(cli.root),
        "processes": processes_rooted_in(cli.root),
    }


def monitor_pid(cli: Cli, cid: str) -> int:
    with open(cli.runroot / "engine" / cid / "monitor.pid") as f:
        return int(f.read())


# ---------------------------------------------------------------------------- bad input


BAD_RUNS = [
    (["localhost/no-such-image", "true"], "Unable to find image"),
    (["--memory", "lots", "busybox", "true"], "--memory"),
    (["--memory", "-5", "busybox", "true"], "--memory"),
    (["--cpus", "abc", "busybox", "true"], "--cpus"),
    (["--cpu-shares", "x", "busybox", "true"], "--cpu-shares"),
    (["--pids-limit", "many", "busybox", "true"], "--pids-limit"),
    (["--ulimit", "nofile=x", "busybox", "true"], "--ulimit"),
    (["--ulimit", "nosuchlimit=1", "busybox", "true"], "--ulimit"),
    (["--restart", "sometimes", "busybox", "true"], "--restart"),
    (["--restart", "always", "--rm", "busybox", "true"], "--restart and --rm"),
    (["--stop-signal", "SIGNOPE", "busybox", "true"], "--stop-signal"),
    (["--stop-timeout", "soon", "busybox", "true"], "--stop-timeout"),
    (["--tmpfs", "relative", "busybox", "true"], "--tmpfs"),
    (["--mount", "type=bogus,target=/x", "busybox", "true"], "--mount"),
    (["--mount", "type=bind,source=/no/such/dir,target=/x", "busybox", "true"],
     "/no/such/dir"),
    (["-v", "bad name!:/x", "busybox", "true"], "bad name!"),
    (["--device", "/dev/no-such", "busybox", "true"], "/dev/no-such"),
    (["--cap-add", "NOT_A_CAP", "busybox", "true"], "NOT_A_CAP"),
    (["--security-opt", "seccomp=/no/such.json", "busybox", "true"], "/no/such.json"),
    (["--security-opt", "apparmor-ish", "busybox", "true"], "--security-opt"),
    (["--network", "no-such-net", "busybox", "true"], "no-such-net"),
    (["--network", "host", "--sysctl", "net.ipv4.ip_forward=1", "busybox", "true"],
     "--sysctl"),
    (["--sysctl", "novalue", "busybox", "true"], "--sysctl"),
    (["--runtime", "no-such-runtime", "busybox", "true"], "no-such-runtime"),
    (["-w", "relative/dir", "busybox", "true"], "relative/dir"),
    (["--name", "a b", "busybox", "true"], "a b"),
    (["--shm-size", "huge", "busybox", "true"], "--shm-size"),
    (["--cpuset-cpus", "0-", "busybox", "true"], "--cpuset-cpus"),
    (["--env-file", "/no/such/envfile", "busybox", "true"], "/no/such/envfile"),
    (["--pull", "sometimes", "busybox", "true"], "--pull"),
]


@pytest.mark.parametrize("args,mentions", BAD_RUNS, ids=[" ".join(a[:2]) for a, _ in BAD_RUNS])
@pytest.mark.parametrize("mode", [["run", "--rm"], ["run", "-d"], ["create"]])
def test_bad_input_leaves_nothing(cli, mode, args, mentions):
    before = footprint(cli)
    line = cli.fails(125, *mode, *args)
    assert mentions in line, line
    assert footprint(cli) == before


def test_bad_user_is_an_error_at_start(cli):
    """-u NAME is resolved in the container's /etc/passwd when it starts (as Docker)."""
    before = footprint(cli)
    r = cli("run", "--rm", "-u", "no-such-user", "busybox", "true")
    assert r.returncode != 0 and len(r.stderr.splitlines()) == 1
    assert "no-such-user" in r.stderr
    assert footprint(cli) == before


def test_program_errors_at_start(cli):
    """126/127: the container was made; with --rm it goes, without it stays (Docker's
    'Created' with the exit code) and holds nothing."""
    before = footprint(cli)
    for args, code in ((["nosuchcmd"], 127), (["/etc/passwd"], 126)):
        for mode in (["run", "--rm"], ["run", "--rm", "-d"]):
            r = cli(*mode, "busybox", *args)
            assert r.returncode == code, (mode, args, r.stderr)
            assert len(r.stderr.splitlines()) == 1
            assert footprint(cli) == before
    r = cli("run", "-d", "--name", "failed-start", "busybox", "nosuchcmd")
    assert r.returncode == 127
    (row,) = cli.ps()
    assert row["Names"] == "failed-start" and row["State"] in ("created", "exited")
    after = footprint(cli)
    assert after["mounts"] == [] and after["monitors"] == [] and after["processes"] == []
    assert cgroups_of({row["ID"]}) == []
    # and it can be started again (still fails the same way), then removed
    assert cli("start", "failed-start").returncode != 0
    cli.ok("rm", "failed-start")
    assert footprint(cli) == before


def test_runtime_refuses_at_start(cli):
    """A value only the kernel refuses (a sysctl value out of range): the start fails
    with one line, --rm leaves nothing, and without --rm the container stays created."""
    before = footprint(cli)
    bad = "kernel.msgmax=-99999999999999"
    r = cli("run", "--rm", "--sysctl", bad, "busybox", "true")
    assert r.returncode == 125 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "msgmax" in r.stderr
    assert footprint(cli) == before
    r = cli("run", "-d", "--name", "nocpu", "--sysctl", bad, "busybox", "true")
    assert r.returncode == 125 and len(r.stderr.splitlines()) == 1, r.stderr
    (row,) = cli.ps()
    assert row["State"] == "created"
    after = footprint(cli)
    assert after["mounts"] == [] and after["monitors"] == [] and after["processes"] == []
    assert cgroups_of({row["ID"]}) == [] and after["engine"] in ([], [row["ID"]])
    cli.ok("rm", "nocpu")
    assert footprint(cli) == before


def test_name_in_use(cli):
    cid = cli.detach("--name", "dup", "busybox", "sleep", "1000")
    before = footprint(cli)
    for mode in (["run", "--rm"], ["run", "-d"], ["create"]):
        line = cli.fails(125, *mode, "--name", "dup", "busybox", "true")
        assert "already in use" in line and cid in line
    assert footprint(cli) == before
    assert cli.status("dup") == "running"


def test_concurrent_creates_with_one_name(cli):
    before = footprint(cli)
    procs = [cli.popen("create", "--name", "race", "busybox", "true") for _ in range(8)]
    results = [(p.wait(timeout=60), p.stdout.read().decode(), p.stderr.read().decode())
               for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    ok = [r for r in results if r[0] == 0]
    assert len(ok) == 1, results
    assert all(r[0] == 125 and "already in use" in r[2] for r in results if r[0] != 0)
    (row,) = cli.ps()
    assert row["ID"] == ok[0][1].strip()
    assert footprint(cli)["containers"] == sorted(before["containers"] + [row["ID"]])


def test_rm_running_without_force(cli):
    cid = cli.detach("busybox", "sleep", "1000")
    before = footprint(cli)
    r = cli("rm", cid)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1
    assert "force" in r.stderr
    assert footprint(cli) == before
    assert cli.status(cid) == "running"


def test_volume_in_use(cli):
    cid = cli.detach("-v", "busyvol:/d", "busybox", "sleep", "1000")
    before = footprint(cli)
    r = cli("volume", "rm", "busyvol")
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1
    assert "in use" in r.stderr and "busyvol" in r.stderr
    r = cli("volume", "rm", "-f", "busyvol")
    assert r.returncode == 1 and "in use" in r.stderr
    assert footprint(cli) == before
    assert cli.exec_out(cid, "sh", "-c", "echo ok > /d/f; cat /d/f") == "ok\n"
    cli.ok("rm", "-f", cid)
    cli.ok("volume", "rm", "busyvol")


@pytest.mark.parametrize("args", [
    ["start", "nosuch"], ["stop", "nosuch"], ["kill", "nosuch"], ["rm", "nosuch"],
    ["wait", "nosuch"], ["logs", "nosuch"], ["inspect", "--type", "container", "nosuch"],
    ["exec", "nosuch", "true"], ["pause", "nosuch"], ["top", "nosuch"],
    ["rename", "nosuch", "x2"], ["cp", "nosuch:/x", "/tmp"], ["export", "nosuch"],
    ["commit", "nosuch"], ["attach", "nosuch"], ["port", "nosuch"],
])
def test_no_such_container(cli, args):
    before = footprint(cli)
    r = cli(*args)
    assert r.returncode in (1, 125), (r.returncode, r.stderr)
    assert "No such container: nosuch" in r.stderr or "No such object: nosuch" in r.stderr
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr
    assert footprint(cli) == before


# ---------------------------------------------------------------------------- kill -9


def test_monitor_killed_container_keeps_running(cli):
    cid = cli.detach("--name", "orphan", "busybox", "sleep", "1000")
    pid = cli.inspect(cid)["State"]["Pid"]
    mon = monitor_pid(cli, cid)
    os.kill(mon, signal.SIGKILL)
    wait_until(lambda: not alive(mon), 10)
    assert alive(pid)
    (row,) = cli.ps()
    assert row["State"] == "running" and row["ID"] == cid
    assert cli.inspect(cid)["State"]["Pid"] == pid
    assert cli.exec_out(cid, "echo", "still-here") == "still-here\n"
    cli.ok("stop", "-t", "1", cid)
    assert not alive(pid)
    doc = cli.inspect(cid)
    assert doc["State"]["Status"] == "exited"
    cli.ok("rm", cid)
    wait_no_leaks(cli)


def test_monitor_killed_container_exits_on_its_own(cli):
    cid = cli.detach("busybox", "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.02; done")
    pid = cli.inspect(cid)["State"]["Pid"]
    os.kill(monitor_pid(cli, cid), signal.SIGKILL)
    cli.ok("exec", cid, "touch", "/tmp/go")
    wait_until(lambda: not alive(pid), 10)
    # nobody saw the exit: ps must still tell the truth, and every view the same code
    (row,) = cli.ps()
    assert row["State"] == "exited" and row["Status"].startswith("Exited (255)")
    st = cli.inspect(cid)["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 255 and st["Pid"] == 0
    assert cli.ok("wait", cid).strip() == "255"
    st = cli.inspect(cid)["State"]
    assert st["ExitCode"] == 255 and "monitor" in st["Error"]
    cli.ok("rm", cid)
    wait_no_leaks(cli)


def test_monitor_killed_no_restart_until_started(cli):
    """docs/engine.md: without its monitor nobody applies the restart policy; `start`
    brings the container back."""
    cid = cli.detach("--restart", "always", "busybox", "sleep", "1000")
    pid = cli.inspect(cid)["State"]["Pid"]
    os.kill(monitor_pid(cli, cid), signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), 10)
    time.sleep(0.5)  # longer than the first back-off
    doc = cli.inspect(cid)
    assert doc["State"]["Status"] == "exited" and doc["RestartCount"] == 0
    cli.ok("start", cid)
    doc = cli.inspect(cid)
    assert doc["State"]["Status"] == "running" and alive(doc["State"]["Pid"])
    assert doc["State"]["Pid"] != pid
    cli.ok("rm", "-f", cid)
    wait_no_leaks(cli)


def test_monitor_killed_then_rm_force(cli):
    cid = cli.detach("busybox", "sleep", "1000")
    pid = cli.inspect(cid)["State"]["Pid"]
    os.kill(monitor_pid(cli, cid), signal.SIGKILL)
    cli.ok("rm", "-f", cid)
    assert not alive(pid)
    wait_no_leaks(cli)


def _check_truth(cli: Cli) -> list[dict]:
    """Every row of `ps -a` agrees with the kernel."""
    rows = cli.ps()
    for row in rows:
        doc = cli.inspect(row["ID"])
        state = doc["State"]
        assert row["State"] == state["Status"]
        if state["Status"] in ("running", "paused"):
            assert state["Pid"] > 0 and alive(state["Pid"]), doc
            with open(f"/proc/{state['Pid']}/cmdline", "rb") as f:
                assert f.read().split(b"\0")[0] == b"sleep", doc
        elif state["Status"] == "exited":
            assert state["Pid"] == 0
            assert not [p for p in processes_rooted_in(cli.root)
                        if _cgroup_has(p, row["ID"])], doc
    return rows


def _cgroup_has(pid: str, cid: str) -> bool:
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return cid in f.read()
    except OSError:
        return False


@pytest.mark.parametrize("delay", [0.0, 0.03, 0.06, 0.08, 0.1, 0.12, 0.14, 0.17, 0.2, 0.25,
                                   0.3, 0.4])
def test_cli_killed_during_run_detach(cli, delay):
    p = cli.popen("run", "-d", "--name", "interrupted", "busybox", "sleep", "1000")
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()
    out = p.stdout.read().decode()
    p.stdout.close()
    p.stderr.close()
    cli.seen.update(HEX64.findall(out))
    # whatever the CLI's child was doing goes on or stops by itself: wait for it to settle
    time.sleep(0.3)
    rows = _check_truth(cli)
    assert len(rows) <= 1
    for row in rows:
        cli.seen.add(row["ID"])
        # what ps says can be acted on: a created one starts (the interrupted attempt is
        # discarded), a running one stops, anything is removed
        if row["State"] == "created":
            cli.ok("start", row["ID"])
            pid = cli.inspect(row["ID"])["State"]["Pid"]
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                assert f.read() == b"sleep\x001000\x00"
            _check_truth(cli)
        if cli.status(row["ID"]) == "running":
            cli.ok("stop", "-t", "0", row["ID"])
            assert cli.status(row["ID"]) == "exited"
    if rows:
        cli.ok("rm", "-f", "interrupted")
    assert cli.ps() == []
    # nothing of it is left: directories, mounts, monitors, processes, cgroups
    wait_no_leaks(cli)
    fp = footprint(cli)
    assert fp["containers"] == [] and fp["processes"] == [] and fp["engine"] == []


def test_record_without_its_directory(cli):
    """What a `create` killed between its record and its directory leaves (the window is
    two syscalls wide, so it is made here by hand): the container still starts, and
    `rm -f` leaves nothing."""
    import shutil

    a = cli.create("--name", "nodir-a", "busybox", "sleep", "1000")
    b = cli.create("--name", "nodir-b", "-v", "/anon", "busybox", "true")
    for cid in (a, b):
        shutil.rmtree(cli.root / "containers" / cid)
    cli.ok("start", a)
    assert cli.status(a) == "running"
    cli.ok("rm", "-f", "-v", a, b)
    assert cli.ps() == [] and cli.ok("volume", "ls", "-q") == ""
    wait_no_leaks(cli)
    assert footprint(cli)["containers"] == []


def test_cli_killed_during_rm(cli):
    cid = cli.detach("busybox", "sleep", "1000")
    p = cli.popen("rm", "-f", cid)
    time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.stdout.close()
    p.stderr.close()
    _check_truth(cli)
    if cli.ps():
        cli.ok("rm", "-f", cid)
    assert cli.ps() == []
    wait_no_leaks(cli)


def test_cli_killed_during_stop(cli):
    cid = cli.detach("busybox", "sleep", "1000")
    p = cli.popen("stop", "-t", "5", cid)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.stdout.close()
    p.stderr.close()
    _check_truth(cli)
    cli.ok("stop", "-t", "0", cid)
    _check_truth(cli)
    assert cli.status(cid) == "exited"
    cli.ok("rm", cid)
    wait_no_leaks(cli)


def test_foreground_cli_killed(cli):
    """The foreground CLI is the clean-up owner: killed, the container goes on under its
    monitor, and its exit is still recorded."""
    p = cli.popen("run", "--name", "fgkill", "busybox", "sh", "-c",
                  "while [ ! -e /tmp/go ]; do sleep 0.02; done; exit 6")
    cli.wait_status("fgkill", "running")
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.stdout.close()
    p.stderr.close()
    assert cli.status("fgkill") == "running"
    cli.ok("exec", "fgkill", "touch", "/tmp/go")
    assert cli.ok("wait", "fgkill").strip() == "6"
    wait_until(lambda: not monitors_of(cli.root), 10)
    assert cli.inspect("fgkill")["State"]["ExitCode"] == 6
    cli.ok("rm", "fgkill")
    wait_no_leaks(cli)


def test_long_paths(tmp_path):
    """Storage and run roots deeper than a unix socket address (108 bytes) can hold."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    cli = Cli(deep / "root", deep / "run")
    cli.ok("bootstrap", "busybox")
    try:
        assert cli.out("busybox", "echo", "ok") == "ok\n"
        cid = cli.detach("busybox", "sleep", "1000")
        assert cli.exec_out(cid, "echo", "exec") == "exec\n"
        cli.ok("stop", "-t", "0", cid)
        assert cli.out("-i", "busybox", "cat", input="in\n") == "in\n"
    finally:
        remove_everything(cli)
        wait_no_leaks(cli)


# ---------------------------------------------------------------------------- load


@pytest.mark.slow
def test_fifty_in_parallel(cli):
    n = 50
    names = [f"par{i:02d}" for i in range(n)]
    seen_bad: list = []

    def start(name):
        return cli("run", "-d", "--name", name, "--label", "batch=fifty", "busybox",
                   "sleep", "1000", timeout=300)

    def watch(stop_when):
        """`ps` while the others work: it must always answer, and what it lists must be
        true."""
        rounds = 0
        while not stop_when() or rounds == 0:
            r = cli("ps", "-a", "--no-trunc", "--format", "json", timeout=120)
            if r.returncode != 0:
                seen_bad.append(r.stderr)
            for line in r.stdout.splitlines():
                row = json.loads(line)
                if row["State"] not in ("created", "running", "exited", "removing"):
                    seen_bad.append(row)
            rounds += 1
        return rounds

    with ThreadPoolExecutor(max_workers=n + 1) as pool:
        futures = [pool.submit(start, name) for name in names]
        watcher = pool.submit(watch, lambda: all(f.done() for f in futures))
        results = [f.result() for f in futures]
        assert watcher.result() >= 1
    failed = [(r.returncode, r.stderr) for r in results if r.returncode != 0]
    assert failed == []
    assert seen_bad == []
    ids = {r.stdout.strip() for r in results}
    cli.seen.update(ids)
    assert len(ids) == n

    rows = [json.loads(x) for x in cli.ok("ps", "--no-trunc", "--format", "json",
                                          "--filter", "label=batch=fifty").splitlines()]
    assert {r["ID"] for r in rows} == ids
    assert sorted(r["Names"] for r in rows) == names
    assert all(r["State"] == "running" and r["Status"].startswith("Up") for r in rows)
    pids = {cli.inspect(i)["State"]["Pid"] for i in ids}
    assert len(pids) == n and all(alive(p) for p in pids)
    assert len(monitors_of(cli.root)) == n

    with ThreadPoolExecutor(max_workers=n + 1) as pool:
        futures = [pool.submit(cli, "rm", "-f", name, timeout=300) for name in names]
        watcher = pool.submit(watch, lambda: all(f.done() for f in futures))
        results = [f.result() for f in futures]
        watcher.result()
    assert [(r.returncode, r.stderr) for r in results if r.returncode != 0] == []
    assert seen_bad == []
    assert cli.ps() == []
    assert not any(alive(p) for p in pids)
    wait_no_leaks(cli, timeout=30)
    assert leaks(cli) == {}
    fp = footprint(cli)
    assert fp["containers"] == [] and fp["snapshots"] == [] and fp["engine"] == []
    assert fp["runtime"] == []


def test_many_cli_processes_on_one_container(cli):
    """Starts, stops, inspects and ps of one container from many processes at once: each
    command succeeds or fails cleanly, and the end state is true."""
    cid = cli.create("--name", "contended", "busybox", "sleep", "1000")
    cmds = ([["start", cid]] * 4 + [["stop", "-t", "0", cid]] * 3 + [["inspect", cid]] * 3
            + [["ps", "-a"]] * 3 + [["start", cid]] * 2)
    with ThreadPoolExecutor(max_workers=len(cmds)) as pool:
        results = list(pool.map(lambda a: cli(*a, timeout=120), cmds))
    for r in results:
        assert "Traceback" not in r.stderr and "database is locked" not in r.stderr, r.stderr
        assert len(r.stderr.splitlines()) <= 1
    _check_truth(cli)
    cli.ok("rm", "-f", cid)
    wait_no_leaks(cli)
