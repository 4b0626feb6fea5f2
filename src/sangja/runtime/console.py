"""Foreground terminals: when `run` or `exec -t` has no console socket, the runtime takes
the pty master itself and joins it to its own stdin/stdout until the container is done."""

from __future__ import annotations

import errno
import os
import select

from ..linux import signals as signal


class RawMode:
    """Put our stdin terminal in raw mode for the session; restore it after."""

    def __init__(self, fd: int = 0):
        self.fd = fd
        self.saved = None

    def __enter__(self):
        if os.isatty(self.fd):
            import termios
            import tty

            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def proxy(master: int, stdin: int = 0, stdout: int = 1) -> None:
    """Copy stdin -> master and master -> stdout until the pty hangs up."""
    from ..linux.pty import get_winsize, set_winsize

    def resize(*_):
        size = get_winsize(stdin)
        if size:
            set_winsize(master, *size)

    if os.isatty(stdin):
        resize()
        signal.signal(signal.SIGWINCH, resize)
    watch = [master, stdin]
    with RawMode(stdin):
        while True:
            try:
                ready, _, _ = select.select(watch, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError as e:
                    if e.errno == errno.EIO:
                        return
                    raise
                if not data:
                    return
                _write_all(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    watch.remove(stdin)
                    try:
                        _write_all(master, b"\x04")  # EOF for the program reading its tty
                    except OSError:
                        pass
                else:
                    try:
                        _write_all(master, data)
                    except OSError:
                        return


def _write_all(fd: int, data: bytes) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]
