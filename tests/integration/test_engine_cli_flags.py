"""Flags that are accepted take effect (or are refused): the detach keys of `run -it` and
`attach` leave the container running, `attach --sig-proxy=false` keeps signals to itself,
`run -a` shows only the streams named, `ps -s`/`inspect -s` measure the writable layer,
`stats --no-trunc`, `stop -s`, `exec --env-file`; and help needs no root. Effects are
observed on the host (/proc of the container's init) or from inside the container."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest
from engine_cli import Pty, wait_until

pytestmark = pytest.mark.root

READY_LOOP = "echo ready; while :; do sleep 0.05; done"


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def prompt(t: Pty) -> bool:
    """What is typed before the shell reads its terminal may be lost (as with Docker):
    a prompt drawn after our Enter says the shell is reading."""
    try:
        t.send("\r")
        t.expect(r"# ", timeout=0.5)
        return True
    except AssertionError:
        return False


# ---------------------------------------------------------------------------- detach keys


def test_ctrl_p_ctrl_q_detaches_run_it_and_the_container_runs_on(cli):
    t = Pty(cli.argv("run", "-it", "--name", "dk", "busybox", "sh"))
    try:
        wait_until(lambda: prompt(t), 15, interval=0)
        t.send("echo $((6*7))\r")
        t.expect(r"42\r\n")
        t.send(b"\x10\x11")
        assert t.wait() == 0  # Docker: a detach is not an error
    finally:
        t.close()
    doc = cli.inspect("dk")
    assert doc["State"]["Status"] == "running"
    assert alive(doc["State"]["Pid"])  # the shell itself, seen by the kernel
    time.sleep(0.5)
    assert alive(doc["State"]["Pid"])

    # attached again, the same shell answers; a lone ctrl-p goes through to it
    t = Pty(cli.argv("attach", "dk"))
    try:
        wait_until(lambda: prompt(t), 15, interval=0)
        t.send("echo $$ again\r")
        t.expect(r"1 again\r\n")
        t.send(b"cat -v\r")
        t.expect(r"cat -v\r\n")
        t.send(b"\x10x\r")  # not the sequence: both keys reach the container
        t.expect(r"\^Px\r\n")
        t.send(b"\x04")  # cat ends
        wait_until(lambda: prompt(t), 15, interval=0)
        t.send(b"\x10\x11")
        assert t.wait() == 0
    finally:
        t.close()
    assert cli.status("dk") == "running" and alive(doc["State"]["Pid"])


def test_detach_keys_flag_of_attach(cli):
    cli.detach("-it", "--name", "dk2", "busybox", "sh")
    pid = cli.inspect("dk2")["State"]["Pid"]
    t = Pty(cli.argv("attach", "--detach-keys", "ctrl-x,z", "dk2"))
    try:
        wait_until(lambda: prompt(t), 15, interval=0)
        t.send(b"\x10\x11")  # not the keys any more: the default pair reaches the shell
        t.send("echo still-$((1+1))\r")
        t.expect(r"still-2\r\n")
        t.send(b"\x18z")
        assert t.wait() == 0
    finally:
        t.close()
    assert cli.status("dk2") == "running" and alive(pid)


def test_detached_rm_container_is_removed_when_it_ends(cli):
    """--rm after a detach: the monitor, no longer waiting for the CLI, removes it."""
    t = Pty(cli.argv("run", "-it", "--rm", "--name", "dk3", "busybox", "sh"))
    try:
        wait_until(lambda: prompt(t), 15, interval=0)
        t.send(b"\x10\x11")
        assert t.wait() == 0
    finally:
        t.close()
    assert cli.status("dk3") == "running"
    cli.ok("stop", "-t", "1", "dk3")
    wait_until(lambda: cli("inspect", "dk3").returncode != 0, 15, message="dk3 removed")


def test_bad_detach_keys_are_refused(cli):
    msg = cli.fails(125, "run", "-it", "--detach-keys", "ctrl-1", "busybox", "true")
    assert "Invalid detach keys (ctrl-1) provided" in msg
    assert cli.ps() == []  # nothing created


# ---------------------------------------------------------------------------- signals


@pytest.mark.parametrize("proxy", [True, False])
def test_attach_sig_proxy(cli, proxy):
    cid = cli.detach("busybox", "sh", "-c", f"trap 'echo got-term; exit 7' TERM; {READY_LOOP}")
    wait_until(lambda: "ready" in cli.ok("logs", cid), 10)
    p = cli.popen("attach", *([] if proxy else ["--sig-proxy=false"]), cid)
    try:
        time.sleep(1)  # attached (a signal before the handlers are set kills the CLI alone)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=15)
    finally:
        p.kill()
        p.communicate()
    if proxy:
        assert cli.ok("wait", cid).strip() == "7"
        assert "got-term" in cli.ok("logs", cid)
    else:
        assert p.returncode == -signal.SIGTERM  # the CLI went, as a plain process does
        time.sleep(0.5)
        assert cli.status(cid) == "running"
        assert "got-term" not in cli.ok("logs", cid)


# ---------------------------------------------------------------------------- run -a


@pytest.mark.parametrize(("attach", "out", "err"), [
    ([], "to-out\n", "to-err\n"),
    (["-a", "stdout"], "to-out\n", ""),
    (["-a", "stderr"], "", "to-err\n"),
    (["-a", "stdout", "-a", "stderr"], "to-out\n", "to-err\n"),
])
def test_run_attach_shows_only_the_streams_named(cli, attach, out, err):
    r = cli("run", "--rm", *attach, "busybox", "sh", "-c", "echo to-out; echo to-err >&2")
    assert r.returncode == 0, r.stderr
    assert (r.stdout, r.stderr) == (out, err)


def test_run_attach_keeps_the_logs_whole(cli):
    cli.ok("run", "--name", "la", "-a", "stderr", "busybox", "sh", "-c", "echo to-out")
    assert cli.ok("logs", "la") == "to-out\n"


# ---------------------------------------------------------------------------- sizes, stats


def test_ps_size_and_inspect_size(cli):
    cid = cli.detach("--name", "sized", "busybox", "sh", "-c",
                     f"head -c 12345 /dev/zero > /blob; ln /blob /again; {READY_LOOP}")
    wait_until(lambda: "ready" in cli.ok("logs", cid), 10)
    (doc,) = __import__("json").loads(cli.ok("inspect", "-s", "sized"))
    image = __import__("json").loads(cli.ok("image", "inspect", "busybox"))[0]["Size"]
    assert doc["SizeRw"] == 12345  # one inode, however many links
    assert doc["SizeRootFs"] == 12345 + image
    assert "SizeRw" not in cli.inspect("sized")  # only with -s, as Docker

    from sangja.humanize import human_size

    want = f"12.3kB (virtual {human_size(12345 + image)})"
    table = cli.ok("ps", "-s").splitlines()
    assert table[0].split()[-1] == "SIZE"
    assert table[1].endswith("sized     " + want) or table[1].endswith(want), table
    assert cli.ok("ps", "--format", "{{.Names}}: {{.Size}}") == f"sized: {want}\n"
    assert "SIZE" not in cli.ok("ps")


def test_stats_no_trunc(cli):
    cid = cli.detach("busybox", "sleep", "1000")
    short = cli.ok("stats", "--no-stream").splitlines()[1].split()[0]
    assert short == cid[:12]
    full = cli.ok("stats", "--no-stream", "--no-trunc").splitlines()[1].split()[0]
    assert full == cid


# ---------------------------------------------------------------------------- stop, exec


def test_stop_signal(cli):
    cid = cli.detach("busybox", "sh", "-c", f"trap 'exit 3' TERM; trap 'exit 4' USR1; "
                     f"{READY_LOOP}")
    wait_until(lambda: "ready" in cli.ok("logs", cid), 10)
    cli.ok("stop", "-s", "USR1", cid)
    assert cli.inspect(cid)["State"]["ExitCode"] == 4
    assert "invalid signal" in cli.fails(125, "stop", "-s", "NOPE", cid)


def test_exec_env_file(cli, tmp_path):
    cid = cli.detach("busybox", "sleep", "1000")
    env = tmp_path / "env"
    env.write_text("# a comment\nFROM_FILE=one two\nOVER=file\n")
    out = cli.ok("exec", "--env-file", str(env), "-e", "OVER=flag", cid, "sh", "-c",
                 'echo "$FROM_FILE|$OVER"')
    assert out == "one two|flag\n"


@pytest.mark.parametrize("args", [
    ["rm", "--link", "x"], ["exec", "--privileged", "x", "true"],
    ["exec", "--detach-keys", "ctrl-a", "x", "true"],
])
def test_flags_that_cannot_take_effect_are_refused(cli, args):
    assert "not supported" in cli.fails(125, *args)


# ---------------------------------------------------------------------------- help


def test_help_needs_no_root(nobody_bin):
    for args in (["ps", "--help"], ["volume", "create", "-h"], ["run", "--help"],
                 ["image", "--help"]):
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            str(nobody_bin / "sangja"), *args], capture_output=True,
                           text=True, timeout=60, cwd="/")
        assert r.returncode == 0 and not r.stderr, (args, r)
        assert re.match(r"Usage:  sangja ", r.stdout)


def test_ps_last(cli):
    first = cli.create("busybox", "true")
    second = cli.create("busybox", "true")
    assert cli.ok("ps", "-q", "--no-trunc", "-n", "1").split() == [second]
    assert sorted(cli.ok("ps", "-q", "--no-trunc", "-n", "0").split()) == sorted(
        [first, second])  # Docker: 0 is no limit, but every state
    assert cli.ok("ps", "-q", "-n", "-1") == ""  # the default: running ones only
    assert "not an integer" in cli.fails(125, "ps", "-n", "x")
