"""`sangja export`: a container's merged root filesystem as a tar stream, and the view of a
container root (`open_root`) that `cp` and volume copy-up share.

A container's tree can be changed by the container while we read it (export does not pause
it), so nothing here walks by path: the walk is `sangja.linux.fdtree.walk_tree` (every
directory entered by fd with ``O_NOFOLLOW``, every entry named through
``/proc/self/fd/<parent fd>/<name>``), so a directory or file swapped for a symlink mid-walk
fails or is archived as the symlink it now is; it never leads the walk onto the host. A
file's data is read only once an ``O_PATH`` open said it is a regular file: a FIFO or device
node swapped in is never opened (`image.layers.add_entry`).

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
from collections.abc import Iterator
from contextlib import contextmanager

from sangja.image.layers import add_entry
from sangja.linux.fdtree import walk_tree
from sangja.linux.mounts import OPEN_TREE_CLONE
from sangja.linux.syscall import syscall
from sangja.records import dataclass, field

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from sangja.output import ByteSink

__all__ = ["RootView", "export_rootfs", "open_root"]


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


def export_rootfs(rootfs: str, out: ByteSink) -> int:
    """Write the tree at `rootfs` as an uncompressed tar to `out` (like ``docker export``):
    numeric owners, modes, mtimes, xattrs, symlinks, hardlinks and device nodes as they
    are; sockets are left out (tar cannot hold them). Returns the number of entries."""
    if not os.path.isdir(rootfs):
        raise FileNotFoundError(f"container root {rootfs} does not exist")
    count = 0
    links: dict[tuple[int, int], str] = {}
    # A stream ("w|") only writes to `out`; typeshed asks for a seekable file for all modes.
    with open_root(rootfs) as view, \
            tarfile.open(fileobj=out, mode="w|",  # type: ignore[call-overload]  # see above
                         format=tarfile.PAX_FORMAT) as tf:
        for full, rel, st in walk_tree(view.fd, descend=view.descend):
            if stat.S_ISSOCK(st.st_mode):
                continue
            add_entry(tf, full, rel, st, links)
            count += 1
    return count
