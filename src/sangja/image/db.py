"""Image records in SQLite (the embedded default store).

WAL journal, 10 s busy timeout, foreign keys on. Every write runs inside
``with db.transaction():`` which issues ``BEGIN IMMEDIATE`` so concurrent CLI processes
serialize on the write lock instead of failing half-way; a crash before COMMIT leaves the
previous state. The schema is versioned with ``PRAGMA user_version`` (see ``MIGRATIONS``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence

from sangja.image.blobs import validate_digest
from sangja.records import dataclass, field
from sangja.sqlite import DatabaseError, SQLiteDB

MIN_PREFIX = 12
_HEX = frozenset("0123456789abcdef")  # not `re`: the database is opened by every command

_SCHEMA_V1 = """
CREATE TABLE images (
    id              TEXT PRIMARY KEY,          -- config digest
    manifest_digest TEXT,
    created         TEXT,                      -- from the image config (RFC 3339)
    size            INTEGER NOT NULL DEFAULT 0,
    architecture    TEXT,
    os              TEXT,
    added           REAL NOT NULL              -- when it was stored here (unix time)
);
CREATE TABLE tags (
    name     TEXT PRIMARY KEY,                 -- canonical reference string
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE INDEX tags_image ON tags(image_id);
CREATE TABLE layers (
    diff_id       TEXT PRIMARY KEY,            -- digest of the uncompressed tar
    blob_digest   TEXT,                        -- digest of the (compressed) blob
    size          INTEGER,
    unpacked_path TEXT
);
CREATE TABLE image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    diff_id  TEXT NOT NULL REFERENCES layers(diff_id),
    PRIMARY KEY (image_id, position)
);
CREATE INDEX image_layers_diff ON image_layers(diff_id);
CREATE TABLE image_blobs (                     -- other blobs an image keeps (index, etc.)
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest   TEXT NOT NULL,
    PRIMARY KEY (image_id, digest)
);
"""

# v2: the uncompressed content size of each layer (sum of its file sizes, what `history`
# shows); NULL in records made before it, filled in on demand (ImageStore.layer_sizes).
_SCHEMA_V2 = """
ALTER TABLE layers ADD COLUMN content_size INTEGER
"""

# v3: the blob each image's manifest names for each of its layers. A layer (one diff_id)
# can be stored as several blobs (plain, gzip, zstd; compressed by different tools), and
# each image needs the one its manifest names: with one blob per layer record, a second
# writer of the same layer replaced the first's and the first image's blob became garbage.
# Filled from the layer records here; ImageStore then corrects it from the manifests
# (`adopt_manifest_blobs`) where they name another blob the store still has.
_SCHEMA_V3 = """
ALTER TABLE image_layers ADD COLUMN blob_digest TEXT;
ALTER TABLE image_layers ADD COLUMN blob_size INTEGER;
UPDATE image_layers SET
    blob_digest = (SELECT l.blob_digest FROM layers l WHERE l.diff_id = image_layers.diff_id),
    blob_size = (SELECT l.size FROM layers l WHERE l.diff_id = image_layers.diff_id)
"""

# v4: the build cache (sangja build): each step's cache key -> the image it made. An image
# only the cache names is build cache, not a dangling image: `images` hides it (`-a` shows
# it), `image prune` keeps it, `builder prune`/`system prune` reclaim it.
_SCHEMA_V4 = """
CREATE TABLE IF NOT EXISTS build_cache (
    key         TEXT PRIMARY KEY,              -- sha256 of the step's inputs
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    description TEXT NOT NULL DEFAULT '',      -- the instruction, for `system df -v`
    created     REAL NOT NULL,
    last_used   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS build_cache_image ON build_cache(image_id);
"""

# MIGRATIONS[n] takes the schema from user_version n to n + 1.
MIGRATIONS: list[str] = [_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _SCHEMA_V4]
SCHEMA_VERSION = len(MIGRATIONS)


__all__ = ["AmbiguousImage", "Database", "DatabaseError", "Image", "ImageNotFound", "Layer"]


class ImageNotFound(DatabaseError, LookupError):
    engine_exit_code = 1  # Docker: a daemon error (but in run/create)

    def __init__(self, ref: str):
        super().__init__(f"image {ref!r} not found")
        self.ref = ref


class AmbiguousImage(DatabaseError, LookupError):
    def __init__(self, prefix: str, matches: Sequence[str]):
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        super().__init__(f"image id prefix {prefix!r} is ambiguous: matches {shown}")
        self.prefix = prefix
        self.matches = list(matches)


@dataclass(frozen=True)
class Layer:
    """A layer as one image has it: ``blob_digest``/``size`` are the blob that image's
    manifest names (from `Database.image_layers`). In `Database.layers` (the layer records,
    shared by every image) they are only the newest blob stored for it: a hint, which gc
    may have removed since."""

    diff_id: str
    blob_digest: str | None = None
    size: int | None = None  # of the blob (compressed)
    unpacked_path: str | None = None
    content_size: int | None = None  # sum of the layer's file sizes (uncompressed)


@dataclass(frozen=True)
class Image:
    id: str
    manifest_digest: str | None
    created: str | None
    size: int
    architecture: str | None
    os: str | None
    added: float
    tags: tuple[str, ...] = ()
    layers: tuple[str, ...] = field(default=())  # diff_ids, bottom first


class Database(SQLiteDB):
    """The image records (`R/images.db`). Connection handling, WAL, transactions and
    migrations are shared with every record store (sangja.sqlite)."""

    MIGRATIONS = MIGRATIONS
    KIND = "image database"
    SYNCHRONOUS = "FULL"  # an image record lost to a power cut is data the user must redo
    CONTENT = ("blobs/sha256", "blobs/sha512", "layers")  # the store is not new
    REBUILD = "recreate the image records from the blobs (tags are lost)"

    # -- images --------------------------------------------------------------------------
    def add_image(
        self,
        image_id: str,
        *,
        manifest_digest: str | None = None,
        layers: Iterable[Layer] = (),
        created: str | None = None,
        size: int = 0,
        architecture: str | None = None,
        os: str | None = None,  # shadows the module on purpose: OCI field name
        blobs: Iterable[str] = (),
    ) -> Image:
        """Insert or update an image (its tags survive an update); layers bottom first."""
        validate_digest(image_id)
        if manifest_digest is not None:
            validate_digest(manifest_digest)
        layers = list(layers)
        blobs = [validate_digest(b) for b in blobs]
        for layer in layers:
            validate_digest(layer.diff_id)
            if layer.blob_digest is not None:
                validate_digest(layer.blob_digest)
        with self.transaction() as c:
            c.execute(
                "INSERT INTO images (id, manifest_digest, created, size, architecture, os, added)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET manifest_digest = excluded.manifest_digest,"
                " created = excluded.created, size = excluded.size,"
                " architecture = excluded.architecture, os = excluded.os",
                (image_id, manifest_digest, created, size, architecture, os, time.time()),
            )
            c.execute("DELETE FROM image_layers WHERE image_id = ?", (image_id,))
            for pos, layer in enumerate(layers):
                c.execute(
                    "INSERT INTO layers (diff_id, blob_digest, size, unpacked_path, content_size)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(diff_id) DO UPDATE SET"
                    " blob_digest = coalesce(excluded.blob_digest, blob_digest),"
                    " size = coalesce(excluded.size, size),"
                    " unpacked_path = coalesce(excluded.unpacked_path, unpacked_path),"
                    " content_size = coalesce(excluded.content_size, content_size)",
                    (layer.diff_id, layer.blob_digest, layer.size, layer.unpacked_path,
                     layer.content_size),
                )
                c.execute(
                    "INSERT INTO image_layers (image_id, position, diff_id, blob_digest,"
                    " blob_size) VALUES (?, ?, ?, ?, ?)",
                    (image_id, pos, layer.diff_id, layer.blob_digest, layer.size),
                )
            c.execute("DELETE FROM image_blobs WHERE image_id = ?", (image_id,))
            c.executemany(
                "INSERT OR IGNORE INTO image_blobs (image_id, digest) VALUES (?, ?)",
                [(image_id, b) for b in blobs],
            )
            return self.get_image(image_id)

    def get_image(self, image_id: str) -> Image:
        row = self.conn.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            raise ImageNotFound(image_id)
        return self._image(row)

    def _image(self, row: sqlite3.Row) -> Image:
        tags = tuple(
            r[0]
            for r in self.conn.execute(
                "SELECT name FROM tags WHERE image_id = ? ORDER BY name", (row["id"],)
            )
        )
        layers = tuple(
            r[0]
            for r in self.conn.execute(
                "SELECT diff_id FROM image_layers WHERE image_id = ? ORDER BY position",
                (row["id"],),
            )
        )
        return Image(
            id=row["id"],
            manifest_digest=row["manifest_digest"],
            created=row["created"],
            size=row["size"],
            architecture=row["architecture"],
            os=row["os"],
            added=row["added"],
            tags=tags,
            layers=layers,
        )

    def images(self) -> list[Image]:
        rows = self.conn.execute("SELECT * FROM images ORDER BY added, id").fetchall()
        return [self._image(r) for r in rows]

    def remove_image(self, image_id: str) -> None:
        """Delete an image with its tags and layer links (layers stay: see unreferenced_layers)."""
        with self.transaction() as c:
            if c.execute("DELETE FROM images WHERE id = ?", (image_id,)).rowcount == 0:
                raise ImageNotFound(image_id)

    # -- tags ----------------------------------------------------------------------------
    def tag(self, name: str, image_id: str) -> None:
        """Point ``name`` at the image (moving it if it pointed elsewhere)."""
        if not name or "\0" in name:
            raise DatabaseError(f"invalid tag name {name!r}")
        with self.transaction() as c:
            if c.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
                raise ImageNotFound(image_id)
            c.execute(
                "INSERT INTO tags (name, image_id) VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
                (name, image_id),
            )

    def untag(self, name: str) -> str:
        """Remove a tag; return the image id it pointed at."""
        with self.transaction() as c:
            row = c.execute("SELECT image_id FROM tags WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise ImageNotFound(name)
            c.execute("DELETE FROM tags WHERE name = ?", (name,))
            return row[0]

    def tags(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self.conn.execute("SELECT name, image_id FROM tags")}

    def resolve(self, ref: str) -> Image:
        """Full id, tag name, or a unique id prefix of >= 12 hex digits (``sha256:`` optional)."""
        row = self.conn.execute("SELECT * FROM images WHERE id = ?", (ref,)).fetchone()
        if row is None:
            row = self.conn.execute(
                "SELECT images.* FROM tags JOIN images ON images.id = tags.image_id"
                " WHERE tags.name = ?",
                (ref,),
            ).fetchone()
        if row is not None:
            return self._image(row)
        algo, sep, hexpart = ref.rpartition(":")
        if not sep:
            algo = "sha256"
        if algo in ("sha256", "sha512") and len(hexpart) >= MIN_PREFIX and set(hexpart) <= _HEX:
            # hexpart is only [0-9a-f]: no LIKE wildcards can sneak in.
            rows = self.conn.execute(
                "SELECT * FROM images WHERE id LIKE ? ORDER BY id LIMIT 50",
                (f"{algo}:{hexpart}%",),
            ).fetchall()
            if len(rows) > 1:
                raise AmbiguousImage(ref, [r["id"] for r in rows])
            if rows:
                return self._image(rows[0])
        raise ImageNotFound(ref)

    # -- layers and blobs (for prune) ------------------------------------------------------
    @staticmethod
    def _layer(r: sqlite3.Row) -> Layer:
        return Layer(r["diff_id"], r["blob_digest"], r["size"], r["unpacked_path"],
                     r["content_size"])

    def layers(self) -> list[Layer]:
        """The layer records (their blob is a hint: see Layer)."""
        return [self._layer(r) for r in self.conn.execute("SELECT * FROM layers ORDER BY diff_id")]

    def image_layers(self, image_id: str) -> list[Layer]:
        """The image's layers, lowest first, each with the blob this image's manifest names
        (the layer record's where an old record has none); a layer without a record has
        only its diff_id and blob."""
        rows = self.conn.execute(
            "SELECT il.diff_id, coalesce(il.blob_digest, l.blob_digest) AS blob_digest,"
            " CASE WHEN il.blob_digest IS NULL THEN l.size ELSE il.blob_size END AS size,"
            " l.unpacked_path, l.content_size"
            " FROM image_layers il LEFT JOIN layers l ON l.diff_id = il.diff_id"
            " WHERE il.image_id = ? ORDER BY il.position", (image_id,))
        return [self._layer(r) for r in rows]

    def set_image_layer_blob(self, image_id: str, position: int, blob_digest: str,
                             size: int) -> None:
        validate_digest(blob_digest)
        with self.transaction() as c:
            c.execute("UPDATE image_layers SET blob_digest = ?, blob_size = ?"
                      " WHERE image_id = ? AND position = ?",
                      (blob_digest, size, image_id, position))

    def set_layer_content_size(self, diff_id: str, content_size: int) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE layers SET content_size = ? WHERE diff_id = ?", (content_size, diff_id)
            )

    def set_layer_path(self, diff_id: str, unpacked_path: str | None) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE layers SET unpacked_path = ? WHERE diff_id = ?", (unpacked_path, diff_id)
            )

    def unreferenced_layers(self) -> list[Layer]:
        rows = self.conn.execute(
            "SELECT * FROM layers WHERE diff_id NOT IN (SELECT diff_id FROM image_layers)"
            " ORDER BY diff_id"
        )
        return [self._layer(r) for r in rows]

    def remove_layer(self, diff_id: str) -> None:
        """Forget a layer record; refused (IntegrityError) while an image uses it."""
        with self.transaction() as c:
            c.execute("DELETE FROM layers WHERE diff_id = ?", (diff_id,))

    def dangling_tags(self) -> dict[str, str]:
        """Tags whose image record is gone (only possible if foreign keys were off)."""
        rows = self.conn.execute(
            "SELECT name, image_id FROM tags WHERE image_id NOT IN (SELECT id FROM images)"
        )
        return {r[0]: r[1] for r in rows}

    def missing_layer_records(self) -> dict[str, list[str]]:
        """image id -> diff_ids it lists that have no layers row (foreign keys off)."""
        out: dict[str, list[str]] = {}
        for r in self.conn.execute(
            "SELECT image_id, diff_id FROM image_layers"
            " WHERE diff_id NOT IN (SELECT diff_id FROM layers) ORDER BY image_id, position"
        ):
            out.setdefault(r[0], []).append(r[1])
        return out

    def referenced_blobs(self) -> set[str]:
        """Digests some image still needs: configs, manifests, each image's layer blobs,
        extra blobs. (A layer record's own blob is only a hint, not a reference.)"""
        rows = self.conn.execute(
            "SELECT id FROM images"
            " UNION SELECT manifest_digest FROM images WHERE manifest_digest IS NOT NULL"
            " UNION SELECT coalesce(il.blob_digest, l.blob_digest) FROM image_layers il"
            "   LEFT JOIN layers l ON l.diff_id = il.diff_id"
            "   WHERE coalesce(il.blob_digest, l.blob_digest) IS NOT NULL"
            " UNION SELECT digest FROM image_blobs"
        )
        return {r[0] for r in rows}

    # -- build cache ---------------------------------------------------------------------
    def cache_get(self, key: str) -> str | None:
        """The image a build step with this key made, or None (a read: the build records
        its hits at its end, in one transaction, with `cache_touch`)."""
        row = self.conn.execute("SELECT image_id FROM build_cache WHERE key = ?",
                                (key,)).fetchone()
        return None if row is None else row[0]

    def cache_touch(self, keys: Iterable[str], *, granularity: float = 0.0) -> None:
        """Record the entries' last use, now. ``granularity``: entries used less than that
        many seconds ago are left as they are; with none older, nothing is written (a
        rebuild right after a build writes nothing, so its close has no WAL to sync)."""
        keys = list(keys)
        now = time.time()
        if keys and granularity > 0:
            stale = []
            for i in range(0, len(keys), 500):  # under SQLite's limit of bound variables
                part = keys[i:i + 500]
                stale += [r[0] for r in self.conn.execute(
                    f"SELECT key FROM build_cache WHERE key IN ({','.join('?' * len(part))})"
                    " AND last_used < ?", (*part, now - granularity))]
            keys = stale
        if not keys:
            return
        with self.transaction() as c:
            c.executemany("UPDATE build_cache SET last_used = ? WHERE key = ?",
                          [(now, k) for k in keys])

    def cache_put(self, key: str, image_id: str, description: str = "") -> None:
        validate_digest(image_id)
        now = time.time()
        with self.transaction() as c:
            c.execute(
                "INSERT INTO build_cache (key, image_id, description, created, last_used)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET"
                " image_id = excluded.image_id, description = excluded.description,"
                " last_used = excluded.last_used",
                (key, image_id, description[:500], now, now))

    def cache_entries(self) -> list[dict]:
        rows = self.conn.execute(
            "SELECT key, image_id, description, created, last_used FROM build_cache"
            " ORDER BY created, key")
        return [dict(r) for r in rows]

    def cached_images(self) -> set[str]:
        """Image ids some build cache entry names."""
        return {r[0] for r in self.conn.execute("SELECT DISTINCT image_id FROM build_cache")}

    def cache_remove(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        with self.transaction() as c:
            for key in keys:
                c.execute("DELETE FROM build_cache WHERE key = ?", (key,))
        return len(keys)
