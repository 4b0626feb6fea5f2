"""Apply (and produce) OCI/Docker layer tarballs, safely, with whiteout semantics.

Two ways to use a layer, one validation:

* ``apply_layer(src, dest)`` applies the layer *onto* a tree (a merged root filesystem):
  ``.wh.NAME`` whiteouts delete NAME from what is already in dest, ``.wh..wh..opq`` empties
  a directory's lower content.
* ``unpack_layer(src, dest)`` unpacks the layer into an *empty* directory in overlayfs's own
  layer format, the way the store keeps layers for overlay mounts: a whiteout becomes a
  character device 0:0, an opaque marker the xattr ``trusted.overlay.opaque=y``
  (``user.overlay.opaque`` when not root).

Both work in two passes over the (uncompressed) archive. Pass one reads the headers only,
validates every member and touches nothing; any hostile entry raises ``UnsafeLayer`` naming
it, and dest is unchanged. Pass two writes the entries without following any symlink.

Speed: compressed input is decompressed once into a spool file (never twice); the headers
are parsed once and kept for pass two; file contents go from the archive to the new file
with ``copy_file_range(2)`` (no copy through Python) when the source is a real file; files
are created with their final permission bits and their owner, mode and times are set
through the open descriptor. Nothing is fsynced here: callers that publish the result
(the store) make it durable once for the whole layer.

``write_diff`` is the inverse: compare two trees and write a layer tar of the changes.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import BinaryIO

from sangja.errors import SangjaError
from sangja.records import dataclass

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FileRegion",
    "LayerError",
    "LayerStats",
    "LayerTooLarge",
    "STORE_LIMITS",
    "UnpackLimits",
    "UnsafeLayer",
    "apply_layer",
    "bounded",
    "decompress",
    "decompressed",
    "detect_compression",
    "unpack_layer",
    "unpack_stream",
    "write_diff",
]

DEFAULT_MAX_BYTES = 64 << 30  # UnpackLimits.max_size
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_XATTR_PREFIX = "SCHILY.xattr."
# overlayfs's own metadata: a layer must not forge it (opaque dirs, redirects, metacopy)
_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20
_READAHEAD = 64 << 10
_MAX_HEADER = 16 << 20  # a tar header (pax records, GNU long names) read in one piece


class LayerError(SangjaError):
    """A layer could not be read or applied (bad compression, missing zstd, I/O)."""


class UnsafeLayer(LayerError, ValueError):
    """A layer entry is hostile or impossible; dest was left unchanged."""

    def __init__(self, entry: str, why: str):
        super().__init__(f"unsafe layer entry {entry!r}: {why}")
        self.entry = entry
        self.why = why


class LayerTooLarge(LayerError):
    """A layer (or archive) would expand past an UnpackLimits bound; nothing was kept."""


# Environment variables that set the unpack limits (docs/engine.md, "Unpack limits").
ENV_MAX_SIZE = "SANGJA_LAYER_MAX_SIZE"
ENV_MAX_RATIO = "SANGJA_LAYER_MAX_RATIO"
ENV_RATIO_FLOOR = "SANGJA_LAYER_RATIO_FLOOR"
ENV_MAX_ENTRIES = "SANGJA_LAYER_MAX_ENTRIES"


@dataclass(frozen=True)
class UnpackLimits:
    """How far a layer may expand: a compressed stream is decompressed (and a tar's files
    are written) only up to these bounds, so a small crafted archive cannot fill the disk
    (a gzip stream expands up to ~1000 times, zstd far more; a sparse tar entry declares
    any size it likes). Past a bound the layer is refused and nothing of it is kept.

    - ``max_size``: the uncompressed tar of one layer, and the sum of its files' sizes,
      at most this many bytes (an archive's whole uncompressed content too).
    - ``max_ratio``: ... at most this many times the compressed size (0: no ratio
      bound), once past ``ratio_floor`` (small layers of zeros are fine).
    - ``max_entries``: tar entries in one layer (each costs memory while it is checked).
    """

    max_size: int = DEFAULT_MAX_BYTES
    max_ratio: int = 100
    ratio_floor: int = 256 << 20
    max_entries: int = 1_000_000

    @classmethod
    def from_env(cls, environ=None) -> UnpackLimits:
        """The defaults, overridden by SANGJA_LAYER_MAX_SIZE (a size: 8g, 512m, bytes),
        SANGJA_LAYER_MAX_RATIO, SANGJA_LAYER_RATIO_FLOOR (a size) and
        SANGJA_LAYER_MAX_ENTRIES. A value that does not parse is a LayerError."""
        env = os.environ if environ is None else environ
        values = {}
        for name, var, size in (("max_size", ENV_MAX_SIZE, True),
                                ("max_ratio", ENV_MAX_RATIO, False),
                                ("ratio_floor", ENV_RATIO_FLOOR, True),
                                ("max_entries", ENV_MAX_ENTRIES, False)):
            text = env.get(var, "").strip()
            if not text:
                continue
            try:
                if size:
                    from sangja.engine.units import ram_in_bytes

                    values[name] = ram_in_bytes(text)
                else:
                    values[name] = int(text)
            except ValueError:
                raise LayerError(f"{var}={text!r}: expected "
                                 f"{'a size (8g, 512m, bytes)' if size else 'a number'}"
                                 ) from None
            if values[name] < 0:
                raise LayerError(f"{var}={text!r}: must not be negative")
        return cls(**values)

    def allowed(self, compressed: int | None) -> int:
        """Bytes a layer of `compressed` bytes (None: not compressed) may expand to."""
        if self.max_ratio and compressed is not None:
            return min(self.max_size, max(self.ratio_floor, compressed * self.max_ratio))
        return self.max_size

    def too_large(self, compressed: int | None, what: str = "expands past") -> LayerTooLarge:
        """The error for going past allowed(compressed), naming the setting to change.
        The message has no subject: callers prefix the layer's (or archive's) name."""
        limit = self.allowed(compressed)
        if limit < self.max_size:
            why = (f"the limit for a layer of {binary_size(compressed or 0)} as stored: "
                   f"{ENV_MAX_RATIO}={self.max_ratio} times that, at least "
                   f"{ENV_RATIO_FLOOR}={binary_size(self.ratio_floor)}")
        else:
            why = f"{ENV_MAX_SIZE}={binary_size(self.max_size)}"
        return LayerTooLarge(f"{what} {binary_size(limit)} ({why}): refused")

    def too_many_entries(self) -> LayerTooLarge:
        return LayerTooLarge(f"has more than {self.max_entries} entries (see "
                             f"{ENV_MAX_ENTRIES}): refused")


def binary_size(n: int) -> str:
    """1073741824 -> "1 GiB", 1610612736 -> "1.5 GiB", 1000 -> "1000 bytes": how the
    limits are written (SANGJA_LAYER_MAX_SIZE=64m means 64 MiB)."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.4g} {unit}"
    return f"{n} bytes"


# For layers the store made itself (commit, bootstrap, import_rootfs) or checked against
# the limits when they came in, unpacked again later (a removed layer directory): what
# every layer was held to before the limits, 64 GiB of files and nothing else.
STORE_LIMITS = UnpackLimits(max_ratio=0, max_entries=1 << 62)


def bounded(write: Callable[[bytes], object], limit: int,
            error: Callable[[], Exception]) -> Callable[[bytes], None]:
    """write(), refusing with error() once more than `limit` bytes went through."""
    left = limit

    def bounded_write(chunk: bytes) -> None:
        nonlocal left
        left -= len(chunk)
        if left < 0:
            raise error()
        write(chunk)

    return bounded_write


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


@dataclass(frozen=True)
class FileRegion:
    """A layer stored in part of a file (``size`` bytes at ``offset`` of the open file
    ``f``), e.g. a member of an image archive: read in place, never copied out first."""

    f: BinaryIO
    offset: int
    size: int


class _Window:
    """A bounded, seekable, read-only view of bytes [base, base + size) of a file: pread(2)
    with a small read-ahead when there is a descriptor (``fd``), seek + read otherwise."""

    def __init__(self, fd: int | None, base: int, size: int, fobj: BinaryIO | None = None):
        self.fd, self.base, self.size, self._f = fd, base, size, fobj
        self.pos = 0
        self._buf = b""
        self._buf_at = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self.pos
        elif whence == 2:
            pos += self.size
        self.pos = max(0, pos)
        return self.pos

    def _pread(self, n: int, at: int) -> bytes:
        if self.fd is not None:
            return os.pread(self.fd, n, self.base + at)
        assert self._f is not None
        self._f.seek(self.base + at)
        return self._f.read(n)

    def read(self, n: int | None = -1) -> bytes:
        left = self.size - self.pos
        if n is None or n < 0 or n > left:
            n = left
        if n <= 0:
            return b""
        off = self.pos - self._buf_at
        if 0 <= off and off + n <= len(self._buf):
            data = self._buf[off:off + n]
        elif n >= _READAHEAD:
            parts = []
            got = 0
            while got < n:
                part = self._pread(n - got, self.pos + got)
                if not part:
                    break
                parts.append(part)
                got += len(part)
            data = b"".join(parts)
        else:
            self._buf = self._pread(min(_READAHEAD, left), self.pos)
            self._buf_at = self.pos
            data = self._buf[:n]
        self.pos += len(data)
        return data


def _big_pipe(f) -> None:
    """1 MiB pipe buffers instead of 64 KiB: 16 times fewer switches between the two
    processes (best effort: the system's pipe-max-size may be smaller)."""
    import fcntl

    try:
        fcntl.fcntl(f.fileno(), fcntl.F_SETPIPE_SZ, _CHUNK)
    except (OSError, AttributeError):
        pass


@contextmanager
def _command_stream(argv: list[str], failed: str, read: Callable[[int], bytes]
                    ) -> Iterator[Callable[[int], bytes]]:
    """Decompress through a command (stdin to stdout), fed by a thread: yields read(n) of
    its output (what has arrived, b"" at the end), so the decompression runs on another
    core while the caller's thread hashes and writes. The caller reads to the end; leaving
    early (an exception) kills the command. A failed source read (a download) is the
    error raised, whatever the caller's reads made of the cut-short output."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin, stderr = proc.stdin, proc.stderr  # narrowed, for the threads' functions
    _big_pipe(proc.stdin)
    _big_pipe(proc.stdout)
    errors: list[bytes] = []
    failed_read: list[BaseException] = []

    def feed() -> None:
        try:
            while chunk := read(_CHUNK):
                stdin.write(chunk)
        except (BrokenPipeError, ValueError):
            pass
        except BaseException as e:  # the source failed (a download): that is the error
            failed_read.append(e)
            proc.kill()
        finally:
            try:
                stdin.close()
            except BrokenPipeError:
                pass

    feeder = threading.Thread(target=feed, daemon=True)
    drain = threading.Thread(target=lambda: errors.append(stderr.read()), daemon=True)
    feeder.start()
    drain.start()
    out_fd = proc.stdout.fileno()
    raised: Exception | None = None
    try:
        yield lambda n: os.read(out_fd, n if n and n > 0 else _CHUNK)
    except BaseException as e:
        proc.kill()  # the reader refused (a limit, a hostile entry): stop at once
        if not isinstance(e, Exception):
            raise
        raised = e
    finally:
        proc.stdout.close()
        if proc.poll() is None and feeder.is_alive():
            proc.kill()
        feeder.join()
        drain.join()
        rc = proc.wait()
    if failed_read:
        raise failed_read[0]
    if raised is not None:
        raise raised
    if rc != 0:
        msg = b"".join(errors).decode(errors="replace").strip()
        raise LayerError(f"{failed}: {msg or f'exit status {rc}'}")


# igzip (Debian's isal package, Intel ISA-L) inflates about 3.5 times as fast as zlib, in a
# process of its own: used for gzip layers when installed ($SANGJA_IGZIP=0: never).
_IGZIP = "igzip"


def _igzip() -> str | None:
    if os.environ.get("SANGJA_IGZIP", "").strip() == "0":
        return None
    return shutil.which(_IGZIP)


def _zlib_chunks(read: Callable[[int], bytes]) -> Iterator[bytes]:
    """gzip (members one after another) inflated in this thread, in pieces of at most
    _CHUNK: one megabyte of gzip can hold a gigabyte."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        while data := read(_CHUNK):
            while data:
                if out := d.decompress(data, _CHUNK):
                    yield out
                if not d.eof:
                    data = d.unconsumed_tail
                elif data := d.unused_data:  # concatenated gzip members
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while not d.eof and (out := d.decompress(b"", _CHUNK)):  # output held back
            yield out
        if not d.eof:
            raise LayerError("corrupt gzip data in layer: truncated stream")
        if out := d.flush():
            yield out
    except zlib.error as e:
        raise LayerError(f"corrupt gzip data in layer: {e}") from None


@contextmanager
def decompressed(compression: str, read: Callable[[int], bytes]
                 ) -> Iterator[Callable[[int], bytes]]:
    """``read`` (gzip, zstd or plain) as a read(n) of its uncompressed bytes (chunks of
    whatever size arrives, b"" at the end). Read it to the end inside the block: a
    command's exit status and a truncated stream are checked there."""
    if compression in ("gzip", "gz"):
        exe = _igzip()
        if exe is not None:
            with _command_stream([exe, "-d", "-c"], "corrupt gzip data in layer",
                                 read) as out:
                yield out
            return
        chunks = _zlib_chunks(read)
        yield lambda n: next(chunks, b"")
    elif compression == "zstd":
        exe = shutil.which("zstd")
        if exe is None:
            raise LayerError("layer is zstd-compressed but the 'zstd' command is not "
                             "installed")
        with _command_stream([exe, "-d", "-c", "-q"], "zstd failed to decompress the layer",
                             read) as out:
            yield out
    elif compression in ("none", "tar"):
        yield read
    else:
        raise LayerError(f"unknown layer compression {compression!r}")


def decompress(compression: str, read: Callable[[int], bytes],
               write: Callable[[bytes], object]) -> None:
    """Stream ``read`` (gzip, zstd or plain) to ``write`` uncompressed."""
    with decompressed(compression, read) as out:
        while chunk := out(_CHUNK):
            write(chunk)


def _size_from(fd: int, base: int) -> int:
    return max(0, os.fstat(fd).st_size - base)


@contextmanager
def _plain_tar(src: str | os.PathLike[str] | BinaryIO | FileRegion, compression: str,
               spool_dir: str, limits: UnpackLimits) -> Iterator[tuple[_Window, int]]:
    """A window over the uncompressed layer tar (in place for plain input, else a spool
    file it was decompressed to once, at most limits.allowed(its size) bytes), and the
    size of the input as given."""
    with _raw_window(src, spool_dir) as raw:
        if compression == "auto":
            compression = detect_compression(raw.read(4))
            raw.seek(0)
        if compression in ("none", "tar"):
            yield raw, raw.size
            return
        with tempfile.TemporaryFile(prefix=".layer-", dir=spool_dir) as tmp:
            decompress(compression, raw.read, bounded(
                tmp.write, limits.allowed(raw.size), lambda: limits.too_large(raw.size)))
            tmp.flush()
            yield _Window(tmp.fileno(), 0, tmp.tell()), raw.size


@contextmanager
def _raw_window(src, spool_dir: str) -> Iterator[_Window]:
    if isinstance(src, FileRegion):
        fd = _fileno(src.f)
        yield _Window(fd, src.offset, src.size, None if fd is not None else src.f)
        return
    if isinstance(src, str | os.PathLike):
        with open(src, "rb") as f:
            yield _Window(f.fileno(), 0, _size_from(f.fileno(), 0))
        return
    try:
        start = src.tell()
        src.seek(start)
        seekable = bool(getattr(src, "seekable", lambda: True)())
    except (AttributeError, OSError, ValueError):
        seekable = False
    if seekable:
        fd = _fileno(src)
        if fd is not None:
            yield _Window(fd, start, _size_from(fd, start))
        else:
            end = src.seek(0, 2)
            src.seek(start)
            yield _Window(None, start, end - start, src)
        return
    with tempfile.TemporaryFile(prefix=".layer-", dir=spool_dir) as tmp:
        shutil.copyfileobj(src, tmp, _CHUNK)
        tmp.flush()
        yield _Window(tmp.fileno(), 0, tmp.tell())


def _fileno(f) -> int | None:
    try:
        fd = f.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    try:
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except OSError:
        return None


def _read_members(win: _Window, max_entries: int | None = None,
                  ) -> tuple[tarfile.TarFile, list[tarfile.TarInfo]]:
    """Every member header (data skipped by seeking); LayerError on a broken archive,
    LayerTooLarge past `max_entries`."""
    try:
        tf = tarfile.open(fileobj=win, mode="r:")  # type: ignore[call-overload]  # reads only
        if max_entries is None:
            return tf, tf.getmembers()
        while tf.next() is not None:
            if len(tf.members) > max_entries:
                raise UnpackLimits(max_entries=max_entries).too_many_entries()
        return tf, tf.members
    except (tarfile.TarError, EOFError, OSError) as e:
        raise LayerError(f"cannot read layer archive: {e}") from None


def _copier(tf: tarfile.TarFile, win: _Window) -> Callable[[tarfile.TarInfo, int], None]:
    """copy(member, out_fd): the member's content into out_fd (at its position)."""
    fd = win.fd

    def slow(m: tarfile.TarInfo, out: int) -> None:
        src = tf.extractfile(m)
        assert src is not None
        left = m.size
        try:
            while left > 0:
                chunk = src.read(min(_CHUNK, left))
                if not chunk:
                    raise LayerError(f"layer entry {m.name!r}: unexpected end of data")
                left -= len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
        except tarfile.TarError as e:
            raise LayerError(f"layer entry {m.name!r}: {e}") from None

    if fd is None:
        return slow
    state = {"cfr": hasattr(os, "copy_file_range")}

    def fast(m: tarfile.TarInfo, out: int) -> None:
        if m.sparse is not None or not state["cfr"]:
            return slow(m, out)
        if m.offset_data + m.size > win.size:
            raise LayerError(f"layer entry {m.name!r}: unexpected end of data")
        off, left = win.base + m.offset_data, m.size
        while left > 0:
            try:
                n = os.copy_file_range(fd, out, left, off)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                                   errno.EBADF, errno.EPERM):
                    raise
                state["cfr"] = False
                return _pread_copy(fd, out, off, left, m.name)
            if n == 0:
                raise LayerError(f"layer entry {m.name!r}: unexpected end of data")
            off += n
            left -= n

    return fast


def _pread_copy(fd: int, out: int, off: int, left: int, name: str) -> None:
    while left > 0:
        chunk = os.pread(fd, min(_CHUNK, left), off)
        if not chunk:
            raise LayerError(f"layer entry {name!r}: unexpected end of data")
        off += len(chunk)
        left -= len(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(out, view):]


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

    def __init__(self, dest: str, lower: bool = True):
        self.dest = dest
        self.lower = lower  # False: dest started empty (and is being written as we go)
        self.entries: dict[str, str] = {}  # path -> kind, as created by this archive
        self.whiteouts: set[str] = set()
        self.opaque: set[str] = set()
        self.markers: dict[str, str] = {}  # whiteout/opaque path -> the member naming it

    def _deleted_in_lower(self, path: str) -> bool:
        if path == "":
            return False
        ancestors = _ancestors(path)
        if path in self.whiteouts or any(a in self.whiteouts for a in ancestors):
            return True
        return any(a in self.opaque for a in ["", *ancestors])

    def _lower_kind(self, path: str) -> str | None:
        """Kind of path in dest after the layer's deletions (None: absent)."""
        if not self.lower or self._deleted_in_lower(path):
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


class _Checker:
    """Validation of a layer's members, one at a time in archive order, against a _Plan:
    any hostile member raises UnsafeLayer naming it; the files' declared sizes add up to
    at most ``max_bytes`` (``too_large()``: the error past it)."""

    def __init__(self, plan: _Plan, max_bytes: int, overlay: bool,
                 too_large: Callable[[], Exception] | None):
        self.plan, self.max_bytes, self.overlay, self.too_large = (plan, max_bytes, overlay,
                                                                   too_large)
        self.total = 0
        self.root = _is_root()

    def member(self, m: tarfile.TarInfo) -> str:
        """Check one member; return its clean path."""
        plan = self.plan
        path = _clean(m.name)
        base = path.rpartition("/")[2]
        if base.startswith(WHITEOUT_PREFIX):
            # whiteouts act on lower content only, before anything in this layer is written
            plan.check_parents(m.name, path, lower_only=True)
            if base == OPAQUE_MARKER:
                target = _parent(path)
                plan.opaque.add(target)
            else:
                name = base[len(WHITEOUT_PREFIX):]
                if name in ("", ".", "..") or name.startswith(WHITEOUT_PREFIX):
                    raise UnsafeLayer(m.name, "whiteout names no valid file")
                parent = _parent(path)
                target = f"{parent}/{name}" if parent else name
                plan.whiteouts.add(target)
            plan.markers.setdefault(target, m.name)
            return path
        if path == "":
            if not m.isdir():
                raise UnsafeLayer(m.name, "the layer root must be a directory")
            return path  # metadata of the root itself is never applied
        plan.check_parents(m.name, path)
        if m.isreg():
            if m.size < 0:
                raise UnsafeLayer(m.name, "negative size")
            self.total += m.size
            if self.total > self.max_bytes:
                if self.too_large is not None:
                    raise self.too_large()
                raise UnsafeLayer(m.name, f"layer declares more than max_bytes="
                                          f"{self.max_bytes} bytes")
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
            if not self.root:
                raise UnsafeLayer(m.name, "device nodes need root")
            kind = _OTHER
        elif m.isfifo():
            kind = _OTHER
        else:
            raise UnsafeLayer(m.name, f"unsupported tar member type {m.type!r}")
        plan.entries[path] = kind
        return path

    def finish(self) -> None:
        """After the last member: in overlay format the markers become files of their own
        (devices, xattrs) once the entries are in: their parents must be directories in
        the final layer, and an opaque marker's directory a directory."""
        if not self.overlay:
            return
        plan = self.plan
        for target in sorted(plan.whiteouts | plan.opaque):
            entry = plan.markers[target]
            if target in plan.whiteouts and target in plan.entries:
                continue  # re-created in this layer: the entry wins
            plan.check_parents(entry, target)
            kind = plan.kind(target) if target in plan.opaque else None
            if kind == _SYMLINK:
                raise UnsafeLayer(entry, f"opaque marker in {target!r}, which is a symlink")
            if kind not in (None, _DIR):
                raise UnsafeLayer(entry, f"opaque marker in {target!r}, not a directory")


def _validate(members: list[tarfile.TarInfo], dest: str, max_bytes: int,
              overlay: bool = False, too_large: Callable[[], Exception] | None = None
              ) -> _Plan:
    plan = _Plan(dest)
    checker = _Checker(plan, max_bytes, overlay, too_large)
    for m in members:
        checker.member(m)
    checker.finish()
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


def _set_xattrs(target: str | int, m: tarfile.TarInfo, stats: LayerStats, root: bool) -> None:
    for key, value in m.pax_headers.items():
        if not key.startswith(_XATTR_PREFIX):
            continue
        name = key[len(_XATTR_PREFIX):]
        if name.startswith(_OVERLAY_XATTRS) or (not root and not name.startswith("user.")):
            stats.xattrs_skipped += 1
            continue
        data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        try:
            if isinstance(target, int):
                os.setxattr(target, name, data)
            else:
                os.setxattr(target, name, data, follow_symlinks=False)
            stats.xattrs += 1
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM) and not root:
                stats.xattrs_skipped += 1
            else:
                raise LayerError(f"cannot set xattr {name} on {m.name!r}: {e}") from None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _Writer:
    """Pass two: creates the entries under dest, never following a symlink (the plan has
    vouched for every parent; names are created with O_EXCL / EEXIST handling, so an
    unexpected file in the way is removed, not written through)."""

    def __init__(self, plan: _Plan, stats: LayerStats, copy):
        self.dest = plan.dest
        self.plan = plan
        self.stats = stats
        self.copy = copy
        self.root = _is_root()
        self.umask = _umask()
        self.known_dirs: set[str] = {""}  # relative paths known to be directories now
        self.dirs: dict[str, tarfile.TarInfo] = {}  # directory entries: metadata at the end

    # -- paths ---------------------------------------------------------------------------
    def parents(self, path: str) -> None:
        parent = _parent(path)
        if parent in self.known_dirs:
            return
        for anc in _ancestors(path):
            if anc in self.known_dirs:
                continue
            full = f"{self.dest}/{anc}"
            st = _lstat(full)
            if st is None:
                os.mkdir(full, 0o755)
            elif not stat.S_ISDIR(st.st_mode):  # validated away; belt and braces
                raise LayerError(f"parent {anc!r} is not a directory")
            self.known_dirs.add(anc)

    def clear(self, path: str, full: str) -> None:
        """Remove what is at path (to be replaced) and forget it was a directory."""
        remove_path(full)
        if path in self.known_dirs:
            prefix = path + "/"
            self.known_dirs = {d for d in self.known_dirs if d != path
                               and not d.startswith(prefix)}
            self.dirs = {d: m for d, m in self.dirs.items() if d != path
                         and not d.startswith(prefix)}

    def create(self, path: str, full: str, make: Callable[[], object]):
        try:
            return make()
        except FileExistsError:
            self.clear(path, full)
            return make()

    # -- entries -------------------------------------------------------------------------
    def entry(self, m: tarfile.TarInfo, path: str) -> None:
        full = f"{self.dest}/{path}"
        self.parents(path)
        stats, root = self.stats, self.root
        if m.isdir():
            try:
                os.mkdir(full, 0o700)
            except FileExistsError:
                st = os.lstat(full)
                if not stat.S_ISDIR(st.st_mode):
                    self.clear(path, full)
                    os.mkdir(full, 0o700)
            self.known_dirs.add(path)
            self.dirs.pop(path, None)  # the last entry of a directory has the last word
            self.dirs[path] = m
            stats.dirs += 1
            return
        if m.isreg():
            perm = m.mode & 0o7777
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = self.create(path, full, lambda: os.open(full, flags, perm & 0o777))
            try:
                if m.size:
                    self.copy(m, fd)
                if root:
                    os.fchown(fd, m.uid, m.gid)
                # created with perm & ~umask: fix up when that is not perm (umask, or
                # setuid/setgid/sticky bits, which must come after the chown anyway)
                if perm & ~0o777 or perm & self.umask:
                    os.fchmod(fd, perm)
                _set_xattrs(fd, m, stats, root)
                os.utime(fd, (m.mtime, m.mtime))
            finally:
                os.close(fd)
            stats.files += 1
            stats.bytes += m.size
            return
        if m.islnk():
            target = f"{self.dest}/{_clean(m.linkname)}"
            self.create(path, full, lambda: os.link(target, full, follow_symlinks=False))
            stats.hardlinks += 1
            return  # shares the target's inode and metadata
        if m.issym():
            self.create(path, full, lambda: os.symlink(m.linkname, full))
            stats.symlinks += 1
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            dev = os.makedev(m.devmajor, m.devminor)
            self.create(path, full, lambda: os.mknod(full, 0o600 | kind, dev))
            stats.devices += 1
        elif m.isfifo():
            self.create(path, full, lambda: os.mkfifo(full, 0o600))
            stats.fifos += 1
        if root:
            os.lchown(full, m.uid, m.gid)
        if not m.issym():
            os.chmod(full, m.mode & 0o7777, follow_symlinks=False)
        _set_xattrs(full, m, stats, root)
        os.utime(full, (m.mtime, m.mtime), follow_symlinks=False)

    def overlay_markers(self) -> None:
        """Whiteouts as 0:0 character devices, opaque markers as xattrs (overlay format)."""
        plan, stats = self.plan, self.stats
        for w in sorted(plan.whiteouts):
            if w in plan.entries:
                continue  # a whiteout and a re-creation of the same name: the entry wins
            self.parents(w)
            full = f"{self.dest}/{w}"
            self.create(w, full, partial(os.mknod, full, stat.S_IFCHR, 0))
            stats.whiteouts += 1
        name = "trusted.overlay.opaque" if self.root else "user.overlay.opaque"
        for d in sorted(plan.opaque):
            full = f"{self.dest}/{d}" if d else self.dest
            if d not in self.known_dirs:
                self.parents(d)
                try:
                    os.mkdir(full, 0o755)
                except FileExistsError:
                    pass
                self.known_dirs.add(d)
            try:
                os.setxattr(full, name, b"y", follow_symlinks=False)
            except OSError as e:
                raise LayerError(f"cannot mark {d or '/'!r} opaque ({name}): {e}") from None
            stats.opaque_dirs += 1

    def finish(self) -> None:
        """Directory metadata last (writing children changes a directory's mtime), deepest
        first so a read-only directory does not block its children's."""
        stats, root = self.stats, self.root
        for path in sorted(self.dirs, key=lambda p: p.count("/"), reverse=True):
            m = self.dirs[path]
            full = f"{self.dest}/{path}"
            if root:
                os.lchown(full, m.uid, m.gid)
            os.chmod(full, m.mode & 0o7777)
            _set_xattrs(full, m, stats, root)
            os.utime(full, (m.mtime, m.mtime), follow_symlinks=False)


def _write_entries(members: list[tarfile.TarInfo], plan: _Plan, stats: LayerStats, copy,
                   overlay: bool) -> None:
    w = _Writer(plan, stats, copy)
    for m in members:
        path = _clean(m.name)
        if path == "" or path.rpartition("/")[2].startswith(WHITEOUT_PREFIX):
            continue
        w.entry(m, path)
    if overlay:
        w.overlay_markers()
    w.finish()


def _check_dest(dest_dir) -> str:
    dest = os.path.abspath(os.fspath(dest_dir))
    if not os.path.isdir(dest) or os.path.islink(dest):
        raise LayerError(f"layer destination {dest!r} is not a directory")
    return dest


def _content_bound(limits: UnpackLimits, given: int | None, max_bytes: int | None):
    """(max_bytes, too_large) for _validate: the files of a layer whose input was `given`
    bytes add up to at most limits.allowed(given) (a sparse entry costs the tar nothing),
    or to max_bytes when the caller asked for less (then UnsafeLayer names the entry)."""
    limit = limits.allowed(given)
    if max_bytes is not None and max_bytes < limit:
        return max_bytes, None
    return limit, lambda: limits.too_large(given, "has files adding up to more than")


def apply_layer(
    src: str | os.PathLike[str] | BinaryIO | FileRegion,
    dest_dir: str | os.PathLike[str],
    *,
    compression: str = "auto",
    max_bytes: int | None = None,
    limits: UnpackLimits | None = None,
) -> LayerStats:
    """Apply one layer tarball (path, binary file object or FileRegion) onto dest_dir.

    compression: "auto" (by magic bytes), "none", "gzip" or "zstd".  Raises UnsafeLayer (dest
    unchanged) for hostile entries, LayerTooLarge past ``limits`` (default: from the
    environment, UnpackLimits.from_env), LayerError for unreadable input.
    """
    dest = _check_dest(dest_dir)
    limits = limits or UnpackLimits.from_env()
    with _plain_tar(src, compression, os.path.dirname(dest), limits) as (win, given):
        tf, members = _read_members(win, limits.max_entries)
        bound, too_large = _content_bound(limits, given, max_bytes)
        plan = _validate(members, dest, bound, too_large=too_large)
        stats = LayerStats()
        _apply_deletions(plan, stats)
        _write_entries(members, plan, stats, _copier(tf, win), overlay=False)
    return stats


def unpack_layer(
    src: str | os.PathLike[str] | BinaryIO | FileRegion,
    dest_dir: str | os.PathLike[str],
    *,
    compression: str = "auto",
    max_bytes: int | None = None,
    spool_dir: str | None = None,
    limits: UnpackLimits | None = None,
) -> LayerStats:
    """Unpack one layer into the empty directory dest_dir in overlayfs's layer format (see
    the module docstring); same checks, limits and errors as apply_layer. Compressed input
    is decompressed into a spool file in ``spool_dir`` (default: dest's parent)."""
    dest = _check_dest(dest_dir)
    if os.listdir(dest):
        raise LayerError(f"layer destination {dest!r} is not empty")
    limits = limits or UnpackLimits.from_env()
    with _plain_tar(src, compression, spool_dir or os.path.dirname(dest), limits) as (win,
                                                                                    given):
        tf, members = _read_members(win, limits.max_entries)
        bound, too_large = _content_bound(limits, given, max_bytes)
        plan = _validate(members, dest, bound, overlay=True, too_large=too_large)
        stats = LayerStats()
        _write_entries(members, plan, stats, _copier(tf, win), overlay=True)
    return stats


class _StreamTar:
    """A layer tar arriving through ``read(n)`` (a decompressor's output), read once, in
    order: tarfile reads the headers from it (seeking forward only), and file contents go
    from its chunks to the new files (``copy_to``) without another copy in Python. Every
    byte passes through ``seen`` once (the diff_id's hash); more than ``limit`` bytes
    raise ``too_large()``."""

    def __init__(self, read: Callable[[int], bytes], seen: Callable[[bytes], object] | None,
                 limit: int, too_large: Callable[[], Exception]):
        self._read, self._seen, self._left, self._too_large = read, seen, limit, too_large
        self._buf = b""
        self._off = 0  # the unread bytes are _buf[_off:]
        self.pos = 0  # position in the tar of _buf[_off]

    def _fill(self) -> bool:
        chunk = self._read(_CHUNK)
        if not chunk:
            return False
        self._left -= len(chunk)
        if self._left < 0:
            raise self._too_large()
        if self._seen is not None:
            self._seen(chunk)
        if self._off < len(self._buf):
            self._buf = self._buf[self._off:] + chunk
        else:
            self._buf = chunk
        self._off = 0
        return True

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.pos

    def read(self, n: int | None = -1) -> bytes:
        # tarfile reads headers through here (file data goes through copy_to): a pax or
        # GNU long-name header is held in memory whole, so it is bounded
        if n is None or n < 0 or n > _MAX_HEADER:
            raise LayerError(f"cannot read layer archive: a header of more than "
                             f"{_MAX_HEADER} bytes")
        while len(self._buf) - self._off < n and self._fill():
            pass
        data = self._buf[self._off:self._off + n]
        self._off += len(data)
        self.pos += len(data)
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self.pos
        elif whence != 0:
            raise OSError(errno.ESPIPE, "cannot seek from the end of a stream")
        if pos < self.pos:
            raise LayerError("cannot read layer archive: it seeks backwards in a stream")
        self._skip(pos - self.pos)
        return self.pos

    def _skip(self, n: int) -> None:
        while n > 0:
            have = len(self._buf) - self._off
            if have == 0 and not self._fill():
                return  # past the end: the next read finds nothing (as with a file)
            k = min(n, len(self._buf) - self._off)
            self._off += k
            self.pos += k
            n -= k

    def copy_to(self, m: tarfile.TarInfo, out: int) -> None:
        """The content of member m (the next bytes of the stream) into out_fd."""
        if self.pos != m.offset_data:
            self.seek(m.offset_data)
        left = m.size
        while left > 0:
            have = len(self._buf) - self._off
            if have == 0:
                if not self._fill():
                    raise LayerError(f"layer entry {m.name!r}: unexpected end of data")
                continue
            k = min(have, left)
            view = memoryview(self._buf)[self._off:self._off + k]
            while view:
                view = view[os.write(out, view):]
            self._off += k
            self.pos += k
            left -= k

    def drain(self) -> None:
        """Read what follows the archive's end (padding) through ``seen``."""
        self._off = len(self._buf)
        while self._fill():
            self._off = len(self._buf)


def unpack_stream(
    read: Callable[[int], bytes],
    dest_dir: str | os.PathLike[str],
    *,
    given: int | None,
    limits: UnpackLimits | None = None,
    seen: Callable[[bytes], object] | None = None,
) -> LayerStats:
    """Unpack an uncompressed layer tar arriving through ``read(n)`` into the empty
    directory dest_dir, in one pass, in overlayfs's layer format: each member is checked
    (as by unpack_layer: hostile entries refused, the limits for a layer of ``given``
    compressed bytes held) and written as it arrives, and the stream is read to its very
    end, every byte through ``seen`` (the diff_id's hash). Unlike unpack_layer, a refusal
    leaves dest_dir partly written: the caller unpacks into a temp directory that it
    removes on any error, and renames into place only once the layer's digests are
    verified (sangja.image.ingest)."""
    dest = _check_dest(dest_dir)
    if os.listdir(dest):
        raise LayerError(f"layer destination {dest!r} is not empty")
    limits = limits or UnpackLimits.from_env()
    stream = _StreamTar(read, seen, limits.allowed(given), lambda: limits.too_large(given))
    bound, too_large = _content_bound(limits, given, None)
    plan = _Plan(dest, lower=False)
    checker = _Checker(plan, bound, True, too_large)
    stats = LayerStats()
    try:
        tf = tarfile.open(fileobj=stream, mode="r:")  # type: ignore[call-overload]  # reads only

        def copy(m: tarfile.TarInfo, out: int) -> None:
            if m.sparse is None:
                return stream.copy_to(m, out)
            src = tf.extractfile(m)  # holes as zeros, reading forward
            assert src is not None
            while chunk := src.read(_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]

        writer = _Writer(plan, stats, copy)
        count = 0
        while (m := tf.next()) is not None:
            count += 1
            if count > limits.max_entries:
                raise limits.too_many_entries()
            path = checker.member(m)
            if path and not path.rpartition("/")[2].startswith(WHITEOUT_PREFIX):
                writer.entry(m, path)
            tf.members.clear()  # kept by tarfile for lookups by name: not needed here
        checker.finish()
        writer.overlay_markers()
        writer.finish()
        stream.drain()
    except (tarfile.TarError, EOFError) as e:
        raise LayerError(f"cannot read layer archive: {e}") from None
    return stats


# ---------------------------------------------------------------------------- diff


def add_entry(tf: tarfile.TarFile, full: str, rel: str, st: os.stat_result,
              links: dict[tuple[int, int], str], *, epoch: int | None = None
              ) -> tarfile.TarInfo:
    """Write the file at `full` into `tf` as `rel` (numeric owners, mode, mtime, xattrs);
    a regular file seen before under another name (same inode, in `links`) becomes a
    hardlink entry. Returns the entry written. ``epoch``: an mtime after it is written
    as it (SOURCE_DATE_EPOCH clamping)."""
    ti = _tarinfo(full, rel, st)
    if epoch is not None and ti.mtime > epoch:
        ti.mtime = epoch
    if ti.isreg() and st.st_nlink > 1:
        key = (st.st_dev, st.st_ino)
        if key in links:
            ti.type, ti.linkname, ti.size = tarfile.LNKTYPE, links[key], 0
        else:
            links[key] = rel
    if ti.isreg():
        # never through a symlink swapped in since the lstat (a running container's tree),
        # and never opening a FIFO or device node swapped in: O_PATH first, then the data
        from sangja.linux.paths import NotRegularFile, open_regular

        try:
            fd = open_regular(full)
        except NotRegularFile:
            raise LayerError(f"{rel!r} changed type while being archived") from None
        with open(fd, "rb") as f:
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
    pax: dict[str, str] = {}
    for name in names:
        if name.startswith(_OVERLAY_XATTRS):
            continue  # overlayfs's own bookkeeping (opaque, redirect...), never content
        try:
            value = os.getxattr(full, name, follow_symlinks=False)
        except OSError:
            continue
        pax[_XATTR_PREFIX + name] = value.decode("utf-8", "surrogateescape")
    ti.pax_headers = pax
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
