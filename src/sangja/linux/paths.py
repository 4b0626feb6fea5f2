"""Resolve paths inside a container root as if it were "/": symlinks cannot escape it.

Mount targets, device nodes and masked paths are all placed through these functions
(CVE-2021-30465 class: a symlink planted in the rootfs must not redirect a mount onto
the host). openat2(2) with RESOLVE_IN_ROOT does the resolution in the kernel.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

from .syscall import check, libc, nr

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

O_PATH = os.O_PATH


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, mode: int = 0,
            resolve: int = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    while True:
        ret = libc.syscall(nr("openat2"), ctypes.c_int(dirfd), path.encode(), ctypes.byref(how),
                           ctypes.c_size_t(ctypes.sizeof(how)))
        if ret == -1 and ctypes.get_errno() == errno.EAGAIN:
            continue  # a concurrent rename raced the lookup; the kernel asks us to retry
        return check(ret, f"open {path} in container root", path)


def _relative(path: str) -> str:
    parts = [p for p in path.split("/") if p and p != "."]
    return "/".join(parts) or "."


def open_in_root(rootfd: int, path: str, flags: int = O_PATH) -> int:
    """Open `path` resolved inside the root whose directory fd is `rootfd`."""
    return openat2(rootfd, _relative(path), flags)


def mkdir_all_in_root(rootfd: int, path: str, mode: int = 0o755) -> int:
    """Create every missing directory of `path` inside the root; return an O_PATH fd of it.

    Symlinks met on the way are followed as if the root were "/" (an absolute link starts
    again at the root, ".." stops at it), so creation can never land outside the root.
    A directory that is already there is opened in one openat2 (the same resolution).
    """
    try:
        return open_in_root(rootfd, path, O_PATH | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        pass  # the walk below makes what is missing, or says what is in the way
    todo = [p for p in path.split("/") if p and p != "."][::-1]
    done: list[str] = []
    links = 0
    while todo:
        name = todo.pop()
        if name == "..":
            if done:
                done.pop()
            continue
        parent = open_in_root(rootfd, "/".join(done), O_PATH | os.O_DIRECTORY)
        try:
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                try:
                    os.mkdir(name, mode, dir_fd=parent)
                except FileExistsError:
                    pass
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > 40:
                    raise OSError(errno.ELOOP, f"too many symlinks in {path}")
                target = os.readlink(name, dir_fd=parent)
                if target.startswith("/"):
                    done = []
                todo.extend([p for p in target.split("/") if p and p != "."][::-1])
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, f"{path}: {name} is not a directory")
            done.append(name)
        finally:
            os.close(parent)
    return open_in_root(rootfd, "/".join(done), O_PATH | os.O_DIRECTORY)


def create_file_in_root(rootfd: int, path: str, mode: int = 0o644) -> int:
    """Make sure a regular file (a bind mount target) exists at `path`; O_PATH fd of it.

    A dangling symlink there is followed inside the root, as runc does (an image whose
    /etc/resolv.conf points at ../run/systemd/resolve/stub-resolv.conf gets that file
    made, in the root, and mounted on)."""
    rel = _relative(path)
    try:
        return open_in_root(rootfd, rel)  # there already: one openat2
    except FileNotFoundError:
        pass
    for _ in range(40):
        parent, _, name = rel.rpartition("/")
        pfd = mkdir_all_in_root(rootfd, parent or ".")
        try:
            try:
                return open_in_root(rootfd, rel)
            except FileNotFoundError:
                pass
            try:
                fd = os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW,
                             mode, dir_fd=pfd)
                os.close(fd)
            except FileExistsError:
                pass
            except OSError as e:
                if e.errno != errno.ELOOP:
                    raise
                target = os.readlink(name, dir_fd=pfd)  # dangling: make what it names
                rel = _relative(target if target.startswith("/") else f"{parent}/{target}")
                continue
            return open_in_root(rootfd, rel)
        finally:
            os.close(pfd)
    raise OSError(errno.ELOOP, f"too many symlinks in {path}")


def fd_path(fd: int) -> str:
    """A path that names exactly the object behind `fd` (for mount(2) targets)."""
    return f"/proc/self/fd/{fd}"


def open_beneath(dirfd: int, path: str, flags: int = O_PATH) -> int:
    """Open `path` below the directory `dirfd` with no symlink anywhere on the way: a link
    a container planted (or swapped in) fails with ELOOP instead of being followed, and
    ".." never climbs above `dirfd`. For trees whose own symlinks are data, never routes
    (a volume being filled, a directory being unpacked on the host)."""
    return openat2(dirfd, _relative(path), flags,
                   resolve=RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)


class NotRegularFile(OSError):
    """What was to be read as a file's data is something else (a FIFO, a device...)."""


def reopen_regular(pathfd: int, flags: int = os.O_RDONLY) -> int:
    """Open the object behind the O_PATH descriptor `pathfd` for its data, only if it is a
    regular file (NotRegularFile otherwise).

    Opening is itself an action for anything else: a FIFO blocks, a device node runs its
    driver's open (a tty becomes a controlling terminal, a watchdog is armed) even if the
    data is never read. An O_PATH open does neither; the reopen through /proc/self/fd
    reaches that same inode, whatever the name points at by now."""
    st = os.fstat(pathfd)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(errno.EINVAL, "not a regular file")
    return os.open(fd_path(pathfd), flags | os.O_NOCTTY | os.O_CLOEXEC)


def open_regular(path: str, flags: int = os.O_RDONLY, *, dir_fd: int | None = None) -> int:
    """Open the regular file `path` (relative to `dir_fd`) for its data without following a
    symlink at its last component and without opening a FIFO or device node that stands
    there (NotRegularFile); see `reopen_regular`."""
    pfd = os.open(path, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        return reopen_regular(pfd, flags)
    finally:
        os.close(pfd)

