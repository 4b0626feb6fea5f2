"""sangja-monitor (native/monitor/sangja-monitor.c) driven the way the engine drives it.

HARNESS does what `sangja start` does before the monitor takes over: a new session, child
subreaper, stdio pipes (or a pty), a listening SOCK_SEQPACKET socket, the container's init
forked as its child (here `/bin/sh -c SCRIPT`), then `execve` of the monitor with those fds.
No runtime and no namespaces are involved: root is not needed for these tests.
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sangja.engine import monitor as mon_mod
from sangja.engine.monitor import EXIT, STDERR, STDOUT, AttachClient

HARNESS = r"""
import json, os, socket, sys
from sangja.linux.process import set_subreaper

cfg = json.loads(sys.argv[1])
set_subreaper()
lst = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
lst.bind(cfg["attach"])
lst.listen(16)
if cfg["pty"]:
    master, slave = os.openpty()
    child = (slave, slave, slave)
else:
    if cfg["stdin"]:
        in_r, in_w = os.pipe()
    else:
        in_r, in_w = os.open(os.devnull, os.O_RDONLY), None
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    child = (in_r, out_w, err_w)
pid = os.fork()
if pid == 0:
    try:
        if cfg["pty"]:
            import fcntl, termios
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for i, fd in enumerate(child):
            os.dup2(fd, i)
        os.closerange(3, 65536)
        os.execv("/bin/sh", ["sh", "-c", cfg["script"]])
    finally:
        os._exit(127)
for fd in set(child):
    os.close(fd)
with open(cfg["pidfile"], "w") as f:
    f.write(str(pid))
args = [cfg["monitor"], "--cid", "c0ffee", "--pid", str(pid), "--exit-dir", cfg["dir"],
        "--attach-fd", str(lst.fileno()), "--sync-fd", str(cfg["sync_fd"])]
keep = [lst.fileno()]
if cfg["pty"]:
    args += ["--pty-fd", str(master)]
    keep.append(master)
else:
    args += ["--stdout-fd", str(out_r), "--stderr-fd", str(err_r)]
    keep += [out_r, err_r]
    if in_w is not None:
        args += ["--stdin-fd", str(in_w)]
        keep.append(in_w)
for fd in keep:
    os.set_inheritable(fd, True)
os.execv(cfg["monitor"], args + cfg["extra"] + ["--"] + cfg["exit_cmd"])
"""

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def _parse_time(t: str) -> datetime:
    assert TIME_RE.match(t), t
    return datetime.fromisoformat(t[:26] + "+00:00")


def _proc_stat(pid: int) -> list[str] | None:
    """Fields after the command name: [state, ppid, pgrp, session, ...]."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(b")") + 2 :].decode().split()


def _live_in_sessions(sids: set[int]) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _proc_stat(int(name))
            if st and int(st[3]) in sids and st[0] not in "ZX":
                out.append(int(name))
    return out


def _wait_for(pred, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Monitor:
    """One container under a real sangja-monitor."""

    def __init__(self, tmp_path, script: str, *, stdin=False, pty=False, log=True, extra=()):
        self.dir = tmp_path / "run"
        self.dir.mkdir()
        self.attach = str(self.dir / "attach")
        self.log = tmp_path / "ctr.log"
        self.ran = tmp_path / "exit-command-ran"
        self.fds_file = tmp_path / "exit-command-fds"
        self.err = tmp_path / "monitor.err"
        extra = list(extra) + (["--log-path", str(self.log)] if log else [])
        sync_r, sync_w = os.pipe()
        cfg = {
            "monitor": mon_mod.monitor_path(),
            "dir": str(self.dir),
            "attach": self.attach,
            "pidfile": str(tmp_path / "init.pid"),
            "sync_fd": sync_w,
            "script": script,
            "stdin": stdin,
            "pty": pty,
            "extra": extra,
            "exit_cmd": [
                "/bin/sh", "-c",
                f'echo ran > "{self.ran}"; exec ls /proc/self/fd > "{self.fds_file}"',
            ],
        }
        with open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", HARNESS, json.dumps(cfg)],
                pass_fds=(sync_w,), start_new_session=True,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            )
        os.close(sync_w)
        try:
            ready, _, _ = select.select([sync_r], [], [], 10)
            line = os.read(sync_r, 64) if ready else b""
        finally:
            os.close(sync_r)
        self.pid = self.proc.pid  # the harness became the monitor: same pid
        assert line == b"ok %d\n" % self.pid, (line, self.err.read_text())
        self.init_pid = int((tmp_path / "init.pid").read_text())

    def connect(self) -> AttachClient:
        c = AttachClient(self.attach)
        c.sock.settimeout(10)
        return c

    def wait(self, timeout: float = 10) -> int:
        return self.proc.wait(timeout)

    def exit_info(self) -> dict:
        return json.loads((self.dir / "exit").read_text())

    def entries(self, path=None) -> list[dict]:
        lines = (path or self.log).read_bytes().decode("utf-8").splitlines()
        return [json.loads(line) for line in lines]

    def kill(self) -> None:
        sids = {self.pid, self.init_pid}
        for _ in range(3):
            for pid in _live_in_sessions(sids) + [self.init_pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        _wait_for(lambda: not _live_in_sessions(sids), 5, "the test's processes to go")


@pytest.fixture
def start(tmp_path):
    try:
        mon_mod.monitor_path()
    except mon_mod.MonitorMissing as e:
        pytest.skip(str(e))
    made: list[Monitor] = []
    n = [0]

    def _start(script: str, **kw) -> Monitor:
        n[0] += 1
        sub = tmp_path / f"m{n[0]}"
        sub.mkdir()
        m = Monitor(sub, script, **kw)
        made.append(m)
        return m

    yield _start
    for m in made:
        leftovers = _live_in_sessions({m.pid, m.init_pid})
        m.kill()
        assert not leftovers, f"processes left behind: {leftovers}"


def _collect(client: AttachClient) -> tuple[bytes, bytes, int | None, bool]:
    """Read until the monitor hangs up: (stdout, stderr, exit code, hung up after exit)."""
    out, err, code = io.BytesIO(), io.BytesIO(), None
    while True:
        msg = client.recv()
        if msg is None:
            return out.getvalue(), err.getvalue(), code, code is not None
        kind, payload = msg
        if kind == STDOUT:
            out.write(payload)
        elif kind == STDERR:
            err.write(payload)
        elif kind == EXIT:
            code = int(payload)


# ---------------------------------------------------------------- log


def test_log_lines_streams_and_times(start):
    before = datetime.now(UTC)
    m = start("echo hello; echo oops >&2; printf 'a\\nb\\n'; printf partial")
    assert m.wait() == 0
    entries = m.entries()
    by_stream = {
        s: [e["log"] for e in entries if e["stream"] == s] for s in ("stdout", "stderr")
    }
    assert by_stream == {"stdout": ["hello\n", "a\n", "b\n", "partial"], "stderr": ["oops\n"]}
    for e in entries:
        assert list(e) == ["log", "stream", "time"]
        t = _parse_time(e["time"])
        assert before.replace(microsecond=0) <= t <= datetime.now(UTC)
    stdout_times = [e["time"] for e in entries if e["stream"] == "stdout"]
    assert stdout_times == sorted(stdout_times)


def test_long_line_split_at_16k(start):
    m = start(
        "head -c 40000 /dev/zero | tr '\\0' a; echo;"
        # a 2-byte character across the 16 KiB boundary is not torn in two
        "head -c 16383 /dev/zero | tr '\\0' b; printf '\\303\\251tail\\n'"
    )
    assert m.wait() == 0
    logs = [e["log"] for e in m.entries()]
    assert logs == ["a" * 16384, "a" * 16384, "a" * 7232 + "\n", "b" * 16383, "étail\n"]


def test_binary_output_is_escaped_valid_json(start):
    m = start(
        "printf '\\377\\376\\000\\001\\037 \\303\\251 \\033[0m\"\\\\ \\342\\202A "
        "\\342\\200\\250 \\355\\240\\200 \\360\\237\\230\\200\\n'"
    )
    assert m.wait() == 0
    raw = m.log.read_bytes()
    raw.decode("utf-8")  # strictly valid UTF-8
    assert b"\\u0000\\u0001\\u001f" in raw and b"\\u001b[0m" in raw and b"\\u2028" in raw
    assert b"\\t" not in raw and b"\\ufffd" in raw
    [entry] = m.entries()
    # Go's rule: every byte that does not start a valid sequence is one U+FFFD, so a
    # truncated 3-byte sequence (e2 82) gives two and a surrogate (ed a0 80) three.
    assert entry["log"] == (
        "\ufffd\ufffd\x00\x01\x1f é \x1b[0m\"\\ \ufffd\ufffdA \u2028 "
        "\ufffd\ufffd\ufffd \U0001f600\n"
    )


@pytest.mark.parametrize("max_file", [3, 1])
def test_rotation(start, max_file):
    m = start(
        "i=0; while [ $i -lt 300 ]; do echo \"line-$i-$(printf '%060d' 0)\"; i=$((i+1)); done",
        extra=["--log-max-size", "4096", "--log-max-file", str(max_file)],
    )
    assert m.wait() == 0
    names = sorted(p.name for p in m.log.parent.iterdir() if p.name.startswith("ctr.log"))
    expected = ["ctr.log", "ctr.log.1", "ctr.log.2"] if max_file == 3 else ["ctr.log"]
    assert names == expected
    numbers = []
    for name in reversed(expected):  # oldest first
        path = m.log.parent / name
        assert 0 < path.stat().st_size <= 4096
        numbers += [int(e["log"].split("-")[1]) for e in m.entries(path)]
    assert numbers[-1] == 299
    assert numbers == list(range(numbers[0], 300))  # in order, nothing lost in between
    if max_file == 3:
        assert len(numbers) > 50


# ---------------------------------------------------------------- exit


def test_exit_code_exit_file_and_exit_command(start):
    m = start("echo bye; exit 3")
    assert m.wait() == 0  # by now the monitor has become the exit command
    info = m.exit_info()
    assert list(info) == ["exit_code", "finished_at"] and info["exit_code"] == 3
    assert abs((datetime.now(UTC) - _parse_time(info["finished_at"])).total_seconds()) < 30
    assert sorted(os.listdir(m.dir)) == ["attach", "exit"]  # no exit.tmp left over
    assert m.ran.read_text() == "ran\n"
    # the exit command inherits nothing but stdio (3 is ls's own /proc/self/fd)
    assert sorted(m.fds_file.read_text().split()) == ["0", "1", "2", "3"]


def test_exit_code_of_a_signal(start):
    m = start("kill -9 $$")
    assert m.wait() == 0
    assert m.exit_info()["exit_code"] == 137
    assert m.ran.exists()


def test_exit_command_skipped_when_cleaned_exists(start, tmp_path):
    run_dir = tmp_path / "m1" / "run"  # where start() puts the first monitor's exit dir
    m = start(f'touch "{run_dir}/cleaned"; exit 1')
    assert m.wait() == 0
    assert m.exit_info()["exit_code"] == 1
    assert not m.ran.exists()


def test_drain_stops_after_2s_when_an_orphan_holds_the_output(start, tmp_path):
    bg = tmp_path / "bg.pid"
    m = start(f"echo before; sleep 5 & echo $! > {bg}; exit 2")
    t0 = time.monotonic()
    try:
        _wait_for(lambda: (m.dir / "exit").exists(), 5, "the exit file")
        assert 1.8 < time.monotonic() - t0 < 4
        assert m.exit_info()["exit_code"] == 2
        assert m.wait() == 0
        assert [e["log"] for e in m.entries()] == ["before\n"]
    finally:
        pid = int(bg.read_text())
        os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: (_proc_stat(pid) or ["Z"])[0] in "ZX", 5, "sleep to die")


def test_bad_arguments(tmp_path):
    try:
        path = mon_mod.monitor_path()
    except mon_mod.MonitorMissing as e:
        pytest.skip(str(e))
    r = subprocess.run([path, "--cid", "x"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage:" in r.stderr
    r = subprocess.run(
        [path, "--cid", "x", "--pid", "1", "--exit-dir", str(tmp_path), "--sync-fd", "1"],
        capture_output=True, text=True,
    )
    assert r.returncode == 1 and "not a child of the monitor" in r.stderr
    assert r.stdout == ""  # no "ok": the caller sees the failure on the sync fd


# ---------------------------------------------------------------- attach


def test_attach_output_stdin_and_exit_code(start):
    m = start("read x; echo out-$x; echo err-$x >&2; exit 5", stdin=True)
    with m.connect() as c:
        c.send_stdin(b"hi\n")
        out, err, code, hung_up = _collect(c)
    assert (out, err, code, hung_up) == (b"out-hi\n", b"err-hi\n", 5, True)
    assert m.wait() == 0 and m.exit_info()["exit_code"] == 5


def test_cat_echoes_stdin_and_close_stdin_ends_it(start):
    m = start("cat", stdin=True)
    with m.connect() as c:
        c.send_stdin(b"abc\n")
        assert c.recv() == (STDOUT, b"abc\n")
        c.send_stdin(b"def")
        assert c.recv() == (STDOUT, b"def")
        c.close_stdin()
        assert c.recv() == (EXIT, b"0")
        assert c.recv() is None
    assert m.wait() == 0
    assert [e["log"] for e in m.entries()] == ["abc\n", "def"]


def test_relay(start, tmp_path):
    data = os.urandom(3 * 1024 * 1024) + b"end"
    src = tmp_path / "stdin.bin"
    src.write_bytes(data)
    m = start("cat; echo done >&2; exit 4", stdin=True, log=False)
    out, err = io.BytesIO(), io.BytesIO()
    with m.connect() as c, open(src, "rb") as f:
        c.claim_cleanup()  # lossless (back-pressure) path, and stdin from a regular file
        code = c.relay(f.fileno(), out, err, tty=False)
    assert code == 4
    assert out.getvalue() == data and err.getvalue() == b"done\n"
    assert m.wait() == 0


def test_stdin_backpressure_loses_nothing(start, tmp_path):
    # The container reads its stdin late: the monitor's buffer fills, then the client's
    # sends wait, and every byte still arrives.
    src = tmp_path / "stdin.bin"
    src.write_bytes(b"x" * (8 * 1024 * 1024))
    m = start("sleep 0.5; wc -c; exec 0<&-; sleep 0.1", stdin=True, log=False)
    out = io.BytesIO()
    with m.connect() as c, open(src, "rb") as f:
        code = c.relay(f.fileno(), out, io.BytesIO(), tty=False)
    assert code == 0 and out.getvalue().strip() == b"8388608"
    assert m.wait() == 0


def test_stdin_closed_by_the_container(start):
    m = start("read x; exec 0<&-; echo closed; sleep 0.3; echo alive", stdin=True)
    with m.connect() as c:
        c.send_stdin(b"\n")
        assert c.recv() == (STDOUT, b"closed\n")
        c.send_stdin(b"nobody reads this\n" * 1000)  # EPIPE in the monitor, not SIGPIPE
        c.send_stdin(b"more")
        out, _, code, _ = _collect(c)
    assert out == b"alive\n" and code == 0
    assert m.wait() == 0


def test_owner_delays_exit_command(start):
    m = start("cat >/dev/null", stdin=True)
    owner, other = m.connect(), m.connect()
    try:
        owner.claim_cleanup()
        owner.close_stdin()
        assert owner.recv() == (EXIT, b"0")
        assert other.recv() == (EXIT, b"0")
        assert other.recv() is None  # non-owners are closed after the exit code
        assert m.exit_info()["exit_code"] == 0  # written before the code is sent
        time.sleep(0.3)
        assert m.proc.poll() is None and not m.ran.exists()
    finally:
        other.close()
        owner.close()
    assert m.wait() == 0
    assert m.ran.read_text() == "ran\n"


def test_max_16_clients(start):
    m = start("read x", stdin=True)
    clients = [m.connect() for _ in range(16)]
    try:
        for c in clients:  # all accepted: a message round trip through each works
            c.resize(1, 1)
        extra = m.connect()
        assert extra.recv() is None  # the 17th is hung up on at once
        extra.close()
        clients[0].send_stdin(b"\n")
        for c in clients:
            assert _collect(c)[2:] == (0, True)
    finally:
        for c in clients:
            c.close()
    assert m.wait() == 0


def test_slow_client_does_not_block_the_container(start):
    m = start("read x; head -c 50000000 /dev/zero; exit 7", stdin=True, log=False)
    c = m.connect()
    try:
        c.send_stdin(b"go\n")
        t0 = time.monotonic()
        _wait_for(lambda: (m.dir / "exit").exists(), 15, "the container to finish")
        assert m.exit_info()["exit_code"] == 7
        assert m.wait(10) == 0  # the non-reading client is dropped after its grace time
        assert time.monotonic() - t0 < 12
        got = 0
        while (msg := c.recv()) is not None:
            got += len(msg[1])
        assert 0 < got < 50_000_000  # it got what fitted, the rest was dropped for it
    finally:
        c.close()


# ---------------------------------------------------------------- processes


def test_orphans_are_reaped(start, tmp_path):
    orphan_file = tmp_path / "orphan.pid"
    m = start(
        f"sh -c 'sleep 0.3 </dev/null >/dev/null 2>&1 & echo $! > {orphan_file}'; read x",
        stdin=True,
    )
    orphan = int(_wait_for(lambda: orphan_file.exists() and orphan_file.read_text(), 5))
    # reparented to the monitor (the subreaper), not to init
    _wait_for(lambda: (_proc_stat(orphan) or ["", "0"])[1] == str(m.pid), 2, "reparenting")
    _wait_for(lambda: _proc_stat(orphan) is None, 5, "the orphan to be reaped")

    def zombie_children():
        return [
            p for p in os.listdir("/proc")
            if p.isdigit() and (st := _proc_stat(int(p))) and st[1] == str(m.pid)
            and st[0] == "Z"
        ]

    assert zombie_children() == []
    with m.connect() as c:
        c.send_stdin(b"\n")
        assert _collect(c)[2] == 0
    assert m.wait() == 0


def test_monitor_ignores_sighup_and_sigpipe(start):
    m = start("read x", stdin=True)
    os.kill(m.pid, signal.SIGHUP)
    os.kill(m.pid, signal.SIGPIPE)
    with m.connect() as c:
        c.send_stdin(b"\n")
        assert _collect(c)[2] == 0
    assert m.wait() == 0


# ---------------------------------------------------------------- pty


def test_pty_resize_and_output(start):
    m = start("read x; stty size; echo got-$x", pty=True)
    with m.connect() as c:
        c.resize(33, 101)
        c.send_stdin(b"go\n")
        out, err, code, _ = _collect(c)
    assert code == 0 and err == b""
    assert b"33 101\r\n" in out and b"got-go\r\n" in out
    assert m.wait() == 0
    logs = m.entries()
    assert {e["stream"] for e in logs} == {"stdout"}
    assert "33 101\r\n" in [e["log"] for e in logs]


def test_pty_close_stdin_sends_eof(start):
    m = start("cat; echo cat-done", pty=True)
    with m.connect() as c:
        c.send_stdin(b"half a line")  # EOF needs two ^D after a partial line
        c.close_stdin()
        out, _, code, _ = _collect(c)
    assert code == 0 and out.endswith(b"cat-done\r\n") and b"half a line" in out
    assert m.wait() == 0


def test_relay_with_a_terminal(start):
    """relay(tty=True): raw mode on the user's terminal (restored after), its size sent at
    once and again on SIGWINCH."""
    import fcntl
    import struct
    import termios
    import threading

    def set_size(fd, rows, cols):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    user_master, user_tty = os.openpty()  # the user's terminal; relay reads user_tty
    set_size(user_tty, 40, 120)
    saved = termios.tcgetattr(user_tty)
    seen = threading.Condition()
    out = bytearray()

    class Out:
        def write(self, b):
            with seen:
                out.extend(b)
                seen.notify_all()

        def flush(self):
            pass

    def user():
        # type only once relay() runs (raw mode on): its first packet is the size
        _wait_for(lambda: not termios.tcgetattr(user_tty)[3] & termios.ICANON, 10, "raw mode")
        os.write(user_master, b"a\n")
        with seen:
            seen.wait_for(lambda: b"40 120" in out, 10)
        set_size(user_tty, 50, 130)
        os.kill(os.getpid(), signal.SIGWINCH)
        time.sleep(0.2)
        os.write(user_master, b"b\n")

    m = start("read x; stty size; read y; stty size", pty=True)
    t = threading.Thread(target=user)
    try:
        with m.connect() as c:
            t.start()
            code = c.relay(user_tty, Out(), Out(), tty=True)
        t.join(10)
        assert code == 0
        assert b"40 120\r\n" in out and b"50 130\r\n" in out
        assert termios.tcgetattr(user_tty) == saved
    finally:
        t.join(10)
        os.close(user_master)
        os.close(user_tty)
    assert m.wait() == 0


# ---------------------------------------------------------------- ptrace stops are not exits

# A container init that asks its parent, the monitor, to trace it (PTRACE_TRACEME) and then
# makes ptrace-stops. Steps (argv after DIR), each noted in DIR/log:
#   usr1  traced, raise SIGUSR1 (a handler counts it)    chld  traced, fork a child, reap it
#   stop  traced, raise SIGSTOP (runs on after SIGCONT)  exec  traced, execve itself with
#   wait  note "ready", wait until DIR/go exists               the remaining steps
#   exit N
TRACEE_C = r"""
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *dir;
static volatile sig_atomic_t usr1;
static void on_usr1(int s) { (void)s; usr1++; }

static void note(const char *w) {
    char p[4096];
    snprintf(p, sizeof p, "%s/log", dir);
    int fd = open(p, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd >= 0) { dprintf(fd, "%s\n", w); close(fd); }
}
static void traceme(void) {
    if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0) { note("traceme-failed"); exit(3); }
}

int main(int argc, char **argv) {
    dir = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "usr1")) {
            traceme();
            signal(SIGUSR1, on_usr1);
            raise(SIGUSR1);
            note(usr1 == 1 ? "usr1-handled" : "usr1-lost");
        } else if (!strcmp(s, "chld")) {
            traceme();
            pid_t c = fork();
            if (c == 0) _exit(0);
            int st;
            note(waitpid(c, &st, 0) == c && WIFEXITED(st) ? "child-reaped" : "child-lost");
        } else if (!strcmp(s, "stop")) {
            traceme();
            note("stopping");
            raise(SIGSTOP);
            note("continued");
        } else if (!strcmp(s, "exec")) {
            traceme();
            note("exec");
            argv[i] = argv[1];
            execv("/proc/self/exe", argv + i - 1);
            note("exec-failed");
            return 4;
        } else if (!strcmp(s, "wait")) {
            char p[4096];
            snprintf(p, sizeof p, "%s/go", dir);
            note("ready");
            while (access(p, F_OK) != 0) usleep(10000);
        } else if (!strcmp(s, "exit")) {
            return atoi(argv[i + 1]);
        }
    }
    return 0;
}
"""


@pytest.fixture(scope="session")
def tracee(tmp_path_factory) -> Path:
    from conftest import static_binary

    return static_binary(tmp_path_factory, "tracee", TRACEE_C)


def _tracer_and_state(pid: int) -> tuple[str, str]:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return fields["TracerPid"].strip(), fields["State"].strip()


def _notes(d: Path) -> list[str]:
    return (d / "log").read_text().split() if (d / "log").exists() else []


def test_ptrace_stops_of_the_init_are_not_exits(start, tracee, tmp_path):
    """PTRACE_TRACEME makes the monitor the init's tracer: its stops (a signal, a SIGCHLD,
    the trap after execve) used to be taken for the init's exit (code 10, 17, 5) and the
    init left unsupervised. The monitor detaches, hands the signal on, and reports only the
    real exit. Here the init is no pid-namespace init, so a SIGTRAP handed on after the
    execve would kill it (133): the monitor must not hand that one on."""
    d = tmp_path / "t"
    d.mkdir()
    m = start(f"exec {tracee} {d} usr1 chld exec wait exit 42")
    _wait_for(lambda: "ready" in _notes(d), 10, f"the tracee to get ready: {_notes(d)}")
    assert _notes(d) == ["usr1-handled", "child-reaped", "exec", "ready"]
    assert not (m.dir / "exit").exists()
    assert _proc_stat(m.init_pid)[1] == str(m.pid)  # still the monitor's child...
    assert _tracer_and_state(m.init_pid)[0] == "0"  # ...and nobody's tracee
    (d / "go").touch()
    assert m.wait() == 0
    assert m.exit_info()["exit_code"] == 42


def test_ptrace_stop_by_sigstop_keeps_stop_semantics(start, tracee, tmp_path):
    """A traced init that stops itself stays stopped (not exited, not running) until a
    SIGCONT, exactly as without the trace."""
    d = tmp_path / "t"
    d.mkdir()
    m = start(f"exec {tracee} {d} stop exit 7")
    _wait_for(lambda: _tracer_and_state(m.init_pid)[1].startswith("T ("), 10,
              "the init to stop")
    assert _tracer_and_state(m.init_pid) == ("0", "T (stopped)")
    time.sleep(0.2)  # the monitor saw the stop meanwhile
    assert not (m.dir / "exit").exists()
    assert _notes(d) == ["stopping"]
    os.kill(m.init_pid, signal.SIGCONT)
    assert m.wait() == 0
    assert _notes(d) == ["stopping", "continued"]
    assert m.exit_info()["exit_code"] == 7


def test_container_init_calling_ptrace_traceme(cli, tracee, tmp_path):
    """The same attack on a real container: `ps` shows it running while it runs, the
    monitor stays its parent and is not its tracer, `wait` and `inspect` give its code."""
    d = tmp_path / "pt"
    d.mkdir()
    shutil.copy2(tracee, d / "tracee")
    cid = cli.detach("-v", f"{d}:/pt", "busybox", "/pt/tracee", "/pt", "usr1", "chld",
                     "exec", "wait", "exit", "42")
    _wait_for(lambda: "ready" in _notes(d), 10, f"the container to get ready: {_notes(d)}")
    assert _notes(d) == ["usr1-handled", "child-reaped", "exec", "ready"]
    (row,) = [r for r in cli.ps() if r["ID"] == cid]
    assert row["State"] == "running", row
    pid = cli.inspect(cid)["State"]["Pid"]
    monitor = int((cli.runroot / "engine" / cid / "monitor.pid").read_text())
    assert _proc_stat(pid)[1] == str(monitor)
    assert _tracer_and_state(pid)[0] == "0"
    (d / "go").touch()
    assert cli.ok("wait", cid).strip() == "42"
    state = cli.inspect(cid)["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 42)


# ---------------------------------------------------------------- the Python side


def test_monitor_path(monkeypatch, tmp_path):
    missing = tmp_path / "nope"
    monkeypatch.setenv("SANGJA_MONITOR", str(missing))
    with pytest.raises(mon_mod.MonitorMissing, match="sangja-monitor not found at .*nope"):
        mon_mod.monitor_path()
    monkeypatch.delenv("SANGJA_MONITOR")
    assert mon_mod.monitor_path().endswith("libexec/sangja/sangja-monitor")
