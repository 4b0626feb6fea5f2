"""COPY and ADD: files from the build context or another stage into the image being built.

Both sides are trees someone else controls, so nothing here goes by host path:

- a source is resolved inside its root (the context directory, or another stage's mounted
  root filesystem) with openat2 ``RESOLVE_IN_ROOT``: a symlink there, absolute or full of
  ``..``, resolves inside that root, never to the host's files;
- below a source, every directory is entered with ``O_NOFOLLOW`` relative to its parent's
  fd; symlinks are copied as symlinks, device nodes and FIFOs are made again with mknod
  (never opened, so a stage's ``/dev/sda`` node is never read), sockets are left out;
- the destination directory is resolved (and made) inside the image's root
  (`paths.mkdir_all_in_root`, Docker's rule: a symlink in the image is followed as if the
  root were "/"); below it, entries are made fd-relative, and whatever is in the way
  where a directory goes (a symlink included) is replaced, never followed.

Docker's semantics: a directory source copies its content; a file goes to DEST/NAME when
DEST ends in "/" or is a directory, else becomes DEST; several sources need a directory
DEST ending in "/". Files from the context belong to 0:0 (their owner on the host is not
the image's business), files from a stage keep theirs; ``--chown``/``--chmod`` override.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from ..linux.fdtree import _copy_data, _set_meta, _xattrs
from ..linux.paths import O_PATH, mkdir_all_in_root, open_in_root, open_regular
from .errors import BuildError

__all__ = ["CopySpec", "Copier", "glob_sources"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class CopySpec:
    """How the copied entries are owned: ``owner`` (uid, gid) for every entry, or None to
    keep the source's (``reset_owner``: 0:0, for the context); ``mode`` for files and
    directories (--chmod)."""

    def __init__(self, owner: tuple[int, int] | None = None, mode: int | None = None,
                 reset_owner: bool = False):
        self.owner = owner if owner is not None else ((0, 0) if reset_owner else None)
        self.mode = mode
        self.from_context = reset_owner


def _remove_at(dirfd: int, name: str) -> None:
    """Remove whatever `name` is in `dirfd` (a directory recursively, never following)."""
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dirfd)
        return
    fd = os.open(name, _DIR_FLAGS, dir_fd=dirfd)
    try:
        for entry in os.listdir(fd):
            _remove_at(fd, entry)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dirfd)


class _Meta:
    """The stat fields `_set_meta` reads, with --chown/--chmod applied."""

    __slots__ = ("st_uid", "st_gid", "st_mode", "st_atime_ns", "st_mtime_ns")

    def __init__(self, st: os.stat_result, spec: CopySpec):
        self.st_uid, self.st_gid = spec.owner if spec.owner is not None else (st.st_uid,
                                                                              st.st_gid)
        mode = spec.mode if spec.mode is not None else stat.S_IMODE(st.st_mode)
        self.st_mode = stat.S_IFMT(st.st_mode) | mode
        self.st_atime_ns, self.st_mtime_ns = st.st_atime_ns, st.st_mtime_ns


class Copier:
    """One COPY/ADD: entries copied into the image root `dst_root` (an O_RDONLY fd of the
    mounted root being built). ``skip(rel)`` leaves context paths out (.dockerignore),
    ``descend(rel)`` says whether a skipped directory may still hold included entries."""

    def __init__(self, dst_root: int, spec: CopySpec,
                 skip: Callable[[str], bool] | None = None,
                 descend: Callable[[str], bool] | None = None):
        self.dst_root = dst_root
        self.spec = spec
        self.skip = skip
        self.descend = descend
        self.links: dict[tuple[int, int], tuple[int, str]] = {}
        self.copied = 0

    # -- destination ---------------------------------------------------------------------
    def dest_dir(self, path: str) -> int:
        """An O_PATH fd of the directory `path` of the image, made if missing (owned by
        --chown's owner when given, as BuildKit does)."""
        owner = self.spec.owner
        missing = self._missing(path) if owner is not None else []
        try:
            fd = mkdir_all_in_root(self.dst_root, path)
        except NotADirectoryError as e:
            raise BuildError(f"destination {path}: {e.strerror or 'not a directory'}"
                             ) from None
        if owner is not None:
            for made in missing:  # resolved inside the root again, never by a host path
                dfd = open_in_root(self.dst_root, made, O_PATH | os.O_DIRECTORY)
                try:
                    os.chown(f"/proc/self/fd/{dfd}", *owner)
                finally:
                    os.close(dfd)
        return fd

    def _missing(self, path: str) -> list[str]:
        """The prefixes of `path` that are not directories in the image yet (those that
        dest_dir will make), shortest first."""
        parts = [p for p in path.split("/") if p and p != "."]
        if ".." in parts:  # resolved by mkdir_all_in_root; no owner for what it makes
            return []
        out = []
        for i in range(len(parts), 0, -1):
            prefix = "/".join(parts[:i])
            try:
                os.close(open_in_root(self.dst_root, prefix, O_PATH | os.O_DIRECTORY))
                break
            except (FileNotFoundError, NotADirectoryError):
                out.append(prefix)
        return out[::-1]

    def dest_is_dir(self, path: str) -> bool:
        try:
            fd = open_in_root(self.dst_root, path, O_PATH)
        except (FileNotFoundError, NotADirectoryError):
            return False
        try:
            return stat.S_ISDIR(os.fstat(fd).st_mode)
        finally:
            os.close(fd)

    # -- entries -------------------------------------------------------------------------
    def _meta(self, target: int | str, st: os.stat_result, xattrs) -> None:
        """Owner, mode, xattrs and times of a copied entry (an fd, or the /proc/self/fd
        path of an O_PATH fd), with --chown/--chmod applied."""
        _set_meta(target, _Meta(st, self.spec), xattrs)

    def copy_entry(self, src_dir: int, src_name: str, st: os.stat_result, dst_dir: int,
                   name: str, rel: str) -> None:
        """Copy the source entry `src_name` of directory fd `src_dir` (lstat `st`) to
        `name` in the destination directory fd `dst_dir`."""
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFSOCK:
            return
        xattrs = [] if self.spec.from_context else _xattrs(f"/proc/self/fd/{src_dir}/{src_name}")
        if kind == stat.S_IFDIR:
            fd = os.open(src_name, _DIR_FLAGS, dir_fd=src_dir)
            try:
                self.copy_dir_contents(fd, dst_dir, name, rel, st, xattrs)
            finally:
                os.close(fd)
            return
        try:
            cur = os.stat(name, dir_fd=dst_dir, follow_symlinks=False)
        except FileNotFoundError:
            cur = None
        if cur is not None:
            _remove_at(dst_dir, name)
        key = (st.st_dev, st.st_ino)
        if kind == stat.S_IFREG and st.st_nlink > 1 and key in self.links:
            first_dir, first_name = self.links[key]
            try:
                os.link(first_name, name, src_dir_fd=first_dir, dst_dir_fd=dst_dir,
                        follow_symlinks=False)
                self.copied += 1
                return
            except OSError:
                pass  # the first copy is gone or elsewhere: copy the data again
        if kind == stat.S_IFREG:
            src = open_regular(src_name, dir_fd=src_dir)
            try:
                now = os.fstat(src)
                out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                              | os.O_CLOEXEC, 0o600, dir_fd=dst_dir)
                try:
                    _copy_data(src, out, now.st_size)
                    self._meta(out, now, xattrs)
                finally:
                    os.close(out)
            finally:
                os.close(src)
            if st.st_nlink > 1:
                self.links[key] = (os.dup(dst_dir), name)
        elif kind == stat.S_IFLNK:
            os.symlink(os.readlink(src_name, dir_fd=src_dir), name, dir_fd=dst_dir)
            self._link_meta(dst_dir, name, st)
        elif kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
            os.mknod(name, kind | 0o600, st.st_rdev if kind != stat.S_IFIFO else 0,
                     dir_fd=dst_dir)  # made, never opened
            fd = os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst_dir)
            try:
                self._meta(f"/proc/self/fd/{fd}", st, xattrs)
            finally:
                os.close(fd)
        self.copied += 1

    def copy_resolved(self, pfd: int, st: os.stat_result, dst_dir: int, name: str | None,
                      rel: str) -> None:
        """Copy the object behind the O_PATH fd `pfd` (a source resolved inside its root;
        never a symlink) to `name` in `dst_dir`; a directory's content is merged into it."""
        from ..linux.paths import fd_path

        if stat.S_ISDIR(st.st_mode):
            fd = os.open(fd_path(pfd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                xattrs = [] if self.spec.from_context else _xattrs(fd)
                self.copy_dir_contents(fd, dst_dir, name, rel, st, xattrs)
            finally:
                os.close(fd)
            return
        assert name is not None  # None (merge into dst_dir itself) is for a directory
        # the object itself, by its /proc/self/fd name: entries of a directory fd work
        # the same way, and O_NOFOLLOW opens of "." are not needed
        parent = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if stat.S_ISREG(st.st_mode):
                from ..linux.paths import reopen_regular

                src = reopen_regular(pfd)
                try:
                    self._copy_file_fd(src, st, dst_dir, name, rel)
                finally:
                    os.close(src)
            else:
                self.copy_entry(parent, str(pfd), st, dst_dir, name, rel)
        finally:
            os.close(parent)

    def _copy_file_fd(self, src: int, st: os.stat_result, dst_dir: int, name: str,
                      rel: str) -> None:
        try:
            os.stat(name, dir_fd=dst_dir, follow_symlinks=False)
            _remove_at(dst_dir, name)
        except FileNotFoundError:
            pass
        xattrs = [] if self.spec.from_context else _xattrs(src)
        now = os.fstat(src)
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                      | os.O_CLOEXEC, 0o600, dir_fd=dst_dir)
        try:
            _copy_data(src, out, now.st_size)
            self._meta(out, now, xattrs)
        finally:
            os.close(out)
        self.copied += 1

    def write_file(self, dst_dir: int, name: str, data: bytes, mode: int = 0o644) -> None:
        """A new file (COPY <<EOF): 0:0 or --chown, `mode` or --chmod, mtime now."""
        try:
            os.stat(name, dir_fd=dst_dir, follow_symlinks=False)
            _remove_at(dst_dir, name)
        except FileNotFoundError:
            pass
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                      | os.O_CLOEXEC, 0o600, dir_fd=dst_dir)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view):]
            uid, gid = self.spec.owner or (0, 0)
            os.fchown(out, uid, gid)
            os.fchmod(out, self.spec.mode if self.spec.mode is not None else mode)
        finally:
            os.close(out)
        self.copied += 1

    def _link_meta(self, dst_dir: int, name: str, st: os.stat_result) -> None:
        uid, gid = self.spec.owner if self.spec.owner is not None else (st.st_uid, st.st_gid)
        os.chown(name, uid, gid, dir_fd=dst_dir, follow_symlinks=False)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir,
                 follow_symlinks=False)

    def copy_dir_contents(self, src_fd: int, dst_parent: int, name: str | None, rel: str,
                          st: os.stat_result, xattrs) -> None:
        """Merge the directory `src_fd` into `name` of `dst_parent` (None: into
        `dst_parent` itself, whose metadata stays)."""
        if name is None:
            dst = os.open(".", _DIR_FLAGS, dir_fd=dst_parent)
        else:
            try:
                cur = os.stat(name, dir_fd=dst_parent, follow_symlinks=False)
            except FileNotFoundError:
                cur = None
            if cur is not None and not stat.S_ISDIR(cur.st_mode):
                _remove_at(dst_parent, name)  # a symlink in the way is replaced, not followed
                cur = None
            if cur is None:
                os.mkdir(name, 0o700, dir_fd=dst_parent)
            dst = os.open(name, _DIR_FLAGS, dir_fd=dst_parent)
        try:
            for entry in sorted(os.listdir(src_fd)):
                child = f"{rel}/{entry}" if rel else entry
                try:
                    cst = os.stat(entry, dir_fd=src_fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if self.skip is not None and self.skip(child):
                    if not (stat.S_ISDIR(cst.st_mode) and self.descend is not None
                            and self.descend(child)):
                        continue
                self.copy_entry(src_fd, entry, cst, dst, entry, child)
            if name is not None:
                self._meta(dst, st, xattrs)
                self.copied += 1
        finally:
            os.close(dst)

    def close(self) -> None:
        for fd, _ in self.links.values():
            os.close(fd)
        self.links.clear()


def glob_sources(root: int, pattern: str, skip: Callable[[str], bool] | None = None
                 ) -> list[str]:
    """Paths below the directory fd `root` matching a source pattern with wildcards (Go's
    filepath.Match per component: ``*``, ``?``, ``[...]``), sorted; directories are not
    entered through symlinks."""
    import fnmatch

    parts = [p for p in pattern.split("/") if p and p != "."]
    found = [""]
    for i, part in enumerate(parts):
        nxt = []
        for base in found:
            try:  # resolved inside the root: a symlinked directory leads nowhere else
                fd = open_in_root(root, base or ".", os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue
            try:
                names = sorted(os.listdir(fd))
            finally:
                os.close(fd)
            if any(ch in part for ch in "*?["):
                hits = [n for n in names if fnmatch.fnmatchcase(n, part)]
            else:
                hits = [part] if part in names else []
            for n in hits:
                rel = f"{base}/{n}" if base else n
                if skip is not None and skip(rel) and i == len(parts) - 1:
                    continue
                nxt.append(rel)
        found = nxt
    return found
