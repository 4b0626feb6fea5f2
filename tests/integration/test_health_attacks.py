"""Attacks on the healthcheck probe from inside the container (sangja.engine.health, the
exec it runs through, and the monitor that drives it): output that is endless, binary,
huge, without a newline or full of terminal escapes; a probe that leaves a process
holding its output pipe, that never exits, that fills the container's pid limit, whose
container exits under it, whose working directory is a link to a host path; thousands
of probes. Each test observes the effect on the host: the engine returns, keeps at most
4096 bytes and 5 results, leaves no process, directory or file of the probe behind, and
the status stays true."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from engine_cli import wait_until

pytestmark = pytest.mark.root

NONE = ("--network", "none")
HANG = 120  # seconds: a `healthcheck run` that takes longer is stuck for ever


def health(cli, ref: str) -> dict:
    return cli.inspect(ref)["State"].get("Health") or {}


def probe(cli, cid: str) -> subprocess.CompletedProcess:
    """One probe by hand; a probe that never returns fails the test (TimeoutExpired)."""
    return cli("healthcheck", "run", cid, timeout=HANG)


def container_processes(cli, cid: str) -> list[str]:
    """The container's live processes (not zombies: a non-reaping init keeps those), as
    `ps -o stat,args` lines, without the ps itself."""
    out = cli.exec_out(cid, "ps", "-o", "stat,args")
    return [line.strip() for line in out.splitlines()[1:]
            if not line.strip().startswith("Z") and "ps -o" not in line]


def exec_dirs(cli, cid: str) -> list[str]:
    d = cli.runroot / "engine" / cid
    return [n for n in os.listdir(d) if n.startswith("exec-")] if d.is_dir() else []


def test_output_is_capped_and_escaped(cli):
    """Escapes (OSC title, BEL, 8-bit CSI), an invalid byte, NUL, then 200 KB with no
    newline: 4096 bytes kept, and `inspect` prints every control character escaped."""
    script = (r'printf "\033]0;pwned\007\302\233 31m\377\000x"; '
              'head -c 200000 /dev/zero | tr "\\0" a')
    cid = cli.detach(*NONE, "--health-cmd", script, "--health-interval", "1h", "busybox",
                     "sleep", "300")
    assert probe(cli, cid).returncode == 0
    out = cli("inspect", cid, text=False).stdout
    for raw in (b"\x1b", b"\x07", b"\xc2\x9b", b"\x00", b"\xff"):
        assert raw not in out
    (doc,) = json.loads(out)
    last = doc["State"]["Health"]["Log"][-1]
    assert last["ExitCode"] == 0 and doc["State"]["Health"]["Status"] == "healthy"
    text = last["Output"]
    assert text.startswith("\x1b]0;pwned\x07\x9b 31m\ufffd\x00xaaa")
    assert len(text.encode("utf-8", "surrogatepass")) <= 4096 + 2  # U+FFFD: 3 bytes for 1
    assert text.endswith("a") and "\n" not in text
    assert "(healthy)" in cli.ok("ps", "--filter", f"id={cid}", "--format", "{{.Status}}")


def test_endless_output_from_many_writers_times_out(cli):
    script = "for i in 1 2 3 4 5 6 7 8; do yes xxxxxxxxxxxxxxxxxxxxxxxx & done; yes"
    cid = cli.detach(*NONE, "--health-cmd", script, "--health-timeout", "1s",
                     "--health-interval", "1h", "busybox", "sleep", "300")
    r = probe(cli, cid)
    assert r.returncode == 1 and r.stdout.strip() == "unhealthy"
    last = health(cli, cid)["Log"][-1]
    assert last == {**last, "ExitCode": -1, "Output": "Health check exceeded timeout (1s)"}
    assert not any("yes" in p for p in container_processes(cli, cid))


def test_endless_writer_cannot_hold_the_reader(monkeypatch):
    """The reader takes at most 16 chunks per wake-up: a pipe that is refilled as fast as
    it is read (here: a read that never runs dry) cannot keep it from its deadline."""
    from sangja.engine import exec as ex

    calls = 0

    def endless(_fd, n):
        nonlocal calls
        calls += 1
        if calls > 10_000:
            raise AssertionError("the reader never stops reading")
        return b"y" * n

    buf = bytearray()
    monkeypatch.setattr(ex.os, "read", endless)
    assert ex._read_into(0, buf, 4096) is True
    monkeypatch.undo()
    assert len(buf) == 4096 and calls <= 16


def test_a_child_holding_the_pipe_does_not_hold_the_probe(cli):
    """The probe exits 0 but leaves processes that keep its output pipe open (one writing
    for ever): the probe's result is recorded when it exits, not when the pipe closes."""
    script = "echo fine; sleep 1001 & (yes > /dev/stdout &)"
    cid = cli.detach(*NONE, "--health-cmd", script, "--health-timeout", "1h",
                     "--health-interval", "1h", "busybox", "sleep", "300")
    assert probe(cli, cid).returncode == 0
    h = health(cli, cid)
    assert h["Status"] == "healthy" and h["Log"][-1]["Output"].startswith("fine\n")
    assert not exec_dirs(cli, cid)


def test_timeout_kills_the_probe_and_what_it_started(cli):
    """A probe past its timeout: its process, its background job, a child in a session of
    its own (setsid: out of its process group) and a grandchild are all killed."""
    script = ('sleep 1001 & setsid sh -c "sleep 1002; true" & '
              'sh -c "sh -c \\"sleep 1004; true\\"; true" & sleep 1003; true')
    cid = cli.detach(*NONE, "--health-cmd", script, "--health-timeout", "1s",
                     "--health-interval", "1h", "busybox", "sleep", "300")
    r = probe(cli, cid)
    assert r.returncode == 1
    assert health(cli, cid)["Log"][-1]["ExitCode"] == -1
    left = container_processes(cli, cid)
    assert not any("sleep 10" in p for p in left), left
    assert not exec_dirs(cli, cid)


def test_probe_filling_the_pid_limit(cli):
    """The probe forks until the container's pids.max: it fails, the next probe cannot
    even start in the container; neither hangs the engine, both are failures."""
    cid = cli.detach(*NONE, "--pids-limit", "8", "--health-cmd",
                     "while :; do sleep 1000 & done", "--health-timeout", "2s",
                     "--health-retries", "2", "--health-interval", "1h", "busybox",
                     "sleep", "300")
    assert probe(cli, cid).returncode == 1
    assert probe(cli, cid).returncode == 1
    h = health(cli, cid)
    assert h["Status"] == "unhealthy" and h["FailingStreak"] == 2
    assert all(e["ExitCode"] != 0 for e in h["Log"])
    assert cli.status(cid) == "running"
    assert not exec_dirs(cli, cid)


@pytest.mark.parametrize("pid_mode", [(), ("--pid", "host")])
def test_container_exits_while_the_probe_runs(cli, pid_mode):
    """The init exits during a probe: the monitor stops the probe, which kills its process
    (with --pid host it would not die with the container), removes its exec directory
    and records nothing."""
    marker = f"sleep {4000 + len(pid_mode)}"
    cid = cli.detach(*NONE, *pid_mode, "--health-cmd", marker, "--health-timeout", "1h",
                     "--health-interval", "50ms", "busybox", "sh", "-c",
                     "while [ ! -e /tmp/go ]; do sleep 0.1; done")
    wait_until(lambda: exec_dirs(cli, cid), 30, message="a probe to run")
    cli.exec_out(cid, "touch", "/tmp/go")
    cli.wait_status(cid, "exited", timeout=30)
    wait_until(lambda: not exec_dirs(cli, cid), 30, message="the probe's exec dir to go")
    assert health(cli, cid)["Log"] == []

    def probe_gone():
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read() == marker.replace(" ", "\0").encode() + b"\0":
                        return False
            except OSError:
                continue
        return True

    wait_until(probe_gone, 30, message=f"{marker} to end")


def test_thousands_of_probes_keep_five_results(cli):
    """Probes as fast as the monitor runs them: the log keeps the last 5, each probe's
    exec directory goes, and the health file stays small."""
    script = "n=$(cat /tmp/n 2>/dev/null || echo 0); echo $((n+1)) > /tmp/n; echo $n"
    cid = cli.detach(*NONE, "--health-cmd", script, "--health-interval", "1ms",
                     "busybox", "sleep", "300")
    def probes() -> int:  # empty while a probe rewrites it
        text = cli.exec_out(cid, "sh", "-c", "cat /tmp/n 2>/dev/null; true").strip()
        return int(text) if text.isdigit() else 0

    wait_until(lambda: probes() >= 40, 120, interval=0.5, message="40 probes")
    h = health(cli, cid)
    assert len(h["Log"]) == 5 and h["Status"] == "healthy", h
    assert all(e["ExitCode"] == 0 and e["Output"].strip().isdigit() for e in h["Log"]), h
    outputs = [int(e["Output"]) for e in h["Log"]]
    assert outputs == sorted(outputs) and outputs[-1] >= 35
    assert os.path.getsize(cli.root / "containers" / cid / "health.json") < 4096
    assert len(exec_dirs(cli, cid)) <= 1  # the probe running now


def test_probe_in_a_workdir_that_is_a_link_to_a_host_path(cli, tmp_path):
    """The container replaces its working directory with a link to a host path (which it
    also makes inside): the probe runs in the container's directory of that name, never
    the host's, and nothing is written on the host."""
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "host-secret").write_text("secret\n")
    cid = cli.detach(*NONE, "-w", "/work", "--health-cmd", "pwd; ls",
                     "--health-interval", "1h", "busybox", "sleep", "300")
    cli.exec_out(cid, "sh", "-c", f"mkdir -p {host} && touch {host}/container-file && "
                 f"cd / && rm -rf /work && ln -s {host} /work")
    assert probe(cli, cid).returncode == 0
    out = health(cli, cid)["Log"][-1]["Output"]
    assert out == f"{host}\ncontainer-file\n"
    assert sorted(os.listdir(host)) == ["host-secret"]
    assert sorted(os.listdir(tmp_path)) == ["hostdir"]
    # and with the link dangling inside the container: a failure, nothing on the host
    cli.exec_out(cid, "rm", "-rf", str(host))
    assert probe(cli, cid).returncode == 1
    assert "No such file" in health(cli, cid)["Log"][-1]["Output"]
    assert sorted(os.listdir(host)) == ["host-secret"]


@pytest.mark.parametrize("planted", ["mkfifo /etc/passwd", "ln -s /dev/zero /etc/passwd"])
def test_passwd_that_blocks_or_never_ends(cli, planted):
    """Without HOME in its environment the runtime's exec looks the user's home up in the
    container's /etc/passwd: a FIFO there blocked it (and so the probe, before its timeout
    starts, and the monitor's probes for ever), a link to /dev/zero read without end. Now
    neither is read: HOME is "/"."""
    cid = cli.detach(*NONE, "--health-cmd", "echo $HOME", "--health-timeout", "1h",
                     "--health-interval", "1h", "busybox", "sleep", "300")
    cli.exec_out(cid, "sh", "-c", f"rm /etc/passwd && {planted}")
    assert probe(cli, cid).returncode == 0
    assert health(cli, cid)["Log"][-1]["Output"] == "/\n"
    assert cli("exec", cid, "sh", "-c", "echo $HOME", timeout=HANG).stdout == "/\n"
    assert not exec_dirs(cli, cid)
