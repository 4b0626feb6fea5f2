"""Capability sets: names, the five sets of runtime-spec, and applying them to this process."""

from __future__ import annotations

import ctypes
import errno

from .syscall import check, libc, syscall

NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
NUMBERS = {name: i for i, name in enumerate(NAMES)}

SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
_VERSION_3 = 0x20080522


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def parse(names: list[str], field: str) -> int:
    """Names to a bit mask. Unknown names are an error (fail closed); names this kernel
    does not have are dropped, as runc does, because no process could hold them anyway."""
    mask = 0
    top = last_cap()
    for name in names:
        n = NUMBERS.get(name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper())
        if n is None:
            raise ValueError(f"{field}: unknown capability {name!r}")
        if n <= top:
            mask |= 1 << n
    return mask


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return check(libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                            ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)), "prctl")


def drop_bounding(keep: int) -> None:
    for n in range(last_cap() + 1):
        if not keep >> n & 1:
            prctl(PR_CAPBSET_DROP, n)


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _Header(_VERSION_3, 0)
    data = (_Data * 2)()
    for i in range(2):
        data[i].effective = effective >> (32 * i) & 0xFFFFFFFF
        data[i].permitted = permitted >> (32 * i) & 0xFFFFFFFF
        data[i].inheritable = inheritable >> (32 * i) & 0xFFFFFFFF
    syscall("capset", ctypes.byref(hdr), ctypes.byref(data))


def raise_ambient(mask: int) -> None:
    """Raise what the kernel allows of `mask`. It raises an ambient capability only if it
    is permitted and inheritable (EPERM otherwise); runc ignores the refusal, so `runc
    spec`'s default (ambient without inheritable) runs with an empty ambient set, and so
    does it here. EINVAL: a kernel without ambient capabilities."""
    try:
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as e:
        if e.errno == errno.EINVAL:
            return
        raise
    for n in range(last_cap() + 1):
        if mask >> n & 1:
            try:
                prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, n)
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EINVAL):
                    raise


class CapabilitySets:
    """The five sets as bit masks; `None` for a set the config leaves out."""

    __slots__ = SETS
    bounding: int | None
    effective: int | None
    inheritable: int | None
    permitted: int | None
    ambient: int | None

    def __init__(self, spec: dict | None):
        spec = spec or {}
        for s in SETS:
            names = spec.get(s)
            setattr(self, s, None if names is None else parse(names, f"process.capabilities.{s}"))

    def apply(self) -> None:
        """Called after the uid switch (with KEEPCAPS set): bounding, then the rest."""
        if self.bounding is not None:
            drop_bounding(self.bounding)
        capset(self.effective or 0, self.permitted or 0, self.inheritable or 0)
        if self.ambient:
            raise_ambient(self.ambient)
