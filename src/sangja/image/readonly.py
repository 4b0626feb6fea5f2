"""The image store as the commands that only look see it (images, ps, inspect): images.db
opened read-only (sangja.sqlite.SQLiteDB.open_readonly: no lock, no migration) and image
configs read straight from their blob files. Looking then costs no more imports than
sqlite3; sangja.image.store (which also writes) stays the one place that decides, and is
what callers fall back to when this returns None."""

from __future__ import annotations

import os

_HEX = frozenset("0123456789abcdef")
# sangja.image.db.SCHEMA_VERSION, without importing it (it brings `re` and the blob store):
# an images.db at another version is opened the usual way, which migrates it.
# tests/unit/test_engine_filters.py checks that the two agree.
IMAGES_SCHEMA_VERSION = 4


def _sha256_hex(digest: str) -> str | None:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not set(hexpart) <= _HEX:
        return None
    return hexpart


def blob_path(root: str, digest: str) -> str | None:
    """Where ImageStore keeps a sha256 blob (sangja.image.blobs' layout)."""
    hexpart = _sha256_hex(digest)
    return os.path.join(root, "blobs", "sha256", hexpart) if hexpart else None


def layer_path(root: str, diff_id: str) -> str:
    """Where ImageStore unpacks a layer (ImageStore.layer_path)."""
    return os.path.join(root, "layers", diff_id.partition(":")[2])


def image_config(root: str, image_id: str) -> dict | None:
    """The image's config blob as JSON, or None (not a sha256 id, no such blob, unreadable:
    ask the ImageStore)."""
    path = blob_path(root, image_id)
    if path is None:
        return None
    from ..jsonio import JSONError, loads

    try:
        with open(path, "rb") as f:
            data = f.read()
        config = loads(data)
    except (OSError, JSONError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def list_images(root: str, all_images: bool = False) -> list[dict] | None:
    """ImageStore.images()'s rows (one per tag, `<none>` for an untagged image, newest
    first, the build's intermediate images only with all_images), or None."""
    import sqlite3

    from ..sqlite import SQLiteDB

    db = SQLiteDB.open_readonly(os.path.join(root, "images.db"), check_version=False)
    if db is None:
        return None
    if db.conn.execute("PRAGMA user_version").fetchone()[0] != IMAGES_SCHEMA_VERSION:
        db.close()
        return None

    try:
        conn = db.conn
        cached = set() if all_images else {
            r[0] for r in conn.execute("SELECT DISTINCT image_id FROM build_cache")}
        tags: dict[str, list[str]] = {}
        for name, image_id in conn.execute("SELECT name, image_id FROM tags ORDER BY name"):
            tags.setdefault(image_id, []).append(name)
        rows = []
        for r in reversed(conn.execute("SELECT id, manifest_digest, created, size FROM images "
                                       "ORDER BY added, id").fetchall()):
            names = tags.get(r["id"], [])
            if not names and r["id"] in cached:
                continue
            base = {"id": r["id"], "digest": r["manifest_digest"], "created": r["created"],
                    "size": r["size"]}
            if not names:
                rows.append({"repository": "<none>", "tag": "<none>", **base})
            for t in names:
                repo, tag = split_tag(t)
                rows.append({"repository": repo, "tag": tag, **base})
        return rows
    except sqlite3.Error:
        return None
    finally:
        db.close()


def split_tag(name: str) -> tuple[str, str]:
    """A stored (canonical) tag "host/path:tag" -> ("host/path", "tag"); a digest
    reference keeps "<none>" as its tag, as sangja.image.reference.parse gives."""
    if "@" in name:
        return name.partition("@")[0], "<none>"
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:]
    return name, "<none>"
