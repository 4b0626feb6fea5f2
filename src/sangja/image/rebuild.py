"""`sangja system check --rebuild`: recreate lost image records from the blobs.

Everything an image record says is in content-addressed blobs: the manifest names the
config and the layer blobs, the config the layers' diff_ids, created time, platform. So
when images.db is lost (missing, emptied, not a database: see sangja.sqlite.DatabaseLost),
every manifest blob whose config and layer blobs are all present becomes an image record
again, its layers recorded as unpacked where their directory is there. What the blobs do
not hold is lost: tags (the caller may restore some, e.g. from container records) and the
images that were only partly stored.

Nothing is deleted: the damaged file is kept beside the new one (`images.db.damaged-<time>`)
and blobs no rebuilt record names stay for `system check` to list. It runs under the gc
lock held exclusive, so no writer or collector runs meanwhile.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from sangja import jsonio
from sangja.errors import SangjaError
from sangja.image import manifest as mf
from sangja.image.blobs import validate_digest
from sangja.image.db import Database, Layer
from sangja.image.gclock import lock_for
from sangja.image.store import ImageStore, tar_content_size, tree_size
from sangja.records import dataclass, field
from sangja.sqlite import DatabaseLost, move_aside

__all__ = ["RebuildReport", "images_db_lost", "rebuild_images"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass
class RebuildReport:
    moved_to: str | None = None  # where the damaged file went (None: there was none)
    images: list[str] = field(default_factory=list)  # image ids recreated
    tags: list[str] = field(default_factory=list)  # tags restored from `names`


def images_db_lost(root: str) -> DatabaseLost | None:
    """The DatabaseLost error opening R/images.db gives, or None when it opens."""
    try:
        Database(os.path.join(root, "images.db")).close()
    except DatabaseLost as e:
        return e
    return None


@dataclass(frozen=True)
class _Found:
    manifest: str
    config: str
    doc: dict
    layers: tuple[tuple[str, int], ...]  # (blob digest, size), lowest first
    diff_ids: tuple[str, ...]


def rebuild_images(root: str, names: Mapping[str, list[str]] | None = None
                   ) -> RebuildReport | None:
    """Rebuild a lost images.db from the blobs; None when it is not lost. `names` maps
    image ids to references to tag them with again (the first free one of each wins)."""
    root = os.path.abspath(root)
    with lock_for(root).exclusive():
        if images_db_lost(root) is None:
            return None
        report = RebuildReport()
        path = os.path.join(root, "images.db")
        report.moved_to = move_aside(path)
        Database(path, create=True).close()
        with ImageStore(root) as store:
            found = _manifests(store)
            for config, candidates in sorted(found.items()):
                _record(store, candidates)
                report.images.append(config)
            for image_id, refs in sorted((names or {}).items()):
                if image_id not in found:
                    continue
                for ref in refs:
                    if _names_the_id(ref, image_id):
                        continue  # `run e09b1d975881`: an id prefix, not a name
                    try:
                        name = store.canonical(ref)
                    except SangjaError:
                        continue  # a digest or no valid name
                    if name not in store.db.tags():
                        store.db.tag(name, image_id)
                        report.tags.append(name)
        return report


def _manifests(store: ImageStore) -> dict[str, list[_Found]]:
    """Config digest -> the complete image manifests among the blobs that name it."""
    out: dict[str, list[_Found]] = {}
    for digest in sorted(store.blobs.digests()):
        found = _image_manifest(store, digest)
        if found is not None:
            out.setdefault(found.config, []).append(found)
    return out


def _image_manifest(store: ImageStore, digest: str) -> _Found | None:
    blobs = store.blobs
    try:
        if blobs.size(digest) > mf.MAX_MANIFEST_BYTES:
            return None
        data = blobs.read_bytes(digest)
        if not data.lstrip().startswith(b"{"):
            return None
        doc = mf.parse(data, where=f"blob {digest}")
        if not isinstance(doc, mf.ImageManifest):
            return None
        doc.check_image()
        config = jsonio.loads(blobs.read_bytes(doc.config.digest))
    except (OSError, ValueError, SangjaError):
        return None
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(doc.layers):
        return None
    try:
        for d in diff_ids:
            validate_digest(d)
    except SangjaError:
        return None
    layers = tuple((la.digest, la.size) for la in doc.layers)
    if not all(blobs.exists(b) for b, _ in layers):
        return None
    return _Found(digest, doc.config.digest, config, layers, tuple(diff_ids))


def _content_size(store: ImageStore, diff_id: str, blob: str) -> int | None:
    path = store.layer_path(diff_id)
    if os.path.isdir(path):
        return tree_size(path)
    try:
        return tar_content_size(store.blobs.path(blob))
    except Exception:  # unreadable: measured again on demand (ImageStore.layer_sizes)
        return None


def _record(store: ImageStore, candidates: list[_Found]) -> None:
    """One image record from its manifests: the first (by digest) is the image's, the
    others and their layer blobs are kept as its extra blobs."""
    chosen, others = candidates[0], candidates[1:]
    layers = []
    for diff_id, (blob, size) in zip(chosen.diff_ids, chosen.layers, strict=True):
        unpacked = store.layer_path(diff_id)
        layers.append(Layer(diff_id, blob, size,
                            unpacked if os.path.isdir(unpacked) else None,
                            _content_size(store, diff_id, blob)))
    extra = [d for o in others for d in (o.manifest, *(b for b, _ in o.layers))]
    config: dict[str, Any] = chosen.doc
    created = config.get("created")
    store.db.add_image(
        chosen.config, manifest_digest=chosen.manifest, layers=layers,
        created=created if isinstance(created, str) else None,
        size=sum(la.content_size or 0 for la in layers),
        architecture=_str(config.get("architecture")), os=_str(config.get("os")),
        blobs=dict.fromkeys(extra))


def _names_the_id(ref: str, image_id: str) -> bool:
    hexpart = ref.removeprefix("sha256:")
    return bool(hexpart) and all(c in "0123456789abcdef" for c in hexpart) \
        and image_id.removeprefix("sha256:").startswith(hexpart)


def _str(v: object) -> str | None:
    return v if isinstance(v, str) else None
