"""`sangja cp`: copy files between a container's root filesystem and the host.

Docker's rules (``docker cp`` reference):

- container paths are relative to the container's ``/``; symlinks met on the way are
  followed *as the container would*: an absolute target starts again at the container's
  root and ``..`` stops there (openat2 ``RESOLVE_IN_ROOT``), so no path inside the
  container, however hostile its symlinks, names anything outside `rootfs`;
- SRC is a file: DEST missing -> created as that file (DEST ending in ``/`` is then an
  error: the directory must exist); DEST a file -> overwritten; DEST a directory -> the
  file goes into it under SRC's name;
- SRC is a directory: DEST missing -> created, with SRC's content; DEST a file -> error;
  DEST a directory -> SRC goes into it, or only its content when SRC ends in ``/.``;
- the parent of DEST must exist; a SRC ending in ``/`` must be a directory;
- a symlink SRC is copied as the link; ``follow_link`` (``-L``) copies what it points at,
  under the link's name; a DEST that is a symlink is followed (inside the container);
- ownership: copied into the container, files belong to root (``owner``, by default
  0:0); copied out, to the user running the copy; ``archive`` (``-a``) keeps the source's
  uid/gid instead. Modes, times, xattrs, hardlinks, symlinks and devices are kept;
- ``-`` as SRC is a tar stream extracted into DEST (which must be a directory); ``-`` as
  DEST writes a tar stream of SRC.

Everything goes through a tar stream (a pipe between a producer thread and the
extractor), and every write is made relative to an open directory fd: an entry that
exists is replaced (a symlink there is removed, never followed), a file is created with
``O_EXCL | O_NOFOLLOW``, metadata is set through fds, never by path.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
import sys
import tarfile
import threading
from collections.abc import Callable

from sangja.engine.export import RootView, open_root
from sangja.errors import SangjaError
from sangja.image.layers import add_entry
from sangja.linux.fdtree import walk_tree
from sangja.linux.paths import (
    RESOLVE_BENEATH,
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    openat2,
)

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import BinaryIO

    from sangja.output import ByteSink

__all__ = ["CopyError", "copy_in", "copy_out"]

_XATTR_PREFIX = "SCHILY.xattr."
_CHUNK = 1 << 20
_MAX_LINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_KIND = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK,
         tarfile.FIFOTYPE: stat.S_IFIFO}


class CopyError(SangjaError):
    """A copy that cannot be done (missing path, file over directory, bad archive)."""


# ---------------------------------------------------------------------------- paths


def _parse(path: str) -> tuple[list[str], bool, bool]:
    """(components after lexical cleaning, asserts a directory, content only ('/.'))."""
    contents = path in (".", "/.") or path.endswith("/.")
    asserts_dir = contents or path.endswith("/")
    clean = posixpath.normpath("/" + path)
    return [p for p in clean.split("/") if p], asserts_dir, contents


class _Root:
    """Path resolution inside a container root (a `RootView`) without leaving it."""

    def __init__(self, view: RootView):
        self.view = view
        self.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | view.resolve_extra

    def open(self, comps: list[str], flags: int = os.O_PATH | os.O_DIRECTORY) -> int:
        return openat2(self.view.fd, "/".join(comps) or ".", flags, resolve=self.resolve)

    def resolve_path(self, comps: list[str], follow_final: bool) -> list[str]:
        """The symlink-free components of `comps` inside the root (FileNotFoundError,
        NotADirectoryError or ELOOP otherwise)."""
        todo = comps[::-1]
        done: list[str] = []
        links = 0
        while todo:
            name = todo.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if done:
                    done.pop()
                continue
            parent = self.open(done)
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode) and (todo or follow_final):
                    links += 1
                    if links > _MAX_LINKS:
                        raise OSError(errno.ELOOP, "too many levels of symbolic links")
                    target = os.readlink(name, dir_fd=parent)
                    if target.startswith("/"):
                        done = []
                    todo.extend([p for p in target.split("/") if p][::-1])
                    continue
                if todo and not stat.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory")
                done.append(name)
            finally:
                os.close(parent)
        return done

    def lstat(self, comps: list[str]) -> os.stat_result:
        if not comps:
            return os.fstat(self.view.fd)
        parent = self.open(comps[:-1])
        try:
            return os.stat(comps[-1], dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)


def _show(comps: list[str]) -> str:
    return "/" + "/".join(comps)


# ---------------------------------------------------------------------------- producing


def _add_tree(tf: tarfile.TarFile, parent: int, name: str | None, tar_name: str,
              descend: Callable[[str, os.stat_result], bool] | None = None) -> None:
    """Archive the entry `name` in the directory fd `parent` (None: `parent` itself, a
    directory) as `tar_name`, and everything below it when it is a directory."""
    links: dict[tuple[int, int], str] = {}
    if name is None:
        full, st = f"/proc/self/fd/{parent}/.", os.fstat(parent)
    else:
        full = f"/proc/self/fd/{parent}/{name}"
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    if stat.S_ISSOCK(st.st_mode):
        raise CopyError(f"{tar_name}: cannot copy a socket")
    add_entry(tf, full, tar_name, st, links)
    if not stat.S_ISDIR(st.st_mode):
        return
    dfd = os.open(name, _DIR_FLAGS, dir_fd=parent) if name is not None else os.dup(parent)
    try:
        for full, rel, st in walk_tree(dfd, descend=descend):
            if stat.S_ISSOCK(st.st_mode):
                continue
            add_entry(tf, full, f"{tar_name}/{rel}", st, links)
    finally:
        os.close(dfd)


class _Source:
    """One thing to copy: the entry `name` in the directory `parent_fd` (None: the
    directory itself, for a container's root)."""

    def __init__(self, parent_fd: int, name: str | None, st: os.stat_result,
                 base_name: str, descend=None):
        self.parent_fd, self.name, self.st = parent_fd, name, st
        self.base_name = base_name  # name it arrives under (the SRC's last component)
        self.descend = descend

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    def write_tar(self, out: ByteSink, tar_name: str) -> None:
        # A stream ("w|") only writes to `out`; typeshed asks for a seekable file for all modes.
        with tarfile.open(fileobj=out, mode="w|",  # type: ignore[call-overload]  # see above
                          format=tarfile.PAX_FORMAT) as tf:
            _add_tree(tf, self.parent_fd, self.name, tar_name, self.descend)

    def close(self) -> None:
        os.close(self.parent_fd)


def _container_source(root: _Root, src: str, follow_link: bool, container: str) -> _Source:
    comps, asserts_dir, contents = _parse(src)
    try:
        canon = root.resolve_path(comps, follow_final=follow_link or asserts_dir)
        st = root.lstat(canon)
    except (FileNotFoundError, NotADirectoryError):
        raise CopyError(f"Could not find the file {src} in container{container}")
    except OSError as e:
        raise CopyError(f"cannot read {src} in container{container}: {e.strerror}")
    if asserts_dir and not stat.S_ISDIR(st.st_mode):
        raise CopyError(f"{src} in container{container} is not a directory")
    if canon:
        parent, name = root.open(canon[:-1]), canon[-1]
    else:
        parent, name = os.dup(root.view.fd), None
    base_name = "." if contents or not comps else comps[-1]
    prefix = "/".join(canon)

    def descend(rel: str, st: os.stat_result) -> bool:
        return root.view.descend(f"{prefix}/{rel}" if prefix else rel, st)

    return _Source(parent, name, st, base_name, descend)


def _host_source(src: str, follow_link: bool) -> _Source:
    path = src.rstrip("/") or "/"
    _, asserts_dir, contents = _parse(src)
    try:
        st = os.stat(path) if follow_link or asserts_dir else os.lstat(path)
    except FileNotFoundError:
        raise CopyError(f"lstat {src}: no such file or directory")
    except OSError as e:
        raise CopyError(f"lstat {src}: {e.strerror}")
    if asserts_dir and not stat.S_ISDIR(st.st_mode):
        raise CopyError(f"{src}: not a directory")
    if follow_link or asserts_dir:
        path = os.path.realpath(path)
    parent_path, name = os.path.split(os.path.abspath(path))
    base_name = "." if contents else (os.path.basename(os.path.normpath(src)) or ".")
    if not name:  # the host's "/"
        return _Source(os.open("/", _DIR_FLAGS), None, st, base_name)
    parent = os.open(parent_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    st2 = os.stat(name, dir_fd=parent, follow_symlinks=False)
    return _Source(parent, name, st2, base_name)


# ---------------------------------------------------------------------------- extracting


def _clean_member(name: str) -> list[str]:
    """An archive name as components below the destination ('/' and '.' dropped, '..'
    applied); a name that climbs above the destination is refused."""
    if "\0" in name:
        raise CopyError(f"invalid archive entry {name!r}")
    parts: list[str] = []
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                raise CopyError(f"archive entry {name!r} points outside the destination")
            parts.pop()
        else:
            parts.append(p)
    return parts


class _Target:
    """An existing directory that a tar stream is unpacked into.

    In a container (`root` given): every path is resolved inside the root, following the
    container's symlinks there (like a chroot). On the host: every path is resolved
    beneath the destination directory with symlinks refused."""

    def __init__(self, *, root: _Root | None = None, base: list[str] | None = None,
                 host_dir: str | None = None, owner: tuple[int, int] | None, show: str):
        self.root, self.base = root, base or []
        self.host_fd = (os.open(host_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                        if host_dir is not None else None)
        self.owner = owner  # None: keep the archive's ids
        self.show = show
        self.dirs: list[tuple[list[str], tarfile.TarInfo]] = []

    def close(self) -> None:
        if self.host_fd is not None:
            os.close(self.host_fd)

    def _open_dir(self, rel: list[str]) -> int:
        if self.root is not None:
            return self.root.open(self.base + rel)
        assert self.host_fd is not None
        return openat2(self.host_fd, "/".join(rel) or ".", os.O_PATH | os.O_DIRECTORY,
                       resolve=RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

    def dir_fd(self, rel: list[str]) -> int:
        """O_PATH fd of the directory `rel`, creating missing ones (mode 0755)."""
        try:
            return self._open_dir(rel)
        except FileNotFoundError:
            pass
        for i in range(len(rel)):
            try:
                os.close(self._open_dir(rel[:i + 1]))
                continue
            except FileNotFoundError:
                pass
            pfd = self._open_dir(rel[:i])
            try:
                try:
                    os.mkdir(rel[i], 0o755, dir_fd=pfd)
                except FileExistsError:
                    pass
                if self.owner is not None:
                    os.chown(rel[i], *self.owner, dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(pfd)
        return self._open_dir(rel)

    def _where(self, rel: list[str]) -> str:
        return posixpath.join(self.show, *rel)

    def _ids(self, m: tarfile.TarInfo) -> tuple[int, int]:
        return self.owner if self.owner is not None else (m.uid, m.gid)

    def extract(self, tf: tarfile.TarFile) -> None:
        for m in tf:
            self.member(tf, m)
        for rel, m in reversed(self.dirs):
            pfd = self._open_dir(rel[:-1])
            try:
                fd = os.open(rel[-1], os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY
                             | os.O_CLOEXEC, dir_fd=pfd)
            finally:
                os.close(pfd)
            try:
                self._meta(fd, m)
            finally:
                os.close(fd)

    def member(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = _clean_member(m.name)
        if not rel:
            return  # the archive's "." is the destination itself: left as it is
        parent = self.dir_fd(rel[:-1])
        try:
            self._member(tf, m, rel, parent)
        finally:
            os.close(parent)

    def _member(self, tf: tarfile.TarFile, m: tarfile.TarInfo, rel: list[str],
                parent: int) -> None:
        name = rel[-1]
        try:
            existing = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        is_dir = existing is not None and stat.S_ISDIR(existing.st_mode)
        if m.isdir():
            if existing is not None and not is_dir:
                raise CopyError(f"cannot overwrite non-directory {self._where(rel)} "
                                "with directory")
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=parent)
            self.dirs.append((rel, m))
            return
        if is_dir:
            raise CopyError(f"cannot overwrite directory {self._where(rel)} with non-directory")
        if existing is not None:
            os.unlink(name, dir_fd=parent)  # a symlink is removed, never followed
        uid, gid = self._ids(m)
        if m.isreg():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=parent)
            try:
                data = tf.extractfile(m)
                assert data is not None
                with open(fd, "wb", closefd=False) as out:
                    shutil.copyfileobj(data, out, _CHUNK)
                self._meta(fd, m, by_fd=True)
            finally:
                os.close(fd)
        elif m.issym():
            os.symlink(m.linkname, name, dir_fd=parent)
            os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
            os.utime(name, (m.mtime, m.mtime), dir_fd=parent, follow_symlinks=False)
        elif m.islnk():
            target = _clean_member(m.linkname)
            if not target:
                raise CopyError(f"archive entry {m.name!r}: invalid hardlink")
            tparent = self._open_dir(target[:-1])
            try:
                os.link(target[-1], name, src_dir_fd=tparent, dst_dir_fd=parent,
                        follow_symlinks=False)
            except FileNotFoundError:
                raise CopyError(f"archive entry {m.name!r}: hardlink target "
                                f"{m.linkname!r} does not exist")
            finally:
                os.close(tparent)
        elif m.ischr() or m.isblk() or m.isfifo():
            if m.isfifo():
                os.mkfifo(name, 0o600, dir_fd=parent)
            else:
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                os.mknod(name, kind | 0o600, os.makedev(m.devmajor, m.devminor),
                         dir_fd=parent)
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                # still the node we made (not a file a process in the container swapped in)
                if stat.S_IFMT(os.fstat(fd).st_mode) != _KIND[m.type]:
                    raise CopyError(f"{self._where(rel)} was replaced while being copied")
                self._meta(fd, m)
            finally:
                os.close(fd)
        # anything else (GNU volume headers...) carries nothing to write

    def _meta(self, fd: int, m: tarfile.TarInfo, by_fd: bool = False) -> None:
        """Owner, mode, xattrs, mtime of the object open as `fd` (O_PATH unless by_fd)."""
        uid, gid = self._ids(m)
        target: int | str = fd if by_fd else f"/proc/self/fd/{fd}"
        os.chown(target, uid, gid)
        os.chmod(target, m.mode & 0o7777)  # after chown, which clears setuid bits
        for key, value in m.pax_headers.items():
            if not key.startswith(_XATTR_PREFIX):
                continue
            data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
            try:
                os.setxattr(target, key[len(_XATTR_PREFIX):], data)
            except OSError as e:
                if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                    raise
        os.utime(target, (m.mtime, m.mtime))


def _extract(stream: BinaryIO, target: _Target) -> None:
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tf:
            target.extract(tf)
    except (tarfile.TarError, EOFError) as e:
        raise CopyError(f"invalid tar archive: {e}")


def _through_pipe(source: _Source, tar_name: str, target: _Target) -> None:
    """Run source -> tar -> target with the producer in a thread."""
    r, w = os.pipe()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            with open(w, "wb") as out:
                source.write_tar(out, tar_name)
        except BrokenPipeError:
            pass  # the extractor stopped: its error is the one to report
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=produce, name="sangja-cp", daemon=True)
    t.start()
    try:
        with open(r, "rb") as inp:
            _extract(inp, target)
            inp.read()  # let the producer finish its trailer
    except BaseException:
        t.join()  # the read end is closed: a blocked producer gets EPIPE and ends
        if errors:  # a truncated stream because the producer failed: report why
            raise errors[0] from None
        raise
    t.join()
    if errors:
        raise errors[0]


def _wrap(what: str, fn: Callable[[], None]) -> None:
    try:
        fn()
    except SangjaError:
        raise
    except OSError as e:
        where = f" {e.filename}" if e.filename and not str(e.filename).startswith("/proc/") \
            else ""
        raise CopyError(f"{what}:{where} {e.strerror or e}")


# ---------------------------------------------------------------------------- copy out


def copy_out(rootfs: str, src: str, dest_host: str | ByteSink, *, archive: bool = False,
             follow_link: bool = False, container: str = "") -> None:
    """Copy `src` (a path in the container whose root is `rootfs`) to `dest_host` (a host
    path, or a binary stream / ``"-"`` for a tar stream of it)."""
    suffix = f" {container}" if container else ""
    with open_root(rootfs) as view:
        root = _Root(view)
        source = _container_source(root, src, follow_link, suffix)
        try:
            if not isinstance(dest_host, str) or dest_host == "-":
                out = sys.stdout.buffer if isinstance(dest_host, str) else dest_host  # "-"
                _wrap(f"copying {src} from container{suffix}",
                      lambda: source.write_tar(out, source.base_name))
                out.flush()
                return
            owner = None if archive else (os.getuid(), os.getgid())
            target, tar_name = _host_destination(source, dest_host, owner)
            try:
                _wrap(f"copying {src} to {dest_host}",
                      lambda: _through_pipe(source, tar_name, target))
            finally:
                target.close()
        finally:
            source.close()


def _host_destination(source: _Source, dest: str,
                      owner: tuple[int, int] | None) -> tuple[_Target, str]:
    """(where to unpack, name SRC gets there) on the host, by Docker's rules."""
    asserts_dir = dest.endswith("/") or dest.endswith("/.") or dest == "."
    path = dest.rstrip("/") or "/"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise CopyError(f"{dest}: a parent is not a directory")
    if st is not None and stat.S_ISDIR(st.st_mode):
        base = path
        name = source.base_name  # "." (SRC ended in /.): the content only
    elif st is not None:
        if source.is_dir:
            raise CopyError(f"cannot copy a directory to a file: {dest}")
        if asserts_dir:
            raise CopyError(f"{dest}: not a directory")
        base, name = os.path.split(os.path.abspath(path))
    else:
        if asserts_dir and not source.is_dir:
            raise CopyError(f"destination directory {dest} does not exist")
        base, name = os.path.split(os.path.abspath(path))
        if not os.path.isdir(base):
            raise CopyError(f"destination directory {base} does not exist")
    return _Target(host_dir=base, owner=owner, show=base), name


# ---------------------------------------------------------------------------- copy in


def copy_in(rootfs: str, src_host: str | BinaryIO, dest: str, *, archive: bool = False,
            follow_link: bool = False, owner: tuple[int, int] = (0, 0),
            container: str = "") -> None:
    """Copy `src_host` (a host path, or a binary stream / ``"-"`` of a tar archive) to
    `dest`, a path in the container whose root is `rootfs`. Without `archive` everything
    written belongs to `owner` (the container's root)."""
    suffix = f" {container}" if container else ""
    ids = None if archive else owner
    dcomps, d_asserts_dir, _ = _parse(dest)
    with open_root(rootfs) as view:
        root = _Root(view)
        if not isinstance(src_host, str) or src_host == "-":
            stream = sys.stdin.buffer if isinstance(src_host, str) else src_host  # "-"
            try:
                canon = root.resolve_path(dcomps, follow_final=True)
                st = root.lstat(canon)
            except (FileNotFoundError, NotADirectoryError):
                raise CopyError(f"Could not find the file {dest} in container{suffix}")
            except OSError as e:
                raise CopyError(f"cannot resolve {dest} in container{suffix}: {e.strerror}")
            if not stat.S_ISDIR(st.st_mode):
                raise CopyError(f'destination "{dest}" must be a directory')
            target = _Target(root=root, base=canon, owner=ids, show=_show(canon))
            _wrap(f"copying to {dest} in container{suffix}", lambda: _extract(stream, target))
            return
        source = _host_source(src_host, follow_link)
        try:
            try:
                base, name = _container_destination(root, source, dest, dcomps,
                                                    d_asserts_dir, suffix)
            except OSError as e:
                raise CopyError(f"cannot resolve {dest} in container{suffix}: {e.strerror}")
            target = _Target(root=root, base=base, owner=ids, show=_show(base))
            _wrap(f"copying {src_host} to {dest} in container{suffix}",
                  lambda: _through_pipe(source, name, target))
        finally:
            source.close()


def _container_destination(root: _Root, source: _Source, dest: str, dcomps: list[str],
                           asserts_dir: bool, suffix: str) -> tuple[list[str], str]:
    """(directory to unpack in, name SRC gets there) by Docker's rules."""
    if not dcomps:
        parent, name = None, None
    else:
        parent, name = dcomps[:-1], dcomps[-1]
    try:
        pcanon = root.resolve_path(parent, follow_final=True) if parent is not None else []
        if not stat.S_ISDIR(root.lstat(pcanon).st_mode):
            raise NotADirectoryError
    except (FileNotFoundError, NotADirectoryError):
        raise CopyError(f"Could not find the file {_show(parent or [])} in container{suffix}")
    canon: list[str] | None
    if name is None:
        canon = []
    else:
        try:
            canon = root.resolve_path(pcanon + [name], follow_final=True)
            root.lstat(canon)
        except (FileNotFoundError, NotADirectoryError):
            canon = None  # missing (or a dangling symlink: replaced, never followed out)
    if canon is not None:
        st = root.lstat(canon)
        if stat.S_ISDIR(st.st_mode):
            return canon, source.base_name  # "." (SRC ended in /.): the content only
        if source.is_dir:
            raise CopyError(f"cannot copy a directory to a file: {dest} in container{suffix}")
        if asserts_dir:
            raise CopyError(f"{dest} in container{suffix} is not a directory")
        return canon[:-1], canon[-1]
    if asserts_dir and not source.is_dir:
        raise CopyError(f"destination directory {dest} does not exist in container{suffix}")
    assert name is not None
    return pcanon, name
