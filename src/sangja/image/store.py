"""The image store: blobs, the image database and unpacked layers under one root.

    <root>/blobs/sha256/<hex>       content-addressed blobs (layers, configs, manifests)
    <root>/images.db                image records, tags, layer links (SQLite)
    <root>/layers/<hex of diff_id>/ each layer unpacked once, shared by every image using it

Writes go database-last on the way in (blobs, then the record) and database-first on the way
out (record, then files), so a crash leaves at worst unreferenced files, never a record that
points at nothing. Writers and collectors coordinate through the gc lock (``self.lock``,
``<root>/gc.lock``, see :mod:`sangja.image.gclock`): writers hold it shared from their first
file to their committed record, collectors (rmi, prune, check) hold it exclusive.
"""

from __future__ import annotations

import os
import stat
import time

from sangja import jsonio
from sangja.errors import SangjaError
from sangja.image.blobs import DEFAULT_ROOT, BlobStore, validate_digest
from sangja.image.db import Database, Image, ImageNotFound, Layer
from sangja.image.gclock import lock_for
from sangja.image.reference import InvalidReference, parse
from sangja.records import dataclass

TYPE_CHECKING = False  # typing costs ~1.5 ms at start-up; annotations only
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DEFAULT_PATH_ENV",
    "ImageInUse",
    "ImageStore",
    "MEDIA_TYPE_CONFIG",
    "MEDIA_TYPE_LAYER_GZIP",
    "MEDIA_TYPE_MANIFEST",
    "StoreError",
    "default_root",
    "goarch",
]

MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "386",
    "i686": "386",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
_CHUNK = 1 << 20


class StoreError(SangjaError):
    pass


class ImageInUse(StoreError):
    engine_exit_code = 1  # Docker: a daemon error


def default_root() -> str:
    return os.environ.get("SANGJA_ROOT") or DEFAULT_ROOT


def goarch(machine: str | None = None) -> str:
    machine = machine or os.uname().machine
    return _GOARCH.get(machine, machine)


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


def _rmtree(path: str) -> None:
    import shutil

    def onexc(func, p, exc):  # make read-only directories writable, then retry once
        try:
            parent = os.path.dirname(p)
            os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, stat.S_IRWXU)
            func(p)
        except FileNotFoundError:
            pass

    shutil.rmtree(path, onerror=lambda f, p, e: onexc(f, p, e))


def tree_size(path: str) -> int:
    """Bytes of the regular files under path (hardlinks counted once), symlinks not followed."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            total += st.st_size
    return total


def tar_content_size(path: str) -> int:
    """Sum of the regular files' sizes in a plain, gzip, bzip2, xz or zstd tar file."""
    import shutil
    import subprocess
    import tarfile

    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"\x28\xb5\x2f\xfd":  # zstd: tarfile has no codec for it
        exe = shutil.which("zstd")
        if exe is None:
            raise StoreError("zstd is not installed")
        proc = subprocess.Popen([exe, "-dcq", path], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tf:
                total = sum(m.size for m in tf if m.isreg())
        finally:
            proc.stdout.close()
            proc.wait()
        return total
    with tarfile.open(path, mode="r|*") as tf:
        return sum(m.size for m in tf if m.isreg())


class _HashingWriter:
    """File-like sink for tarfile: hashes and counts the uncompressed bytes, then gzips."""

    def __init__(self, gz):  # a gzip.GzipFile
        import hashlib

        self.gz = gz
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.gz.write(data)
        return len(data)


@dataclass(frozen=True)
class _TarResult:
    diff_id: str
    tar_size: int
    content_size: int
    newest_mtime: float


def _write_rootfs_tar(rootfs: str, out) -> _TarResult:
    """Deterministic tar of rootfs: sorted entries, numeric owners, mtimes kept."""
    import gzip
    import tarfile

    from sangja.image.layers import add_entry

    gz = gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6)
    sink = _HashingWriter(gz)
    links: dict[tuple[int, int], str] = {}
    content = 0
    newest = 0.0
    # a "w|" tar only writes to its fileobj; typeshed wants read, seek and close too
    with tarfile.open(fileobj=sink, mode="w|",  # type: ignore[call-overload]  # see above
                      format=tarfile.PAX_FORMAT) as tf:

        def walk(rel: str) -> None:
            nonlocal content, newest
            d = os.path.join(rootfs, rel) if rel else rootfs
            for name in sorted(os.listdir(d)):
                r = f"{rel}/{name}" if rel else name
                full = os.path.join(d, name)
                st = os.lstat(full)
                newest = max(newest, st.st_mtime)
                ti = add_entry(tf, full, r, st, links)
                if ti.isreg():  # Docker's layer size: the regular files' bytes
                    content += ti.size
                if stat.S_ISDIR(st.st_mode):
                    walk(r)

        walk("")
    gz.close()
    return _TarResult(f"sha256:{sink.sha.hexdigest()}", sink.size, content, newest)


def oci_manifest(config_digest: str, config_size: int,
                 layers: list[tuple[str, int]]) -> dict:
    """The OCI image manifest for a config blob and gzip layer blobs (digest, size)."""
    return {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": config_digest,
                   "size": config_size},
        "layers": [{"mediaType": MEDIA_TYPE_LAYER_GZIP, "digest": d, "size": s}
                   for d, s in layers],
    }


class ImageStore:
    def __init__(self, root: str | os.PathLike[str] | None = None,
                 runroot: str | None = None):
        """`runroot`: the engine's run root, where what this store does is logged as
        Docker's image events (sangja.engine.events); None (a store opened to read, check
        or repair) logs nothing."""
        self.root = os.path.abspath(os.fspath(root) if root is not None else default_root())
        self.runroot = runroot
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        self.blobs = BlobStore(self.root)
        self.db = Database(os.path.join(self.root, "images.db"))
        self.layers_dir = os.path.join(self.root, "layers")
        os.makedirs(self.layers_dir, mode=0o700, exist_ok=True)
        self.lock = lock_for(self.root)  # one per root per process: nests across stores
        if 0 < (self.db.migrated_from or 0) < 3:  # a new database has no images
            with self.lock.exclusive():  # before any gc reads the per-image blobs
                self.adopt_manifest_blobs()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ImageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- import --------------------------------------------------------------------------
    def import_rootfs(
        self,
        rootfs_dir: str | os.PathLike[str],
        *,
        config_overrides: dict[str, Any] | None = None,
        created: str | None = None,
        created_by: str = "sangja import rootfs",
    ) -> str:
        """Store a directory as a one-layer image; return its id (the config digest).

        ``config_overrides`` is merged into the config's ``config`` object (Env, Cmd, ...).
        ``created`` defaults to $SOURCE_DATE_EPOCH, else the newest mtime in the tree, so
        importing the same tree twice gives the same digests.
        """
        rootfs = os.fspath(rootfs_dir)
        if not os.path.isdir(rootfs):
            raise StoreError(f"rootfs {rootfs!r} is not a directory")
        with self.lock.shared():  # files first, record last: no gc in between
            return self._import_rootfs(rootfs, config_overrides, created, created_by)

    def _import_rootfs(self, rootfs: str, config_overrides: dict[str, Any] | None,
                       created: str | None, created_by: str) -> str:
        import tempfile

        # an unnamed temp file (O_TMPFILE): nothing is left behind whatever happens
        with tempfile.TemporaryFile(prefix="layer-", dir=self.blobs.tmp_dir) as f:
            result = _write_rootfs_tar(rootfs, f)
            f.flush()
            f.seek(0)
            layer_desc = self.blobs.put(f)
        if created is None:
            epoch = os.environ.get("SOURCE_DATE_EPOCH")
            created = _rfc3339(float(epoch) if epoch else result.newest_mtime)
        arch = goarch()
        inner: dict[str, Any] = {"Env": [DEFAULT_PATH_ENV], "Cmd": ["sh"]}
        inner.update(config_overrides or {})
        config = {
            "created": created,
            "architecture": arch,
            "os": "linux",
            "config": inner,
            "rootfs": {"type": "layers", "diff_ids": [result.diff_id]},
            "history": [{"created": created, "created_by": created_by}],
        }
        config_desc = self.blobs.put(jsonio.dumps(config).encode())
        manifest = oci_manifest(config_desc.digest, config_desc.size,
                                [(layer_desc.digest, layer_desc.size)])
        manifest_desc = self.blobs.put(jsonio.dumps(manifest).encode())
        self.db.add_image(
            config_desc.digest,
            manifest_digest=manifest_desc.digest,
            layers=[Layer(result.diff_id, layer_desc.digest, layer_desc.size,
                          content_size=result.content_size)],
            created=created,
            size=result.content_size,
            architecture=arch,
            os="linux",
        )
        return config_desc.digest

    # -- layers --------------------------------------------------------------------------
    def layer_path(self, diff_id: str) -> str:
        return os.path.join(self.layers_dir, diff_id.partition(":")[2])

    def unpacked_layers(self, image_id: str) -> list[str]:
        """Paths of the image's unpacked layers, lowest first (unpacking missing ones from
        the blobs this image's manifest names)."""
        with self.lock.shared():  # an unpack in progress is not an orphan for gc
            image = self.resolve(image_id)
            paths = []
            for layer in self.db.image_layers(image.id):
                final = self.layer_path(layer.diff_id)
                if not os.path.isdir(final):
                    if layer.blob_digest is None:
                        raise StoreError(f"layer {layer.diff_id} of image {image.id} has no "
                                         "blob")
                    self.unpack_layer(layer.diff_id, layer.blob_digest)
                if layer.unpacked_path != final:
                    self.db.set_layer_path(layer.diff_id, final)
                paths.append(final)
            return paths

    def manifest_layer_blobs(self, image: Image) -> list[tuple[str, int]] | None:
        """(digest, size) of each layer blob the image's manifest names, lowest first; None
        when it has no readable manifest, or one that does not list its layers."""
        if not image.manifest_digest:
            return None
        try:
            manifest = jsonio.loads(self.blobs.read_bytes(image.manifest_digest))
        except (OSError, ValueError, SangjaError):
            return None
        descs = manifest.get("layers") if isinstance(manifest, dict) else None
        if not isinstance(descs, list) or len(descs) != len(image.layers):
            return None
        out: list[tuple[str, int]] = []
        for d in descs:
            size = d.get("size") if isinstance(d, dict) else None
            try:
                digest = validate_digest(d.get("digest") if isinstance(d, dict) else None)
            except SangjaError:
                return None
            if not isinstance(size, int) or isinstance(size, bool):
                return None
            out.append((digest, size))
        return out

    def manifest_mismatches(self) -> list[tuple[Image, int, str, int]]:
        """(image, layer position, manifest's digest, its size) wherever an image's layer
        record names another blob than its manifest, and the store has the manifest's: a
        record made by a sangja before v3 of the schema (see db._SCHEMA_V3)."""
        out = []
        for img in self.db.images():
            named = self.manifest_layer_blobs(img)
            if named is None:
                continue
            for pos, (layer, (digest, size)) in enumerate(
                    zip(self.db.image_layers(img.id), named, strict=True)):
                if layer.blob_digest != digest and self.blobs.exists(digest):
                    out.append((img, pos, digest, size))
        return out

    def adopt_manifest_blobs(self) -> int:
        """Record, for each image, the layer blobs its manifest names (where the records say
        otherwise and the store has them); the caller holds the gc lock exclusive. Returns
        how many layer records changed."""
        fixes = self.manifest_mismatches()
        for img, pos, digest, size in fixes:
            self.db.set_image_layer_blob(img.id, pos, digest, size)
        return len(fixes)

    def unpack_layer(self, diff_id: str, blob_digest: str, limits=None):
        """Unpack a layer blob into its layer directory unless it is there already; return
        the LayerStats (None when it was already unpacked). The caller holds ``self.lock``
        (shared at least). Hostile entries raise UnsafeLayer and leave nothing behind.
        ``limits``: the UnpackLimits of a layer that comes from outside (default: those of
        the store's own layers, layers.STORE_LIMITS)."""
        import tempfile

        from sangja.fs import mark_top_dir, syncfs
        from sangja.image.layers import STORE_LIMITS, unpack_layer

        final = self.layer_path(diff_id)
        if os.path.isdir(final):
            return None
        mark_top_dir(self.layers_dir)
        tmp = tempfile.mkdtemp(prefix=".unpack-", dir=self.layers_dir)
        try:
            os.chmod(tmp, 0o755)
            with self.blobs.open(blob_digest) as f:
                # overlay format: whiteouts as 0:0 devices
                stats = unpack_layer(f, tmp, limits=limits or STORE_LIMITS)
            syncfs(tmp)  # the final name must never show a layer a power cut could cut short
            try:
                os.rename(tmp, final)
            except OSError:
                if not os.path.isdir(final):  # not a lost race: a real error
                    raise
                _rmtree(tmp)
        except BaseException:
            if os.path.lexists(tmp):
                _rmtree(tmp)
            raise
        return stats

    def adopt_layer_dir(self, diff_id: str, path: str) -> str:
        """Make the directory `path` (on the store's filesystem, in overlay layer format,
        already durable) the unpacked layer `diff_id`: renamed into place, or removed when
        that layer is unpacked already. Returns the layer's directory. The caller holds
        ``self.lock`` shared and records the layer before releasing it."""
        final = self.layer_path(diff_id)
        if os.path.isdir(final):
            _rmtree(path)
            return final
        try:
            os.rename(path, final)
        except OSError:
            if not os.path.isdir(final):  # not a lost race: a real error
                raise
            _rmtree(path)
        return final

    def mounted_layers(self) -> set[str]:
        """Names (hex of the diff_id) of the layer directories that mounted container
        snapshots stack: collectors never remove them, whatever the records say (they are
        a running container's files)."""
        from sangja.image.snapshots import STORE_DIR, layers_in_use

        layers_dir = os.path.realpath(self.layers_dir)
        return {os.path.basename(p)
                for p in layers_in_use(os.path.join(self.root, STORE_DIR))
                if os.path.dirname(p) == layers_dir}

    def remove_layer_dir(self, diff_id: str) -> int:
        """Remove a layer directory (renamed aside first, so a half-removed layer is never
        mistaken for an unpacked one); return the bytes of its regular files."""
        import tempfile

        path = self.layer_path(diff_id)
        if not os.path.lexists(path):
            return 0
        size = tree_size(path)
        doomed = tempfile.mkdtemp(prefix=".remove-", dir=self.layers_dir)
        os.rename(path, os.path.join(doomed, "l"))
        _rmtree(doomed)
        return size

    def layer_sizes(self, image: Image) -> list[int | None]:
        """Content size (sum of file sizes, uncompressed) of each layer of the image, lowest
        first; computed from the blob (or the unpacked directory) and recorded when the
        database does not have it yet. None when neither is available."""
        sizes: list[int | None] = []
        for layer in self.db.image_layers(image.id):
            size = layer.content_size
            if size is None:
                size = self._measure_layer(layer)
                if size is not None:
                    self.db.set_layer_content_size(layer.diff_id, size)
            sizes.append(size)
        return sizes

    def _measure_layer(self, layer: Layer) -> int | None:
        import tarfile

        if layer.blob_digest is not None:
            try:
                return tar_content_size(self.blobs.path(layer.blob_digest))
            except (OSError, tarfile.TarError, EOFError, StoreError, ValueError):
                pass
        path = self.layer_path(layer.diff_id)
        if os.path.isdir(path):
            return tree_size(path)
        return None

    def history(self, name_or_id: str) -> list[dict[str, Any]]:
        """Docker's image history, newest first: one row per history entry with the size of
        the layer it made (0 for empty_layer entries); ``id`` is the image id on the top row
        and ``<missing>`` below (no parent images are kept)."""
        img = self.resolve(name_or_id)
        config = jsonio.loads(self.blobs.read_bytes(img.id))
        sizes = self.layer_sizes(img)
        rows: list[dict[str, Any]] = []
        n = 0
        for h in config.get("history") or []:
            if not isinstance(h, dict):
                continue
            empty = bool(h.get("empty_layer"))
            size: int | None = 0
            if not empty and n < len(sizes):
                size = sizes[n]
                n += 1
            rows.append({"created": h.get("created"), "created_by": h.get("created_by") or "",
                         "comment": h.get("comment") or "", "size": size, "empty_layer": empty})
        for size in sizes[n:]:  # layers the history does not account for
            rows.append({"created": config.get("created"), "created_by": "", "comment": "",
                         "size": size, "empty_layer": False})
        rows.reverse()
        for i, row in enumerate(rows):
            row["id"] = img.id if i == 0 else "<missing>"
        return rows

    # -- names ---------------------------------------------------------------------------
    @staticmethod
    def canonical(name: str) -> str:
        ref = parse(name)
        if ref.digest is not None:
            raise InvalidReference(name, "a tag cannot carry a digest")
        return str(ref)

    def tag(self, ref: str, image_id: str) -> str:
        """Point the (canonicalized) reference at an image; return the canonical name.
        Logs Docker's `tag` event (`tag`, `commit`, `build -t`, `import NAME` all tag)."""
        name = self.canonical(ref)
        image = self.resolve(image_id)
        self.db.tag(name, image.id)
        self.event("tag", image.id, name)
        return name

    def event(self, action: str, image_id: str, name: str | None = None, *,
              actor: str | None = None, labels: dict | None = None) -> None:
        """Log Docker's image event `action` on the image `image_id` (`name`: a reference,
        shown familiar; `actor`: the event's ID when it is not the image id, as pull's and
        push's reference)."""
        if self.runroot is not None:
            from ..engine.events import familiar_image, image_event

            image_event(self, action, image_id, familiar_image(name) if name else None,
                        actor=actor, labels=labels)

    def untag(self, ref: str) -> str:
        """Remove a tag; return the image id it pointed at."""
        return self.db.untag(self.canonical(ref))

    def resolve(self, name_or_id: str) -> Image:
        """A reference (``busybox``, ``localhost/busybox:latest``, ``name@digest``), a full
        image id or a unique id prefix of at least 12 hex digits."""
        img, _ = self._resolve(name_or_id)
        return img

    def _resolve(self, text: str) -> tuple[Image, str | None]:
        """(image, canonical tag it was found by, or None when found by id/digest)."""
        bad: InvalidReference | None = None
        try:
            ref = parse(text)
        except InvalidReference as e:
            ref, bad = None, e
        if ref is not None:
            if ref.digest is not None:
                for img in self.db.images():
                    if img.manifest_digest == ref.digest or img.id == ref.digest:
                        return img, None
            else:
                try:
                    return self.db.resolve(str(ref)), str(ref)
                except ImageNotFound:
                    pass
        try:
            return self.db.resolve(text), None
        except ImageNotFound:
            if bad is not None:
                raise bad from None
            raise ImageNotFound(text) from None

    # -- listing -------------------------------------------------------------------------
    def images(self, all_images: bool = False) -> list[dict[str, Any]]:
        """One row per tag (untagged images get one ``<none>`` row), newest first. The
        build's intermediate images (untagged, kept by the build cache) only with
        ``all_images`` (`images -a`)."""
        rows: list[dict[str, Any]] = []
        cached = set() if all_images else self.db.cached_images()
        for img in reversed(self.db.images()):
            if not img.tags and img.id in cached:
                continue
            base = {
                "id": img.id,
                "digest": img.manifest_digest,
                "created": img.created,
                "size": img.size,
            }
            if not img.tags:
                rows.append({"repository": "<none>", "tag": "<none>", **base})
            for t in img.tags:
                ref = parse(t)
                rows.append({"repository": ref.name, "tag": ref.tag or "<none>", **base})
        return rows

    def config(self, image_id: str) -> dict[str, Any]:
        img = self.resolve(image_id)
        return jsonio.loads(self.blobs.read_bytes(img.id), source=f"image config {img.id}")

    def run_config(self, image_id: str) -> dict[str, Any]:
        """The image's ``config`` section as the engine runs it: every field it reads
        checked (ImageConfigError naming the field), Cmd/Entrypoint as lists."""
        from sangja.image.config import run_config

        img = self.resolve(image_id)
        return run_config(self.config(img.id), f"image {img.id}")

    def inspect(self, name_or_id: str) -> dict[str, Any]:
        img = self.resolve(name_or_id)
        config = jsonio.loads(self.blobs.read_bytes(img.id))
        repo_digests = []
        if img.manifest_digest:
            seen = set()
            for t in img.tags:
                name = parse(t).name
                if name not in seen:
                    seen.add(name)
                    repo_digests.append(f"{name}@{img.manifest_digest}")
        return {
            "Id": img.id,
            "Digest": img.manifest_digest,
            "RepoTags": list(img.tags),
            "RepoDigests": repo_digests,
            "Created": img.created,
            "Architecture": img.architecture,
            "Os": img.os,
            "Size": img.size,
            "Config": config.get("config", {}),
            "RootFS": {"Type": "layers", "Layers": list(img.layers)},
            "History": config.get("history", []),
        }

    # -- removal -------------------------------------------------------------------------
    def remove(self, name_or_id: str, force: bool = False,
               in_use: dict[str, str] | None = None) -> list[str]:
        """Docker's rmi: return report lines (``Untagged: ...``, ``Deleted: ...``).

        ``in_use`` maps image ids to a container that uses them: such an image is refused,
        or with ``force`` only untagged (its layers stay: the container's root is made of
        them)."""
        with self.lock.exclusive():  # what is unreferenced is decided with no writer mid-way
            img = self.resolve(name_or_id)
            labels = self.event_labels(img.id)
            lines = self._remove(name_or_id, force, in_use or {})
        for line in lines:  # Docker's untag / delete events
            kind, _, what = line.partition(": ")
            if kind == "Untagged":
                self.event("untag", img.id, what, labels=labels)
            elif kind == "Deleted" and what == img.id:
                self.event("delete", img.id, img.id)
        return lines

    def event_labels(self, image_id: str) -> dict | None:
        """The image's labels for its events (None: no events are logged)."""
        if self.runroot is None:
            return None
        from ..engine.events import image_labels

        return image_labels(self, image_id)

    def _remove(self, name_or_id: str, force: bool, in_use: dict[str, str]) -> list[str]:
        img, by_tag = self._resolve(name_or_id)
        if by_tag is not None and len(img.tags) > 1:
            self.db.untag(by_tag)
            return [f"Untagged: {by_tag}"]
        if img.id in in_use:
            if not force:
                raise ImageInUse(
                    "conflict: unable to remove repository reference "
                    f'"{by_tag or name_or_id}" (must force) - container '
                    f"{in_use[img.id][:12]} is using its referenced image {img.id[7:19]}")
            out = []
            for t in img.tags:
                self.db.untag(t)
                out.append(f"Untagged: {t}")
            return out
        if by_tag is None and len(img.tags) > 1 and not force:
            raise ImageInUse(
                f"image {img.id[7:19]} is referenced in multiple repositories "
                f"({', '.join(img.tags)}): remove it by name, or use -f"
            )
        out = [f"Untagged: {t}" for t in img.tags]
        candidates = {img.id}
        if img.manifest_digest:
            candidates.add(img.manifest_digest)
        candidates.update(b for la in self.db.image_layers(img.id) if (b := la.blob_digest))
        mounted = self.mounted_layers()
        with self.db.transaction():
            self.db.remove_image(img.id)  # cascades to tags and layer links
            gone_layers = [
                layer for layer in self.db.unreferenced_layers() if layer.diff_id in img.layers
                and layer.diff_id.partition(":")[2] not in mounted
            ]
            for layer in gone_layers:
                self.db.remove_layer(layer.diff_id)
            still = self.db.referenced_blobs()
        out.append(f"Deleted: {img.id}")
        for layer in gone_layers:
            self.remove_layer_dir(layer.diff_id)
        for digest in sorted(candidates - still):
            self.blobs.delete(digest)
        return out
