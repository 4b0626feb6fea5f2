"""`events`: a container's resource usage and OOM notifications as JSON lines, like
`runc events`. --stats prints one stats object and exits; otherwise a stats object every
interval and {"type": "oom", "id": ID} whenever the kernel OOM-kills in the container,
until the container stops.

OOM notices come from the v1 memory.oom_control eventfd (registered through
cgroup.event_control) or, on v2, from the oom_kill counter of memory.events (polled with
POLLPRI, which the kernel signals on change, and re-read at every wake-up anyway).
"""

from __future__ import annotations

import os
import select
import time

from ..errors import InvalidState, SangjaError
from .store import Store

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                   "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration ("5s", "500ms", "1m30s", "1.5s") in seconds."""
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    total, i = 0.0, 0
    while i < len(s):
        j = i
        while j < len(s) and (s[j].isdigit() or s[j] == "."):
            j += 1
        if j == i:
            raise ValueError(f"invalid duration {text!r}")
        num = float(s[i:j])
        k = j
        while k < len(s) and not (s[k].isdigit() or s[k] == "."):
            k += 1
        unit = s[j:k]
        if unit not in _DURATION_UNITS:
            if s == "0":
                return 0.0
            raise ValueError(f"invalid duration {text!r}: unknown unit {unit!r}")
        total += num * _DURATION_UNITS[unit]
        i = k
    return total


def _open(store: Store, cid: str):
    from ..linux.cgroups import Cgroup

    c = store.peek(cid)
    status = c.status()
    if status in ("stopped", "creating"):
        raise InvalidState(f"container {cid} is not running ({status})")
    dirs = c.record.get("cgroup_dirs")
    if not dirs:
        raise SangjaError(f"container {cid} has no cgroup")
    return c, Cgroup.from_dirs(c.record.get("cgroup", ""), dirs)


def stats_event(store: Store, cid: str) -> dict:
    from ..linux.cgroups.stats import stats

    _, cg = _open(store, cid)
    return stats(cg, cid)


class OomWatch:
    """Counts OOM kills in a container's memory cgroup; fileno() is pollable."""

    def __init__(self, cgroup):
        self.fd = -1
        self.v1_fd = -1
        self.v2_file = None
        self.last = 0
        for h, d in cgroup.dirs:
            if h.version == 1 and "memory" in h.controllers:
                self._v1(d)
                return
        for h, d in cgroup.dirs:
            if h.version == 2 and os.path.exists(os.path.join(d, "memory.events")):
                self.v2_file = os.path.join(d, "memory.events")
                self.fd = os.open(self.v2_file, os.O_RDONLY | os.O_CLOEXEC)
                self.last = self._v2_count()
                return

    def _v1(self, d: str) -> None:
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            ofd = os.open(os.path.join(d, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
            try:
                wfd = os.open(os.path.join(d, "cgroup.event_control"),
                              os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(wfd, f"{efd} {ofd}".encode())
                finally:
                    os.close(wfd)
            except BaseException:
                os.close(ofd)
                raise
        except BaseException:
            os.close(efd)
            raise
        self.fd, self.v1_fd = efd, ofd
        self.v1_dir = d

    def _v2_count(self) -> int:
        try:
            os.lseek(self.fd, 0, os.SEEK_SET)
            text = os.read(self.fd, 4096).decode()
        except OSError:
            return self.last
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                try:
                    return int(v)
                except ValueError:
                    break
        return self.last

    def poll(self) -> int:
        """New OOM events since the last call (non-blocking)."""
        if self.fd < 0:
            return 0
        if self.v1_fd >= 0:
            try:
                n = int.from_bytes(os.read(self.fd, 8), "little")
            except BlockingIOError:
                return 0
            # the eventfd also fires when the cgroup is removed
            if not os.path.exists(os.path.join(self.v1_dir, "memory.oom_control")):
                return 0
            return n
        cur = self._v2_count()
        n, self.last = max(cur - self.last, 0), cur
        return n

    def close(self) -> None:
        for fd in (self.fd, self.v1_fd):
            if fd >= 0:
                os.close(fd)
        self.fd = self.v1_fd = -1


def stream(store: Store, cid: str, interval: float, emit) -> int:
    """Emit stats every `interval` seconds and OOM events as they happen, until the
    container stops. `emit(dict)` writes one event."""
    from ..linux.cgroups.stats import stats

    if interval <= 0:
        raise SangjaError("duration interval must be greater than 0")
    c, cg = _open(store, cid)
    watch = OomWatch(cg)
    poller = select.poll()
    if watch.fd >= 0:
        poller.register(watch.fd, select.POLLIN if watch.v1_fd >= 0 else select.POLLPRI)
    try:
        next_stats = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_stats:
                if c.status() == "stopped" or not cg.exists():
                    break
                try:
                    emit(stats(cg, cid))
                except OSError:
                    pass
                next_stats = now + interval
            timeout = min(max(next_stats - time.monotonic(), 0), 0.25)
            poller.poll(int(timeout * 1000))
            for _ in range(watch.poll()):
                emit({"type": "oom", "id": cid})
            if c.status() == "stopped":
                for _ in range(watch.poll()):
                    emit({"type": "oom", "id": cid})
                break
    finally:
        watch.close()
    return 0
