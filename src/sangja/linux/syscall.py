"""libc through ctypes, loaded once, with errno-checked calls.

Everything that Python's `os` module lacks (mount, unshare, setns, pivot_root, prctl,
capset...) goes through here.
"""

from __future__ import annotations

import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)

_MACHINE = os.uname().machine

# Syscall numbers for calls glibc 2.36 has no wrapper for.
_NUMBERS = {
    "x86_64": {"pivot_root": 155, "capget": 125, "capset": 126, "openat2": 437,
               "pidfd_open": 434, "close_range": 436, "seccomp": 317,
               "open_tree": 428, "move_mount": 429, "mount_setattr": 442, "execveat": 322},
    "aarch64": {"pivot_root": 41, "capget": 90, "capset": 91, "openat2": 437,
                "pidfd_open": 434, "close_range": 436, "seccomp": 277,
                "open_tree": 428, "move_mount": 429, "mount_setattr": 442, "execveat": 281},
}


def nr(name: str) -> int:
    try:
        return _NUMBERS[_MACHINE][name]
    except KeyError:
        raise OSError(f"syscall {name} unknown on {_MACHINE}") from None


def check(ret: int, what: str = "", filename: str | None = None) -> int:
    """Raise OSError with errno when a libc call returned -1."""
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}" if what else os.strerror(err), filename)
    return ret


def syscall(name: str, *args) -> int:
    return check(libc.syscall(nr(name), *args), name)
