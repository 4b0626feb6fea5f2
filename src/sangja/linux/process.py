"""Process-level kernel knobs: prctl flags, rlimits, identity, liveness by start time."""

from __future__ import annotations

import errno
import os
import select
import time

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}


def prctl(option: int, arg2: int = 0) -> None:
    from .capabilities import prctl as _prctl  # ctypes: loaded only when needed

    _prctl(option, arg2)


def set_subreaper(on: bool = True) -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0)


def is_subreaper() -> bool:
    import ctypes

    from .syscall import check, libc

    value = ctypes.c_int(0)
    check(libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0), "prctl")
    return bool(value.value)


def set_pdeathsig(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def set_dumpable(on: bool) -> None:
    prctl(PR_SET_DUMPABLE, 1 if on else 0)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_rlimit(name: str, soft: int, hard: int) -> None:
    """setrlimit(2) through libc (ctypes is loaded already; the `resource` module would cost
    a shared-library load at every container start)."""
    import ctypes

    from .syscall import libc

    class Rlimit(ctypes.Structure):
        _fields_ = [("cur", ctypes.c_ulong), ("max", ctypes.c_ulong)]

    infinity = (1 << 64) - 1
    want = Rlimit(min(soft, infinity), min(hard, infinity))
    if libc.setrlimit(RLIMITS[name], ctypes.byref(want)) == 0:
        return
    err = ctypes.get_errno()
    cur = Rlimit()
    libc.getrlimit(RLIMITS[name], ctypes.byref(cur))
    raise OSError(
        errno.EPERM,
        f"cannot set {name} to {soft}/{hard} (current {cur.cur}/{cur.max}; raising the hard "
        f"limit needs CAP_SYS_RESOURCE): {os.strerror(err)}",
    )


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: tells a process from a later one that reused its pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[19])


def proc_state(pid: int) -> str | None:
    """One-letter process state (R, S, Z...), None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return chr(data[data.rindex(b")") + 2])


def is_alive(pid: int, started: int | None) -> bool:
    """True if `pid` is the same process we started and it has not exited (zombies count
    as exited: they run nothing)."""
    if pid <= 0:
        return False
    st = start_time(pid)
    if st is None or (started is not None and st != started):
        return False
    return proc_state(pid) not in ("Z", "X", None)


def wait_gone(pid: int, started: int | None, timeout: float) -> bool:
    """Wait until `pid` has exited (or is a zombie); True if it did within `timeout`."""
    deadline = time.monotonic() + timeout
    try:
        pfd = os.pidfd_open(pid)
    except OSError:
        pfd = -1
    try:
        while is_alive(pid, started):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if pfd >= 0:
                select.select([pfd], [], [], min(left, 0.5))
            else:
                time.sleep(min(left, 0.01))
        return True
    finally:
        if pfd >= 0:
            os.close(pfd)


def exit_status(status: int) -> int:
    """A waitpid status as a shell would report it: code, or 128+N for a signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def close_range(lo: int, hi: int = 0xFFFFFFFF) -> None:
    """Close every fd from `lo` to `hi`: nothing of the runtime may leak into a container."""
    import ctypes

    from .syscall import syscall

    try:
        syscall("close_range", ctypes.c_uint(lo), ctypes.c_uint(hi), ctypes.c_uint(0))
    except OSError:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if lo <= fd <= hi:
                try:
                    os.close(fd)
                except OSError:
                    pass


def children(pid: int) -> list[int]:
    """The pids of `pid`'s children (every thread's, from /proc/PID/task/*/children);
    [] when it is gone."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out += [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            continue
    return out


def kill_tree(pid: int, rounds: int = 100) -> None:
    """SIGKILL `pid`, its process group and every process descending from it.

    Each one is stopped (SIGSTOP) before its children are read, so none of them forks
    after it was counted; a fork already under way when the stop came still ends, so the
    walk is repeated until a round finds no new process. Then all of them are killed at
    once: none has been reparented away (to the pid namespace's init) on the way. For a
    process we own (our child, not reaped yet), so its pid and process group id cannot
    name anyone else."""
    from . import signals

    found: list[int] = []
    known: set[int] = set()
    for _ in range(rounds):
        todo = [p for p in [pid, *(c for q in found for c in children(q))] if p not in known]
        if not todo:
            break
        while todo:
            p = todo.pop()
            if p in known:
                continue
            try:
                os.kill(p, signals.SIGSTOP)
            except ProcessLookupError:
                continue
            known.add(p)
            found.append(p)
            todo += children(p)
    try:
        os.killpg(pid, signals.SIGKILL)  # its group: jobs whose parent exited before
    except OSError:
        pass
    for p in found:
        try:
            os.kill(p, signals.SIGKILL)
        except ProcessLookupError:
            pass
