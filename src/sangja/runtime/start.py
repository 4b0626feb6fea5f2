"""`start`: release a created container's init by opening the exec fifo, and learn
whether its program started: the init closes its end by exec (close-on-exec), or writes
the reason it could not before exiting."""

from __future__ import annotations

import os
import select

from ..errors import InvalidState, SangjaError
from ..linux import process as lp
from ..linux import signals as signal
from .hooks import run_warn
from .store import Container, Store


class StartFailed(SangjaError):
    pass


def start(store: Store, cid: str, warn=None) -> Container:
    c = store.open(cid)
    try:
        release(c)
        run_poststart(c, warn)
        return c
    finally:
        c.unlock()


def run_poststart(c: Container, warn) -> None:
    """poststart hooks see the state right after the start: "running" with the init's pid,
    even if a quick program has already exited by the time they run."""
    hooks = c.record.get("hooks", {}).get("poststart")
    if hooks:
        state = c.oci_state() | {"status": "running", "pid": c.pid}
        run_warn(hooks, "poststart", state, warn or (lambda m: None))


def release(c: Container) -> None:
    status = c.status()
    if status != "created":
        raise InvalidState(f"cannot start container {c.id}: it is {status}, not created")
    fd = os.open(c.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        report = _read_until_exec(fd, c)
    finally:
        os.close(fd)
        os.unlink(c.fifo)
    if report:
        try:
            os.kill(c.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        from .sync import parse_error

        msg, code = parse_error(report)
        err = StartFailed(msg)
        err.exit_code = code
        raise err


def _read_until_exec(fd: int, c: Container) -> bytes:
    """Wait for the init to open the fifo, then read until it is closed (EOF)."""
    data = b""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    started = c.record.get("init_start")
    while True:
        events = poller.poll(200)
        if not events:
            if not lp.is_alive(c.pid, started):
                raise StartFailed(f"container {c.id} init exited before it could start")
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return data
        data += chunk
