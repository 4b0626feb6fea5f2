"""Directory trees walked and copied by fd: the one way host-side code reads or fills a tree
that a container or an image controls (export, cp, commit, volume copy-up, tmpcopyup).

Nothing here goes by path. Every directory is entered with ``O_NOFOLLOW | O_DIRECTORY``
relative to its parent's fd, every entry is created relative to its new parent's fd with
``O_EXCL``/``O_NOFOLLOW`` semantics, and a regular file's data is read only after an
``O_PATH`` open said it is one (see `paths.reopen_regular`). So a symlink is data, never a
route: one planted or swapped in while we work is copied as the link it is, or makes the
operation fail; it never leads a read or a write outside the trees we were given. A FIFO or
a device node is never opened: it is made again with mknod(2).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator

from .paths import O_PATH, fd_path, open_beneath, open_regular

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Protocol

    class StatMeta(Protocol):
        """The stat fields _set_meta reads (an os.stat_result, or build.copy's _Meta)."""

        @property
        def st_uid(self) -> int: ...
        @property
        def st_gid(self) -> int: ...
        @property
        def st_mode(self) -> int: ...
        @property
        def st_atime_ns(self) -> int: ...
        @property
        def st_mtime_ns(self) -> int: ...

__all__ = ["copy_tree", "walk_tree"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_HELD_FDS = 64
# overlayfs's own bookkeeping (opaque, redirect, metacopy): never content to carry over
_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")
_SENDFILE_MAX = 1 << 30


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
                parent = open_beneath(dirfd, level.rel, os.O_RDONLY | os.O_DIRECTORY)
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


# ---------------------------------------------------------------------------- copying


def _xattrs(obj: str | int) -> list[tuple[str, bytes]]:
    """The extended attributes of `obj` (a path, not followed at its end, or an fd)."""
    kw = {} if isinstance(obj, int) else {"follow_symlinks": False}
    try:
        names = os.listxattr(obj, **kw)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.ENODATA):
            return []
        raise
    out = []
    for name in names:
        if name.startswith(_OVERLAY_XATTRS):
            continue
        try:
            out.append((name, os.getxattr(obj, name, **kw)))
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.ENODATA):
                raise
    return out


def _set_meta(target: int | str, st: StatMeta, xattrs: list[tuple[str, bytes]],
              *, chmod: bool = True) -> None:
    """Owner, mode, xattrs and times of `target` (an fd, or the /proc/self/fd path of an
    O_PATH fd: the object itself, even a symlink). Order matters: chown clears set-id bits
    and file capabilities, so the mode and the xattrs come after it, and the times last."""
    os.chown(target, st.st_uid, st.st_gid)
    if chmod:
        os.chmod(target, stat.S_IMODE(st.st_mode))
    for name, value in xattrs:
        try:
            os.setxattr(target, name, value)
        except OSError as e:  # a filesystem without them, or a name not allowed on a link
            if e.errno not in (errno.ENOTSUP, errno.EPERM):
                raise
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_data(src: int, dst: int, size: int) -> None:
    """`size` bytes of `src` into the new file `dst`, holes kept (a sparse file stays
    sparse: a hostile 1 TiB hole must not fill the host's disk)."""
    os.ftruncate(dst, size)
    off = 0
    while off < size:
        try:
            start = os.lseek(src, off, os.SEEK_DATA)
            end = min(os.lseek(src, start, os.SEEK_HOLE), size)
        except OSError as e:
            if e.errno == errno.ENXIO:
                return  # only a hole is left
            if e.errno not in (errno.EINVAL, errno.ENOTSUP):
                raise
            start, end = off, size  # no SEEK_DATA on this filesystem: all of it is data
        if start >= size:
            return
        os.lseek(dst, start, os.SEEK_SET)
        while start < end:
            n = os.sendfile(dst, src, start, min(end - start, _SENDFILE_MAX))
            if n == 0:
                return  # the file shrank since its stat: the rest stays a hole
            start += n
        off = end


class _Copier:
    """One copy_tree: the destination's current parent directory fd, hardlinks seen, and
    the directories whose metadata waits until their content is written."""

    def __init__(self, dst: int, made: Callable[[str], None] | None):
        self.dst = dst
        self.made = made
        self.parent_rel = ""
        self.parent = dst
        self.links: dict[tuple[int, int], str] = {}
        self.dirs: list[tuple[str, os.stat_result, list[tuple[str, bytes]]]] = []

    def close(self) -> None:
        if self.parent != self.dst:
            os.close(self.parent)
            self.parent = self.dst

    def parent_fd(self, prel: str) -> int:
        """The destination directory `prel`, reached beneath the destination with no
        symlink on the way (one swapped in by a writer of the destination: ELOOP)."""
        if prel != self.parent_rel:
            self.close()
            self.parent_rel = ""
            if prel:
                self.parent = open_beneath(self.dst, prel, O_PATH | os.O_DIRECTORY)
            self.parent_rel = prel
        return self.parent

    def created(self, prel: str, name: str) -> None:
        if self.made is not None and not prel:
            self.made(name)

    def entry(self, full: str, rel: str, st: os.stat_result) -> bool:
        prel, _, name = rel.rpartition("/")
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFSOCK:
            return False  # a socket means nothing without its process (tar, cp, export too)
        parent = self.parent_fd(prel)
        xattrs = _xattrs(full)
        if kind == stat.S_IFDIR:
            os.mkdir(name, 0o700, dir_fd=parent)
            self.created(prel, name)
            self.dirs.append((rel, st, xattrs))
        elif kind == stat.S_IFREG:
            self.file(full, rel, st, xattrs, parent, prel, name)
        elif kind == stat.S_IFLNK:
            os.symlink(os.readlink(full), name, dir_fd=parent)
            self.created(prel, name)
            self.node_meta(parent, name, st, xattrs)
        elif kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
            rdev = st.st_rdev if kind != stat.S_IFIFO else 0
            os.mknod(name, kind | 0o600, rdev, dir_fd=parent)  # made, never opened
            self.created(prel, name)
            self.node_meta(parent, name, st, xattrs)
        else:
            return False
        return True

    def file(self, full: str, rel: str, st: os.stat_result, xattrs, parent: int, prel: str,
             name: str) -> None:
        key = (st.st_dev, st.st_ino)
        first = self.links.get(key) if st.st_nlink > 1 else None
        if first is not None:  # another name of a file already copied: a hardlink again
            fprel, _, fname = first.rpartition("/")
            fparent = open_beneath(self.dst, fprel, O_PATH | os.O_DIRECTORY)
            try:
                os.link(fname, name, src_dir_fd=fparent, dst_dir_fd=parent,
                        follow_symlinks=False)
            finally:
                os.close(fparent)
            self.created(prel, name)
            return
        src = open_regular(full)  # NotRegularFile if it changed type since the walk saw it
        try:
            now = os.fstat(src)
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                          | os.O_CLOEXEC, 0o600, dir_fd=parent)
            try:
                self.created(prel, name)
                _copy_data(src, out, now.st_size)
                _set_meta(out, now, xattrs)
            finally:
                os.close(out)
        finally:
            os.close(src)
        if st.st_nlink > 1:
            self.links[key] = rel

    @staticmethod
    def node_meta(parent: int, name: str, st: os.stat_result, xattrs) -> None:
        """Metadata of the node or symlink just made as `name`, through an O_PATH fd of it
        (checked to be what we made: a writer racing us in the destination cannot have
        our owner and mode put on a file of theirs)."""
        fd = os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            now = os.fstat(fd)
            if (stat.S_IFMT(now.st_mode) != stat.S_IFMT(st.st_mode)
                    or (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode))
                    and now.st_rdev != st.st_rdev):
                raise OSError(errno.ESTALE, "replaced while being copied", name)
            _set_meta(fd_path(fd), st, xattrs, chmod=not stat.S_ISLNK(st.st_mode))
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Directories last, deepest first: adding their entries changed their times, and a
        read-only mode must not be set before they are filled."""
        self.close()
        for rel, st, xattrs in reversed(self.dirs):
            fd = open_beneath(self.dst, rel, os.O_RDONLY | os.O_DIRECTORY)
            try:
                _set_meta(fd, st, xattrs)
            finally:
                os.close(fd)


def copy_tree(src: int, dst: int, *, own_meta: bool = False,
              descend: Callable[[str, os.stat_result], bool] | None = None,
              made: Callable[[str], None] | None = None) -> int:
    """Copy what is below the directory `src` into the directory `dst` (both O_RDONLY
    directory fds); return the number of entries made.

    Kept: owner, mode, extended attributes (file capabilities included; overlayfs's own
    left out), access and modification times (ns), hardlinks within the tree, holes.
    Symlinks are made again with their target (never followed), device nodes and FIFOs
    with mknod (never opened, so never read), sockets are left out. Every entry is new: a
    name that already exists in `dst` fails the copy (FileExistsError) rather than being
    merged or replaced. `own_meta`: `dst` itself then takes the owner, mode, xattrs and
    times of `src`. `made(name)` is told each name created directly in `dst`, as soon as
    it exists (so a caller can remove a failed copy). `descend` as in `walk_tree`.
    """
    copier = _Copier(dst, made)
    count = 0
    try:
        for full, rel, st in walk_tree(src, descend=descend):
            count += copier.entry(full, rel, st)
        copier.finish()
    finally:
        copier.close()
    if own_meta:
        _set_meta(dst, os.fstat(src), _xattrs(src))
    return count
