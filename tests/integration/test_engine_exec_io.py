"""`sangja exec` never hands the caller's terminal or files to the container (issue 9,
items 3 and 4), with sangja-runtime and with runc behind the engine.

The attacks run from the outside: the test's own pty and files are the caller's stdio; the
container looks at what it got (/proc/$$/fd), a process left behind by exec tries to read
the keys typed after exec returned and to write to the caller's output, and the test
observes what reached its pty and files. `exec -u USER` is checked with `id` against the
container's own /etc/passwd and /etc/group."""

from __future__ import annotations

import fcntl
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import termios
import time

import pytest
from engine_cli import wait_until

RUNTIMES = ["sangja-runtime", "runc"]

# The shell's own fds 0-2 as the kernel names them (a pipe, /dev/null, a pty, a file).
SHOW_FDS = 'for f in 0 1 2; do readlink /proc/$$/fd/$f; done'


@pytest.fixture(params=RUNTIMES)
def box(request, cli):
    """A running busybox container on each runtime."""
    if request.param == "runc" and not shutil.which("runc"):
        pytest.skip("runc is not installed")
    return cli.detach("--runtime", request.param, "busybox", "sleep", "1000")


def _exec(cli, *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
          stderr=subprocess.PIPE, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(cli.argv("exec", *args), stdin=stdin, stdout=stdout, stderr=stderr,
                          timeout=timeout)


def _fds(text: str) -> list[str]:
    return text.split()


def _is_pipe(name: str) -> bool:
    return re.fullmatch(r"pipe:\[\d+\]", name) is not None


# ---------------------------------------------------------------------------- what it gets


def test_exec_gets_pipes_not_the_callers_terminal_or_file(cli, box, tmp_path):
    master, slave = os.openpty()
    out = tmp_path / "out"
    try:
        with open(out, "wb") as f:
            r = _exec(cli, box, "sh", "-c", SHOW_FDS, stdin=slave, stdout=f)
        assert r.returncode == 0, r.stderr
        fd0, fd1, fd2 = _fds(out.read_text())
        assert fd0 == "/dev/null"  # no -i: Docker's /dev/null
        assert _is_pipe(fd1) and _is_pipe(fd2), (fd1, fd2)
        with open(out, "wb") as f:
            r = _exec(cli, "-i", box, "sh", "-c", SHOW_FDS, stdin=slave, stdout=f)
        assert r.returncode == 0, r.stderr
        assert all(_is_pipe(x) for x in _fds(out.read_text())), out.read_text()
    finally:
        os.close(master)
        os.close(slave)


def test_exec_relays_stdin_stdout_stderr_and_the_exit_code(cli, box):
    r = subprocess.run(cli.argv("exec", "-i", box, "sh", "-c", "cat; echo to-err >&2; exit 7"),
                       input=b"line one\nline two\n", capture_output=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (7, b"line one\nline two\n", b"to-err\n")
    big = os.urandom(1 << 20)  # more than a pipe holds, both ways
    r = subprocess.run(cli.argv("exec", "-i", box, "cat"), input=big, capture_output=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout == big
    r = _exec(cli, box, "sh", "-c", "kill -TERM $$")
    assert r.returncode == 143


def test_exec_env_and_workdir(cli):
    cid = cli.detach("-e", "GREETING=from-run", "-e", "KEEP=kept", "busybox", "sleep", "1000")
    out = cli.ok("exec", "-e", "GREETING=from-exec", "-w", "/tmp", cid, "sh", "-c",
                 "env | grep -c ^GREETING=; echo $GREETING $KEEP; pwd")
    assert out.split("\n")[:3] == ["1", "from-exec kept", "/tmp"]


@pytest.mark.parametrize("what,why", [("no-such-command", "executable file not found in $PATH"),
                                      ("/etc", "permission denied")])
def test_exec_cannot_run(cli, box, what, why):
    """Docker's exit code (126 whatever the reason: run says 127 for a missing one) and
    words."""
    line = cli.fails(126, "exec", box, what)
    assert line == ("sangja: OCI runtime exec failed: exec failed: unable to start container "
                    f'process: exec: "{what}": {why}: unknown')


def test_exec_t_sets_term(cli, box):
    assert cli.ok("exec", "-t", box, "sh", "-c", "echo $TERM").strip() == "xterm"
    assert cli.ok("exec", "-t", "-e", "TERM=vt100", box, "sh", "-c",
                  "echo $TERM").strip() == "vt100"
    assert cli.ok("exec", box, "sh", "-c", "echo ${TERM-unset}").strip() == "unset"


def test_exec_of_a_stopped_container(cli):
    cid = cli.create("busybox", "sleep", "1000")
    assert cli.fails(1, "exec", cid, "true") == f"sangja: Container {cid} is not running"


# ---------------------------------------------------------------------------- left behind


def _leave_behind(script: str) -> str:
    """A command that starts `script` in the background with its stdin, immune to the
    hang-up and broken pipes that its parent's exit brings, and exits at once."""
    return f"trap '' PIPE HUP; sh -c '{script}' <&0 & echo started"


def test_process_left_behind_cannot_read_later_keys_or_write_the_callers_file(cli, box,
                                                                               tmp_path):
    """A background process waits until exec returned, then reads stdin and writes to
    stdout and stderr. The keys typed into the caller's terminal afterwards stay there,
    and nothing reaches the caller's files."""
    master, slave = os.openpty()
    out, err = tmp_path / "out", tmp_path / "err"
    lurker = ("while [ ! -e /tmp/go ]; do sleep 0.05; done; "
              "cat > /tmp/stolen; echo LATE; echo LATE >&2; touch /tmp/done")
    try:
        with open(out, "wb") as fo, open(err, "wb") as fe:
            r = _exec(cli, "-i", box, "sh", "-c", _leave_behind(lurker), stdin=slave, stdout=fo,
                      stderr=fe)
        assert r.returncode == 0, err.read_text()
        os.write(master, b"secret keys\n")  # typed after exec returned
        cli.ok("exec", box, "touch", "/tmp/go")
        wait_until(lambda: cli("exec", box, "test", "-e", "/tmp/done").returncode == 0, 20,
                   message="the lurker to finish")
        assert cli.ok("exec", box, "cat", "/tmp/stolen") == ""
        assert out.read_text() == "started\n" and err.read_text() == ""
        # the keys are still in the caller's terminal, unread by anyone
        assert select.select([slave], [], [], 5)[0]
        assert os.read(slave, 100) == b"secret keys\n"
    finally:
        os.close(master)
        os.close(slave)


def test_process_left_behind_by_a_tty_exec(cli, box, tmp_path):
    master, slave = os.openpty()
    out = tmp_path / "out"
    lurker = ("while [ ! -e /tmp/go ]; do sleep 0.05; done; "
              "cat > /tmp/stolen; echo LATE; touch /tmp/done")
    try:
        with open(out, "wb") as fo:
            r = _exec(cli, "-it", box, "sh", "-c", _leave_behind(lurker), stdin=slave, stdout=fo)
        assert r.returncode == 0, r.stderr
        os.write(master, b"secret keys\n")
        cli.ok("exec", box, "touch", "/tmp/go")
        wait_until(lambda: cli("exec", box, "test", "-e", "/tmp/done").returncode == 0, 20,
                   message="the lurker to finish")
        assert cli.ok("exec", box, "cat", "/tmp/stolen") == ""
        assert out.read_bytes() == b"started\r\n"
        assert os.read(slave, 100) == b"secret keys\n"
    finally:
        os.close(master)
        os.close(slave)


# ---------------------------------------------------------------------------- -t


def _winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class _Terminal:
    """`sangja exec -it ...` on a pty of the test's (no controlling terminal needed)."""

    def __init__(self, argv: list[str]):
        self.master, self.slave = os.openpty()
        _winsize(self.slave, 20, 60)
        self.saved = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen(argv, stdin=self.slave, stdout=self.slave,
                                     stderr=self.slave, start_new_session=True)
        self.buf = self.before = b""

    def expect(self, pattern: str, timeout: float = 20) -> str:
        rx = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        while not (m := rx.search(self.buf)):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                raise AssertionError(f"no {pattern!r} in {self.buf!r}")
            self.buf += os.read(self.master, 65536)
        self.before, self.buf = self.buf[:m.start()], self.buf[m.end():]
        return m.group(0).decode()

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


def test_exec_tty_is_a_fresh_pty_of_the_container(cli, box):
    t = _Terminal(cli.argv("exec", "-it", box, "sh"))
    try:
        t.expect(r"# ")
        assert not termios.tcgetattr(t.slave)[3] & termios.ICANON  # raw while relaying
        t.send("tty; stat -L -c %d /proc/$$/fd/0; stat -c %d /dev/pts; echo $((6*7))\r")
        tty = t.expect(r"/dev/pts/\d+")
        dev_fd0, dev_pts = int(t.expect(r"\d+")), int(t.expect(r"\d+"))
        t.expect(r"42\r\n")
        assert dev_fd0 == dev_pts != os.fstat(t.slave).st_dev, tty  # the container's devpts
        t.send("stty size\r")
        t.expect(r"20 60\r\n")
        _winsize(t.slave, 33, 77)  # no controlling terminal here: deliver SIGWINCH by hand
        t.proc.send_signal(signal.SIGWINCH)
        t.send("stty size\r")
        t.expect(r"33 77\r\n")
        t.send("sleep 1000; echo after-sleep\r")
        t.expect(r"echo after-sleep\r\n")
        wait_until(lambda: cli.ok("exec", box, "ps", "-o", "args").count("sleep 1000") == 2,
                   10, message="the shell's sleep to run")
        t.send("\x03")  # Ctrl-C is a key here: the container's terminal makes it SIGINT
        t.expect(r"# ")
        assert b"after-sleep" not in t.before
        t.send("exit 3\r")
        assert t.proc.wait(30) == 3
        assert termios.tcgetattr(t.slave) == t.saved  # the caller's terminal restored
    finally:
        t.close()


def test_exec_tty_without_stdin_leaves_the_terminal_alone(cli, box):
    """-t without -i (Docker's way): output through a pty, no input, no raw mode."""
    t = _Terminal(cli.argv("exec", "-t", box, "sh", "-c", "tty; stty size"))
    try:
        t.expect(r"/dev/pts/\d+\r+\n")  # \r\r\n: both terminals add a \r
        t.expect(r"20 60\r+\n")
        assert t.proc.wait(30) == 0
        assert termios.tcgetattr(t.slave) == t.saved
    finally:
        t.close()


def test_exec_forwards_signals(cli, box):
    p = cli.popen("exec", box, "sh", "-c",
                  "trap 'echo got-term; exit 5' TERM; echo ready; "
                  "while :; do sleep 0.05; done")
    try:
        assert p.stdout.readline() == b"ready\n"
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 5
        assert p.stdout.read() == b"got-term\n"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ---------------------------------------------------------------------------- -d


def test_exec_detached_gets_dev_null(cli, box, tmp_path):
    master, slave = os.openpty()
    out = tmp_path / "out"
    try:
        with open(out, "wb") as f:
            r = _exec(cli, "-d", "-i", box, "sh", "-c", "echo $$ > /tmp/pid; exec sleep 1000",
                      stdin=slave, stdout=f)
        assert r.returncode == 0, r.stderr
        wait_until(lambda: cli("exec", box, "cat", "/tmp/pid").stdout.strip(), 20)
        fds = cli.ok("exec", box, "sh", "-c", SHOW_FDS.replace("$$", "$(cat /tmp/pid)"))
        assert _fds(fds) == ["/dev/null"] * 3
        assert out.read_bytes() == b""
    finally:
        os.close(master)
        os.close(slave)


def test_exec_detached_with_a_terminal_keeps_running(cli, box):
    cli.ok("exec", "-dt", box, "sh", "-c", "tty > /tmp/tty; echo hi; exec sleep 1000")
    wait_until(lambda: cli("exec", box, "cat", "/tmp/tty").stdout.startswith("/dev/pts/"),
               20, message="the detached shell to write its tty")
    # its terminal did not hang up: the sleep it exec'd into runs on (the init is the other)
    wait_until(lambda: cli.ok("exec", box, "ps", "-o", "args").count("sleep 1000") == 2, 10,
               message="the detached sleep")


# ---------------------------------------------------------------------------- -u


def test_exec_user_gets_the_users_own_groups(cli, box):
    """Docker's result: `groups=65534(nogroup)` for nobody, never root's group."""
    out = cli.ok("exec", "-u", "nobody", box, "id")
    assert out.strip() == "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"
    cli.ok("exec", box, "sh", "-c",
           "echo multi:x:1500:1500::/:/bin/sh >> /etc/passwd; "
           "echo g1:x:2001:multi >> /etc/group; echo g2:x:2002:other,multi >> /etc/group; "
           "echo g3:x:2003:other >> /etc/group")
    assert cli.ok("exec", "-u", "multi", box, "id", "-G").split() == ["1500", "2001", "2002"]
    # a uid without a passwd entry: its primary gid (0) and no other group
    assert cli.ok("exec", "-u", "4242", box, "id", "-G").split() == ["0"]
    assert cli.ok("exec", "-u", "multi:g3", box, "id", "-G").split() == ["2003"]
    # an unknown name: one line, Docker's words
    assert "unable to find user ghost" in cli.fails(125, "exec", "-u", "ghost", box, "id")


def test_exec_user_with_group_add(cli):
    cid = cli.detach("--group-add", "3000", "busybox", "sleep", "1000")
    assert cli.ok("exec", "-u", "nobody", cid, "id", "-G").split() == ["65534", "3000"]


def test_exec_user_with_a_hostile_group_file(cli, box):
    """The container turns its /etc/group into a FIFO: exec -u neither hangs nor reads it."""
    cli.ok("exec", box, "sh", "-c", "rm /etc/group && mkfifo /etc/group")
    line = cli.fails(125, "exec", "-u", "nobody", box, "id", timeout=30)
    assert "/etc/group of the container is not a regular file" in line


def test_exec_and_clean_up_when_sangja_is_called_by_a_relative_path(cli, tmp_path):
    """`./.venv/bin/sangja` from the checkout (as `make demo` runs it): exec runs the
    runtime, and the monitor's clean-up runs sangja, from other directories: both must be
    found by absolute paths (a relative one failed: 'cannot run .venv/bin/sangja-runtime')."""
    from engine_cli import REPO

    rel = os.path.relpath(cli.argv()[0], REPO)
    argv = [rel, *cli.argv()[1:]]
    r = subprocess.run([*argv, "run", "-d", "busybox", "sleep", "1000"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    cli.seen.add(cid)
    r = subprocess.run([*argv, "exec", cid, "echo", "hi"], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    r = subprocess.run([*argv, "run", "--rm", "busybox", "sh", "-c", "exit 3"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    cli.ok("kill", cid)  # the monitor's exit command records the exit by itself
    wait_until(lambda: cli.status(cid) == "exited", timeout=15,
               message="the monitor's clean-up to record the exit")
