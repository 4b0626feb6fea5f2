"""The per-container monitor (native/monitor/sangja-monitor.c): where its binary is, and the
client side of its attach protocol (docs/engine.md, "The monitor").

Every message is one SOCK_SEQPACKET packet whose first byte is its kind (the constants
below). Used by `run` (foreground, as the clean-up owner), `start -a` and `attach`.
"""

from __future__ import annotations

import os
import socket
import sys

from ..errors import SangjaError

STDIN = 0  # client -> monitor: stdin data; the kind byte alone closes the container's stdin
STDOUT = 1  # monitor -> client: stdout data (all output with a pty)
STDERR = 2  # monitor -> client: stderr data
RESIZE = 3  # client -> monitor: b"ROWS COLS"
EXIT = 4  # monitor -> client: the exit code in ASCII decimal, after the output and exit file
OWNER = 5  # client -> monitor: "I am the clean-up owner": the exit command waits for us

# The monitor reads client packets of up to 64 KiB and sends at most 32 KiB + 1.
_CHUNK = 32 * 1024
_RECV_SIZE = 64 * 1024 + 1
_SUN_PATH_MAX = 107


class MonitorMissing(SangjaError):
    """The sangja-monitor binary is not installed."""


class Detached(Exception):  # noqa: N818 - an outcome, not an error
    """The user typed the detach keys: the relay stopped, the container runs on."""


class EscapeMatcher:
    """Docker's detach keys (ctrl-p,ctrl-q by default) in a stream of typed bytes: `feed`
    returns what goes on to the container and whether the whole sequence was typed. A
    partial match is held back until the next byte tells; if it does not complete the
    sequence, the held bytes go on, as Docker's escape proxy does."""

    def __init__(self, keys: bytes):
        self.keys = keys
        self.pos = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        if not self.pos and self.keys[0] not in data:
            return data, False
        out = bytearray()
        for b in data:
            if b == self.keys[self.pos]:
                self.pos += 1
                if self.pos == len(self.keys):
                    self.pos = 0
                    return bytes(out), True
                continue
            if self.pos:
                out += self.keys[:self.pos]
                self.pos = 0
                if b == self.keys[0]:
                    self.pos = 1
                    continue
            out.append(b)
        return bytes(out), False


def monitor_path() -> str:
    """The monitor binary: $SANGJA_MONITOR, else <prefix>/libexec/sangja/sangja-monitor,
    where <prefix> is the environment of the running interpreter (found from the executable:
    `sys.prefix` is the base installation when `site` is skipped with -S)."""
    prefix = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    path = os.environ.get("SANGJA_MONITOR") or os.path.join(
        prefix, "libexec", "sangja", "sangja-monitor"
    )
    if not os.access(path, os.X_OK):
        raise MonitorMissing(
            f"sangja-monitor not found at {path} (run `make install`, or set SANGJA_MONITOR)"
        )
    return path


class AttachClient:
    """A connection to a monitor's attach socket. Sends block unless `relay` is running."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            if len(os.fsencode(path)) <= _SUN_PATH_MAX:
                self.sock.connect(path)
            else:
                # sun_path holds 107 bytes: reach a longer path through its directory's fd.
                dfd = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY)
                try:
                    self.sock.connect(f"/proc/self/fd/{dfd}/{os.path.basename(path)}")
                finally:
                    os.close(dfd)
        except OSError:
            self.sock.close()
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> AttachClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send_stdin(self, data: bytes) -> None:
        for i in range(0, len(data), _CHUNK):
            self.sock.send(bytes([STDIN]) + data[i : i + _CHUNK])

    def close_stdin(self) -> None:
        self.sock.send(bytes([STDIN]))

    def resize(self, rows: int, cols: int) -> None:
        self.sock.send(bytes([RESIZE]) + f"{rows} {cols}".encode())

    def claim_cleanup(self) -> None:
        self.sock.send(bytes([OWNER]))

    def recv(self) -> tuple[int, bytes] | None:
        """The next message as (kind, payload); None when the monitor hung up."""
        data = self.sock.recv(_RECV_SIZE)
        if not data:
            return None
        return data[0], data[1:]

    def relay(self, stdin_fd: int | None, stdout, stderr, tty: bool,
              detach_keys: bytes = b"") -> int | None:
        """Copy `stdin_fd` to the container and its output to the binary streams `stdout`
        and `stderr` (None: that stream is not shown) until the exit code arrives
        (returned) or the monitor hangs up (None). `detach_keys` typed on stdin (with `tty`)
        end the relay with ``Detached``, the container left running.

        With `tty`, a terminal on `stdin_fd` is put in raw mode for the duration, and its
        size is sent now and on every SIGWINCH. EOF on `stdin_fd` closes the container's
        stdin. A broken `stdout`/`stderr` discards output rather than failing the relay.
        Sends never block (a blocked send could deadlock against a container that waits for
        its output to be read), so the socket is non-blocking while this runs."""
        import selectors  # only the relaying commands pay for it

        # poll, not epoll: stdin may be a regular file (`run -i img cat < file`).
        sel = selectors.PollSelector()
        pending: list[bytes] = []  # packets to send, in order
        restore = []
        stdin_open = stdin_fd is not None
        stdin_registered = False
        escape = EscapeMatcher(detach_keys) if (tty and detach_keys) else None
        timeout = self.sock.gettimeout()
        try:
            self.sock.setblocking(False)
            sel.register(self.sock, selectors.EVENT_READ)
            if tty:
                restore = self._tty_setup(stdin_fd, sel, pending)
            outs = {STDOUT: stdout, STDERR: stderr}
            while True:
                # Stdin is read only when the last chunk went out: bounded memory, and the
                # back-pressure of a container that does not read reaches our stdin.
                if stdin_fd is None:  # no stdin to relay
                    pass
                elif stdin_open and not pending and not stdin_registered:
                    sel.register(stdin_fd, selectors.EVENT_READ, "stdin")
                    stdin_registered = True
                elif stdin_registered and (pending or not stdin_open):
                    sel.unregister(stdin_fd)
                    stdin_registered = False
                want = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
                sel.modify(self.sock, want)
                for key, _ in sel.select():
                    if key.fileobj is self.sock:
                        msg = self._relay_socket(pending, outs)
                        if msg is not _MORE:
                            return msg
                    elif key.data == "winch":
                        os.read(key.fd, 512)
                        size = _term_size(stdin_fd)
                        if size:
                            pending.append(bytes([RESIZE]) + b"%d %d" % size)
                    elif key.data == "stdin" and not pending:
                        try:
                            data = os.read(key.fd, _CHUNK)  # stdin_fd
                        except OSError:  # EIO: the terminal hung up
                            data = b""
                        if escape is not None and data:
                            data, detach = escape.feed(data)
                            if detach:
                                if data:
                                    pending.append(bytes([STDIN]) + data)
                                self._flush(pending)
                                raise Detached()
                            if not data:  # held back: part of the detach keys, maybe
                                continue
                        pending.append(bytes([STDIN]) + data)
                        stdin_open = bool(data)
        finally:
            for undo in reversed(restore):
                undo()
            sel.close()
            if self.sock.fileno() >= 0:
                self.sock.settimeout(timeout)

    def _flush(self, pending: list[bytes]) -> None:
        """Send what is queued before we leave (briefly blocking)."""
        self.sock.settimeout(2)
        try:
            for packet in pending:
                self.sock.send(packet)
        except OSError:
            pass
        pending.clear()

    def _relay_socket(self, pending: list[bytes], outs: dict):
        while pending:
            try:
                self.sock.send(pending[0])
            except BlockingIOError:
                break
            except OSError:  # the monitor is gone; what it sent may still be read below
                pending.clear()
                break
            pending.pop(0)
        for _ in range(64):  # then back to select(): a flood of output must not starve stdin
            try:
                data = self.sock.recv(_RECV_SIZE)
            except BlockingIOError:
                return _MORE
            except ConnectionResetError:
                return None
            if not data:
                return None
            kind, payload = data[0], data[1:]
            if kind == EXIT:
                return int(payload)
            out = outs.get(kind)
            if out is not None:
                try:
                    out.write(payload)
                    out.flush()
                except (BrokenPipeError, ValueError):
                    outs[kind] = None
        return _MORE

    def _tty_setup(self, fd: int | None, sel, pending: list[bytes]) -> list:
        import selectors
        import signal

        restore = []
        if fd is not None and os.isatty(fd):
            import termios
            import tty

            saved = termios.tcgetattr(fd)
            tty.setraw(fd)
            restore.append(lambda: termios.tcsetattr(fd, termios.TCSADRAIN, saved))
        size = _term_size(fd)
        if size:
            pending.append(bytes([RESIZE]) + b"%d %d" % size)
        # SIGWINCH reaches the loop through a wakeup pipe (main thread only; elsewhere the
        # size is sent once).
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            old_handler = signal.signal(signal.SIGWINCH, lambda *_: None)
        except ValueError:
            os.close(r)
            os.close(w)
            return restore
        old_wakeup = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        sel.register(r, selectors.EVENT_READ, "winch")

        def undo():
            signal.set_wakeup_fd(old_wakeup)
            signal.signal(signal.SIGWINCH, old_handler)
            sel.unregister(r)
            os.close(r)
            os.close(w)

        restore.append(undo)
        return restore


_MORE = object()


def _term_size(fd: int | None) -> tuple[int, int] | None:
    for f in (fd, 1, 0):
        if f is not None:
            try:
                cols, rows = os.get_terminal_size(f)
                return rows, cols
            except OSError:
                continue
    return None
