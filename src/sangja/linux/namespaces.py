"""Namespaces: create (unshare) and join (setns), by OCI namespace type."""

from __future__ import annotations

import os

from .syscall import check, libc

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# OCI type -> (clone flag, name under /proc/PID/ns/)
TYPES = {
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
    "mount": (CLONE_NEWNS, "mnt"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "user": (CLONE_NEWUSER, "user"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}

# Join order: user first (it grants the rights for the rest), mount last (it changes
# what paths mean).
JOIN_ORDER = ("user", "cgroup", "ipc", "uts", "network", "pid", "time", "mount")


def available() -> list[str]:
    """The OCI namespace types this kernel offers."""
    return [t for t, (_, name) in TYPES.items() if os.path.exists(f"/proc/self/ns/{name}")]


def unshare(flags: int) -> None:
    if flags:
        check(libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    check(libc.setns(fd, nstype), "setns")


def join(path: str, ns_type: str) -> tuple[int, int]:
    """Join the namespace at `path` (a /proc/PID/ns/* file or a bind mount of one);
    return its identity (see own)."""
    flag = TYPES[ns_type][0]
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd, flag)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return st.st_dev, st.st_ino


def own(ns_type: str) -> tuple[int, int]:
    """The identity (nsfs device, inode) of this process's namespace of `ns_type`."""
    st = os.stat(f"/proc/self/ns/{TYPES[ns_type][1]}")
    return st.st_dev, st.st_ino


def ns_inode(pid: int | str, ns_type: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{TYPES[ns_type][1]}").st_ino


def check_ns_file(path: str, ns_type: str) -> bool:
    """Refuse a path that is not a namespace of the expected type (fail before forking).
    True when it is the namespace this process is in: for the runtime that is the host's
    (runc's "host" too: the current namespace, not the initial one)."""
    import errno
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise OSError(e.errno, f"namespace path {path}: {e.strerror}") from None
    try:
        NS_GET_NSTYPE = 0xB703
        try:
            kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
        except OSError as e:
            raise OSError(errno.EINVAL, f"{path} is not a namespace file") from e
        if kind != TYPES[ns_type][0]:
            raise OSError(errno.EINVAL, f"{path} is not a {ns_type} namespace")
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return (st.st_dev, st.st_ino) == own(ns_type)
