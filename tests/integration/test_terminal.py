"""process.terminal with --console-socket: the pty master arrives over SCM_RIGHTS."""

from __future__ import annotations

import errno
import os
import select
import socket
import threading
import time

import pytest

from conftest import new_id, sh

pytestmark = pytest.mark.root


class ConsoleSocket:
    """A listening unix socket that receives one pty master fd."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(20)
        self.master = None
        self.error = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(20)
                _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
                assert len(fds) == 1, fds
                self.master = fds[0]
        except BaseException as e:  # noqa: BLE001 - reported by wait()
            self.error = e

    def wait(self, timeout=20) -> int:
        self.thread.join(timeout)
        if self.error:
            raise self.error
        assert self.master is not None, "no pty master fd received on the console socket"
        return self.master

    def close(self):
        self.sock.close()
        if self.master is not None:
            os.close(self.master)
            self.master = None


def read_until_eof(fd: int, timeout: float = 15.0) -> bytes:
    """Read the pty master until EOF/EIO (all slave ends closed)."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError as e:
            if e.errno == errno.EIO:
                break
            raise
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def console(short_tmp):
    sockets = []

    def factory():
        cs = ConsoleSocket(short_tmp / f"c{len(sockets)}.sock")
        sockets.append(cs)
        return cs

    yield factory
    for cs in sockets:
        cs.close()


def test_terminal_console_socket(runtime, make_bundle, console):
    bundle = make_bundle(
        process={"terminal": True, "consoleSize": {"height": 30, "width": 100}},
        args=sh("tty; stty size; echo hi"),
    )
    cs = console()
    cid = new_id()
    r = runtime.run("create", "--bundle", bundle, "--console-socket", cs.path, cid)
    assert r.returncode == 0, r.stderr
    master = cs.wait()
    assert os.isatty(master)
    runtime.start(cid)
    text = read_until_eof(master).decode(errors="replace").replace("\r", "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[0] in ("/dev/console", "/dev/pts/0"), text
    assert "30 100" in lines, text
    assert "hi" in lines, text
    runtime.wait_status(cid, "stopped")


def test_terminal_stdin_and_exit_status(runtime, make_bundle, console):
    bundle = make_bundle(
        process={"terminal": True},
        args=sh("read line; echo got:$line; exit 4"),
    )
    cs = console()
    cid = new_id()
    runtime.create(bundle, cid, "--console-socket", cs.path)
    master = cs.wait()
    runtime.start(cid)
    os.write(master, b"typed\n")
    text = read_until_eof(master).decode(errors="replace").replace("\r", "")
    assert "got:typed" in text, text
    runtime.wait_status(cid, "stopped")


def test_terminal_is_controlling_tty(runtime, make_bundle, console):
    bundle = make_bundle(
        process={"terminal": True},
        args=sh("cat /proc/self/stat | cut -d' ' -f7; ls -l /proc/self/fd/0 /proc/self/fd/1"),
    )
    cs = console()
    cid = new_id()
    runtime.create(bundle, cid, "--console-socket", cs.path)
    master = cs.wait()
    runtime.start(cid)
    text = read_until_eof(master).decode(errors="replace").replace("\r", "")
    lines = text.splitlines()
    assert int(lines[0]) != 0, f"no controlling tty: {text}"  # tty_nr
    assert text.count("/dev/pts/") >= 2 or text.count("/dev/console") >= 2, text
    runtime.wait_status(cid, "stopped")


def test_terminal_without_console_socket_fails(runtime, make_bundle):
    bundle = make_bundle(process={"terminal": True}, args=["true"])
    cid = new_id()
    r = runtime.run("create", "--bundle", bundle, cid)
    assert r.returncode != 0
    assert r.stderr.strip()
    assert cid not in runtime.ids()
