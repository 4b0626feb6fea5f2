"""Image archives: ``docker save``-style tars and OCI image layouts in a tar.

docker-archive: ``manifest.json`` ([{Config, RepoTags, Layers}]), each config as ``<hex>.json``
and each layer as an *uncompressed* tar (so its sha256 is the config's diff_id), plus the
legacy ``repositories`` file. oci-archive: ``oci-layout``, ``index.json`` (names in
``org.opencontainers.image.ref.name``) and ``blobs/sha256/*`` exactly as stored.

Loading reads OCI and Docker schema-2 manifests, indexes and manifest lists alike
(:mod:`sangja.image.manifest`; an index picks the host's platform), so archives and layouts
written by podman, skopeo (``--format v2s2`` too), umoci and docker load here. It verifies
every digest (blob digests, and the diff_id of every layer) and, like podman and docker,
unpacks each new layer into the store (overlay format, :func:`layers.unpack_layer`) so the
image is ready to run. Order, for crash safety: blobs (each fsynced by the blob store) and
layer directories (unpacked under temporary names) first; then one ``syncfs(2)`` of the
store's filesystem, so a layer directory's contents are on disk before its final name
exists; then the renames; the database records last, in one transaction. A crash leaves at
worst unreferenced blobs and directories (``system check`` collects them), never a record
pointing at something missing or half-written. On any failure the blobs and layer
directories this load added are removed again (under the exclusive gc lock), so the store is
left as it was.

Speed (see bench/unpack): a layer is read where it lies in the archive (no copy out of the
tar first); an uncompressed layer is hashed and stored as its blob by a second thread while
the main thread unpacks it (hashlib and file writes release the GIL), and its files are
copied with copy_file_range(2); a compressed layer is decompressed once. Layers are kept as
they came: uncompressed docker-archive layers are stored uncompressed (media type
``application/vnd.oci.image.layer.v1.tar``) instead of being recompressed on the way in,
which costs disk (the tar next to its unpacked directory) but no CPU. A layer the store
already has (same diff_id, same blob, unpacked) is not read at all.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import threading
import zlib
from typing import Any, BinaryIO

from sangja import jsonio
from sangja.fs import syncfs
from sangja.image import manifest as mf
from sangja.image.blobs import DigestMismatch, InvalidDigest, parse_digest
from sangja.image.db import Image, Layer
from sangja.image.layers import (
    FileRegion,
    LayerError,
    UnpackLimits,
    bounded,
    decompress,
    detect_compression,
    unpack_layer,
)
from sangja.image.reference import InvalidReference, parse
from sangja.image.store import ImageStore, StoreError, _rmtree
from sangja.records import dataclass

__all__ = ["ArchiveError", "FORMATS", "load", "save"]

FORMATS = ("docker-archive", "oci-archive")
MEDIA_TYPE_INDEX = mf.OCI_INDEX
REF_NAME = mf.REF_NAME
CONTAINERD_NAME = "io.containerd.image.name"
_CHUNK = 1 << 20
_MAX_CONFIG = 16 << 20  # an image config read into memory (real ones: a few kB)
_OUTER_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
)


class ArchiveError(StoreError):
    pass


def _image_record(config_desc, manifest_digest: str, layers: list, config: dict, size: int,
                  blobs: tuple) -> dict:
    """Keyword arguments of Database.add_image for an image read from an archive."""
    return dict(image_id=config_desc.digest, manifest_digest=manifest_digest,
                layers=layers, created=config.get("created"), size=size,
                architecture=config.get("architecture"), os=config.get("os"), blobs=blobs)


# ---------------------------------------------------------------------------- saving


@dataclass
class _Saved:
    image: Image
    tags: list[str]


def _select(store: ImageStore, names: list[str]) -> list[_Saved]:
    chosen: dict[str, _Saved] = {}
    for name in names:
        img, by_tag = store._resolve(name)
        entry = chosen.setdefault(img.id, _Saved(img, []))
        for t in [by_tag] if by_tag is not None else list(img.tags):
            if t not in entry.tags:
                entry.tags.append(t)
    return list(chosen.values())


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = 0o644
    tf.addfile(ti, io.BytesIO(data))


def _add_file(tf: tarfile.TarFile, name: str, f: BinaryIO, size: int) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mode = 0o644
    tf.addfile(ti, f)


def _add_dir(tf: tarfile.TarFile, name: str) -> None:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    tf.addfile(ti)



def _spool_decompressed(kind: str, src, out, what: str, limits: UnpackLimits | None = None):
    """Decompress `src` into the spool file `out`, hashing the plain bytes on the way;
    return the sha256 object. A damaged stream (or, with `limits`, one expanding past
    them) is an ArchiveError naming `what`."""
    sha = hashlib.sha256()

    def write(chunk: bytes) -> None:
        sha.update(chunk)
        out.write(chunk)

    if limits is not None:
        given = _size_of(src)
        write = bounded(write, limits.allowed(given), lambda: limits.too_large(given))
    try:
        decompress(kind, src.read, write)
    except LayerError as e:
        raise ArchiveError(f"{what}: {e}") from None
    return sha


def _size_of(f) -> int | None:
    """Bytes from f's position to its end (None when it cannot tell)."""
    try:
        return os.fstat(f.fileno()).st_size - f.tell()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None

def save(
    store: ImageStore, names: list[str], out: BinaryIO, format: str = "docker-archive"
) -> None:
    """Write the named images to ``out`` (any writable binary stream, seekable or not)."""
    if format not in FORMATS:
        raise ArchiveError(f"unknown archive format {format!r} (want {' or '.join(FORMATS)})")
    if not names:
        raise ArchiveError("no images to save")
    selected = _select(store, names)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[call-overload]
        tf.copybufsize = _CHUNK
        if format == "docker-archive":
            _save_docker(store, selected, tf)
        else:
            _save_oci(store, selected, tf)


def _layer_blobs(store: ImageStore, image_id: str) -> dict[str, str | None]:
    """diff_id -> the blob the image's own manifest names for it."""
    return {la.diff_id: la.blob_digest for la in store.db.image_layers(image_id)}


class _HashingReader:
    """Reads through to ``f``, hashing what passes (for tarfile.addfile)."""

    def __init__(self, f: BinaryIO):
        self.f = f
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.sha.update(data)
        return data


def _save_docker(store: ImageStore, selected: list[_Saved], tf: tarfile.TarFile) -> None:
    written: set[str] = set()
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for s in selected:
        img = s.image
        config_hex = img.id.partition(":")[2]
        config_name = f"{config_hex}.json"
        if config_name not in written:
            _add_bytes(tf, config_name, store.blobs.read_bytes(img.id))
            written.add(config_name)
        layer_names = []
        blobs_of = _layer_blobs(store, img.id)
        for diff_id in img.layers:
            hexpart = diff_id.partition(":")[2]
            name = f"{hexpart}/layer.tar"
            layer_names.append(name)
            if name in written:
                continue
            blob = blobs_of.get(diff_id)
            if blob is None:
                raise ArchiveError(f"layer {diff_id} of image {img.id} has no blob")
            _add_dir(tf, hexpart)
            _add_layer_tar(store, tf, name, blob, diff_id)
            written.add(name)
        manifest.append({"Config": config_name, "RepoTags": s.tags, "Layers": layer_names})
        if img.layers:
            top = img.layers[-1].partition(":")[2]
            for t in s.tags:
                ref = parse(t)
                repositories.setdefault(ref.name, {})[ref.tag or "latest"] = top
    _add_bytes(tf, "manifest.json", jsonio.dumps(manifest).encode())
    if repositories:
        _add_bytes(tf, "repositories", jsonio.dumps(repositories).encode())


def _add_layer_tar(store: ImageStore, tf: tarfile.TarFile, name: str, blob: str,
                   diff_id: str) -> None:
    """The layer as an uncompressed tar member, verified against its diff_id: an uncompressed
    blob streams straight in, a compressed one is decompressed to a temp file first (the tar
    header needs the size)."""
    with store.blobs.open(blob) as src:
        kind = detect_compression(src.read(4))
        src.seek(0)
        if kind == "none":
            reader = _HashingReader(src)
            _add_file(tf, name, reader, store.blobs.size(blob))  # type: ignore[arg-type]
            sha = reader.sha
        else:
            with tempfile.TemporaryFile(dir=store.blobs.tmp_dir) as tmp:
                sha = _spool_decompressed(kind, src, tmp, f"stored layer {blob}")
                size = tmp.tell()
                tmp.seek(0)
                _add_file(tf, name, tmp, size)  # type: ignore[arg-type]
    if f"sha256:{sha.hexdigest()}" != diff_id:
        raise ArchiveError(f"stored layer {blob} does not match its diff_id {diff_id}")


def _save_oci(store: ImageStore, selected: list[_Saved], tf: tarfile.TarFile) -> None:
    written: set[str] = set()
    index_entries: list[dict[str, Any]] = []
    _add_bytes(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    _add_dir(tf, "blobs")
    _add_dir(tf, "blobs/sha256")

    def blob(digest: str) -> int:
        size = store.blobs.size(digest)
        if digest not in written:
            algo, hexpart = parse_digest(digest)
            with store.blobs.open(digest) as f:
                _add_file(tf, f"blobs/{algo}/{hexpart}", f, size)
            written.add(digest)
        return size

    for s in selected:
        img = s.image
        if not img.manifest_digest:
            raise ArchiveError(f"image {img.id} has no stored manifest")
        data = store.blobs.read_bytes(img.manifest_digest)
        doc = mf.parse(data, where=f"stored manifest {img.manifest_digest}")
        if not isinstance(doc, mf.ImageManifest):
            raise ArchiveError(f"stored manifest {img.manifest_digest} is not an image manifest")
        blob(doc.config.digest)
        for layer in doc.layers:
            blob(layer.digest)
        blobs_of = _layer_blobs(store, img.id)
        for diff_id in img.layers:  # a manifest we wrote names exactly these blobs
            if blobs_of.get(diff_id) is None:
                raise ArchiveError(f"layer {diff_id} of image {img.id} has no blob")
        size = blob(img.manifest_digest)
        desc = {"mediaType": doc.media_type, "digest": img.manifest_digest, "size": size}
        if not s.tags:
            index_entries.append(desc)
        for t in s.tags:
            index_entries.append({**desc, "annotations": {REF_NAME: t, CONTAINERD_NAME: t}})
    index = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": index_entries}
    _add_bytes(tf, "index.json", jsonio.dumps(index).encode())


# ---------------------------------------------------------------------------- loading


class _RegionReader:
    """Sequential reads of a FileRegion with pread(2): no shared file position, so another
    thread may read the same file at the same time."""

    def __init__(self, region: FileRegion, fd: int):
        self.fd, self.pos, self.end = fd, region.offset, region.offset + region.size

    def read(self, n: int = -1) -> bytes:
        left = self.end - self.pos
        if n is None or n < 0 or n > left:
            n = left
        if n <= 0:
            return b""
        data = os.pread(self.fd, n, self.pos)
        self.pos += len(data)
        return data


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

    def join(self, timeout: float | None = None) -> Any:  # type: ignore[override]
        super().join(timeout)
        if self.error is not None:
            raise self.error
        return self.result


def _fileno(f) -> int | None:
    try:
        fd = f.fileno()
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def _tree_content(path: str) -> int:
    """Bytes of the regular files under path (hardlinks once)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


class _Loader:
    def __init__(self, store: ImageStore, tf: tarfile.TarFile, f: BinaryIO):
        self.store = store
        self.tf = tf
        self.f = f
        self.fd = _fileno(f)
        self.members: dict[str, tarfile.TarInfo] = {}
        for m in tf.getmembers():  # reads the whole index: a truncated tar fails here
            name = os.path.normpath(m.name.lstrip("/")).removeprefix("./")
            self.members[name] = m
        self.known = {layer.diff_id: layer for layer in store.db.layers()}
        # how far layers may expand (each, and all of this archive's together)
        self.limits = UnpackLimits.from_env()
        self.expanded = 0
        self.added: list[str] = []  # blobs this load created
        self.pending: dict[str, str] = {}  # diff_id -> temp dir unpacked by this load
        self.placed: list[str] = []  # layer directories this load renamed into place
        self.done: dict[tuple[str, str | None], Layer] = {}
        self.records: list[tuple[dict[str, Any], list[str]]] = []

    # -- members -------------------------------------------------------------------------
    def member(self, name: str) -> tarfile.TarInfo:
        name = os.path.normpath(name.lstrip("/")).removeprefix("./")
        m = self.members.get(name)
        hops = 0
        while m is not None and m.issym() and hops < 16:  # docker: layer.tar symlinks
            target = os.path.normpath(os.path.join(os.path.dirname(m.name), m.linkname))
            m = self.members.get(target.lstrip("/").removeprefix("./"))
            hops += 1
        if m is None or not m.isreg():
            raise ArchiveError(f"archive has no file {name!r}")
        return m

    def open(self, name: str) -> BinaryIO:
        f = self.tf.extractfile(self.member(name))
        assert f is not None
        return f  # type: ignore[return-value]

    def read_json(self, name: str, limit: int = 16 << 20) -> Any:
        with self.open(name) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ArchiveError(f"{name} is too large")
        try:
            return jsonio.loads(data, source=name)
        except ValueError as e:  # jsonio.JSONError: names the file and the position
            raise ArchiveError(str(e)) from None

    def region(self, m: tarfile.TarInfo) -> FileRegion:
        return FileRegion(self.f, m.offset_data, m.size)

    def reader(self, m: tarfile.TarInfo):
        if self.fd is not None:
            return _RegionReader(self.region(m), self.fd)
        f = self.tf.extractfile(m)
        assert f is not None
        return f

    def put(self, src, expected_digest: str | None = None, expected_size: int | None = None):
        existed = expected_digest is not None and self.store.blobs.exists(expected_digest)
        if expected_digest is None and isinstance(src, bytes):
            existed = self.store.blobs.exists(f"sha256:{hashlib.sha256(src).hexdigest()}")
        desc = self.store.blobs.put(src, expected_digest, expected_size)
        if not existed and desc.digest not in self.added:
            self.added.append(desc.digest)
        return desc

    # -- layers --------------------------------------------------------------------------
    def layer(self, m: tarfile.TarInfo, diff_id: str, what: str,
              desc: mf.Descriptor | None = None) -> Layer:
        """Store, verify and unpack one layer read from archive member m. desc: the
        manifest's descriptor (its digest and size are then checked too)."""
        key = (diff_id, desc.digest if desc is not None else None)
        if key in self.done:
            return self.done[key]
        store = self.store
        if desc is not None and m.size != desc.size:
            raise ArchiveError(f"{what}: {m.size} bytes in the archive, the manifest says "
                               f"{desc.size}")
        known = self.known.get(diff_id)
        unpacked = diff_id in self.pending or os.path.isdir(store.layer_path(diff_id))
        have = (known is not None and known.blob_digest is not None
                and store.blobs.exists(known.blob_digest))
        if have and (desc is None or desc.digest == known.blob_digest):
            # the store has this layer (its blob verified when it was stored): the archive's
            # copy is only checked (a damaged archive is refused even when not needed)
            assert known is not None
            self._check_copy(m, diff_id, known.blob_digest, desc, what)  # type: ignore[arg-type]
            stats = None
            if not unpacked:
                stats = self._unpack(diff_id, store.blobs.path(known.blob_digest), what)
            layer = Layer(diff_id, known.blob_digest, known.size, store.layer_path(diff_id),
                          stats.bytes if stats is not None else known.content_size)
        else:
            with self.tf.extractfile(m) as f:  # type: ignore[union-attr]
                kind = detect_compression(f.read(4))
            if kind == "none":
                if desc is not None and desc.digest != diff_id:
                    raise ArchiveError(f"{what}: content does not match the config's diff_id "
                                       f"(expected {diff_id}, got {desc.digest})")
                layer = self._plain_layer(m, diff_id, what, unpacked)
            else:
                layer = self._compressed_layer(m, diff_id, what, kind,
                                               desc.digest if desc is not None else None,
                                               unpacked)
            # the store may keep other blobs of this layer for other images: each image
            # records its own (Database.image_layers), so this one keeps the one it names
        if layer.content_size is None:
            layer = Layer(layer.diff_id, layer.blob_digest, layer.size, layer.unpacked_path,
                          _tree_content(self.pending.get(diff_id) or store.layer_path(diff_id)))
        self.expanded += layer.content_size or 0
        if self.expanded > self.limits.max_size:
            raise ArchiveError("the archive's layers together "
                               f"{self.limits.too_large(None, 'expand past')}")
        self.done[key] = layer
        return layer

    def _hash(self, m: tarfile.TarInfo) -> str:
        sha = hashlib.sha256()
        reader = self.reader(m)
        while chunk := reader.read(_CHUNK * 4):
            sha.update(chunk)
        return f"sha256:{sha.hexdigest()}"

    def _check_copy(self, m: tarfile.TarInfo, diff_id: str, blob_digest: str,
                    desc: mf.Descriptor | None, what: str) -> None:
        """The archive's copy of a layer the store has must still be intact."""
        actual = self._hash(m)
        if actual in (blob_digest, diff_id):
            return
        if desc is not None:
            raise ArchiveError(f"{what}: content does not match its digest "
                               f"(expected {desc.digest}, got {actual})")
        with self.tf.extractfile(m) as f:  # type: ignore[union-attr]
            kind = detect_compression(f.read(4))
        if kind != "none":  # compressed differently than the stored blob: check its content
            sha = hashlib.sha256()
            limits = self.limits
            try:
                decompress(kind, self.reader(m).read, bounded(
                    sha.update, limits.allowed(m.size), lambda: limits.too_large(m.size)))
            except LayerError as e:
                raise ArchiveError(f"{what}: {e}") from None
            actual = f"sha256:{sha.hexdigest()}"
            if actual == diff_id:
                return
        raise ArchiveError(f"{what}: content does not match the config's diff_id "
                           f"(expected {diff_id}, got {actual})")

    def _putter(self, m: tarfile.TarInfo, digest: str | None, what: str, against: str):
        """A function storing member m as a blob (verified against digest, named `against`
        in the error when it does not match)."""
        def put():
            try:
                return self.put(self.reader(m), digest, m.size)
            except DigestMismatch as e:
                if e.what == "digest":
                    raise ArchiveError(f"{what}: content does not match {against} "
                                       f"(expected {digest}, got {e.actual})") from None
                raise ArchiveError(f"{what}: {e}") from None

        return put

    def _plain_layer(self, m: tarfile.TarInfo, diff_id: str, what: str,
                     unpacked: bool) -> Layer:
        store = self.store
        if store.blobs.exists(diff_id):  # the same tar is stored: unpack that, read nothing
            stats = None if unpacked else self._unpack(diff_id, store.blobs.path(diff_id), what)
            size = store.blobs.size(diff_id)
        else:
            put = self._putter(m, diff_id, what, "the config's diff_id")
            if self.fd is None or unpacked:  # no second reader possible, or nothing to unpack
                desc = put()
                stats = None if unpacked else self._unpack(diff_id, self.region(m), what)
            else:  # hash + store in a thread while this one unpacks the same bytes
                job = _Job(put)
                job.start()
                try:
                    stats = self._unpack(diff_id, self.region(m), what)
                finally:
                    desc = job.join()
            size = desc.size
        return Layer(diff_id, diff_id, size, store.layer_path(diff_id),
                     stats.bytes if stats is not None else self._known_content(diff_id))

    def _compressed_layer(self, m: tarfile.TarInfo, diff_id: str, what: str, kind: str,
                          blob_digest: str | None, unpacked: bool) -> Layer:
        store = self.store
        if blob_digest is None or not store.blobs.exists(blob_digest):
            blob = self._putter(m, blob_digest, what, "its digest")()
            blob_digest, size = blob.digest, blob.size
        else:
            size = store.blobs.size(blob_digest)
        # decompress once (from the stored blob: verified, and in the page cache) into a
        # spool file, hashing; unpack from there
        with tempfile.TemporaryFile(prefix=".layer-", dir=store.blobs.tmp_dir) as tmp, \
                store.blobs.open(blob_digest) as src:
            sha = _spool_decompressed(kind, src, tmp, what, self.limits)
            actual = f"sha256:{sha.hexdigest()}"
            if actual != diff_id:
                raise ArchiveError(f"{what}: content does not match the config's diff_id "
                                   f"(expected {diff_id}, got {actual})")
            tmp.flush()
            stats = None
            if not unpacked:
                stats = self._unpack(diff_id, FileRegion(tmp, 0, tmp.tell()), what,
                                     compression="none")
        return Layer(diff_id, blob_digest, size, store.layer_path(diff_id),
                     stats.bytes if stats is not None else self._known_content(diff_id))

    def _known_content(self, diff_id: str) -> int | None:
        known = self.known.get(diff_id)
        return known.content_size if known is not None else None

    def _unpack(self, diff_id: str, src, what: str, compression: str = "auto"):
        tmp = tempfile.mkdtemp(prefix=".unpack-", dir=self.store.layers_dir)
        self.pending[diff_id] = tmp
        os.chmod(tmp, 0o755)
        try:
            return unpack_layer(src, tmp, compression=compression,
                                spool_dir=self.store.blobs.tmp_dir, limits=self.limits)
        except LayerError as e:
            raise ArchiveError(f"{what}: {e}") from None

    def place_layers(self) -> None:
        """Make the unpacked layers durable, then give them their final names."""
        if not self.pending:
            return
        syncfs(self.store.layers_dir)
        for diff_id, tmp in list(self.pending.items()):
            final = self.store.layer_path(diff_id)
            try:
                os.rename(tmp, final)
                self.placed.append(final)
            except OSError:
                if not os.path.isdir(final):  # not a lost race with another load
                    raise
                _rmtree(tmp)
            del self.pending[diff_id]

    # -- docker-archive ------------------------------------------------------------------
    def load_docker(self) -> None:
        manifest = self.read_json("manifest.json")
        if not isinstance(manifest, list) or not manifest:
            raise ArchiveError("manifest.json: expected a non-empty list of images")
        for n, entry in enumerate(manifest):
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
                raise ArchiveError(f"manifest.json: entry {n} has no Config")
            with self.open(entry["Config"]) as f:
                config_bytes = f.read(_MAX_CONFIG + 1)
            if len(config_bytes) > _MAX_CONFIG:
                raise ArchiveError(f"{entry['Config']} is too large (more than {_MAX_CONFIG} "
                                   "bytes)")
            config = _parse_config(config_bytes, entry["Config"])
            diff_ids = config["rootfs"]["diff_ids"]
            layer_names = entry.get("Layers") or []
            if not isinstance(layer_names, list) or len(layer_names) != len(diff_ids):
                raise ArchiveError(
                    f"manifest.json: entry {n}: its Layers do not match the config's "
                    f"{len(diff_ids)} diff_ids"
                )
            sources = entry.get("LayerSources") or {}
            layers: list[Layer] = []
            for name, diff_id in zip(layer_names, diff_ids, strict=True):
                try:
                    m = self.member(str(name))
                except ArchiveError:
                    if isinstance(sources, dict) and diff_id in sources:
                        source = sources[diff_id]
                        urls = (source.get("urls") if isinstance(source, dict) else None) or []
                        raise ArchiveError(
                            f"layer {diff_id} is a foreign layer not included in the archive"
                            f"{' (it is at ' + ', '.join(map(str, urls)) + ')' if urls else ''}"
                            "; sangja does not download foreign layers") from None
                    raise
                layers.append(self.layer(m, diff_id, f"layer {name}"))
            size = sum(la.content_size or 0 for la in layers)
            config_desc = self.put(config_bytes)
            manifest_bytes = mf.oci_manifest_bytes(
                mf.Descriptor(mf.OCI_CONFIG, config_desc.digest, config_desc.size),
                [mf.Descriptor(mf.layer_media_type(self._stored_compression(la)),
                               la.blob_digest, la.size or 0)  # type: ignore[arg-type]
                 for la in layers],
            )
            manifest_desc = self.put(manifest_bytes)
            tags = entry.get("RepoTags") or []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise ArchiveError(f"manifest.json: entry {n}: RepoTags is not a list of "
                                   "strings")
            record = _image_record(config_desc, manifest_desc.digest, layers, config, size, ())
            self.records.append((record, [_canonical(str(t)) for t in tags]))

    def _stored_compression(self, layer: Layer) -> str:
        if layer.blob_digest == layer.diff_id:
            return "none"
        with self.store.blobs.open(layer.blob_digest) as f:  # type: ignore[arg-type]
            return detect_compression(f.read(4))

    # -- oci-archive ---------------------------------------------------------------------
    def blob_member(self, desc: mf.Descriptor, what: str) -> tarfile.TarInfo:
        algo, hexpart = parse_digest(desc.digest)
        name = f"blobs/{algo}/{hexpart}"
        try:
            return self.member(name)
        except ArchiveError:
            if desc.foreign:
                where = f" (it is at {', '.join(desc.urls)})" if desc.urls else ""
                raise ArchiveError(f"{what} {desc.digest} is a foreign layer not included in "
                                   f"the archive{where}; sangja does not download foreign "
                                   "layers") from None
            raise ArchiveError(f"{what} {desc.digest}: archive has no file {name!r}") from None

    def read_blob(self, desc: mf.Descriptor, what: str, limit: int = _MAX_CONFIG) -> bytes:
        if desc.size > limit:
            raise ArchiveError(f"{what} {desc.digest} is too large ({desc.size} bytes)")
        m = self.blob_member(desc, what)
        with self.tf.extractfile(m) as f:  # type: ignore[union-attr]
            data = f.read(desc.size + 1)
        algo, hexpart = parse_digest(desc.digest)
        if len(data) != desc.size or hashlib.new(algo, data).hexdigest() != hexpart:
            raise ArchiveError(f"{what} {desc.digest}: content does not match its digest "
                               "and size")
        return data

    def load_oci(self) -> None:
        try:
            with self.open("index.json") as f:
                data = f.read(mf.MAX_MANIFEST_BYTES + 1)
            index = mf.parse(data, where="index.json")
        except mf.ManifestError as e:
            raise ArchiveError(str(e)) from None
        if not isinstance(index, mf.ImageIndex):
            raise ArchiveError("index.json: not an image index")
        # entries of one name that differ by platform are alternatives: load the host's
        groups: dict[str | None, list[mf.Descriptor]] = {}
        for n, desc in enumerate(index.manifests):
            try:
                mf.check_manifest_type(desc.media_type, f"index.json: manifests[{n}]")
            except mf.ManifestError as e:
                raise ArchiveError(str(e)) from None
            name = desc.annotations.get(CONTAINERD_NAME) or desc.ref_name
            groups.setdefault(name if name else f"#{n}", []).append(desc)
        for name, descs in groups.items():
            tags = [_canonical(name)] if name and not name.startswith("#") else []
            if len(descs) > 1 and all(d.platform is not None for d in descs):
                try:
                    descs = [mf.ImageIndex(index.media_type, tuple(descs),
                                           where=f"index.json ({name})").select()]
                except mf.ManifestError as e:
                    raise ArchiveError(str(e)) from None
            for desc in descs:
                self.load_oci_manifest(desc, tags, [])

    def load_oci_manifest(self, desc: mf.Descriptor, tags: list[str], extra: list[str],
                          depth: int = 0) -> None:
        where = f"manifest {desc.digest}"
        data = self.read_blob(desc, "manifest", mf.MAX_MANIFEST_BYTES)
        try:
            doc = mf.parse(data, desc.media_type or None, where=where)
            if isinstance(doc, mf.ImageIndex):
                if depth > 4:
                    raise ArchiveError(f"{where}: indexes nested too deeply")
                chosen = doc.select()
                self.put(data, desc.digest, len(data))
                return self.load_oci_manifest(chosen, tags, [*extra, desc.digest], depth + 1)
            doc.check_image()
        except mf.ManifestError as e:
            raise ArchiveError(str(e)) from None
        config_bytes = self.read_blob(doc.config, "config")
        config = _parse_config(config_bytes, f"config {doc.config.digest}")
        diff_ids = config["rootfs"]["diff_ids"]
        if len(diff_ids) != len(doc.layers):
            raise ArchiveError(f"{where}: {len(doc.layers)} layers, but its config has "
                               f"{len(diff_ids)} diff_ids")
        layers: list[Layer] = []
        for ld, diff_id in zip(doc.layers, diff_ids, strict=True):
            m = self.blob_member(ld, "layer")
            layer = self.layer(m, diff_id, f"layer {ld.digest}", ld)
            if layer.blob_digest != ld.digest:  # the store keeps another blob for it
                extra.append(ld.digest)
            layers.append(layer)
        size = sum(la.content_size or 0 for la in layers)
        config_desc = self.put(config_bytes, doc.config.digest, len(config_bytes))
        self.put(data, desc.digest, len(data))
        record = _image_record(config_desc, desc.digest, layers, config, size,
                               tuple(dict.fromkeys(extra)))
        self.records.append((record, tags))

    # -- commit --------------------------------------------------------------------------
    def commit(self) -> list[str]:
        self.place_layers()
        loaded: list[str] = []
        db = self.store.db
        with db.transaction():
            for record, tags in self.records:
                image_id = record.pop("image_id")
                db.add_image(image_id, **record)
                for t in tags:
                    db.tag(t, image_id)
                    loaded.append(t)
                if not tags:
                    loaded.append(image_id)
        return list(dict.fromkeys(loaded))

    def rollback(self) -> None:
        for tmp in self.pending.values():
            _rmtree(tmp)
        self.pending.clear()
        with self.store.lock.exclusive():  # gc lock: a concurrent load may reuse these
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


def _canonical(name: str) -> str:
    try:
        ref = parse(name)
    except InvalidReference as e:
        raise ArchiveError(f"archive names an invalid image reference: {e}") from None
    if ref.digest is not None:
        raise ArchiveError(f"archive tag {name!r} carries a digest")
    return str(ref)


def _parse_config(data: bytes, what: str) -> dict[str, Any]:
    from sangja.image.config import check

    try:
        config = jsonio.loads(data, source=what)
    except ValueError as e:  # jsonio.JSONError: names the config and the position
        raise ArchiveError(str(e)) from None
    check(config, what)  # the types of the fields sangja reads, as docker load
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise ArchiveError(f"{what}: no rootfs.diff_ids")
    for d in diff_ids:
        try:
            parse_digest(d)
        except InvalidDigest as e:
            raise ArchiveError(f"{what}: {e}") from None
    return config


def _seekable(f: BinaryIO) -> bool:
    try:
        f.seek(f.tell())
        return bool(getattr(f, "seekable", lambda: True)())
    except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
        return False


def _outer_compression(f: BinaryIO) -> str:
    pos = f.tell()
    head = f.read(6)
    f.seek(pos)
    for magic, kind in _OUTER_MAGIC:
        if head.startswith(magic):
            return kind
    return "none"


def _spool(store: ImageStore, src: BinaryIO, kind: str) -> BinaryIO:
    """A seekable plain copy of the archive (stdin, or a compressed archive: decompressed
    at most as far as the unpack limits allow)."""
    spool = tempfile.TemporaryFile(prefix=".load-", dir=store.root)
    try:
        write = spool.write
        if kind != "none":
            limits, given = UnpackLimits.from_env(), _size_of(src)

            def too_large():
                return ArchiveError(f"the archive {limits.too_large(given)}")

            write = bounded(spool.write, limits.allowed(given), too_large)
        if kind in ("gzip", "zstd"):
            decompress(kind, src.read, write)
        elif kind in ("xz", "bzip2"):
            d = lzma.LZMADecompressor() if kind == "xz" else bz2.BZ2Decompressor()
            while chunk := src.read(_CHUNK):
                write(d.decompress(chunk, _CHUNK))
                while not d.eof and not d.needs_input:  # output held back: drain it
                    write(d.decompress(b"", _CHUNK))
            if not d.eof:
                raise ArchiveError(f"invalid or truncated archive: truncated {kind} stream")
        else:
            shutil.copyfileobj(src, spool, _CHUNK)
        spool.seek(0)
        return spool  # type: ignore[return-value]
    except (LayerError, OSError, EOFError, lzma.LZMAError) as e:
        spool.close()
        if isinstance(e, OSError) and not isinstance(e, EOFError) and e.errno:
            raise
        raise ArchiveError(f"invalid or truncated archive: {e}") from None
    except BaseException:
        spool.close()
        raise


def load(store: ImageStore, src: BinaryIO) -> list[str]:
    """Load every image of a docker-archive or oci-archive (plain or gzip, zstd, xz, bzip2
    compressed); return the loaded names (tags, or image ids for untagged images). Refuses
    the whole archive on any error, leaving the store as it was."""
    spool = None
    try:
        if not _seekable(src):
            spool = _spool(store, src, "none")
            src = spool
        kind = _outer_compression(src)
        if kind != "none":
            spool2 = _spool(store, src, kind)
            if spool is not None:
                spool.close()
            src = spool = spool2
        loader: _Loader | None = None
        with store.lock.shared():  # gc lock: files first, records last
            try:
                with tarfile.open(fileobj=src, mode="r:") as tf:
                    loader = _Loader(store, tf, src)
                    if "manifest.json" in loader.members:
                        loader.load_docker()
                    elif "index.json" in loader.members:
                        loader.load_oci()
                    else:
                        raise ArchiveError(
                            "not an image archive (neither manifest.json nor index.json found)"
                        )
                    if not loader.records:
                        raise ArchiveError("the archive holds no images")
                    return loader.commit()
            except BaseException as e:
                if loader is not None:
                    loader.rollback()
                if isinstance(e, tarfile.TarError | EOFError | zlib.error):
                    why = str(e).splitlines()[0] if str(e) else type(e).__name__
                    if "could not be opened" in why or "empty file" in why or \
                            "invalid header" in why:
                        why = "not a tar archive"
                    raise ArchiveError(f"invalid or truncated archive: {why}") from None
                raise
    finally:
        if spool is not None:
            spool.close()
