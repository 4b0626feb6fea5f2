"""The container lifecycle commands from the outside: create, start (-a, -i), stop,
restart, kill, rm, wait, rename, pause/unpause, top, stats, inspect, exec, attach, port,
container prune, volumes, cp, commit, export. Effects are observed in the kernel (the
init's /proc entry, the freezer) or from inside the container, and every test leaves
nothing behind (engine_cli's `cli` fixture)."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import tarfile
import time

import pytest
from engine_cli import (
    Pty,
    monitors_of,
    status_fields,
    wait_until,
)

pytestmark = pytest.mark.root

TRAP_TERM = "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done"


def host_cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().decode().split("\0")[:-1]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def logs_have(cli, ref: str, text: str, timeout: float = 10) -> None:
    wait_until(lambda: text in cli("logs", ref).stdout, timeout,
               message=f"{text!r} in the logs of {ref}")


# ---------------------------------------------------------------------------- create, start


def test_create_then_start_stop(cli):
    cid = cli.create("--name", "c1", "-e", "GREETING=hi", "busybox", "sh", "-c", TRAP_TERM)
    doc = cli.inspect("c1")
    assert doc["Id"] == cid and doc["Name"] == "/c1"
    assert doc["State"]["Status"] == "created" and doc["State"]["Pid"] == 0
    assert not doc["State"]["Running"]
    assert "GREETING=hi" in doc["Config"]["Env"]
    (row,) = cli.ps()
    assert row["State"] == "created" and row["Status"] == "Created"
    assert cli.ok("ps", "-q") == ""  # not running
    assert not [m for m in monitors_of(cli.root) if cid in m]  # create makes no process

    assert cli.ok("start", "c1").strip() == "c1"
    logs_have(cli, "c1", "ready")
    doc = cli.inspect("c1")
    pid = doc["State"]["Pid"]
    assert doc["State"]["Status"] == "running" and doc["State"]["Running"]
    assert host_cmdline(pid)[:2] == ["sh", "-c"]
    assert cli.exec_out("c1", "sh", "-c", "echo $GREETING") == "hi\n"
    assert cli.ok("start", "c1").strip() == "c1"  # starting a running one: no-op
    assert cli.inspect("c1")["State"]["Pid"] == pid

    assert cli.ok("stop", "c1").strip() == "c1"
    assert not alive(pid)
    doc = cli.inspect("c1")
    assert doc["State"]["Status"] == "exited" and doc["State"]["ExitCode"] == 0
    assert doc["State"]["Pid"] == 0 and doc["State"]["FinishedAt"] > doc["State"]["StartedAt"]
    assert cli.ok("logs", "c1").splitlines() == ["ready", "got-term"]
    # an exited container starts again, with the same id and its writable layer
    cli.ok("start", "c1")
    logs_have(cli, "c1", "ready\ngot-term\nready")
    cli.ok("stop", "c1")


def test_writable_layer_survives_restart(cli):
    cid = cli.detach("busybox", "sh", "-c", "echo kept > /kept; " + TRAP_TERM)
    logs_have(cli, cid, "ready")
    cli.ok("stop", cid)
    cli.ok("start", cid)
    assert cli.exec_out(cid, "cat", "/kept") == "kept\n"
    cli.ok("rm", "-f", cid)


def test_start_attach(cli):
    cid = cli.create("busybox", "sh", "-c", "echo out; echo err >&2; exit 4")
    r = cli("start", "-a", cid)
    assert r.returncode == 4 and r.stdout == "out\n" and r.stderr == "err\n"
    assert cli.inspect(cid)["State"]["ExitCode"] == 4
    # -a -i: stdin goes in
    cid = cli.create("-i", "busybox", "sh", "-c", "read line; echo got:$line")
    r = cli("start", "-a", "-i", cid, input="hello\n")
    assert r.returncode == 0 and r.stdout == "got:hello\n"


def test_stop_running_and_stopped_and_missing(cli):
    cid = cli.detach("busybox", "sleep", "1000")  # ignores SIGTERM: killed after -t
    pid = cli.inspect(cid)["State"]["Pid"]
    cli.ok("stop", "-t", "0", cid)
    assert not alive(pid)
    assert cli.inspect(cid)["State"]["ExitCode"] == 137
    cli.ok("stop", cid)  # stopping a stopped container is fine (Docker: no error)
    r = cli("stop", "no-such-container")
    assert r.returncode == 1 and "No such container" in r.stderr


def test_restart(cli):
    cid = cli.detach("busybox", "sh", "-c", TRAP_TERM)
    logs_have(cli, cid, "ready")
    before = cli.inspect(cid)
    cli.ok("restart", "-t", "5", cid)
    after = cli.inspect(cid)
    assert after["State"]["Status"] == "running"
    assert after["State"]["Pid"] != before["State"]["Pid"]
    assert not alive(before["State"]["Pid"]) and alive(after["State"]["Pid"])
    assert after["State"]["StartedAt"] > before["State"]["StartedAt"]
    assert after["RestartCount"] == 0  # only a restart policy counts (as Docker)
    logs_have(cli, cid, "ready\ngot-term\nready")
    # restart of a stopped container starts it
    cli.ok("stop", cid)
    cli.ok("restart", cid)
    assert cli.status(cid) == "running"


def test_stop_and_restart_of_rm_container(cli):
    """--rm: `stop` removes the container (as Docker's), `restart` keeps it."""
    cid = cli.detach("--rm", "busybox", "sh", "-c", TRAP_TERM)
    logs_have(cli, cid, "ready")
    pid = cli.inspect(cid)["State"]["Pid"]
    cli.ok("restart", cid)
    doc = cli.inspect(cid)
    assert doc["State"]["Status"] == "running" and doc["State"]["Pid"] != pid
    cli.ok("stop", cid)
    wait_until(lambda: cli.ps() == [], 10, message="the --rm container removed by stop")
    cid = cli.detach("--rm", "busybox", "sleep", "1000")
    cli.ok("kill", cid)
    wait_until(lambda: cli.ps() == [], 10, message="the --rm container removed after kill")


def test_kill_with_signals(cli):
    cid = cli.detach("busybox", "sh", "-c",
                     "trap 'echo got-hup' HUP; trap 'echo got-usr1' USR1; echo ready; "
                     "while :; do sleep 0.05; done")
    logs_have(cli, cid, "ready")
    cli.ok("kill", "-s", "HUP", cid)
    logs_have(cli, cid, "got-hup")
    cli.ok("kill", "--signal", "SIGUSR1", cid)
    logs_have(cli, cid, "got-usr1")
    cli.ok("kill", "-s", "10", cid)  # numeric: SIGUSR1 again
    wait_until(lambda: cli("logs", cid).stdout.count("got-usr1") == 2, 10)
    assert cli.status(cid) == "running"
    cli.ok("kill", cid)  # SIGKILL by default
    assert cli.ok("wait", cid).strip() == "137"
    r = cli("kill", cid)
    assert r.returncode == 1 and "is not running" in r.stderr
    cli.fails(125, "kill", "-s", "NOSUCHSIG", cid)


def test_rm_running_needs_force(cli):
    cid = cli.detach("--name", "busy", "busybox", "sleep", "1000")
    pid = cli.inspect(cid)["State"]["Pid"]
    r = cli("rm", "busy")
    assert r.returncode == 1
    assert "stop the container before removing or force remove" in r.stderr
    assert cli.status("busy") == "running" and alive(pid)
    assert cli.ok("rm", "-f", "busy").strip() == "busy"
    assert not alive(pid)
    assert cli.ps() == []
    r = cli("rm", "busy")
    assert r.returncode == 1 and "No such container" in r.stderr


def test_rm_several_reports_each(cli):
    a = cli.create("busybox", "true")
    r = cli("rm", a, "no-such", a[:12])
    assert r.returncode == 1
    assert r.stdout.split() == [a]
    assert "No such container: no-such" in r.stderr


def test_wait(cli):
    a = cli.detach("busybox", "sh", "-c", "sleep 0.3; exit 5")
    b = cli.detach("busybox", "sh", "-c", "exit 6")
    assert cli.ok("wait", a, b).split() == ["5", "6"]
    assert cli.ok("wait", a).strip() == "5"  # an exited one: at once
    r = cli("wait", "no-such")
    assert r.returncode == 1 and "No such container" in r.stderr


def test_rename(cli):
    cid = cli.create("--name", "before", "busybox", "true")
    cli.create("--name", "other", "busybox", "true")
    cli.ok("rename", "before", "after")
    assert cli.inspect(cid)["Name"] == "/after"
    assert cli("inspect", "--type", "container", "before").returncode == 1
    line = cli.fails(None, "rename", "after", "other")
    assert "already in use" in line
    cli.fails(None, "rename", "after", "bad name!")
    assert cli.inspect(cid)["Name"] == "/after"
    cli.create("--name", "before", "busybox", "true")  # the old name is free again


def _frozen(cid: str) -> bool | None:
    for path in (f"/sys/fs/cgroup/freezer/sangja/{cid}/freezer.state",):
        try:
            with open(path) as f:
                return f.read().strip() == "FROZEN"
        except FileNotFoundError:
            pass
    for path in (f"/sys/fs/cgroup/sangja/{cid}/cgroup.events",
                 f"/sys/fs/cgroup/unified/sangja/{cid}/cgroup.events"):
        try:
            with open(path) as f:
                return "frozen 1" in f.read()
        except FileNotFoundError:
            pass
    return None


def test_pause_unpause(cli):
    cid = cli.detach("busybox", "sh", "-c", "while :; do echo tick >> /tmp/ticks; "
                                            "sleep 0.02; done")
    cli.ok("pause", cid)
    doc = cli.inspect(cid)
    assert doc["State"]["Status"] == "paused" and doc["State"]["Paused"]
    assert _frozen(cid) is True
    (row,) = cli.ps()
    assert row["State"] == "paused" and row["Status"].endswith("(Paused)")
    r = cli("exec", cid, "true")
    assert r.returncode != 0 and "paused" in r.stderr
    r = cli("pause", cid)
    assert r.returncode == 1 and "not running" in r.stderr
    # frozen: its count of ticks does not move (read through the host's view of its root)
    pid = doc["State"]["Pid"]
    ticks = f"/proc/{pid}/root/tmp/ticks"
    with open(ticks) as f:
        n = len(f.read())
    time.sleep(0.2)
    with open(ticks) as f:
        assert len(f.read()) == n
    cli.ok("unpause", cid)
    assert cli.status(cid) == "running" and _frozen(cid) is False
    wait_until(lambda: len(open(ticks).read()) > n, 10)
    r = cli("unpause", cid)
    assert r.returncode == 1 and "not paused" in r.stderr
    # a paused container can be stopped and removed
    cli.ok("pause", cid)
    cli.ok("stop", "-t", "1", cid)
    assert cli.status(cid) == "exited"


def test_kill_paused(cli):
    """Docker's: SIGKILL (or the stop signal) to a paused container thaws it so the
    signal is delivered; another signal waits for `unpause`."""
    cid = cli.detach("busybox", "sh", "-c", "trap 'echo got-usr1' USR1; echo ready; "
                                            "while :; do sleep 0.05; done")
    logs_have(cli, cid, "ready")
    cli.ok("pause", cid)
    cli.ok("kill", "-s", "USR1", cid)
    assert cli.status(cid) == "paused"
    cli.ok("unpause", cid)
    logs_have(cli, cid, "got-usr1")
    cli.ok("pause", cid)
    cli.ok("kill", cid)
    assert cli.ok("wait", cid).strip() == "137"
    assert cli.status(cid) == "exited"


def test_rm_force_paused(cli):
    cid = cli.detach("busybox", "sleep", "1000")
    pid = cli.inspect(cid)["State"]["Pid"]
    cli.ok("pause", cid)
    cli.ok("rm", "-f", cid)
    assert not alive(pid)


def test_top(cli):
    cid = cli.detach("busybox", "sh", "-c", "sleep 1000 & sleep 999 & wait")
    wait_until(lambda: "sleep 999" in cli.ok("top", cid), 10)
    out = cli.ok("top", cid)
    assert out.splitlines()[0].split()[:2] == ["UID", "PID"]
    assert "sleep 1000" in out and "sleep 999" in out
    assert len(out.splitlines()) == 4  # header, sh, two sleeps
    out = cli.ok("top", cid, "-o", "pid,comm")
    assert out.splitlines()[0].split() == ["PID", "COMMAND"]
    assert {line.split()[1] for line in out.splitlines()[1:]} == {"sh", "sleep"}
    line = cli.fails(125, "top", cid, "-o", "nosuchfield")
    assert "nosuchfield" in line
    cli.ok("stop", "-t", "0", cid)
    r = cli("top", cid)
    assert r.returncode != 0 and "not running" in r.stderr


def test_stats_no_stream(cli):
    cid = cli.detach("--name", "statme", "--memory", "64m", "busybox", "sh", "-c",
                     "sleep 1000 & sleep 999 & wait")
    wait_until(lambda: "sleep 999" in cli.ok("top", cid), 10)
    out = cli.ok("stats", "--no-stream")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["CONTAINER", "ID", "NAME"]
    row = next(line for line in lines if line.startswith(cid[:12]))
    assert "statme" in row and "64MiB" in row
    (doc,) = [json.loads(x) for x in cli.ok("stats", "--no-stream", "--format", "json",
                                            cid).splitlines()]
    assert doc["Name"] == "statme" and doc["PIDs"] == "3"
    assert doc["MemUsage"].endswith("/ 64MiB") and doc["CPUPerc"].endswith("%")


def test_inspect_fields(cli, tmp_path):
    (tmp_path / "b").mkdir()
    cid = cli.detach("--name", "insp", "-e", "A=1", "--label", "k=v",
                     "-v", f"{tmp_path / 'b'}:/b:ro", "-v", "insp-vol:/v",
                     "--restart", "on-failure:3", "busybox", "sleep", "1000")
    doc = cli.inspect("insp")
    assert doc["Id"] == cid and doc["Name"] == "/insp" and doc["RestartCount"] == 0
    st = doc["State"]
    assert st["Status"] == "running" and st["Running"] and not st["OOMKilled"]
    assert st["ExitCode"] == 0 and st["Pid"] > 0
    assert host_cmdline(st["Pid"]) == ["sleep", "1000"]
    with open(f"/proc/{st['Pid']}/cgroup") as f:
        assert cid in f.read()
    assert "A=1" in doc["Config"]["Env"] and any(e.startswith("PATH=")
                                                 for e in doc["Config"]["Env"])
    assert doc["Config"]["Labels"]["k"] == "v" and doc["Config"]["Image"] == "busybox"
    assert doc["Path"] == "sleep" and doc["Args"] == ["1000"]
    mounts = {m["Destination"]: m for m in doc["Mounts"]}
    assert mounts["/b"]["Type"] == "bind" and mounts["/b"]["RW"] is False
    assert mounts["/b"]["Source"] == str(tmp_path / "b")
    assert mounts["/v"]["Type"] == "volume" and mounts["/v"]["Name"] == "insp-vol"
    assert mounts["/v"]["RW"] is True and os.path.isdir(mounts["/v"]["Source"])
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert cli.ok("inspect", "-f", "{{.State.Status}}", "insp") == "running\n"
    assert cli.ok("inspect", "--format", "{{.Name}} {{.State.ExitCode}}", cid[:12]) \
        == "/insp 0\n"
    assert cli.ok("inspect", "-f", "{{.State.Pid}}", "insp").strip() == str(st["Pid"])
    cli.ok("kill", "insp")
    cli.ok("wait", "insp")
    wait_until(lambda: cli.inspect("insp")["State"]["Status"] == "exited", 10)
    st = cli.inspect("insp")["State"]
    assert st["ExitCode"] == 137 and st["Pid"] == 0 and not st["Running"]
    assert st["FinishedAt"] != "0001-01-01T00:00:00Z"
    r = cli("inspect", "no-such-thing")
    assert r.returncode == 1 and "No such object: no-such-thing" in r.stderr
    assert json.loads(r.stdout) == []
    cli.ok("rm", "-f", "insp")
    cli.ok("volume", "rm", "insp-vol")


def test_ps_flags(cli):
    a = cli.detach("--name", "ps-run", "busybox", "sleep", "1000")
    b = cli.detach("--name", "ps-exit", "busybox", "sh", "-c", "exit 2")
    cli.ok("wait", b)
    c = cli.create("--name", "ps-created", "busybox", "true")
    assert cli.ok("ps", "-q").split() == [a[:12]]
    assert set(cli.ok("ps", "-aq").split()) == {a[:12], b[:12], c[:12]}
    assert cli.ok("ps", "-aq", "--no-trunc", "--filter", "status=exited").split() == [b]
    assert cli.ok("ps", "-q", "--no-trunc", "--filter", "exited=2").split() == [b]
    assert cli.ok("ps", "-aq", "--no-trunc", "--filter", "status=created").split() == [c]
    assert cli.ok("ps", "-aq", "--no-trunc", "--filter", "name=ps-run").split() == [a]
    assert cli.ok("ps", "-aq", "--no-trunc", "--filter", f"id={a[:8]}").split() == [a]
    assert cli.ok("ps", "-q", "--no-trunc", "--latest").split() == [c]
    assert len(cli.ok("ps", "-aq", "-n", "2").split()) == 2
    assert cli.ok("ps", "-a", "--format", "{{.Names}}:{{.State}}",
                  "--filter", "name=ps-").split() == ["ps-created:created", "ps-exit:exited",
                                                     "ps-run:running"]
    rows = {r["Names"]: r for r in cli.ps()}
    assert rows["ps-exit"]["Status"].startswith("Exited (2)")
    assert rows["ps-run"]["Command"] == '"sleep 1000"'  # quoted, as docker's ps shows it
    assert rows["ps-run"]["RunningFor"].endswith(" ago")
    table = cli.ok("ps", "-a", "--format", "table {{.Names}}\t{{.State}}", "--filter",
                   "name=ps-ex").splitlines()
    assert table == ["NAMES     STATE", "ps-exit   exited"]  # docker's columns: >= 10 wide
    assert cli.ok("ps", "-a", "--format", '{{.Label "nope"}}|{{.ID}}', "--filter",
                  "name=ps-run").strip() == f"|{a[:12]}"
    assert cli.fails(1, "ps", "--filter", "bogus=1") == "sangja: Invalid filter 'bogus'"


# ---------------------------------------------------------------------------- exec, attach


def test_exec(cli, tmp_path):
    cid = cli.detach("-e", "FROM_RUN=r", "busybox", "sleep", "1000")
    out = cli.exec_out(cid, "sh", "-c", "echo $FROM_RUN $EXTRA; id -u; pwd")
    assert out.splitlines() == ["r", "0", "/"]
    out = cli.ok("exec", "-e", "EXTRA=x", "-u", "1000:1001", "-w", "/tmp", cid, "sh", "-c",
                 "echo $EXTRA; id -u; id -g; pwd; grep CapEff /proc/self/status")
    lines = out.splitlines()
    assert lines[:4] == ["x", "1000", "1001", "/tmp"]
    assert int(lines[4].split()[1], 16) == 0
    assert cli.ok("exec", "-u", "nobody", cid, "id", "-un") == "nobody\n"
    # exit status passes through
    r = cli("exec", cid, "sh", "-c", "echo before; exit 7")
    assert r.returncode == 7 and r.stdout == "before\n"
    assert cli("exec", cid, "no-such-command").returncode in (126, 127)
    # stdin with -i
    assert cli.ok("exec", "-i", cid, "cat", input="piped\n") == "piped\n"
    # -d: returns at once, the process goes on
    cli.ok("exec", "-d", cid, "sh", "-c", "sleep 0.2; echo done > /tmp/bg")
    wait_until(lambda: cli("exec", cid, "cat", "/tmp/bg").stdout == "done\n", 10)
    # the exec'd process is in the container: same namespaces as the init
    pid = cli.inspect(cid)["State"]["Pid"]
    for ns in ("pid", "mnt", "net", "uts", "ipc"):
        assert cli.exec_out(cid, "readlink", f"/proc/self/ns/{ns}").strip() == \
            os.readlink(f"/proc/{pid}/ns/{ns}")
    cli.ok("stop", "-t", "0", cid)
    r = cli("exec", cid, "true")
    assert r.returncode != 0 and "not running" in r.stderr


def test_exec_tty(cli):
    cid = cli.detach("busybox", "sleep", "1000")
    t = Pty(cli.argv("exec", "-it", cid, "sh"), rows=20, cols=60)
    try:
        t.expect(r"# ")
        t.send("echo $((2+3)); tty; stty size\r")
        t.expect(r"5\r\n")
        t.expect(r"/dev/pts/\d+\r\n")
        t.expect(r"20 60\r\n")
        t.send("exit 3\r")
        assert t.wait() == 3
    finally:
        t.close()


def test_attach(cli):
    cid = cli.detach("-i", "busybox", "sh", "-c",
                     "echo ready; read line; echo got:$line; exit 3")
    logs_have(cli, cid, "ready")
    r = cli("attach", cid, input="hello\n", timeout=30)
    assert r.returncode == 3
    assert "got:hello" in r.stdout
    assert cli.inspect(cid)["State"]["ExitCode"] == 3
    r = cli("attach", cid)
    assert r.returncode != 0 and "stopped container" in r.stderr


def test_attach_sees_output_and_exit(cli):
    cid = cli.detach("busybox", "sh", "-c",
                     "trap 'echo bye; exit 4' TERM; echo ready; while :; do sleep 0.05; done")
    logs_have(cli, cid, "ready")
    p = cli.popen("attach", "--no-stdin", cid)
    try:
        time.sleep(0.2)  # let it connect; the stop below is seen either way
        cli.ok("stop", cid)
        out, _ = p.communicate(timeout=30)
        assert p.returncode == 4
        assert b"bye" in out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_tty_attach_and_logs(cli):
    cid = cli.detach("-it", "busybox", "sh")
    t = Pty(cli.argv("attach", cid))
    try:
        # what is typed before the shell reads its terminal may be lost (as with Docker):
        # wait for a prompt drawn after the attach
        wait_until(lambda: (t.send("\r"), _prompt(t))[1], 15, interval=0)
        t.send("echo attached-$((40+2))\r")
        t.expect(r"attached-42")
        t.send("exit 2\r")
        assert t.wait() == 2
    finally:
        t.close()
    assert cli.ok("wait", cid).strip() == "2"
    assert "attached-42" in cli.ok("logs", cid)


def _prompt(t: Pty) -> bool:
    try:
        t.expect(r"# ", timeout=0.5)
        return True
    except AssertionError:
        return False


def test_port(cli):
    cid = cli.detach("busybox", "sleep", "1000")
    assert cli.ok("port", cid) == ""
    r = cli("port", cid, "80/tcp")
    assert r.returncode == 1 and "no public port" in r.stderr
    r = cli("port", "no-such")
    assert r.returncode != 0 and "No such container" in r.stderr


def test_container_prune(cli):
    running = cli.detach("busybox", "sleep", "1000")
    exited = cli.detach("busybox", "true")
    created = cli.create("busybox", "true")
    cli.ok("wait", exited)
    out = cli.ok("container", "prune", "-f")
    assert exited in out and created in out and running not in out
    assert [r["ID"] for r in cli.ps()] == [running]
    assert cli.status(running) == "running"


# ---------------------------------------------------------------------------- volumes


def test_volume_commands(cli):
    assert cli.ok("volume", "create", "--label", "a=b", "v1").strip() == "v1"
    assert cli.ok("volume", "create", "v1").strip() == "v1"  # idempotent, as Docker's
    anon = cli.ok("volume", "create").strip()
    assert len(anon) == 64
    assert set(cli.ok("volume", "ls", "-q").split()) == {"v1", anon}
    (info,) = json.loads(cli.ok("volume", "inspect", "v1"))
    assert info["Name"] == "v1" and info["Labels"] == {"a": "b"} and info["Driver"] == "local"
    assert os.path.isdir(info["Mountpoint"])
    assert cli.ok("volume", "inspect", "-f", "{{.Mountpoint}}", "v1").strip() == \
        info["Mountpoint"]
    assert cli.ok("volume", "ls", "-q", "--filter", "label=a=b").split() == ["v1"]
    r = cli("volume", "inspect", "nope")
    assert r.returncode == 1 and "no such volume" in r.stderr
    # in use (even by a container that is not running): refused, and kept
    cid = cli.create("-v", "v1:/data", "busybox", "true")
    r = cli("volume", "rm", "v1")
    assert r.returncode == 1 and "volume is in use" in r.stderr
    assert os.path.isdir(info["Mountpoint"])
    assert cli.ok("volume", "ls", "-q", "--filter", "dangling=true").split() == [anon]
    # prune: only unused anonymous volumes by default... named "v1" is kept either way
    # while in use
    cli.ok("volume", "prune", "-f", "-a")
    assert cli.ok("volume", "ls", "-q").split() == ["v1"]
    cli.ok("rm", cid)
    assert cli.ok("volume", "rm", "v1").strip() == "v1"
    assert not os.path.exists(info["Mountpoint"])
    r = cli("volume", "rm", "v1")
    assert r.returncode == 1 and "no such volume" in r.stderr
    assert cli("volume", "rm", "-f", "v1").returncode == 0
    cli.fails(None, "volume", "create", "bad/name")


def test_volume_prune_default_keeps_named(cli):
    cli.ok("volume", "create", "named")
    cid = cli.create("-v", "/anon", "busybox", "true")
    anon = cli.inspect(cid)["Mounts"][0]["Name"]
    cli.ok("rm", cid)  # keeps its anonymous volume (no -v)
    out = cli.ok("volume", "prune", "-f")
    assert anon in out and "named" not in out.split()
    assert cli.ok("volume", "ls", "-q").split() == ["named"]


# ---------------------------------------------------------------------------- cp


def test_cp_both_ways(cli, tmp_path):
    cid = cli.detach("busybox", "sh", "-c", "mkdir /data; echo inside > /data/f; "
                                            "sleep 1000")
    wait_until(lambda: cli("exec", cid, "cat", "/data/f").stdout == "inside\n", 10)
    # out: a file, a directory
    cli.ok("cp", f"{cid}:/data/f", str(tmp_path / "f"))
    assert (tmp_path / "f").read_text() == "inside\n"
    cli.ok("cp", f"{cid}:/data", str(tmp_path / "d"))
    assert (tmp_path / "d" / "f").read_text() == "inside\n"
    # in: a file, a directory; seen by the running container
    (tmp_path / "up").write_text("from host\n")
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "g").write_text("deep\n")
    cli.ok("cp", str(tmp_path / "up"), f"{cid}:/data/up")
    cli.ok("cp", str(tmp_path / "tree"), f"{cid}:/tree")
    assert cli.exec_out(cid, "cat", "/data/up", "/tree/sub/g") == "from host\ndeep\n"
    # a stopped container too
    cli.ok("stop", "-t", "0", cid)
    cli.ok("cp", str(tmp_path / "up"), f"{cid}:/after-stop")
    cli.ok("cp", f"{cid}:/after-stop", str(tmp_path / "back"))
    assert (tmp_path / "back").read_text() == "from host\n"
    # stdout as a tar stream
    r = cli("cp", f"{cid}:/data/f", "-", text=False)
    assert r.returncode == 0
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
        assert tf.extractfile("f").read() == b"inside\n"
    r = cli("cp", f"{cid}:/no/such", str(tmp_path / "x"))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert not mounted_under(cli)


def mounted_under(cli) -> list[str]:
    from engine_cli import mounts_under

    return [m for m in mounts_under(cli.root) if "/snapshots/" in m]


def test_cp_reaches_volumes_and_respects_read_only_binds(cli, tmp_path):
    """A path under a volume or bind mount is copied to and from the mount's source (what
    the container sees there), not the root filesystem hidden beneath the mount."""
    bound = tmp_path / "bound"
    bound.mkdir()
    vol = "cpvol-" + os.urandom(4).hex()
    cid = cli.detach("-v", f"{vol}:/data", "-v", f"{bound}:/ro:ro", "busybox", "sleep", "1000")
    try:
        src = tmp_path / "in.txt"
        src.write_text("into the volume\n")
        cli.ok("cp", str(src), f"{cid}:/data/")
        assert cli.exec_out(cid, "cat", "/data/in.txt") == "into the volume\n"
        cli.ok("exec", cid, "sh", "-c", "echo from-inside > /data/out.txt")
        cli.ok("cp", f"{cid}:/data/out.txt", str(tmp_path / "out.txt"))
        assert (tmp_path / "out.txt").read_text() == "from-inside\n"
        line = cli.fails(1, "cp", str(src), f"{cid}:/ro/x")
        assert "read-only" in line and not (bound / "x").exists()
    finally:
        cli("rm", "-f", "-v", cid)
        cli("volume", "rm", vol)


def test_cp_symlink_escape(cli, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("host data\n")
    target_dir = tmp_path / "host-dir"
    target_dir.mkdir()
    cid = cli.detach("busybox", "sh", "-c",
                     f"ln -s {secret} /evil-file; ln -s {target_dir} /evil-dir; "
                     "ln -s / /rootlink; ln -s ../../../../../../.. /up; sleep 1000")
    wait_until(lambda: cli("exec", cid, "test", "-L", "/up").returncode == 0, 10)
    r = cli("cp", f"{cid}:/evil-file", str(tmp_path / "link"))
    assert r.returncode == 0 and os.path.islink(tmp_path / "link")  # the link itself
    # out of it through its symlinks: must not read the host's file
    for src in ("/evil-file", "/up" + str(secret), "/rootlink" + str(secret)):
        out = tmp_path / "out"
        r = cli("cp", "-L", f"{cid}:{src}", str(out))
        if out.exists():
            if out.is_file():
                assert out.read_text() != "host data\n", src
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        assert "Traceback" not in r.stderr
    (tmp_path / "payload").write_text("attacker\n")
    # into the container through its symlinks: must land inside it
    for dest in ("/evil-file", "/evil-dir/", "/evil-dir/x", "/up" + str(secret),
                 "/rootlink" + str(secret)):
        cli("cp", str(tmp_path / "payload"), f"{cid}:{dest}")
    assert secret.read_text() == "host data\n"
    assert os.listdir(target_dir) == []
    # where it went: inside the container (the link was followed there, or replaced)
    assert cli.exec_out(cid, "cat", "/evil-file") == "attacker\n"


# ---------------------------------------------------------------------------- commit, export


def test_commit(cli):
    cid = cli.detach("busybox", "sh", "-c", "echo committed > /newfile; mkdir /newdir; "
                                            "rm /bin/true; sleep 1000")
    wait_until(lambda: cli("exec", cid, "test", "-f", "/newfile").returncode == 0, 10)
    image = cli.ok("commit", "-m", "a message", "-c", "ENV FROM_COMMIT=1", cid,
                   "localhost/committed:v1").strip()
    assert image.startswith("sha256:")
    try:
        out = cli.out("localhost/committed:v1", "sh", "-c",
                      "cat /newfile; test -d /newdir && echo dir; "
                      "test -e /bin/true || echo no-true; echo $FROM_COMMIT")
        assert out.splitlines() == ["committed", "dir", "no-true", "1"]
        (info,) = json.loads(cli.ok("image", "inspect", "localhost/committed:v1"))
        assert len(info["RootFS"]["Layers"]) == 2
        assert info["Config"]["Cmd"] == ["sh", "-c", "echo committed > /newfile; mkdir "
                                          "/newdir; rm /bin/true; sleep 1000"]
        assert cli.status(cid) == "running"  # commit does not stop it
    finally:
        cli("rm", "-f", cid)
        cli("rmi", "localhost/committed:v1")


def test_commit_bad_reference(cli):
    cid = cli.create("busybox", "true")
    before = cli.ok("images", "-q", "-a")
    r = cli("commit", cid, "UPPER/Case")
    if r.returncode == 0:  # do not leave it to the other tests
        cli("rmi", "-f", r.stdout.strip())
    assert r.returncode == 125 and "UPPER/Case" in r.stderr
    assert cli.ok("images", "-q", "-a") == before


def test_export(cli, tmp_path):
    cid = cli.detach("busybox", "sh", "-c", "echo exported > /exported; sleep 1000")
    wait_until(lambda: cli("exec", cid, "test", "-f", "/exported").returncode == 0, 10)
    out = tmp_path / "c.tar"
    cli.ok("export", "-o", str(out), cid)
    with tarfile.open(out) as tf:
        names = tf.getnames()
        assert any(n.strip("./") == "exported" for n in names)
        member = next(m for m in tf.getmembers() if m.name.strip("./") == "exported")
        assert tf.extractfile(member).read() == b"exported\n"
        assert any(n.strip("./") == "bin/busybox" for n in names)
        assert not any(n.strip("./").startswith("proc/") for n in names)
    # to stdout, of a stopped container
    cli.ok("stop", "-t", "0", cid)
    r = cli("export", cid, text=False)
    assert r.returncode == 0
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
        assert any(n.strip("./") == "exported" for n in tf.getnames())
    assert not mounted_under(cli)


# ---------------------------------------------------------------------------- logs


def test_log_rotation(cli):
    cid = cli.detach("--log-opt", "max-size=2k", "--log-opt", "max-file=3", "busybox",
                     "sh", "-c", "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); "
                                 "done")
    cli.ok("wait", cid)
    log = cli.inspect(cid)["LogPath"]
    sizes = [os.path.getsize(p) for p in (log, log + ".1", log + ".2") if os.path.exists(p)]
    assert len(sizes) == 3 and max(sizes) <= 2048 + 200
    assert not os.path.exists(log + ".3")
    lines = cli.ok("logs", cid).splitlines()
    assert lines[-1] == "line-399"
    assert lines == [f"line-{i}" for i in range(400 - len(lines), 400)]  # contiguous
    assert cli.ok("logs", "--tail", "3", cid).splitlines() == ["line-397", "line-398",
                                                               "line-399"]


def test_logs_follow_streams_each_line_while_running(cli):
    """`logs -f` through a pipe shows lines as the container writes them (not when the
    follower exits), and ends by itself when the container stops."""
    cid = cli.detach("busybox", "sh", "-c",
                     "echo first; sleep 1; echo second; sleep 1000")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as users run it
    p = cli.popen("logs", "-f", "--tail", "5", cid, env=env)
    try:
        assert p.stdout.readline() == b"first\n"  # before the container writes more
        assert p.stdout.readline() == b"second\n"
        cli.ok("stop", "-t", "0", cid)
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
        cli("rm", "-f", cid)


def test_logs_until_and_driver_none(cli):
    cid = cli.detach("busybox", "sh", "-c", "echo first; sleep 0.3; echo second")
    logs_have(cli, cid, "first")
    mid = f"{time.time():.6f}"
    cli.ok("wait", cid)
    assert cli.ok("logs", "--until", mid, cid) == "first\n"
    assert cli.ok("logs", "--since", mid, cid) == "second\n"
    cid = cli.detach("--log-driver", "none", "busybox", "echo", "x")
    cli.ok("wait", cid)
    r = cli("logs", cid)
    assert r.returncode != 0 and "does not support reading" in r.stderr


def test_signal_to_detached_init_default_ignored(cli):
    """PID 1 without a handler ignores SIGTERM (the kernel's rule for a namespace's init);
    `stop` then kills it after the timeout."""
    cid = cli.detach("busybox", "sleep", "1000")
    cli.ok("kill", "-s", "TERM", cid)
    time.sleep(0.2)
    assert cli.status(cid) == "running"
    st = status_fields(open(f"/proc/{cli.inspect(cid)['State']['Pid']}/status").read())
    assert st["State"].startswith("S")
    cli.ok("kill", "-s", str(int(signal.SIGKILL)), cid)
    assert cli.ok("wait", cid).strip() == "137"
