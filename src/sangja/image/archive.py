"""Image archives: ``docker save``-style tars and OCI image layouts in a tar.

docker-archive: ``manifest.json`` ([{Config, RepoTags, Layers}]), each config as ``<hex>.json``
and each layer as an *uncompressed* tar (so its sha256 is the config's diff_id), plus the
legacy ``repositories`` file. oci-archive: ``oci-layout``, ``index.json`` (names in
``org.opencontainers.image.ref.name``) and ``blobs/sha256/*`` exactly as stored.

Loading reads OCI and Docker schema-2 manifests, indexes and manifest lists alike
(:mod:`sangja.image.manifest`; an index picks the host's platform), so archives and layouts
written by podman, skopeo (``--format v2s2`` too), umoci and docker load here; so do OCI image
layout *directories* (``load -i DIR``, ``oci:DIR[:NAME]``), whose files are opened beneath the
directory without following a symlink. Every blob comes in through the ingest path the registry
client shares (:mod:`sangja.image.ingest`): digests and sizes verified, the diff_id of every
layer, layers unpacked into the store under the unpack limits, all or nothing, records last.

Speed (see bench/unpack): a layer is read where it lies in the archive (no copy out of the
tar first); an uncompressed layer is hashed and stored as its blob by a second thread while
the main thread unpacks it (hashlib and file writes release the GIL), and its files are
copied with copy_file_range(2); a compressed layer is read once, stored and decompressed at
the same time. Layers are kept as they came: uncompressed docker-archive layers are stored
uncompressed (media type ``application/vnd.oci.image.layer.v1.tar``) instead of being
recompressed on the way in, which costs disk (the tar next to its unpacked directory) but no
CPU. A layer the store already has (same diff_id, same blob, unpacked) is only checked.
"""

from __future__ import annotations

import bz2
import errno
import hashlib
import io
import lzma
import os
import shutil
import tarfile
import tempfile
import zlib
from typing import Any, BinaryIO

from sangja import jsonio
from sangja.image import manifest as mf
from sangja.image.blobs import parse_digest
from sangja.image.db import Image, Layer
from sangja.image.ingest import (
    MAX_CONFIG,
    FileSource,
    Ingest,
    IngestError,
    canonical_tag,
    image_record,
    parse_config,
)
from sangja.image.layers import (
    LayerError,
    UnpackLimits,
    bounded,
    decompress,
    detect_compression,
)
from sangja.image.reference import parse
from sangja.image.store import ImageStore
from sangja.records import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed import SupportsRead

    from sangja.output import ByteSink

__all__ = ["ArchiveError", "FORMATS", "load", "load_layout", "load_path", "load_transport",
           "save", "split_transport"]

FORMATS = ("docker-archive", "oci-archive")
MEDIA_TYPE_INDEX = mf.OCI_INDEX
REF_NAME = mf.REF_NAME
CONTAINERD_NAME = "io.containerd.image.name"
_CHUNK = 1 << 20
_OUTER_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
)


class ArchiveError(IngestError):
    pass


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


def _add_file(tf: tarfile.TarFile, name: str, f: SupportsRead[bytes], size: int) -> None:
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

    def hash_and_write(chunk: bytes) -> None:
        sha.update(chunk)
        out.write(chunk)

    write: Callable[[bytes], object] = hash_and_write
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
    store: ImageStore, names: list[str], out: ByteSink, format: str = "docker-archive"
) -> None:
    """Write the named images to ``out`` (any writable binary stream, seekable or not)."""
    if format not in FORMATS:
        raise ArchiveError(f"unknown archive format {format!r} (want {' or '.join(FORMATS)})")
    if not names:
        raise ArchiveError("no images to save")
    selected = _select(store, names)
    # "w|" only writes; typeshed wants a readable, seekable file for every mode
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[call-overload]
        tf.copybufsize = _CHUNK  # set by TarFile(); not in typeshed (tf is untyped here)
        if format == "docker-archive":
            _save_docker(store, selected, tf)
        else:
            _save_oci(store, selected, tf)
    for entry in selected:  # Docker's `save` event per image, once it is written
        store.event("save", entry.image.id, entry.image.id)


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
            _add_file(tf, name, reader, store.blobs.size(blob))
            sha = reader.sha
        else:
            with tempfile.TemporaryFile(dir=store.blobs.tmp_dir) as tmp:
                sha = _spool_decompressed(kind, src, tmp, f"stored layer {blob}")
                size = tmp.tell()
                tmp.seek(0)
                _add_file(tf, name, tmp, size)
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


def _clean_name(name: str) -> str:
    return os.path.normpath(name.lstrip("/")).removeprefix("./")


class _TarArchive:
    """The files of an image archive (a tar), read where they lie."""

    origin = "in the archive"

    def __init__(self, tf: tarfile.TarFile, f: BinaryIO):
        self.tf, self.f = tf, f
        self.members: dict[str, tarfile.TarInfo] = {}
        for m in tf.getmembers():  # reads the whole index: a truncated tar fails here
            self.members[_clean_name(m.name)] = m

    def has(self, name: str) -> bool:
        return name in self.members

    def member(self, name: str) -> tarfile.TarInfo:
        name = _clean_name(name)
        m = self.members.get(name)
        hops = 0
        while m is not None and m.issym() and hops < 16:  # docker: layer.tar symlinks
            target = os.path.normpath(os.path.join(os.path.dirname(m.name), m.linkname))
            m = self.members.get(target.lstrip("/").removeprefix("./"))
            hops += 1
        if m is None or not m.isreg():
            raise ArchiveError(f"archive has no file {name!r}")
        return m

    def read(self, name: str, limit: int) -> bytes:
        """The file's first limit + 1 bytes at most."""
        f = self.tf.extractfile(self.member(name))
        assert f is not None  # member() returns a regular file's member
        with f:
            return f.read(limit + 1)

    def source(self, name: str) -> FileSource:
        m = self.member(name)
        return FileSource(self.f, m.offset_data, m.size, self.origin)

    def close(self) -> None:
        pass


class _LayoutDir:
    """The files of an OCI image layout directory: opened beneath it, never through a
    symlink, never a FIFO or device node read as data."""

    origin = "in the layout"

    def __init__(self, path: str):
        from sangja.linux.paths import O_PATH

        self.path = path
        self.dirfd = os.open(path, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.files: list[BinaryIO] = []

    def _open(self, name: str) -> BinaryIO:
        from sangja.linux.paths import NotRegularFile, open_beneath, reopen_regular

        try:
            pfd = open_beneath(self.dirfd, _clean_name(name))
        except OSError as e:
            if e.errno == errno.ENOENT:
                raise ArchiveError(f"{self.path}: no file {name!r}") from None
            if e.errno in (errno.ELOOP, errno.EXDEV):
                raise ArchiveError(f"{self.path}: {name!r} is reached through a symlink: "
                                   "refused") from None
            raise
        try:
            fd = reopen_regular(pfd)
        except NotRegularFile:
            raise ArchiveError(f"{self.path}: {name!r} is not a regular file") from None
        finally:
            os.close(pfd)
        f = os.fdopen(fd, "rb")
        self.files.append(f)
        return f

    def has(self, name: str) -> bool:
        try:
            self._open(name)
            return True
        except ArchiveError:
            return False

    def read(self, name: str, limit: int) -> bytes:
        return self._open(name).read(limit + 1)

    def source(self, name: str) -> FileSource:
        f = self._open(name)
        return FileSource(f, 0, os.fstat(f.fileno()).st_size, self.origin)

    def close(self) -> None:
        for f in self.files:
            f.close()
        self.files.clear()
        os.close(self.dirfd)


class _Loader:
    """Reads the images of one archive or layout and brings them in through Ingest."""

    def __init__(self, store: ImageStore, files: _TarArchive | _LayoutDir):
        self.store = store
        self.files = files
        self.ingest = Ingest(store)

    def read_json(self, name: str, limit: int = 16 << 20) -> Any:
        data = self.files.read(name, limit)
        if len(data) > limit:
            raise ArchiveError(f"{name} is too large")
        try:
            return jsonio.loads(data, source=name)
        except ValueError as e:  # jsonio.JSONError: names the file and the position
            raise ArchiveError(str(e)) from None

    # -- docker-archive ------------------------------------------------------------------
    def load_docker(self) -> None:
        manifest = self.read_json("manifest.json")
        if not isinstance(manifest, list) or not manifest:
            raise ArchiveError("manifest.json: expected a non-empty list of images")
        ingest = self.ingest
        for n, entry in enumerate(manifest):
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
                raise ArchiveError(f"manifest.json: entry {n} has no Config")
            config_bytes = self.files.read(entry["Config"], MAX_CONFIG)
            if len(config_bytes) > MAX_CONFIG:
                raise ArchiveError(f"{entry['Config']} is too large (more than {MAX_CONFIG} "
                                   "bytes)")
            config = parse_config(config_bytes, entry["Config"])
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
                    source = self.files.source(str(name))
                except ArchiveError:
                    if isinstance(sources, dict) and diff_id in sources:
                        source = sources[diff_id]
                        urls = (source.get("urls") if isinstance(source, dict) else None) or []
                        raise ArchiveError(
                            f"layer {diff_id} is a foreign layer not included in the archive"
                            f"{' (it is at ' + ', '.join(map(str, urls)) + ')' if urls else ''}"
                            "; sangja does not download foreign layers") from None
                    raise
                layers.append(ingest.layer(source, diff_id, f"layer {name}"))
            config_desc = ingest.put(config_bytes)
            descs = []
            for la in layers:
                assert la.blob_digest is not None  # ingest.layer stored its blob
                descs.append(mf.Descriptor(mf.layer_media_type(self._stored_compression(la)),
                                           la.blob_digest, la.size or 0))
            manifest_bytes = mf.oci_manifest_bytes(
                mf.Descriptor(mf.OCI_CONFIG, config_desc.digest, config_desc.size), descs)
            manifest_desc = ingest.put(manifest_bytes)
            tags = entry.get("RepoTags") or []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise ArchiveError(f"manifest.json: entry {n}: RepoTags is not a list of "
                                   "strings")
            ingest.add_image(image_record(config_desc.digest, manifest_desc.digest, layers,
                                          config), [canonical_tag(str(t)) for t in tags])

    def _stored_compression(self, layer: Layer) -> str:
        if layer.blob_digest == layer.diff_id:
            return "none"
        assert layer.blob_digest is not None  # an ingested layer's blob is stored
        with self.store.blobs.open(layer.blob_digest) as f:
            return detect_compression(f.read(4))

    # -- oci-archive and OCI layouts -----------------------------------------------------
    def blob_source(self, desc: mf.Descriptor, what: str) -> FileSource:
        algo, hexpart = parse_digest(desc.digest)
        name = f"blobs/{algo}/{hexpart}"
        try:
            return self.files.source(name)
        except ArchiveError as e:
            if desc.foreign:
                where = f" (it is at {', '.join(desc.urls)})" if desc.urls else ""
                raise ArchiveError(f"{what} {desc.digest} is a foreign layer not included in "
                                   f"the archive{where}; sangja does not download foreign "
                                   "layers") from None
            if "symlink" in str(e) or "regular file" in str(e):
                raise
            raise ArchiveError(f"{what} {desc.digest}: archive has no file {name!r}") from None

    def read_blob(self, desc: mf.Descriptor, what: str, limit: int = MAX_CONFIG) -> bytes:
        if desc.size > limit:
            raise ArchiveError(f"{what} {desc.digest} is too large ({desc.size} bytes)")
        source = self.blob_source(desc, what)
        data = source.open().read(desc.size + 1)
        algo, hexpart = parse_digest(desc.digest)
        if len(data) != desc.size or hashlib.new(algo, data).hexdigest() != hexpart:
            raise ArchiveError(f"{what} {desc.digest}: content does not match its digest "
                               "and size")
        return data

    def load_oci(self, only: str | None = None) -> None:
        """Every image the index names (the host's platform where one name has several);
        with ``only``, the one of that name (or the only one, when the index has one)."""
        try:
            data = self.files.read("index.json", mf.MAX_MANIFEST_BYTES)
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
        if only is not None:
            groups = _only(groups, only)
        for name, descs in groups.items():
            tags = [canonical_tag(name)] if name and not name.startswith("#") else []
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
        ingest = self.ingest
        data = self.read_blob(desc, "manifest", mf.MAX_MANIFEST_BYTES)
        try:
            doc = mf.parse(data, desc.media_type or None, where=where)
            if isinstance(doc, mf.ImageIndex):
                if depth > 4:
                    raise ArchiveError(f"{where}: indexes nested too deeply")
                chosen = doc.select()
                ingest.put(data, desc.digest, len(data))
                return self.load_oci_manifest(chosen, tags, [*extra, desc.digest], depth + 1)
            doc.check_image()
        except mf.ManifestError as e:
            raise ArchiveError(str(e)) from None
        config_bytes = self.read_blob(doc.config, "config")
        config = parse_config(config_bytes, f"config {doc.config.digest}")
        diff_ids = config["rootfs"]["diff_ids"]
        if len(diff_ids) != len(doc.layers):
            raise ArchiveError(f"{where}: {len(doc.layers)} layers, but its config has "
                               f"{len(diff_ids)} diff_ids")
        layers: list[Layer] = []
        for ld, diff_id in zip(doc.layers, diff_ids, strict=True):
            layer = ingest.layer(self.blob_source(ld, "layer"), diff_id, f"layer {ld.digest}",
                                 ld)
            if layer.blob_digest != ld.digest:  # the store keeps another blob for it
                extra.append(ld.digest)
            layers.append(layer)
        config_desc = ingest.put(config_bytes, doc.config.digest, len(config_bytes))
        ingest.put(data, desc.digest, len(data))
        ingest.add_image(image_record(config_desc.digest, desc.digest, layers, config,
                                      tuple(dict.fromkeys(extra))), tags)


def _only(groups: dict[str | None, list[mf.Descriptor]], want: str
          ) -> dict[str | None, list[mf.Descriptor]]:
    """The group of the image the index names `want` (as ``oci:DIR:NAME`` says), or, with
    no name given, the only one."""
    names = [n for n in groups if n and not n.startswith("#")]
    if want:
        if want in groups:
            return {want: groups[want]}
        raise ArchiveError(f"index.json names no image {want!r} (it has: "
                           f"{', '.join(names) or 'no names'})")
    if len(groups) != 1:
        raise ArchiveError(f"index.json has {len(groups)} images: name one (oci:DIR:NAME; "
                           f"it has: {', '.join(names) or 'no names'})")
    return groups


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
        write: Callable[[bytes], object] = spool.write
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
        return spool
    except (LayerError, OSError, EOFError, lzma.LZMAError) as e:
        spool.close()
        if isinstance(e, OSError) and not isinstance(e, EOFError) and e.errno:
            raise
        raise ArchiveError(f"invalid or truncated archive: {e}") from None
    except BaseException:
        spool.close()
        raise


def _run(store: ImageStore, files: _TarArchive | _LayoutDir, only: str | None = None
         ) -> list[str]:
    """Load what `files` holds through one Ingest: all or nothing."""
    loader: _Loader | None = None
    with store.lock.shared():  # gc lock: files first, records last
        try:
            loader = _Loader(store, files)
            if files.has("manifest.json") and only is None:
                loader.load_docker()
            elif files.has("index.json"):
                loader.load_oci(only)
            else:
                raise ArchiveError(
                    "not an image archive (neither manifest.json nor index.json found)"
                    if isinstance(files, _TarArchive) else
                    f"{files.path}: not an OCI image layout (no index.json)")
            if not loader.ingest.records:
                raise ArchiveError("the archive holds no images")
            names = loader.ingest.commit()
        except BaseException:
            if loader is not None:
                loader.ingest.rollback()
            raise
    _load_events(store, names)
    return names


def _load_events(store: ImageStore, names: list[str]) -> None:
    """Docker's `load` event per image loaded (actor and name: the image id)."""
    from sangja.errors import SangjaError

    ids: dict[str, None] = {}
    for n in names:
        try:
            ids[store.resolve(n).id] = None
        except SangjaError:
            continue
    for image_id in ids:
        store.event("load", image_id, image_id)


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
        try:
            with tarfile.open(fileobj=src, mode="r:") as tf:
                return _run(store, _TarArchive(tf, src))
        except (tarfile.TarError, EOFError, zlib.error) as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            if "could not be opened" in why or "empty file" in why or "invalid header" in why:
                why = "not a tar archive"
            raise ArchiveError(f"invalid or truncated archive: {why}") from None
    finally:
        if spool is not None:
            spool.close()


def load_layout(store: ImageStore, path: str, name: str | None = None) -> list[str]:
    """Load the images of an OCI image layout directory (``oci-layout``, ``index.json``,
    ``blobs/``, as skopeo, umoci and buildah write them): all of them, or with ``name``
    the one its index names so ("" for the only one)."""
    try:
        files = _LayoutDir(path)
    except FileNotFoundError:
        raise ArchiveError(f"{path}: no such directory") from None
    except NotADirectoryError:
        raise ArchiveError(f"{path}: not a directory") from None
    try:
        return _run(store, files, name)
    finally:
        files.close()


def load_path(store: ImageStore, path: str) -> list[str]:
    """``load -i PATH``: an archive file, or an OCI layout directory."""
    if os.path.isdir(path):
        return load_layout(store, path)
    with open(path, "rb") as f:
        return load(store, f)


TRANSPORTS = ("oci", "oci-archive", "docker-archive")


def split_transport(text: str) -> tuple[str, str] | None:
    """``oci:DIR[:NAME]``, ``oci-archive:FILE``, ``docker-archive:FILE`` -> (transport,
    rest); None for anything else (an image reference)."""
    transport, sep, rest = text.partition(":")
    if sep and transport in TRANSPORTS and rest:
        return transport, rest
    return None


def load_transport(store: ImageStore, transport: str, rest: str) -> list[str]:
    """Load from a transport reference as skopeo and podman spell them."""
    if transport == "oci":
        path, _, name = rest.partition(":")
        return load_layout(store, path, name if _ else None)
    return load_path(store, rest)
