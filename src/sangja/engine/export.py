"""`sangja export`: a container's merged root filesystem as a tar stream, and the safe tree
walk that `cp` and `commit` share.

A container's tree can be changed by the container while we read it (export does not pause
it), so nothing here walks by path: every directory is entered by fd with ``O_NOFOLLOW``
and every entry is named through ``/proc/self/fd/<parent fd>/<name>``, so a directory or
file swapped for a symlink mid-walk fails or is archived as the symlink it now is; it never
leads the walk onto the host.

The merged directory is read through a detached, non-recursive clone of its mount
(``open_tree(OPEN_TREE_CLONE)``): anything mounted below it in our namespace (a container's
``/proc`` that propagated back, say) is simply not there, and what is shown is the rootfs
itself. Without open_tree (no privilege), mount points under the root are found in
mountinfo and their contents left out instead.
"""

from __future__ import annotations

import ctypes
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from sangja.image.layers import add_entry
from sangja.linux.mounts import OPEN_TREE_CLONE
from sangja.linux.paths import RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, openat2
from sangja.linux.syscall import syscall
from sangja.records import dataclass, field

__all__ = ["RootView", "export_rootfs", "open_root", "walk_tree"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_HELD_FDS = 64


def _fd_path(fd: int, name: str = ".") -> str:
    return f"/proc/self/fd/{fd}/{name}"


class _Level:
    __slots__ = ("fd", "rel", "names", "ident")

    def __init__(self, fd: int | None, rel: str, names: list[str], ident: tuple[int, int]):
        self.fd, self.rel, self.names, self.ident = fd, rel, names, ident


def _list(fd: int) -> list[str]:
    with os.scandir(fd) as it:
        names = [e.name for e in it]
    names.sort(reverse=True)  # popped from the end: ascending order
    return names


def walk_tree(
    dirfd: int,
    *,
    descend: Callable[[str, os.stat_result], bool] | None = None,
) -> Iterator[tuple[str, str, os.stat_result]]:
    """Every entry below the directory open (O_RDONLY) as `dirfd`, depth first, names
    sorted: ``(full, rel, st)``. `st` is the entry's lstat; `full` names the entry without
    following a symlink at it (valid until the next step of the walk); `rel` is 'a/b'.

    Directories are yielded before their contents and entered only through
    ``O_NOFOLLOW | O_DIRECTORY`` on the parent's fd; `descend(rel, st)` returning False
    skips a directory's contents. At most 64 directory fds are held: deeper levels are
    reopened beneath `dirfd` with symlinks refused.
    """
    root_st = os.fstat(dirfd)
    stack = [_Level(None, "", _list(dirfd), (root_st.st_dev, root_st.st_ino))]
    held: list[_Level] = []
    try:
        while stack:
            level = stack[-1]
            if not level.names:
                stack.pop()
                if level.fd is not None:
                    os.close(level.fd)
                    held.remove(level)
                continue
            parent = dirfd if not level.rel else level.fd
            if parent is None:  # closed to save fds: reopen beneath the root
                parent = openat2(dirfd, level.rel, os.O_RDONLY | os.O_DIRECTORY,
                                 resolve=RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
                                 | RESOLVE_NO_MAGICLINKS)
                level.fd = parent
                held.append(level)
                st = os.fstat(parent)
                if (st.st_dev, st.st_ino) != level.ident:
                    level.names = []  # replaced while we were below it: not ours to read
                    continue
            name = level.names.pop()
            rel = f"{level.rel}/{name}" if level.rel else name
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we walk
            yield _fd_path(parent, name), rel, st
            if not stat.S_ISDIR(st.st_mode) or (descend is not None and not descend(rel, st)):
                continue
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=parent)
            except (FileNotFoundError, NotADirectoryError):
                continue  # gone, or replaced by a non-directory (a symlink: ELOOP raises)
            try:
                cst = os.fstat(child)
                names = _list(child)
            except BaseException:
                os.close(child)
                raise
            new = _Level(child, rel, names, (cst.st_dev, cst.st_ino))
            stack.append(new)
            held.append(new)
            if len(held) > _MAX_HELD_FDS:
                old = held.pop(0)
                os.close(old.fd)  # type: ignore[arg-type]
                old.fd = None
    finally:
        for level in held:
            if level.fd is not None:
                os.close(level.fd)


@dataclass
class RootView:
    """A directory fd on a container root, and how to resolve paths inside it."""

    fd: int
    detached: bool  # a private clone of the mount: no submounts are visible
    skip: set[str] = field(default_factory=set)  # mount points (rel) when not detached
    resolve_extra: int = 0  # RESOLVE_NO_XDEV when submounts may be visible

    def descend(self, rel: str, st: os.stat_result) -> bool:
        return rel not in self.skip


def _mount_points_below(path: str) -> set[str]:
    from sangja.image.snapshots import mount_points

    real = os.path.realpath(path).rstrip("/") + "/"
    return {p[len(real):] for p in mount_points() if p.startswith(real) and p != real}


@contextmanager
def open_root(rootfs: str, *, detach: bool = True) -> Iterator[RootView]:
    """Open `rootfs` (a directory) for reading and writing its own content only.

    With `detach` (and the privilege for it) the view is a detached clone of the mount at
    rootfs without its submounts; else the plain directory, with the mount points below it
    listed in `skip` and RESOLVE_NO_XDEV to add to path resolution."""
    if detach:
        try:
            tree = syscall("open_tree", ctypes.c_int(-100), os.fsencode(rootfs),
                           ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC))
        except OSError:
            tree = -1
        if tree >= 0:
            try:
                fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=tree)
            finally:
                os.close(tree)  # the open directory keeps the detached mount alive
            try:
                yield RootView(fd, True)
            finally:
                os.close(fd)
            return
    fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield RootView(fd, False, _mount_points_below(rootfs), 0x01)  # RESOLVE_NO_XDEV
    finally:
        os.close(fd)


def export_rootfs(rootfs: str, out: BinaryIO) -> int:
    """Write the tree at `rootfs` as an uncompressed tar to `out` (like ``docker export``):
    numeric owners, modes, mtimes, xattrs, symlinks, hardlinks and device nodes as they
    are; sockets are left out (tar cannot hold them). Returns the number of entries."""
    if not os.path.isdir(rootfs):
        raise FileNotFoundError(f"container root {rootfs} does not exist")
    count = 0
    links: dict[tuple[int, int], str] = {}
    with open_root(rootfs) as view, \
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for full, rel, st in walk_tree(view.fd, descend=view.descend):
            if stat.S_ISSOCK(st.st_mode):
                continue
            add_entry(tf, full, rel, st, links)
            count += 1
    return count
