"""Image archives: ``docker save``-style tars and OCI image layouts in a tar.

docker-archive: ``manifest.json`` ([{Config, RepoTags, Layers}]), each config as ``<hex>.json``
and each layer as an *uncompressed* tar (so its sha256 is the config's diff_id), plus the
legacy ``repositories`` file. oci-archive: ``oci-layout``, ``index.json`` (names in
``org.opencontainers.image.ref.name``) and ``blobs/sha256/*`` exactly as stored.

Loading verifies every digest (blob digests, and the diff_id of every layer), writes blobs
first and the database last in one transaction; on any failure the blobs this load added are
removed again, so the store is left as it was.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO

from sangja import jsonio
from sangja.image.blobs import DigestMismatch, InvalidDigest, parse_digest
from sangja.image.db import Image, Layer
from sangja.image.reference import InvalidReference, parse
from sangja.image.store import (
    MEDIA_TYPE_MANIFEST,
    ImageStore,
    StoreError,
    goarch,
    oci_manifest,
)

__all__ = ["ArchiveError", "FORMATS", "load", "save"]


def _image_record(config_desc, manifest_desc, layers: list, config: dict, size: int,
                  blobs: tuple) -> dict:
    """Keyword arguments of Database.add_image for an image read from an archive."""
    return dict(image_id=config_desc.digest, manifest_digest=manifest_desc.digest,
                layers=layers, created=config.get("created"), size=size,
                architecture=config.get("architecture"), os=config.get("os"), blobs=blobs)

FORMATS = ("docker-archive", "oci-archive")
MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
_INDEX_TYPES = (MEDIA_TYPE_INDEX, DOCKER_LIST)
_MANIFEST_TYPES = (MEDIA_TYPE_MANIFEST, DOCKER_MANIFEST)
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class ArchiveError(StoreError):
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
        if format == "docker-archive":
            _save_docker(store, selected, tf)
        else:
            _save_oci(store, selected, tf)


def _layer_blobs(store: ImageStore) -> dict[str, str | None]:
    return {layer.diff_id: layer.blob_digest for layer in store.db.layers()}


def _save_docker(store: ImageStore, selected: list[_Saved], tf: tarfile.TarFile) -> None:
    blobs_of = _layer_blobs(store)
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
        for diff_id in img.layers:
            hexpart = diff_id.partition(":")[2]
            name = f"{hexpart}/layer.tar"
            layer_names.append(name)
            if name in written:
                continue
            blob = blobs_of.get(diff_id)
            if blob is None:
                raise ArchiveError(f"layer {diff_id} of image {img.id} has no blob")
            with tempfile.TemporaryFile(dir=store.blobs.tmp_dir) as tmp:
                h = hashlib.sha256()
                with store.blobs.open(blob) as src:
                    for chunk in _decompressed(src):
                        h.update(chunk)
                        tmp.write(chunk)
                if f"sha256:{h.hexdigest()}" != diff_id:
                    raise ArchiveError(f"stored layer {blob} does not match its diff_id {diff_id}")
                size = tmp.tell()
                tmp.seek(0)
                _add_dir(tf, hexpart)
                _add_file(tf, name, tmp, size)
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


def _save_oci(store: ImageStore, selected: list[_Saved], tf: tarfile.TarFile) -> None:
    blobs_of = _layer_blobs(store)
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
        manifest = jsonio.loads(store.blobs.read_bytes(img.manifest_digest))
        blob(manifest["config"]["digest"])
        for layer in manifest.get("layers", []):
            blob(layer["digest"])
        for diff_id in img.layers:  # a manifest we wrote names exactly these blobs
            if blobs_of.get(diff_id) is None:
                raise ArchiveError(f"layer {diff_id} of image {img.id} has no blob")
        size = blob(img.manifest_digest)
        desc = {
            "mediaType": manifest.get("mediaType", MEDIA_TYPE_MANIFEST),
            "digest": img.manifest_digest,
            "size": size,
        }
        if not s.tags:
            index_entries.append(desc)
        for t in s.tags:
            index_entries.append({**desc, "annotations": {REF_NAME: t, CONTAINERD_NAME: t}})
    index = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": index_entries}
    _add_bytes(tf, "index.json", jsonio.dumps(index).encode())


def _decompressed(src: BinaryIO):
    """Chunks of the uncompressed content of a plain or gzip stream."""
    head = src.read(4)
    if head.startswith(_ZSTD_MAGIC):
        raise ArchiveError("zstd-compressed layers are not supported in archives")
    if head.startswith(_GZIP_MAGIC):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data = head
        while True:
            if data:
                yield d.decompress(data)
                while d.eof and d.unused_data:  # concatenated gzip members
                    rest = d.unused_data
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    yield d.decompress(rest)
            data = src.read(_CHUNK)
            if not data:
                break
        if not d.eof:
            raise ArchiveError("truncated gzip stream")
        tail = d.flush()
        if tail:
            yield tail
        return
    if head:
        yield head
    while chunk := src.read(_CHUNK):
        yield chunk


# ---------------------------------------------------------------------------- loading


class _Loader:
    def __init__(self, store: ImageStore, tf: tarfile.TarFile):
        self.store = store
        self.tf = tf
        self.members: dict[str, tarfile.TarInfo] = {}
        for m in tf.getmembers():  # reads the whole index: a truncated tar fails here
            name = os.path.normpath(m.name.lstrip("/")).removeprefix("./")
            self.members[name] = m
        self.added: list[str] = []  # blobs this load created
        self.records: list[tuple[dict[str, Any], list[str]]] = []

    # -- members -------------------------------------------------------------------------
    def open(self, name: str) -> BinaryIO:
        name = os.path.normpath(name.lstrip("/")).removeprefix("./")
        m = self.members.get(name)
        while m is not None and m.issym():  # docker writes layer.tar symlinks for duplicates
            target = os.path.normpath(os.path.join(os.path.dirname(m.name), m.linkname))
            m = self.members.get(target.removeprefix("./"))
        if m is None or not m.isreg():
            raise ArchiveError(f"archive has no file {name!r}")
        f = self.tf.extractfile(m)
        assert f is not None
        return f  # type: ignore[return-value]

    def read_json(self, name: str, limit: int = 16 << 20) -> Any:
        with self.open(name) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ArchiveError(f"{name} is too large")
        try:
            return jsonio.loads(data)
        except ValueError as e:
            raise ArchiveError(f"{name} is not valid JSON: {e}") from None

    def put(self, src, expected_digest: str | None = None, expected_size: int | None = None):
        existed = expected_digest is not None and self.store.blobs.exists(expected_digest)
        if expected_digest is None and isinstance(src, bytes):
            existed = self.store.blobs.exists(f"sha256:{hashlib.sha256(src).hexdigest()}")
        desc = self.store.blobs.put(src, expected_digest, expected_size)
        if not existed:
            self.added.append(desc.digest)
        return desc

    # -- layers --------------------------------------------------------------------------
    def store_layer(self, src: BinaryIO, diff_id: str, what: str) -> tuple[Layer, int]:
        """Verify the layer against diff_id, store it gzip-compressed (as it came, when it
        came gzipped); return its record and its content size."""
        head = src.read(4)
        if head.startswith(_ZSTD_MAGIC):
            raise ArchiveError(f"{what}: zstd-compressed layers are not supported")
        gz = head.startswith(_GZIP_MAGIC)
        fd, tmp = tempfile.mkstemp(prefix="load-", dir=self.store.blobs.tmp_dir)
        try:
            with os.fdopen(fd, "w+b") as out:
                sink = _Tee(out, gz)
                sink.write(head)
                while chunk := src.read(_CHUNK):
                    sink.write(chunk)
                actual, content = sink.finish()
                if actual != diff_id:
                    raise ArchiveError(
                        f"{what}: content does not match the config's diff_id "
                        f"(expected {diff_id}, got {actual})"
                    )
                out.flush()
                out.seek(0)
                desc = self.put(out)
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        return Layer(diff_id, desc.digest, desc.size), content

    def verify_layer_blob(self, digest: str, diff_id: str, what: str) -> int:
        sink = _Tee(None, False)
        with self.store.blobs.open(digest) as f:
            try:
                for chunk in _decompressed(f):
                    sink.feed(chunk)
            except zlib.error as e:
                raise ArchiveError(f"{what}: corrupt gzip data: {e}") from None
        actual, content = sink.finish()
        if actual != diff_id:
            raise ArchiveError(
                f"{what}: content does not match the config's diff_id "
                f"(expected {diff_id}, got {actual})"
            )
        return content

    # -- docker-archive ------------------------------------------------------------------
    def load_docker(self) -> None:
        manifest = self.read_json("manifest.json")
        if not isinstance(manifest, list) or not manifest:
            raise ArchiveError("manifest.json: expected a non-empty list of images")
        done: dict[str, tuple[Layer, int]] = {}
        for n, entry in enumerate(manifest):
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
                raise ArchiveError(f"manifest.json: entry {n} has no Config")
            with self.open(entry["Config"]) as f:
                config_bytes = f.read()
            config = _parse_config(config_bytes, entry["Config"])
            diff_ids = config["rootfs"]["diff_ids"]
            layer_names = entry.get("Layers") or []
            if not isinstance(layer_names, list) or len(layer_names) != len(diff_ids):
                raise ArchiveError(
                    f"manifest.json: entry {n}: its Layers do not match the config's "
                    f"{len(diff_ids)} diff_ids"
                )
            layers: list[Layer] = []
            size = 0
            for name, diff_id in zip(layer_names, diff_ids, strict=True):
                if diff_id not in done:
                    with self.open(str(name)) as f:
                        done[diff_id] = self.store_layer(f, diff_id, f"layer {name}")
                layer, content = done[diff_id]
                layers.append(layer)
                size += content
            config_desc = self.put(config_bytes)
            manifest_doc = oci_manifest(config_desc.digest, config_desc.size,
                                        [(la.blob_digest, la.size) for la in layers])
            manifest_desc = self.put(jsonio.dumps(manifest_doc).encode())
            tags = entry.get("RepoTags") or []
            if not isinstance(tags, list):
                raise ArchiveError(f"manifest.json: entry {n}: RepoTags is not a list")
            record = _image_record(config_desc, manifest_desc, layers, config, size, ())
            self.records.append((record, [_canonical(str(t)) for t in tags]))

    # -- oci-archive ---------------------------------------------------------------------
    def blob_member(self, desc: Any, what: str) -> tuple[str, int, str]:
        if not isinstance(desc, dict):
            raise ArchiveError(f"{what}: not a descriptor")
        digest, size = desc.get("digest"), desc.get("size")
        try:
            algo, hexpart = parse_digest(digest)
        except InvalidDigest as e:
            raise ArchiveError(f"{what}: {e}") from None
        if not isinstance(size, int) or size < 0:
            raise ArchiveError(f"{what}: bad size {size!r}")
        return f"blobs/{algo}/{hexpart}", size, digest  # type: ignore[return-value]

    def put_blob(self, desc: Any, what: str):
        member, size, digest = self.blob_member(desc, what)
        with self.open(member) as f:
            try:
                return self.put(f, digest, size)
            except DigestMismatch as e:
                raise ArchiveError(f"{what} {digest}: {e}") from None

    def read_blob_json(self, desc: Any, what: str) -> tuple[Any, bytes]:
        member, size, digest = self.blob_member(desc, what)
        if size > 16 << 20:
            raise ArchiveError(f"{what} {digest} is too large")
        with self.open(member) as f:
            data = f.read(size + 1)
        algo, hexpart = parse_digest(digest)
        if len(data) != size or hashlib.new(algo, data).hexdigest() != hexpart:
            raise ArchiveError(f"{what} {digest}: content does not match its digest")
        try:
            return jsonio.loads(data), data
        except ValueError as e:
            raise ArchiveError(f"{what} {digest} is not valid JSON: {e}") from None

    def load_oci(self) -> None:
        index = self.read_json("index.json")
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise ArchiveError("index.json: no manifests list")
        for n, desc in enumerate(index["manifests"]):
            if not isinstance(desc, dict):
                raise ArchiveError(f"index.json: entry {n} is not a descriptor")
            annotations = desc.get("annotations") or {}
            name = annotations.get(CONTAINERD_NAME) or annotations.get(REF_NAME)
            tags = [_canonical(str(name))] if name else []
            self.load_oci_manifest(desc, tags, [])

    def load_oci_manifest(self, desc: dict, tags: list[str], extra: list[str]) -> None:
        doc, data = self.read_blob_json(desc, "manifest")
        media = doc.get("mediaType") or desc.get("mediaType")
        if media in _INDEX_TYPES or "manifests" in doc:
            want = goarch()
            for d in doc.get("manifests") or []:
                p = (d or {}).get("platform") or {}
                if p.get("architecture") == want and p.get("os", "linux") == "linux":
                    self.put(data, desc["digest"], len(data))
                    return self.load_oci_manifest(d, tags, [*extra, desc["digest"]])
            raise ArchiveError(f"index {desc['digest']} has no image for linux/{want}")
        if not isinstance(doc.get("config"), dict) or not isinstance(doc.get("layers"), list):
            raise ArchiveError(f"manifest {desc['digest']}: no config or layers")
        config_raw, config_bytes = self.read_blob_json(doc["config"], "config")
        config = _parse_config(config_bytes, f"config {doc['config'].get('digest')}")
        diff_ids = config["rootfs"]["diff_ids"]
        if len(diff_ids) != len(doc["layers"]):
            raise ArchiveError(
                f"manifest {desc['digest']}: {len(doc['layers'])} layers, config {len(diff_ids)}"
            )
        layers: list[Layer] = []
        size = 0
        for ld, diff_id in zip(doc["layers"], diff_ids, strict=True):
            ldesc = self.put_blob(ld, "layer")
            size += self.verify_layer_blob(ldesc.digest, diff_id, f"layer {ldesc.digest}")
            layers.append(Layer(diff_id, ldesc.digest, ldesc.size))
        config_desc = self.put(config_bytes, doc["config"]["digest"], len(config_bytes))
        manifest_desc = self.put(data, desc["digest"], len(data))
        record = _image_record(config_desc, manifest_desc, layers, config, size, tuple(extra))
        self.records.append((record, tags))

    # -- commit --------------------------------------------------------------------------
    def commit(self) -> list[str]:
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
        try:
            still = self.store.db.referenced_blobs()
        except Exception:
            return
        for digest in self.added:
            if digest not in still:
                self.store.blobs.delete(digest)


class _Tee:
    """Hashes the uncompressed layer, sums its file sizes, and writes a gzip copy to ``out``
    (the input itself when it came gzipped)."""

    def __init__(self, out: BinaryIO | None, gz_input: bool):
        self.out = out
        self.gz_input = gz_input
        self.sha = hashlib.sha256()
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS) if gz_input else None
        self.gzip = (
            gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6)
            if out is not None and not gz_input
            else None
        )
        self.tar = _TarSizer()

    def write(self, data: bytes) -> None:
        if self.out is not None and self.gz_input:
            self.out.write(data)
        if self.d is not None:
            try:
                plain = self.d.decompress(data)
                while self.d.eof and self.d.unused_data:
                    rest = self.d.unused_data
                    self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    plain += self.d.decompress(rest)
            except zlib.error as e:
                raise ArchiveError(f"corrupt gzip data in layer: {e}") from None
            self.feed(plain)
        else:
            if self.gzip is not None:
                self.gzip.write(data)
            self.feed(data)

    def feed(self, plain: bytes) -> None:
        self.sha.update(plain)
        self.tar.feed(plain)

    def finish(self) -> tuple[str, int]:
        if self.d is not None and not self.d.eof:
            raise ArchiveError("layer: truncated gzip stream")
        if self.gzip is not None:
            self.gzip.close()
        return f"sha256:{self.sha.hexdigest()}", self.tar.content


class _TarSizer:
    """Sums the sizes of regular files in a tar stream fed in pieces (headers only)."""

    def __init__(self):
        self.buf = b""
        self.skip = 0
        self.content = 0
        self.pax_size: int | None = None
        self.ended = False

    def feed(self, data: bytes) -> None:
        if self.ended:
            return
        if self.skip:
            n = min(self.skip, len(data))
            self.skip -= n
            data = data[n:]
        self.buf += data
        while not self.ended and len(self.buf) >= 512:
            if self.skip:
                n = min(self.skip, len(self.buf))
                self.skip -= n
                self.buf = self.buf[n:]
                continue
            hdr, self.buf = self.buf[:512], self.buf[512:]
            if hdr == b"\0" * 512:
                self.ended = True
                return
            try:
                ti = tarfile.TarInfo.frombuf(hdr, "utf-8", "surrogateescape")
            except tarfile.HeaderError:
                self.ended = True
                return
            size = ti.size
            if ti.type in (tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
                need = -(-size // 512) * 512
                if ti.type == tarfile.XHDTYPE:
                    # a pax header may carry the next member's size
                    while len(self.buf) < need:
                        return self._wait(hdr)
                    body = self.buf[:size]
                    self.buf = self.buf[need:]
                    for rec in body.split(b"\n"):
                        if b" size=" in rec:
                            try:
                                self.pax_size = int(rec.split(b"=", 1)[1])
                            except ValueError:
                                pass
                    continue
                self.skip = need
                continue
            if self.pax_size is not None:
                size, self.pax_size = self.pax_size, None
            if ti.type in tarfile.REGULAR_TYPES:
                self.content += size
                self.skip = -(-size // 512) * 512
            elif ti.type not in (tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.DIRTYPE):
                self.skip = -(-size // 512) * 512 if ti.type not in (
                    tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE) else 0

    def _wait(self, hdr: bytes) -> None:
        self.buf = hdr + self.buf  # re-read the header once the pax body has arrived


def _canonical(name: str) -> str:
    try:
        ref = parse(name)
    except InvalidReference as e:
        raise ArchiveError(f"archive names an invalid image reference: {e}") from None
    if ref.digest is not None:
        raise ArchiveError(f"archive tag {name!r} carries a digest")
    return str(ref)


def _parse_config(data: bytes, what: str) -> dict[str, Any]:
    try:
        config = jsonio.loads(data)
    except ValueError as e:
        raise ArchiveError(f"{what} is not valid JSON: {e}") from None
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


def load(store: ImageStore, src: BinaryIO) -> list[str]:
    """Load every image of a docker-archive or oci-archive; return the loaded names (tags,
    or image ids for untagged images). Refuses the whole archive on any error."""
    spool = None
    try:
        if not _seekable(src):
            spool = tempfile.TemporaryFile(prefix=".load-", dir=store.root)
            while chunk := src.read(_CHUNK):
                spool.write(chunk)
            spool.seek(0)
            src = spool
        loader: _Loader | None = None
        try:
            with tarfile.open(fileobj=src, mode="r:*") as tf:
                loader = _Loader(store, tf)
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
            if isinstance(e, tarfile.TarError | EOFError | zlib.error | gzip.BadGzipFile):
                why = str(e).splitlines()[0] if str(e) else type(e).__name__
                if "could not be opened" in why:
                    why = "not a tar archive"
                raise ArchiveError(f"invalid or truncated archive: {why}") from None
            raise
    finally:
        if spool is not None:
            spool.close()
