"""The one verified path from any blob source into the store: archives (``load``), OCI image
layout directories and registries (``pull``) all bring images in through :class:`Ingest`.

A source of one blob is a :class:`FileSource` (a file, or a member lying in an archive: read
in place, as often as needed) or a :class:`StreamSource` (bytes that come once, from the start:
a download). For each layer, :meth:`Ingest.layer` checks the size the manifest gives, then:

- a layer the store has (same diff_id, the same blob, or a blob that decompresses to it) is
  not read from the source at all (a file source is still compared with it: a damaged archive
  is refused even where it is not needed);
- a compressed layer is read once: each chunk goes to the blob being written (hashed, in an
  unnamed temp file) and through the decompressor (igzip in a process of its own), whose
  output is hashed as the diff_id and unpacked as it comes, in one pass
  (:func:`~sangja.image.layers.unpack_stream`: each entry checked, then written, bounded by
  the unpack limits) into the layer's temp directory; the blob's digest and size and the
  diff_id are checked, then the blob is linked into place;
- an uncompressed layer that lies in a file is hashed and stored by a second thread while
  the first unpacks the same bytes in place (copy_file_range); one from a stream is stored,
  then unpacked from the stored blob.

Unpacking goes into a temp directory under ``layers/`` (hostile entries refused, limits of
:class:`~sangja.image.layers.UnpackLimits` held, for each layer and for all of them together);
a layer whose digests turn out wrong, or that is refused half-way, is thrown away with it.
The caller holds the store's gc lock shared from the first file to the committed record. On
success :meth:`commit` makes the layer directories durable (one syncfs), renames them into
place and writes the image records in one transaction, last; on failure :meth:`rollback`
removes every blob and directory this ingest added. A crash leaves at worst unreferenced
files, which ``system check`` finds.

Layers of one image may be ingested from several threads at once (``pull`` does): the
bookkeeping is under a lock, and each diff_id must be given to one thread only.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import threading
from typing import Any, BinaryIO

from sangja import jsonio
from sangja.image import manifest as mf
from sangja.image.blobs import DigestMismatch, InvalidDigest, parse_digest
from sangja.image.db import Layer
from sangja.image.layers import (
    FileRegion,
    LayerError,
    UnpackLimits,
    bounded,
    decompress,
    decompressed,
    detect_compression,
    unpack_layer,
    unpack_stream,
)
from sangja.image.reference import InvalidReference, parse
from sangja.image.store import ImageStore, StoreError, _rmtree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    class _Stream(Protocol):
        """What a StreamSource reads from (a registry's BlobReader)."""

        def read(self, n: int = -1, /) -> bytes: ...

__all__ = ["FileSource", "Ingest", "IngestError", "StreamSource", "canonical_tag",
           "parse_config"]

_CHUNK = 1 << 20
MAX_CONFIG = 16 << 20  # an image config read into memory (real ones: a few kB)


class IngestError(StoreError):
    """An image (or one of its blobs) could not be brought into the store."""


# ---------------------------------------------------------------------------- sources


class _RegionReader:
    """Sequential reads of bytes [offset, offset + size) of a file: pread(2) when it has a
    descriptor (no shared file position, so another thread may read the same file), else
    seek + read."""

    def __init__(self, f: BinaryIO, fd: int | None, offset: int, size: int):
        self.f, self.fd, self.pos, self.end = f, fd, offset, offset + size

    def read(self, n: int = -1) -> bytes:
        left = self.end - self.pos
        if n is None or n < 0 or n > left:
            n = left
        if n <= 0:
            return b""
        if self.fd is not None:
            data = os.pread(self.fd, n, self.pos)
        else:
            self.f.seek(self.pos)
            data = self.f.read(n)
        self.pos += len(data)
        return data


def _regular_fd(f) -> int | None:
    try:
        fd = f.fileno()
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except (AttributeError, OSError, ValueError):
        return None


class FileSource:
    """A blob lying in a file (``size`` bytes at ``offset`` of the open file ``f``): read in
    place, as often as needed. ``origin`` says where, in errors ("in the archive")."""

    recheck = True  # a copy the store has already is still compared with this one

    def __init__(self, f: BinaryIO, offset: int, size: int, origin: str = "in the archive"):
        self.f, self.offset, self.size, self.origin = f, offset, size, origin
        self.fd = _regular_fd(f)

    @property
    def parallel(self) -> bool:
        """Whether two threads may read it at once (pread on a descriptor)."""
        return self.fd is not None

    def head(self) -> bytes:
        return self.open().read(4)

    def open(self) -> _RegionReader:
        return _RegionReader(self.f, self.fd, self.offset, self.size)

    def region(self) -> FileRegion:
        return FileRegion(self.f, self.offset, self.size)


class StreamSource:
    """A blob that can be read once, from the start (a download). ``open`` is called at most
    once, when the bytes are needed; ``size`` is what the sender announced (None: unknown)."""

    recheck = False
    parallel = False

    def __init__(self, open_stream: Callable[[], _Stream], size: int | None,
                 origin: str = "from the registry"):
        self._open, self.size, self.origin = open_stream, size, origin
        self._reader: _Stream | None = None
        self._head = b""

    def head(self) -> bytes:
        if self._reader is None:
            self._reader = self._open()
            self._head = self._reader.read(_CHUNK)
        return self._head[:4]

    def open(self):
        if self._reader is None:
            self._reader = self._open()
        head, self._head = self._head, b""
        reader = self._reader

        def read(n: int = -1) -> bytes:
            nonlocal head
            if head:
                out, head = head, b""
                return out
            return reader.read(n if n and n > 0 else _CHUNK)

        return _Reader(read)

    def region(self) -> None:
        return None


class _Reader:
    def __init__(self, read):
        self.read = read


# ---------------------------------------------------------------------------- configs


def parse_config(data: bytes, what: str) -> dict[str, Any]:
    """An image config, its fields of the right types (as docker load checks them) and its
    rootfs.diff_ids valid digests; IngestError naming `what` otherwise."""
    from sangja.image.config import check

    try:
        config = jsonio.loads(data, source=what)
    except ValueError as e:  # jsonio.JSONError: names the config and the position
        raise IngestError(str(e)) from None
    check(config, what)
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise IngestError(f"{what}: no rootfs.diff_ids")
    for d in diff_ids:
        try:
            parse_digest(d)
        except InvalidDigest as e:
            raise IngestError(f"{what}: {e}") from None
    return config


def canonical_tag(name: str, source: str = "archive") -> str:
    """A tag a source names, canonical (``busybox`` -> ``localhost/busybox:latest``)."""
    try:
        ref = parse(name)
    except InvalidReference as e:
        raise IngestError(f"{source} names an invalid image reference: {e}") from None
    if ref.digest is not None:
        raise IngestError(f"{source} tag {name!r} carries a digest")
    return str(ref)


def image_record(config_digest: str, manifest_digest: str, layers: list[Layer],
                 config: dict, blobs: tuple = ()) -> dict:
    """Keyword arguments of Database.add_image (with image_id) for an ingested image."""
    return dict(image_id=config_digest, manifest_digest=manifest_digest, layers=layers,
                created=config.get("created"),
                size=sum(la.content_size or 0 for la in layers),
                architecture=config.get("architecture"), os=config.get("os"), blobs=blobs)


def _tree_content(path: str) -> int:
    """Bytes of the regular files under path (hardlinks once)."""
    from sangja.image.store import tree_size

    return tree_size(path)


class _Job(threading.Thread):
    """Run fn in a thread; join() re-raises what it raised."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result, self.error = fn, None, None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as e:  # re-raised by join()
            self.error = e

    def join(self, timeout: float | None = None) -> Any:
        super().join(timeout)
        if self.error is not None:
            raise self.error
        return self.result


# ---------------------------------------------------------------------------- ingest


class Ingest:
    """Blobs, layers and image records coming into one store (see the module docstring)."""

    def __init__(self, store: ImageStore, limits: UnpackLimits | None = None):
        self.store = store
        self.known = {layer.diff_id: layer for layer in store.db.layers()}
        # how far layers may expand (each, and all of this ingest's together)
        self.limits = limits or UnpackLimits.from_env()
        self.expanded = 0
        self.added: list[str] = []  # blobs this ingest created
        self.pending: dict[str, str] = {}  # diff_id -> temp dir unpacked by this ingest
        self.placed: list[str] = []  # layer directories this ingest renamed into place
        self.done: dict[tuple[str, str | None], Layer] = {}
        self.records: list[tuple[dict[str, Any], list[str]]] = []
        self._mu = threading.Lock()
        self._top_marked = False

    # -- blobs ---------------------------------------------------------------------------
    def _added(self, digest: str, existed: bool) -> None:
        if not existed:
            with self._mu:
                if digest not in self.added:
                    self.added.append(digest)

    def put(self, src, expected_digest: str | None = None, expected_size: int | None = None):
        """Store a blob (bytes or a reader), verified against what is expected."""
        existed = expected_digest is not None and self.store.blobs.exists(expected_digest)
        if expected_digest is None and isinstance(src, bytes):
            existed = self.store.blobs.exists(f"sha256:{hashlib.sha256(src).hexdigest()}")
        desc = self.store.blobs.put(src, expected_digest, expected_size)
        self._added(desc.digest, existed)
        return desc

    def _put_checked(self, src, digest: str | None, size: int | None, what: str,
                     against: str):
        try:
            return self.put(src, digest, size)
        except DigestMismatch as e:
            raise _mismatch(e, what, digest, against) from None

    # -- layers --------------------------------------------------------------------------
    def layer(self, source: FileSource | StreamSource, diff_id: str, what: str,
              desc: mf.Descriptor | None = None) -> Layer:
        """Store, verify and unpack one layer. desc: the manifest's descriptor (its digest
        and size are then checked too); `what` names the layer in errors."""
        key = (diff_id, desc.digest if desc is not None else None)
        if key in self.done:
            return self.done[key]
        store = self.store
        if desc is not None and source.size is not None and source.size != desc.size:
            raise IngestError(f"{what}: {source.size} bytes {source.origin}, the manifest "
                              f"says {desc.size}")
        known = self.known.get(diff_id)
        unpacked = diff_id in self.pending or os.path.isdir(store.layer_path(diff_id))
        known_blob = known.blob_digest if known is not None else None
        have = known_blob is not None and store.blobs.exists(known_blob)
        if have and (desc is None or desc.digest == known_blob):
            # the store has this layer (its blob verified when it was stored)
            assert known is not None and known.blob_digest is not None
            if source.recheck:
                self._check_copy(source, diff_id, known.blob_digest, desc, what)
            stats = None
            if not unpacked:
                stats = self._unpack(diff_id, store.blobs.path(known.blob_digest), what)
            layer = Layer(diff_id, known.blob_digest, known.size, store.layer_path(diff_id),
                          stats.bytes if stats is not None else known.content_size)
        else:
            blob = desc.digest if desc is not None else None
            if blob is not None and store.blobs.exists(blob):
                with store.blobs.open(blob) as f:  # read nothing from the source
                    kind = detect_compression(f.read(4))
            else:
                kind = detect_compression(source.head())
            if kind == "none":
                if blob is not None and blob != diff_id:
                    self._refuse_plain(source, blob, diff_id, what)
                layer = self._plain_layer(source, diff_id, what, unpacked)
            else:
                layer = self._compressed_layer(source, diff_id, what, kind, blob, unpacked)
            # the store may keep other blobs of this layer for other images: each image
            # records its own (Database.image_layers), so this one keeps the one it names
        if layer.content_size is None:
            layer = Layer(layer.diff_id, layer.blob_digest, layer.size, layer.unpacked_path,
                          _tree_content(self.pending.get(diff_id) or store.layer_path(diff_id)))
        with self._mu:
            self.expanded += layer.content_size or 0
            if self.expanded > self.limits.max_size:
                raise IngestError("the image's layers together "
                                  f"{self.limits.too_large(None, 'expand past')}")
            self.done[key] = layer
        return layer

    def _refuse_plain(self, source, blob: str, diff_id: str, what: str) -> None:
        """An uncompressed layer whose manifest digest is not its diff_id cannot be right:
        say which digest its content fails (its own first, as for any blob)."""
        sha = hashlib.sha256()
        reader = source.open()
        while chunk := reader.read(_CHUNK * 4):
            sha.update(chunk)
        actual = f"sha256:{sha.hexdigest()}"
        if actual != blob:
            raise IngestError(f"{what}: content does not match its digest (expected {blob}, "
                              f"got {actual})")
        raise IngestError(f"{what}: content does not match the config's diff_id (expected "
                          f"{diff_id}, got {blob})")

    def _hash(self, source) -> str:
        sha = hashlib.sha256()
        reader = source.open()
        while chunk := reader.read(_CHUNK * 4):
            sha.update(chunk)
        return f"sha256:{sha.hexdigest()}"

    def _check_copy(self, source, diff_id: str, blob_digest: str, desc: mf.Descriptor | None,
                    what: str) -> None:
        """The source's copy of a layer the store has must still be intact."""
        actual = self._hash(source)
        if actual in (blob_digest, diff_id):
            return
        if desc is not None:
            raise IngestError(f"{what}: content does not match its digest "
                              f"(expected {desc.digest}, got {actual})")
        kind = detect_compression(source.head())
        if kind != "none":  # compressed differently than the stored blob: check its content
            sha = hashlib.sha256()
            limits = self.limits
            try:
                decompress(kind, source.open().read, bounded(
                    sha.update, limits.allowed(source.size),
                    lambda: limits.too_large(source.size)))
            except LayerError as e:
                raise IngestError(f"{what}: {e}") from None
            actual = f"sha256:{sha.hexdigest()}"
            if actual == diff_id:
                return
        raise IngestError(f"{what}: content does not match the config's diff_id "
                          f"(expected {diff_id}, got {actual})")

    def _plain_layer(self, source, diff_id: str, what: str, unpacked: bool) -> Layer:
        store = self.store
        if store.blobs.exists(diff_id):  # the same tar is stored: unpack that, read nothing
            stats = None if unpacked else self._unpack(diff_id, store.blobs.path(diff_id), what)
            size = store.blobs.size(diff_id)
        else:
            def put():
                return self._put_checked(source.open(), diff_id, source.size, what,
                                         "the config's diff_id")

            region = source.region()
            if region is not None and source.parallel and not unpacked:
                # hash + store in a thread while this one unpacks the same bytes in place
                job = _Job(put)
                job.start()
                try:
                    stats = self._unpack(diff_id, region, what)
                finally:
                    desc = job.join()
            else:  # one reader only, or nothing to unpack: store, then unpack the blob
                desc = put()
                stats = None if unpacked else self._unpack(diff_id, store.blobs.path(diff_id),
                                                           what)
            size = desc.size
        return Layer(diff_id, diff_id, size, store.layer_path(diff_id),
                     stats.bytes if stats is not None else self._known_content(diff_id))

    def _compressed_layer(self, source, diff_id: str, what: str, kind: str,
                          blob_digest: str | None, unpacked: bool) -> Layer:
        """Decompress the layer once, hashing it as the diff_id and (unless the store has
        it unpacked) unpacking it as it streams in, into a temp directory that only
        ``commit`` renames into place."""
        store = self.store
        limits = self.limits
        tmp = None if unpacked else self._new_layer_dir(diff_id)
        sha = hashlib.sha256()
        stats = None

        def consume(plain, given: int | None) -> None:
            nonlocal stats
            if tmp is None:
                out = bounded(sha.update, limits.allowed(given),
                              lambda: limits.too_large(given))
                while chunk := plain(_CHUNK):
                    out(chunk)
            else:
                stats = unpack_stream(plain, tmp, given=given, limits=limits,
                                      seen=sha.update)

        def check_diff_id() -> None:
            actual = f"sha256:{sha.hexdigest()}"
            if actual != diff_id:
                raise IngestError(f"{what}: content does not match the config's diff_id "
                                  f"(expected {diff_id}, got {actual})")

        if blob_digest is not None and store.blobs.exists(blob_digest):
            # decompress the stored blob (verified, and in the page cache)
            size = store.blobs.size(blob_digest)
            with store.blobs.open(blob_digest) as f:
                try:
                    with decompressed(kind, f.read) as plain:
                        consume(plain, size)
                except LayerError as e:
                    raise IngestError(f"{what}: {e}") from None
            check_diff_id()
        else:
            blob_digest, size = self._tee(source, kind, consume, check_diff_id, blob_digest,
                                          what)
        return Layer(diff_id, blob_digest, size, store.layer_path(diff_id),
                     stats.bytes if stats is not None else self._known_content(diff_id))

    def _tee(self, source, kind: str, consume, check, expected: str | None, what: str
             ) -> tuple[str, int]:
        """Read the source once: into the blob being written and, at the same time, through
        the decompressor to ``consume(read, given)``. The blob's digest and size (against
        `expected` and the source's size), then ``check()`` (the diff_id), are verified
        before the blob is given its name. Returns the stored blob's (digest, size)."""
        given = source.size
        store = self.store
        with store.blobs.writer(expected_size=given) as blob:
            reader = source.open()

            def read(n: int) -> bytes:
                chunk = reader.read(n)
                blob.write(chunk)
                return chunk

            try:
                try:
                    with decompressed(kind, read) as plain:
                        consume(plain, given)
                    while read(_CHUNK):  # trailing bytes are part of the blob too
                        pass
                except LayerError as e:
                    # a blob that is not what its digest says is reported as such
                    if expected is not None:
                        try:
                            while read(_CHUNK):
                                pass
                            blob.check(expected)
                        except DigestMismatch as m:
                            raise _mismatch(m, what, expected, "its digest") from None
                        except (OSError, LayerError):
                            pass
                    raise IngestError(f"{what}: {e}") from None
                existed = store.blobs.exists(blob.check(expected))
                check()
                desc = blob.commit(expected)
            except DigestMismatch as e:
                raise _mismatch(e, what, expected, "its digest") from None
        self._added(desc.digest, existed)
        return desc.digest, desc.size

    def _known_content(self, diff_id: str) -> int | None:
        known = self.known.get(diff_id)
        return known.content_size if known is not None else None

    def _new_layer_dir(self, diff_id: str) -> str:
        """A temp directory under ``layers/`` for diff_id (removed by rollback)."""
        if not self._top_marked:
            from sangja.fs import mark_top_dir

            mark_top_dir(self.store.layers_dir)
            self._top_marked = True
        tmp = tempfile.mkdtemp(prefix=".unpack-", dir=self.store.layers_dir)
        with self._mu:
            self.pending[diff_id] = tmp
        os.chmod(tmp, 0o755)
        return tmp

    def _unpack(self, diff_id: str, src, what: str, compression: str = "auto"):
        tmp = self._new_layer_dir(diff_id)
        try:
            return unpack_layer(src, tmp, compression=compression,
                                spool_dir=self.store.blobs.tmp_dir, limits=self.limits)
        except LayerError as e:
            raise IngestError(f"{what}: {e}") from None

    # -- the end -------------------------------------------------------------------------
    def place_layers(self) -> None:
        """Make the unpacked layers durable, then give them their final names."""
        if not self.pending:
            return
        from sangja.fs import syncfs

        syncfs(self.store.layers_dir)
        for diff_id, tmp in list(self.pending.items()):
            final = self.store.layer_path(diff_id)
            try:
                os.rename(tmp, final)
                self.placed.append(final)
            except OSError:
                if not os.path.isdir(final):  # not a lost race with another ingest
                    raise
                _rmtree(tmp)
            del self.pending[diff_id]

    def add_image(self, record: dict[str, Any], tags: list[str]) -> None:
        """An image to record at commit (``image_record``), with its canonical tags."""
        self.records.append((record, tags))

    def commit(self) -> list[str]:
        """Layers into place, then every image record in one transaction; return the
        names recorded (tags, or the image id of an untagged image)."""
        self.place_layers()
        loaded: list[str] = []
        db = self.store.db
        with db.transaction():
            for record, tags in self.records:
                record = dict(record)
                image_id = record.pop("image_id")
                db.add_image(image_id, **record)
                for t in tags:
                    db.tag(t, image_id)
                    loaded.append(t)
                if not tags:
                    loaded.append(image_id)
        return list(dict.fromkeys(loaded))

    def rollback(self) -> None:
        """Remove what this ingest added (under the exclusive gc lock: a concurrent ingest
        may have started to reuse it)."""
        for tmp in self.pending.values():
            _rmtree(tmp)
        self.pending.clear()
        with self.store.lock.exclusive():
            try:
                still = self.store.db.referenced_blobs()
                paths = {la.unpacked_path for la in self.store.db.layers()}
            except Exception:
                return
            for final in self.placed:
                if final not in paths:
                    _rmtree(final)
            for digest in self.added:
                if digest not in still:
                    self.store.blobs.delete(digest)


def _mismatch(e: DigestMismatch, what: str, digest: str | None, against: str) -> IngestError:
    if e.what == "digest":
        return IngestError(f"{what}: content does not match {against} "
                           f"(expected {digest}, got {e.actual})")
    return IngestError(f"{what}: {e}")
