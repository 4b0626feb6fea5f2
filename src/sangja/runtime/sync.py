"""The channel between the runtime process and the container's init while it is set up:
newline-delimited JSON messages over a pair of pipes."""

from __future__ import annotations

import os

from ..errors import SangjaError


class ChildFailed(SangjaError):
    def __init__(self, msg: str, hook: bool = False):
        super().__init__(msg)
        self.hook = hook  # a createContainer hook failed (poststop hooks must still run)


def error_line(msg: str, code: int) -> bytes:
    """Why a prepared container process could not run its program, as one message: what
    sangja-exec writes when the program's exec fails (native/exec/sangja-exec.c)."""
    from ..jsonio import dumps

    return (dumps({"t": "error", "msg": msg[:4000] or "error", "code": code}) + "\n").encode()


def parse_error(data: bytes) -> tuple[str, int]:
    """(message, exit code) of an error_line; any other text is the message itself."""
    text = data.decode(errors="replace").strip()
    if text.startswith("{"):
        from ..jsonio import loads

        try:
            msg = loads(text.splitlines()[0])
            return str(msg.get("msg") or "error"), int(msg.get("code", 1))
        except (ValueError, TypeError, AttributeError):
            pass
    return text, 1


class Channel:
    """One end of a duplex pipe pair. Fds are non-inheritable: an exec closes them."""

    def __init__(self, rfd: int, wfd: int):
        self.rfd = rfd
        self.wfd = wfd
        self._buf = b""

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        return cls(r1, w2), cls(r2, w1)

    def send(self, kind: str, **fields) -> None:
        from ..jsonio import dumps

        fields["t"] = kind
        data = (dumps(fields) + "\n").encode()
        try:
            while data:
                n = os.write(self.wfd, data)
                data = data[n:]
        except BrokenPipeError:
            self._raise_peer_error()
            raise

    def _raise_peer_error(self) -> None:
        """The other side is gone: if it said why (the init reports its error and exits,
        possibly before reading what we send), raise that rather than "Broken pipe"."""
        try:
            while (msg := self.recv()) is not None:
                if msg.get("t") == "error":
                    raise ChildFailed(msg.get("msg", "container init failed"),
                                      msg.get("hook", False))
        except OSError:
            pass

    def recv(self) -> dict | None:
        """Next message, or None at EOF (the other side exited or exec'd)."""
        while b"\n" not in self._buf:
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        from ..jsonio import loads

        return loads(line)

    def expect(self, kind: str) -> dict:
        msg = self.recv()
        if msg is None:
            raise ChildFailed("container init exited during setup")
        if msg["t"] == "error":
            raise ChildFailed(msg.get("msg", "container init failed"), msg.get("hook", False))
        if msg["t"] != kind:
            raise ChildFailed(f"container init sent {msg['t']!r}, expected {kind!r}")
        return msg

    def expect_any(self, kinds: tuple[str, ...]) -> dict:
        msg = self.recv()
        if msg is None:
            raise ChildFailed("container init exited during setup")
        if msg["t"] == "error":
            raise ChildFailed(msg.get("msg", "container init failed"), msg.get("hook", False))
        if msg["t"] not in kinds:
            raise ChildFailed(f"container init sent {msg['t']!r}, expected one of {kinds}")
        return msg

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.rfd = self.wfd = -1

