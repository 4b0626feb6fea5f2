"""Garbage collection and space accounting for the image store.

``prune_images`` removes dangling (untagged) images, or with ``all_images`` every image no
container uses, then ``collect`` removes what no record references any more: layer records
and their unpacked directories, layer directories with no record, blobs, and temp files left
by killed writers. Both run under the store's gc lock held exclusive (see
:mod:`sangja.image.gclock`): no writer is then between "files written" and "record
committed", so unreferenced really means garbage and every temp entry is a leftover.

Which images containers use is the engine's knowledge: callers pass it as ``in_use`` (a set
of image ids, from ``sangja.engine.usage.images_in_use``, which fails rather than answer
"none" when it cannot read the container records). Layer directories that a mounted
container snapshot stacks are never removed, whatever the records say.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from sangja.image.reference import parse
from sangja.image.store import ImageStore, _rmtree, tree_size
from sangja.records import dataclass, field

__all__ = ["GCReport", "build_cache_usage", "collect", "disk_usage", "prune_build_cache",
           "prune_images", "temp_leftovers"]

# Temp entries directly under the storage root start with one of these (writers that need a
# scratch directory there use them, under the shared gc lock). Everything in blobs/tmp/ and
# every dot-entry of layers/ is temporary too.
ROOT_TEMP_PREFIXES = (".bootstrap-", ".import-", ".load-", ".commit-", ".tmp-",
                      ".build-context-")
CACHE_MOUNTS = os.path.join("build-cache", "mounts")  # RUN --mount=type=cache directories
CONTEXT_DIGESTS = os.path.join("build-cache", "context-digests.json")  # build.digest_cache
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass
class GCReport:
    untagged: list[str] = field(default_factory=list)
    deleted_images: list[str] = field(default_factory=list)
    deleted_layers: list[str] = field(default_factory=list)  # diff_ids
    deleted_blobs: list[str] = field(default_factory=list)
    deleted_temp: list[str] = field(default_factory=list)  # paths relative to the root
    deleted_cache: list[str] = field(default_factory=list)  # build cache keys
    reclaimed: int = 0  # bytes freed on disk (blobs, unpacked layers, temp files)
    # Docker's "Deleted Images:" lines in order: ("untagged", name) / ("deleted", digest)
    events: list[tuple[str, str]] = field(default_factory=list)


def temp_leftovers(store: ImageStore) -> list[str]:
    """Absolute paths of the store's temp entries (only leftovers while gc holds the lock)."""
    out: list[str] = []

    def scan(d: str, keep) -> None:
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            return
        out.extend(os.path.join(d, n) for n in names if keep(n))

    scan(store.blobs.tmp_dir, lambda n: True)
    scan(store.layers_dir, lambda n: n.startswith("."))
    scan(store.root, lambda n: n.startswith(ROOT_TEMP_PREFIXES))
    return out


def entry_size(path: str) -> int:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if os.path.isdir(path) and not os.path.islink(path):
        return tree_size(path)
    return st.st_size if os.path.isfile(path) else 0


def remove_entry(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        _rmtree(path)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def collect(store: ImageStore, report: GCReport | None = None) -> GCReport:
    """Remove everything no image record references; return what went (added to report)."""
    report = report if report is not None else GCReport()
    with store.lock.exclusive():
        db = store.db
        mounted = store.mounted_layers()
        with db.transaction():
            gone = [layer for layer in db.unreferenced_layers()
                    if layer.diff_id.partition(":")[2] not in mounted]
            for layer in gone:
                db.remove_layer(layer.diff_id)
        for layer in gone:
            report.reclaimed += store.remove_layer_dir(layer.diff_id)
            report.deleted_layers.append(layer.diff_id)
            report.events.append(("deleted", layer.diff_id))
        recorded = {layer.diff_id.partition(":")[2] for layer in db.layers()} | mounted
        for name in sorted(os.listdir(store.layers_dir)):
            if _HEX64.fullmatch(name) and name not in recorded:
                report.reclaimed += store.remove_layer_dir(f"sha256:{name}")
                report.deleted_layers.append(f"sha256:{name}")
                report.events.append(("deleted", f"sha256:{name}"))
        still = db.referenced_blobs()
        for digest in sorted(store.blobs.digests()):
            if digest not in still:
                try:
                    size = os.lstat(store.blobs.path(digest)).st_size
                except FileNotFoundError:
                    continue
                if store.blobs.delete(digest):
                    report.reclaimed += size
                    report.deleted_blobs.append(digest)
        for path in temp_leftovers(store):
            report.reclaimed += entry_size(path)
            remove_entry(path)
            report.deleted_temp.append(os.path.relpath(path, store.root))
    return report


def untag_lines(tags: Iterable[str], manifest_digest: str | None) -> list[str]:
    """Docker's "untagged:" subjects: each tag, then each repository@digest."""
    tags = list(tags)
    out = list(tags)
    if manifest_digest:
        for name in dict.fromkeys(parse(t).name for t in tags):
            out.append(f"{name}@{manifest_digest}")
    return out


def prune_images(store: ImageStore, *, all_images: bool = False,
                 in_use: Iterable[str] = (), select=None) -> GCReport:
    """Remove dangling images (every image with ``all_images``) that no container uses,
    then collect garbage. Returns the report (untagged, deleted images/layers/blobs...).
    ``select(image)``: only images it accepts (`image prune --filter`)."""
    in_use = set(in_use)
    report = GCReport()
    labels: dict[str, dict | None] = {}  # of the images removed, for their events
    with store.lock.exclusive():
        cached = store.db.cached_images()
        for img in store.db.images():
            if img.id in in_use or (img.tags and not all_images):
                continue
            if not img.tags and img.id in cached:
                continue  # build cache, not a dangling image: builder prune's
            if select is not None and not select(img):
                continue
            labels[img.id] = store.event_labels(img.id)
            store.db.remove_image(img.id)  # cascades to its tags and layer links
            untagged = untag_lines(img.tags, img.manifest_digest)
            report.untagged.extend(untagged)
            report.deleted_images.append(img.id)
            report.events.extend(("untagged", u) for u in untagged)
            report.events.append(("deleted", img.id))
        collect(store, report)
    _prune_events(store, report, labels)
    return report


def _prune_events(store: ImageStore, report: GCReport, labels: dict[str, dict | None]
                  ) -> None:
    """Docker's events of an image prune: untag and delete per image, then `prune` with
    the bytes reclaimed. (`report.events`: an image's "untagged" lines, then its
    "deleted".)"""
    untagged: list[str] = []
    for kind, what in report.events:
        if kind == "untagged":
            if "@" not in what:  # name@digest lines name the same image again
                untagged.append(what)
            continue
        for name in untagged:
            store.event("untag", what, name, labels=labels.get(what))
        store.event("delete", what, what)
        untagged = []
    if store.runroot is not None:
        from ..engine.events import emit

        emit(store.runroot, "image", "prune", "", {"reclaimed": str(report.reclaimed)})


def prune_build_cache(store: ImageStore, *, all_entries: bool = False,
                      in_use: Iterable[str] = (), report: GCReport | None = None,
                      select=None, keep_bytes: int | None = None) -> GCReport:
    """`builder prune`: forget the build cache entries whose image nothing else keeps (no
    tag, no container), every entry with ``all_entries`` (then also the RUN --mount
    cache directories, unless `select` or `keep_bytes` limit it); remove the images only
    the cache kept, then collect garbage. ``select(last_used, labels)``: only the entries
    it accepts (the prune filters: until= is BuildKit's "unused for"). ``keep_bytes``
    (--keep-storage): the least recently used go first, only while the cache's layers
    take more than that."""
    in_use = set(in_use)
    report = report if report is not None else GCReport()
    with store.lock.exclusive():
        db = store.db
        images = {img.id: img for img in db.images()}
        entries = db.cache_entries()
        gone = []
        for entry in entries:
            if select is not None and not select(entry["last_used"] or entry["created"], None):
                continue
            img = images.get(entry["image_id"])
            if all_entries or img is None or not (img.tags or img.id in in_use):
                gone.append(entry)
        if keep_bytes is not None:
            gone = _over_keep(store, images, entries, gone, in_use, keep_bytes)
        db.cache_remove(e["key"] for e in gone)
        report.deleted_cache.extend(e["key"] for e in gone)
        still = db.cached_images()
        for e in gone:
            img = images.get(e["image_id"])
            if img is None or img.tags or img.id in in_use or img.id in still:
                continue
            try:
                db.remove_image(img.id)
            except Exception:  # noqa: BLE001 - already gone (two entries, one image)
                continue
            report.deleted_images.append(img.id)
        if all_entries and select is None and keep_bytes is None:
            mounts = os.path.join(store.root, CACHE_MOUNTS)
            if os.path.isdir(mounts):
                for name in sorted(os.listdir(mounts)):
                    path = os.path.join(mounts, name)
                    report.reclaimed += entry_size(path)
                    remove_entry(path)
            digests = os.path.join(store.root, CONTEXT_DIGESTS)
            if os.path.isfile(digests):
                report.reclaimed += os.path.getsize(digests)
                os.unlink(digests)
        collect(store, report)
    return report


def _over_keep(store: ImageStore, images: dict, entries: list[dict], candidates: list[dict],
               in_use: set[str], keep_bytes: int) -> list[dict]:
    """Of `candidates`, least recently used first, those to remove until the cache's own
    layers (those of images only cache entries keep) take at most `keep_bytes`."""
    ever = {e["image_id"] for e in entries}
    sizes: dict[str, list] = {}

    def cache_bytes(kept_entries: list[dict]) -> int:
        cached = {e["image_id"] for e in kept_entries}
        own: dict[str, int] = {}
        kept: set[str] = set()
        for img in images.values():
            if img.tags or img.id in in_use or img.id not in ever:
                kept.update(img.layers)
            elif img.id in cached:
                if img.id not in sizes:
                    sizes[img.id] = store.layer_sizes(img)
                own.update((d, n or 0) for d, n in zip(img.layers, sizes[img.id], strict=True))
        return sum(n for d, n in own.items() if d not in kept)

    remaining = list(entries)
    gone = []
    for entry in sorted(candidates, key=lambda e: (e["last_used"] or e["created"], e["key"])):
        if cache_bytes(remaining) <= keep_bytes:
            break
        gone.append(entry)
        remaining = [e for e in remaining if e["key"] != entry["key"]]
    return gone


def build_cache_usage(store: ImageStore, in_use: Iterable[str] = ()) -> dict[str, Any]:
    """`system df`'s Build Cache row: entries, and the bytes of the layers only cache
    images use (what `builder prune -a` can reclaim), RUN --mount caches included."""
    in_use = set(in_use)
    entries = store.db.cache_entries()
    cached = {e["image_id"] for e in entries}
    kept_layers: set[str] = set()
    cache_layers: dict[str, int] = {}
    for img in store.db.images():
        if img.id in cached and not img.tags and img.id not in in_use:
            for diff_id, size in zip(img.layers, store.layer_sizes(img), strict=True):
                cache_layers[diff_id] = size or 0
        else:
            kept_layers.update(img.layers)
    size = sum(s for d, s in cache_layers.items() if d not in kept_layers)
    mounts = os.path.join(store.root, CACHE_MOUNTS)
    if os.path.isdir(mounts):
        size += tree_size(mounts)
    active = sum(1 for e in entries if e["image_id"] in in_use)
    return {"total": len(entries), "active": active, "size": size, "reclaimable": size,
            "entries": entries}


# ---------------------------------------------------------------------------- df


def disk_usage(store: ImageStore, in_use: Iterable[str] = (),
               container_counts: dict[str, int] | None = None) -> dict[str, Any]:
    """Image space figures for `system df`: sizes are layer content sizes (what `images`
    shows), each layer counted once however many images share it.

    Returns {"total", "active", "size", "reclaimable", "images": [per image: id, tags,
    created, size, shared_size, unique_size, containers]}. ``container_counts`` maps image
    ids to how many containers use them (default: 1 for each image in ``in_use``)."""
    in_use = set(in_use)
    counts = container_counts or {}
    cached = store.db.cached_images()  # the build's intermediate images: its cache row
    images = [img for img in store.db.images()
              if img.tags or img.id not in cached or img.id in in_use]
    layer_size: dict[str, int] = {}
    users: dict[str, int] = {}
    per_image: list[tuple[Any, list[str]]] = []
    for img in images:
        sizes = store.layer_sizes(img)
        for diff_id, size in zip(img.layers, sizes, strict=True):
            layer_size[diff_id] = size or 0
        distinct = list(dict.fromkeys(img.layers))
        for diff_id in distinct:
            users[diff_id] = users.get(diff_id, 0) + 1
        per_image.append((img, distinct))
    total = sum(layer_size.values())
    active_layers: set[str] = set()
    rows = []
    for img, distinct in per_image:
        size = sum(layer_size[d] for d in distinct)
        shared = sum(layer_size[d] for d in distinct if users[d] > 1)
        active = img.id in in_use
        if active:
            active_layers.update(distinct)
        rows.append({
            "id": img.id,
            "tags": list(img.tags),
            "created": img.created,
            "size": size,
            "shared_size": shared,
            "unique_size": size - shared,
            "containers": counts.get(img.id, 1 if active else 0),
        })
    used = sum(layer_size[d] for d in active_layers)
    return {
        "total": len(images),
        "active": sum(1 for img in images if img.id in in_use),
        "size": total,
        "reclaimable": total - used,
        "images": rows,
    }
