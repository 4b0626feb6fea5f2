"""Apply (and produce) OCI/Docker layer tarballs, safely, with whiteout semantics.

``apply_layer`` works in two passes over the archive.  Pass one validates every member and
touches nothing; any hostile entry raises ``UnsafeLayer`` naming it, and dest is unchanged.
Pass two first performs the layer's deletions (``.wh.NAME`` whiteouts and ``.wh..wh..opq``
opaque markers, which only ever affect the *lower* content already in dest), then extracts
the entries without following any symlink.

``write_diff`` is the inverse: compare two trees and write a layer tar of the changes.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from sangja.errors import SangjaError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "LayerError",
    "LayerStats",
    "UnsafeLayer",
    "apply_layer",
    "detect_compression",
    "write_diff",
]

DEFAULT_MAX_BYTES = 64 << 30
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_XATTR_PREFIX = "SCHILY.xattr."
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20


class LayerError(SangjaError):
    """A layer could not be read or applied (bad compression, missing zstd, I/O)."""


class UnsafeLayer(LayerError, ValueError):
    """A layer entry is hostile or impossible; dest was left unchanged."""

    def __init__(self, entry: str, why: str):
        super().__init__(f"unsafe layer entry {entry!r}: {why}")
        self.entry = entry
        self.why = why


@dataclass
class LayerStats:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    devices: int = 0
    fifos: int = 0
    whiteouts: int = 0
    opaque_dirs: int = 0
    bytes: int = 0
    xattrs: int = 0
    xattrs_skipped: int = 0


def _is_root() -> bool:
    return os.geteuid() == 0


# ---------------------------------------------------------------------------- input streams


def detect_compression(head: bytes) -> str:
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return "none"


@contextmanager
def _raw_source(src: str | os.PathLike[str] | BinaryIO, spool_dir: str) -> Iterator[BinaryIO]:
    """A seekable binary file positioned at the start of the (possibly compressed) layer."""
    if isinstance(src, str | os.PathLike):
        with open(src, "rb") as f:
            yield f
        return
    try:
        start = src.tell()
        src.seek(start)
        seekable = True
    except (AttributeError, OSError, io.UnsupportedOperation):
        seekable = False
    if seekable:
        yield _Window(src, start)  # type: ignore[misc]
        return
    with tempfile.TemporaryFile(dir=spool_dir) as tmp:
        shutil.copyfileobj(src, tmp, _CHUNK)
        tmp.seek(0)
        yield tmp


class _Window(io.RawIOBase):
    """A view of a seekable file object whose position 0 is the caller's current offset."""

    def __init__(self, f: BinaryIO, start: int):
        self._f, self._start = f, start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self._f.read(len(b))
        b[: len(data)] = data
        return len(data)

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 0:
            return self._f.seek(self._start + pos) - self._start
        return self._f.seek(pos, whence) - self._start

    def tell(self) -> int:
        return self._f.tell() - self._start


def _zstd_decompress(raw: BinaryIO, out: BinaryIO) -> None:
    exe = shutil.which("zstd")
    if exe is None:
        raise LayerError("layer is zstd-compressed but the 'zstd' command is not installed")
    proc = subprocess.Popen(
        [exe, "-d", "-c", "-q"], stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stderr is not None

    def feed() -> None:
        try:
            shutil.copyfileobj(raw, proc.stdin, _CHUNK)
        except BrokenPipeError:
            pass
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    err = proc.stderr.read()
    feeder.join()
    if proc.wait() != 0:
        msg = err.decode(errors="replace").strip()
        raise LayerError(f"zstd failed to decompress the layer: {msg}")


@contextmanager
def _tar_source(src, compression: str, spool_dir: str) -> Iterator[tuple[BinaryIO, bool]]:
    """(seekable stream, gzipped?) for the layer; zstd is decompressed to a spool file."""
    with _raw_source(src, spool_dir) as raw:
        if compression == "auto":
            head = raw.read(4)
            raw.seek(0)
            compression = detect_compression(head)
        if compression in ("none", "tar"):
            yield raw, False
        elif compression in ("gzip", "gz"):
            yield raw, True
        elif compression == "zstd":
            with tempfile.TemporaryFile(dir=spool_dir) as out:
                _zstd_decompress(raw, out)
                out.seek(0)
                yield out, False
        else:
            raise LayerError(f"unknown layer compression {compression!r}")


def _members(stream: BinaryIO, gz: bool) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    stream.seek(0)
    fileobj: BinaryIO = gzip.GzipFile(fileobj=stream, mode="rb") if gz else stream
    try:
        with tarfile.open(fileobj=fileobj, mode="r|") as tf:
            for member in tf:
                yield tf, member
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError) as e:
        raise LayerError(f"cannot read layer archive: {e}") from None


# ---------------------------------------------------------------------------- validation

_DIR, _FILE, _SYMLINK, _OTHER = "dir", "file", "symlink", "other"


def _clean(name: str, what: str = "the path", entry: str | None = None) -> str:
    """Normalize a member name to 'a/b/c' ('' for the root) or raise UnsafeLayer."""
    entry = name if entry is None else entry
    if "\0" in name:
        raise UnsafeLayer(entry, f"{what} {name!r} contains a NUL byte")
    if name.startswith("/"):
        raise UnsafeLayer(entry, f"{what} {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayer(entry, f"{what} {name!r} has a '..' component")
    return "/".join(parts)


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _ancestors(path: str) -> list[str]:
    """Proper ancestors of 'a/b/c': ['a', 'a/b']."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


class _Plan:
    """What the archive does, simulated over dest without touching it."""

    def __init__(self, dest: str):
        self.dest = dest
        self.entries: dict[str, str] = {}  # path -> kind, as created by this archive
        self.whiteouts: set[str] = set()
        self.opaque: set[str] = set()

    def _deleted_in_lower(self, path: str) -> bool:
        if path == "":
            return False
        ancestors = _ancestors(path)
        if path in self.whiteouts or any(a in self.whiteouts for a in ancestors):
            return True
        return any(a in self.opaque for a in ["", *ancestors])

    def _lower_kind(self, path: str) -> str | None:
        """Kind of path in dest after the layer's deletions (None: absent)."""
        if self._deleted_in_lower(path):
            return None
        try:
            st = os.lstat(os.path.join(self.dest, path))
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return _SYMLINK
        if stat.S_ISDIR(st.st_mode):
            return _DIR
        return _FILE if stat.S_ISREG(st.st_mode) else _OTHER

    def kind(self, path: str) -> str | None:
        if path in self.entries:
            return self.entries[path]
        return self._lower_kind(path)

    def check_parents(self, entry: str, path: str, *, lower_only: bool = False) -> None:
        for anc in _ancestors(path):
            k = self._lower_kind(anc) if lower_only else self.kind(anc)
            if k == _SYMLINK:
                raise UnsafeLayer(entry, f"its parent {anc!r} is a symlink")
            if k not in (None, _DIR):
                raise UnsafeLayer(entry, f"its parent {anc!r} is not a directory")


def _validate(members: Iterator, dest: str, max_bytes: int) -> _Plan:
    plan = _Plan(dest)
    total = 0
    root = _is_root()
    for _tf, m in members:
        path = _clean(m.name)
        base = path.rpartition("/")[2]
        if base.startswith(WHITEOUT_PREFIX):
            # whiteouts act on lower content only, before anything in this layer is written
            plan.check_parents(m.name, path, lower_only=True)
            if base == OPAQUE_MARKER:
                plan.opaque.add(_parent(path))
            else:
                target = base[len(WHITEOUT_PREFIX):]
                if target in ("", ".", "..") or target.startswith(WHITEOUT_PREFIX):
                    raise UnsafeLayer(m.name, "whiteout names no valid file")
                parent = _parent(path)
                plan.whiteouts.add(f"{parent}/{target}" if parent else target)
            continue
        if path == "":
            if not m.isdir():
                raise UnsafeLayer(m.name, "the layer root must be a directory")
            continue  # metadata of the root itself is never applied
        plan.check_parents(m.name, path)
        if m.isreg():
            if m.size < 0:
                raise UnsafeLayer(m.name, "negative size")
            total += m.size
            if total > max_bytes:
                raise UnsafeLayer(m.name, f"layer declares more than max_bytes={max_bytes} bytes")
            kind = _FILE
        elif m.isdir():
            kind = _DIR
        elif m.issym():
            if not m.linkname:
                raise UnsafeLayer(m.name, "symlink with an empty target")
            kind = _SYMLINK
        elif m.islnk():
            target = _clean(m.linkname, "hardlink target", m.name)
            if target == "" or target == path:
                raise UnsafeLayer(m.name, f"hardlink to {m.linkname!r} is invalid")
            plan.check_parents(m.name, target)
            tkind = plan.kind(target)
            if tkind is None:
                raise UnsafeLayer(m.name, f"hardlink target {m.linkname!r} does not exist")
            if tkind == _DIR:
                raise UnsafeLayer(m.name, f"hardlink target {m.linkname!r} is a directory")
            kind = tkind
        elif m.ischr() or m.isblk():
            if not root:
                raise UnsafeLayer(m.name, "device nodes need root")
            kind = _OTHER
        elif m.isfifo():
            kind = _OTHER
        else:
            raise UnsafeLayer(m.name, f"unsupported tar member type {m.type!r}")
        plan.entries[path] = kind
    return plan


# ---------------------------------------------------------------------------- application


def remove_path(path: str) -> None:
    """Remove whatever is at `path` (a tree, a file, a link), never following a link."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _apply_deletions(plan: _Plan, stats: LayerStats) -> None:
    for d in sorted(plan.opaque):
        full = os.path.join(plan.dest, d)
        st = _lstat(full)
        if st is not None and stat.S_ISDIR(st.st_mode):
            for child in os.listdir(full):
                remove_path(os.path.join(full, child))
        stats.opaque_dirs += 1
    for w in sorted(plan.whiteouts):
        remove_path(os.path.join(plan.dest, w))
        stats.whiteouts += 1


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _ensure_parents(dest: str, path: str) -> None:
    for anc in _ancestors(path):
        full = os.path.join(dest, anc)
        st = _lstat(full)
        if st is None:
            os.mkdir(full, 0o755)
        elif not stat.S_ISDIR(st.st_mode):  # validated away; belt and braces
            raise LayerError(f"parent {anc!r} is not a directory")


def _set_xattrs(full: str, m: tarfile.TarInfo, stats: LayerStats, root: bool) -> None:
    for key, value in m.pax_headers.items():
        if not key.startswith(_XATTR_PREFIX):
            continue
        name = key[len(_XATTR_PREFIX):]
        if not root and not name.startswith("user."):
            stats.xattrs_skipped += 1
            continue
        data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        try:
            os.setxattr(full, name, data, follow_symlinks=False)
            stats.xattrs += 1
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM) and not root:
                stats.xattrs_skipped += 1
            else:
                raise LayerError(f"cannot set xattr {name} on {m.name!r}: {e}") from None


def _apply_entries(members: Iterator, plan: _Plan, stats: LayerStats) -> None:
    dest = plan.dest
    root = _is_root()
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    for tf, m in members:
        path = _clean(m.name)
        base = path.rpartition("/")[2]
        if path == "" or base.startswith(WHITEOUT_PREFIX):
            continue
        full = os.path.join(dest, path)
        _ensure_parents(dest, path)
        st = _lstat(full)
        if m.isdir():
            if st is not None and not stat.S_ISDIR(st.st_mode):
                os.unlink(full)
                st = None
            if st is None:
                os.mkdir(full, 0o700)
            dirs.append((full, m))
            stats.dirs += 1
        else:
            if st is not None:
                remove_path(full)
            if m.isreg():
                fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out:
                    src = tf.extractfile(m)
                    assert src is not None
                    shutil.copyfileobj(src, out, _CHUNK)
                stats.files += 1
                stats.bytes += m.size
            elif m.issym():
                os.symlink(m.linkname, full)
                stats.symlinks += 1
            elif m.islnk():
                os.link(os.path.join(dest, _clean(m.linkname)), full, follow_symlinks=False)
                stats.hardlinks += 1
                continue  # shares the target's inode and metadata
            elif m.ischr() or m.isblk():
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                os.mknod(full, 0o600 | kind, os.makedev(m.devmajor, m.devminor))
                stats.devices += 1
            elif m.isfifo():
                os.mkfifo(full, 0o600)
                stats.fifos += 1
        if root:
            os.lchown(full, m.uid, m.gid)
        if m.isdir():
            continue  # mode/xattrs/mtime later, after the children are written
        if not m.issym():
            os.chmod(full, m.mode & 0o7777)
        _set_xattrs(full, m, stats, root)
        os.utime(full, (m.mtime, m.mtime), follow_symlinks=False)
    for full, m in reversed(dirs):
        os.chmod(full, m.mode & 0o7777)
        _set_xattrs(full, m, stats, root)
        os.utime(full, (m.mtime, m.mtime), follow_symlinks=False)


def apply_layer(
    src: str | os.PathLike[str] | BinaryIO,
    dest_dir: str | os.PathLike[str],
    *,
    compression: str = "auto",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> LayerStats:
    """Apply one layer tarball (path or binary file object) onto dest_dir.

    compression: "auto" (by magic bytes), "none", "gzip" or "zstd".  Raises UnsafeLayer (dest
    unchanged) for hostile entries, LayerError for unreadable input.
    """
    dest = os.path.abspath(os.fspath(dest_dir))
    if not os.path.isdir(dest) or os.path.islink(dest):
        raise LayerError(f"layer destination {dest!r} is not a directory")
    spool_dir = os.path.dirname(dest)
    with _tar_source(src, compression, spool_dir) as (stream, gz):
        plan = _validate(_members(stream, gz), dest, max_bytes)
        stats = LayerStats()
        _apply_deletions(plan, stats)
        _apply_entries(_members(stream, gz), plan, stats)
    return stats


# ---------------------------------------------------------------------------- diff


def add_entry(tf: tarfile.TarFile, full: str, rel: str, st: os.stat_result,
              links: dict[tuple[int, int], str]) -> tarfile.TarInfo:
    """Write the file at `full` into `tf` as `rel` (numeric owners, mode, mtime, xattrs);
    a regular file seen before under another name (same inode, in `links`) becomes a
    hardlink entry. Returns the entry written."""
    ti = _tarinfo(full, rel, st)
    if ti.isreg() and st.st_nlink > 1:
        key = (st.st_dev, st.st_ino)
        if key in links:
            ti.type, ti.linkname, ti.size = tarfile.LNKTYPE, links[key], 0
        else:
            links[key] = rel
    if ti.isreg():
        with open(full, "rb") as f:
            tf.addfile(ti, f)
    else:
        tf.addfile(ti)
    return ti


def _tarinfo(full: str, arcname: str, st: os.stat_result) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(arcname)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.mtime = int(st.st_mtime)
    if stat.S_ISREG(st.st_mode):
        ti.type, ti.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(st.st_mode):
        ti.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(full)
    elif stat.S_ISFIFO(st.st_mode):
        ti.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        raise LayerError(f"cannot put {full!r} (a socket?) in a layer")
    try:
        names = os.listxattr(full, follow_symlinks=False)
    except OSError:
        names = []
    for name in names:
        try:
            value = os.getxattr(full, name, follow_symlinks=False)
        except OSError:
            continue
        ti.pax_headers[_XATTR_PREFIX + name] = value.decode("utf-8", "surrogateescape")
    return ti


def _same_content(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(_CHUNK), fb.read(_CHUNK)
            if x != y:
                return False
            if not x:
                return True


def _unchanged(a: str, sa: os.stat_result, b: str, sb: os.stat_result) -> bool:
    if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
        return False
    if (sa.st_mode, sa.st_uid, sa.st_gid) != (sb.st_mode, sb.st_uid, sb.st_gid):
        return False
    if stat.S_ISDIR(sa.st_mode):
        return True  # a directory's own mtime changes with its children; compare metadata only
    if int(sa.st_mtime) != int(sb.st_mtime) or sa.st_size != sb.st_size:
        return False
    if stat.S_ISLNK(sa.st_mode):
        return os.readlink(a) == os.readlink(b)
    if stat.S_ISCHR(sa.st_mode) or stat.S_ISBLK(sa.st_mode):
        return sa.st_rdev == sb.st_rdev
    if stat.S_ISREG(sa.st_mode):
        return _same_content(a, b)
    return True


def write_diff(
    base_dir: str | os.PathLike[str], changed_dir: str | os.PathLike[str], out_fileobj: BinaryIO
) -> int:
    """Write an uncompressed layer tar turning base_dir into changed_dir; return entry count.

    Added/changed entries are written in full (hardlinks among written files are kept);
    deletions become ``.wh.NAME`` whiteouts.  Symlinks are never followed.
    """
    base, changed = os.fspath(base_dir), os.fspath(changed_dir)
    count = 0
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out_fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tf:

        def add(full: str, rel: str, st: os.stat_result) -> None:
            nonlocal count
            add_entry(tf, full, rel, st, links)
            count += 1

        def walk(rel: str, base_exists: bool) -> None:
            nonlocal count
            cdir = os.path.join(changed, rel) if rel else changed
            bdir = os.path.join(base, rel) if rel else base
            names = sorted(os.listdir(cdir))
            if base_exists:
                for gone in sorted(set(os.listdir(bdir)) - set(names)):
                    ti = tarfile.TarInfo(f"{rel}/{WHITEOUT_PREFIX}{gone}".lstrip("/"))
                    tf.addfile(ti)
                    count += 1
            for name in names:
                r = f"{rel}/{name}" if rel else name
                c, b = os.path.join(cdir, name), os.path.join(bdir, name)
                sc = os.lstat(c)
                sb = _lstat(b) if base_exists else None
                if sb is None or not _unchanged(b, sb, c, sc):
                    add(c, r, sc)
                if stat.S_ISDIR(sc.st_mode):
                    walk(r, sb is not None and stat.S_ISDIR(sb.st_mode))

        walk("", True)
    return count
