"""Pseudo-terminals for containers: open one from the container's own devpts, hand the
master to a console socket (SCM_RIGHTS, as runc does), make the slave the controlling tty.
Also the fd passing (SCM_RIGHTS) the runtime uses for idmapped mounts."""

from __future__ import annotations

import fcntl
import os
import struct

TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TIOCGWINSZ = 0x5413
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441


def open_pty() -> tuple[int, int]:
    """(master, slave) from /dev/ptmx of the current root (the container's devpts)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    return master, slave


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_winsize(fd: int) -> tuple[int, int] | None:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, TIOCGWINSZ, b"\0" * 8))
        return rows, cols
    except OSError:
        return None


def make_controlling_tty(slave: int) -> None:
    """Make `slave` this process's controlling terminal and its stdio (after setsid)."""
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def send_fd(sock_fd: int, fd: int, name: str = "/dev/ptmx") -> None:
    import socket

    s = socket.socket(fileno=os.dup(sock_fd))
    try:
        s.sendmsg([name.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])
    finally:
        s.close()


def send_fds(sock_fd: int, fds: list[int]) -> None:
    import socket

    s = socket.socket(fileno=os.dup(sock_fd))
    try:
        socket.send_fds(s, [b"F" * max(1, len(fds))], fds)
    finally:
        s.close()


def recv_fds(sock_fd: int, count: int) -> list[int]:
    import socket

    s = socket.socket(fileno=os.dup(sock_fd))
    try:
        _, fds, _, _ = socket.recv_fds(s, 4096, count)
    finally:
        s.close()
    if len(fds) != count:
        raise OSError(f"expected {count} file descriptors, got {len(fds)}")
    return fds


def recv_fd(sock_fd: int) -> int:
    import socket

    s = socket.socket(fileno=os.dup(sock_fd))
    try:
        _, fds, _, _ = socket.recv_fds(s, 4096, 1)
    finally:
        s.close()
    if not fds:
        raise OSError("no file descriptor received on the console socket")
    return fds[0]


def connect_unix(path: str) -> int:
    """Connect to a console socket; return a non-inheritable fd."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError:
        s.close()
        raise
    return s.detach()
