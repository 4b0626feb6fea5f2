"""mount(2), umount2(2), pivot_root(2), mount_setattr(2) and mount option parsing.

Option words follow mount(8) and runc: flags go into mountflags, propagation words are
applied with separate calls, recursive attributes (rro, rnosuid...) with mount_setattr,
everything else is filesystem data ("mode=755,size=64m").
"""

from __future__ import annotations

import ctypes
import os

from .syscall import check, libc, syscall

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2

ATIME_FLAGS = MS_NOATIME | MS_RELATIME | MS_STRICTATIME

# word -> (clear?, flag)
FLAG_WORDS: dict[str, tuple[bool, int]] = {
    "async": (True, MS_SYNCHRONOUS), "atime": (True, MS_NOATIME), "bind": (False, MS_BIND),
    "defaults": (False, 0), "dev": (True, MS_NODEV), "diratime": (True, MS_NODIRATIME),
    "dirsync": (False, MS_DIRSYNC), "exec": (True, MS_NOEXEC), "iversion": (False, MS_I_VERSION),
    "lazytime": (False, MS_LAZYTIME), "loud": (True, MS_SILENT), "mand": (False, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME), "nodev": (False, MS_NODEV),
    "nodiratime": (False, MS_NODIRATIME), "noexec": (False, MS_NOEXEC),
    "noiversion": (True, MS_I_VERSION), "nolazytime": (True, MS_LAZYTIME),
    "nomand": (True, MS_MANDLOCK), "norelatime": (True, MS_RELATIME),
    "nostrictatime": (True, MS_STRICTATIME), "nosuid": (False, MS_NOSUID),
    "nosymfollow": (False, MS_NOSYMFOLLOW), "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME), "remount": (False, MS_REMOUNT), "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY), "silent": (False, MS_SILENT), "strictatime": (False, MS_STRICTATIME),
    "suid": (True, MS_NOSUID), "sync": (False, MS_SYNCHRONOUS),
}

PROPAGATION_WORDS = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
AT_RECURSIVE = 0x8000
AT_EMPTY_PATH = 0x1000

# recursive word -> (set, clear)
RECURSIVE_WORDS: dict[str, tuple[int, int]] = {
    "rro": (MOUNT_ATTR_RDONLY, 0), "rrw": (0, MOUNT_ATTR_RDONLY),
    "rnosuid": (MOUNT_ATTR_NOSUID, 0), "rsuid": (0, MOUNT_ATTR_NOSUID),
    "rnodev": (MOUNT_ATTR_NODEV, 0), "rdev": (0, MOUNT_ATTR_NODEV),
    "rnoexec": (MOUNT_ATTR_NOEXEC, 0), "rexec": (0, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (MOUNT_ATTR_NODIRATIME, 0), "rdiratime": (0, MOUNT_ATTR_NODIRATIME),
    "rrelatime": (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
    "rnorelatime": (0, MOUNT_ATTR__ATIME),
    "rnoatime": (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME), "ratime": (0, MOUNT_ATTR__ATIME),
    "rstrictatime": (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
    "rnostrictatime": (0, MOUNT_ATTR__ATIME),
    "rnosymfollow": (MOUNT_ATTR_NOSYMFOLLOW, 0), "rsymfollow": (0, MOUNT_ATTR_NOSYMFOLLOW),
}

# Idmapped mounts: made by the runtime (see idmapped_tree), moved into place by the init.
IDMAP_WORDS = ("idmap", "ridmap")
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40

# runc's extension for tmpfs (podman and cri-o put it on /run, /tmp, /var/tmp...): fill the
# new tmpfs with what the image has at the destination. Never filesystem data.
COPYUP_WORDS = {"tmpcopyup": True, "notmpcopyup": False}


class MountOptions:
    """Parsed mount options: flags, propagation, recursive attributes and fs data."""

    __slots__ = ("flags", "clear", "propagation", "attr_set", "attr_clr", "data", "words",
                 "idmap", "copyup")

    def __init__(self, options: list[str] | tuple[str, ...] = ()):
        self.flags = 0
        self.clear = 0
        self.propagation: list[int] = []
        self.attr_set = 0
        self.attr_clr = 0
        self.idmap = ""  # "", "idmap" or "ridmap" (recursive)
        self.copyup = False  # tmpcopyup
        data: list[str] = []
        self.words = list(options)
        for word in options:
            if word in FLAG_WORDS:
                clear, flag = FLAG_WORDS[word]
                if clear:
                    self.flags &= ~flag
                    self.clear |= flag
                else:
                    if flag & ATIME_FLAGS:
                        self.flags &= ~ATIME_FLAGS
                    self.flags |= flag
                    self.clear &= ~flag
            elif word in PROPAGATION_WORDS:
                self.propagation.append(PROPAGATION_WORDS[word])
            elif word in RECURSIVE_WORDS:
                s, c = RECURSIVE_WORDS[word]
                self.attr_set |= s
                self.attr_clr |= c
            elif word in COPYUP_WORDS:
                self.copyup = COPYUP_WORDS[word]
            elif word in IDMAP_WORDS:
                self.idmap = word
            else:
                data.append(word)
        self.data = ",".join(data)

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & MS_BIND)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    check(
        libc.mount(
            source.encode() if source is not None else None,
            target.encode(),
            fstype.encode() if fstype is not None else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {source or fstype or ''} on {target}",
    )


def umount2(target: str, flags: int = 0) -> None:
    check(libc.umount2(target.encode(), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    syscall("pivot_root", new_root.encode(), put_old.encode())


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(path: str, attr_set: int, attr_clr: int, recursive: bool = True) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    syscall("mount_setattr", ctypes.c_int(-100), path.encode(),
            ctypes.c_uint(AT_RECURSIVE if recursive else 0), ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)))


# statvfs f_flag bits -> MS_* (the kernel "locks" these on mounts from a more privileged ns)
_ST_TO_MS = ((1, MS_RDONLY), (2, MS_NOSUID), (4, MS_NODEV), (8, MS_NOEXEC),
             (1024, MS_NOATIME), (2048, MS_NODIRATIME), (4096, MS_RELATIME))


def locked_flags(path: str) -> int:
    """The per-mount flags currently on `path`, as MS_* bits."""
    f = os.statvfs(path).f_flag
    return sum(ms for st, ms in _ST_TO_MS if f & st)


def remount_bind(target: str, flags: int) -> None:
    """Apply per-mount flags to a bind mount; keep flags the kernel will not let us drop."""
    base = MS_BIND | MS_REMOUNT
    try:
        mount(None, target, None, base | flags)
    except PermissionError:
        keep = locked_flags(target) & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
        atime = locked_flags(target) & ATIME_FLAGS if not flags & ATIME_FLAGS else 0
        mount(None, target, None, base | flags | keep | atime)


def idmapped_tree(source: str, userns_fd: int, recursive: bool) -> int:
    """A detached copy of the mount at `source` whose ids are shifted through the user
    namespace `userns_fd` (idmapped mount). Needs privilege over the source's filesystem,
    so the runtime makes it and the container's init moves it into place."""
    fd = syscall("open_tree", ctypes.c_int(-100), source.encode(),
                 ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC | (AT_RECURSIVE if recursive
                                                                   else 0)))
    try:
        attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        syscall("mount_setattr", ctypes.c_int(fd), b"",
                ctypes.c_uint(AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)),
                ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
    except BaseException:
        os.close(fd)
        raise
    return fd


def move_mount(fd: int, target_fd: int) -> None:
    """Attach the detached mount `fd` on the directory or file open as `target_fd` (both
    by fd: no path is resolved, and /proc/self/fd magic links are refused here)."""
    syscall("move_mount", ctypes.c_int(fd), b"", ctypes.c_int(target_fd), b"",
            ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH))
