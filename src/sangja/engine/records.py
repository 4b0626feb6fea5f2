"""Container and volume records in SQLite (`R/containers.db`).

A row is the engine's memory of a container: what was asked (the options, as JSON), and the
last state a command recorded. Liveness is never trusted from the row alone: `status.py`
checks the recorded init pid against its start time."""

from __future__ import annotations

import os
import sqlite3
import time

from ..errors import SangjaError
from ..sqlite import SQLiteDB

TYPE_CHECKING = False  # not imported at run time (start-up cost)
if TYPE_CHECKING:
    from collections.abc import Iterable

_SCHEMA_V1 = """
CREATE TABLE containers (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    image_id      TEXT NOT NULL,
    image_name    TEXT NOT NULL,
    created       REAL NOT NULL,
    options       TEXT NOT NULL,             -- ContainerOptions as JSON
    path          TEXT NOT NULL DEFAULT '',  -- the program, resolved at create
    args          TEXT NOT NULL DEFAULT '[]',
    state         TEXT NOT NULL,             -- created | running | paused | exited | removing
    pid           INTEGER NOT NULL DEFAULT 0,
    pid_start     INTEGER,
    monitor_pid   INTEGER NOT NULL DEFAULT 0,
    started_at    REAL,
    finished_at   REAL,
    exit_code     INTEGER NOT NULL DEFAULT 0,
    oom_killed    INTEGER NOT NULL DEFAULT 0,
    restart_count INTEGER NOT NULL DEFAULT 0,
    stopped_by_user INTEGER NOT NULL DEFAULT 0,
    error         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX containers_image ON containers(image_id);
CREATE TABLE volumes (
    name      TEXT PRIMARY KEY,
    created   REAL NOT NULL,
    labels    TEXT NOT NULL DEFAULT '{}',
    options   TEXT NOT NULL DEFAULT '{}',
    anonymous INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE container_volumes (
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    volume       TEXT NOT NULL REFERENCES volumes(name),
    PRIMARY KEY (container_id, volume)
);
CREATE INDEX container_volumes_volume ON container_volumes(volume)
"""
# Copy-up (the image's content at the mount point filling a new volume) happens once per
# volume: set when it happened, or when the volume was found holding data already. Volumes
# of older databases start unset: they get at most the one copy they could have had.
_SCHEMA_V2 = "ALTER TABLE volumes ADD COLUMN copied_up INTEGER NOT NULL DEFAULT 0"


class NoSuchContainer(SangjaError, LookupError):
    engine_exit_code = 1  # Docker: a daemon error (but in run/create)

    def __init__(self, ref: str):
        super().__init__(f"No such container: {ref}")


class NameInUse(SangjaError):
    def __init__(self, name: str, holder: str):
        super().__init__(f'the container name "/{name}" is already in use by container '
                         f'"{holder}". You have to remove (or rename) that container to be '
                         "able to reuse that name")


class NoSuchVolume(SangjaError, LookupError):
    def __init__(self, name: str):
        super().__init__(f"no such volume: {name}")


class VolumeInUse(SangjaError):
    def __init__(self, name: str, holders: list[str]):
        super().__init__(f"remove {name}: volume is in use - [{', '.join(holders)}]")


class ContainerDB(SQLiteDB):
    MIGRATIONS = [_SCHEMA_V1, _SCHEMA_V2]
    KIND = "container database"
    # Rows describe live state that a lost commit cannot make inconsistent (WAL keeps the
    # file consistent); fsync on every commit would cost more than a container start.
    SYNCHRONOUS = "NORMAL"
    # Every container has R/containers/<id>, every volume R/volumes/<name>: with entries
    # there, a missing or empty database is a lost one (sangja.sqlite.DatabaseLost).
    CONTENT = ("containers", "volumes")
    REBUILD = "start an empty one"

    # -- containers ------------------------------------------------------------------------
    def insert(self, row: dict, volumes: Iterable[tuple[str, bool]] = ()) -> list[str]:
        """Record a container, and its `volumes` ((name, anonymous): recorded if new, and
        marked in use by it), in one transaction: a killed CLI leaves all or nothing.
        Returns the names of the volumes recorded now (their `create` events)."""
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        new = []
        try:
            with self.transaction() as c:
                c.execute(f"INSERT INTO containers ({cols}) VALUES ({marks})", list(row.values()))
                now = time.time()
                for name, anonymous in volumes:
                    if c.execute("INSERT OR IGNORE INTO volumes (name, created, anonymous) "
                                 "VALUES (?, ?, ?)", (name, now, int(anonymous))).rowcount:
                        new.append(name)
                    c.execute("INSERT OR IGNORE INTO container_volumes VALUES (?, ?)",
                              (row["id"], name))
            return new
        except sqlite3.IntegrityError:
            holder = self.conn.execute("SELECT id FROM containers WHERE name = ?",
                                       (row["name"],)).fetchone()
            if holder is not None:
                raise NameInUse(row["name"], holder[0]) from None
            raise

    def get(self, ref: str) -> sqlite3.Row:
        """By full id, name (with or without Docker's leading "/"), or unique id prefix."""
        if not ref:
            raise NoSuchContainer(ref)
        name = ref[1:] if ref.startswith("/") else ref
        row = self.conn.execute("SELECT * FROM containers WHERE id = ? OR name = ? "
                                "ORDER BY id = ? DESC LIMIT 1", (ref, name, ref)).fetchone()
        if row is not None:
            return row
        if all(ch in "0123456789abcdef" for ch in ref):
            rows = self.conn.execute("SELECT * FROM containers WHERE id >= ? AND id < ? "
                                     "LIMIT 2", (ref, ref + "g")).fetchall()
            if len(rows) == 1:
                return rows[0]
            if len(rows) > 1:
                raise SangjaError(f"multiple containers found with provided prefix: {ref}")
        raise NoSuchContainer(ref)

    def all(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM containers ORDER BY created DESC").fetchall()

    def update(self, cid: str, **fields) -> None:
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction() as c:
            c.execute(f"UPDATE containers SET {sets} WHERE id = ?", [*fields.values(), cid])

    def rename(self, cid: str, name: str) -> None:
        try:
            self.update(cid, name=name)
        except sqlite3.IntegrityError:
            holder = self.conn.execute("SELECT id FROM containers WHERE name = ?",
                                       (name,)).fetchone()
            raise NameInUse(name, holder[0] if holder else "?") from None

    def delete(self, cid: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM containers WHERE id = ?", (cid,))

    def images_in_use(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT DISTINCT image_id FROM containers")}

    # -- volumes ---------------------------------------------------------------------------
    def add_volume(self, name: str, *, labels: str = "{}", options: str = "{}",
                   anonymous: bool = False) -> bool:
        """Record a volume; False if it already existed (Docker's create is idempotent)."""
        with self.transaction() as c:
            cur = c.execute("INSERT OR IGNORE INTO volumes (name, created, labels, options, "
                            "anonymous) VALUES (?, ?, ?, ?, ?)",
                            (name, time.time(), labels, options, int(anonymous)))
            return cur.rowcount == 1

    def volume(self, name: str) -> sqlite3.Row:
        row = self.conn.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NoSuchVolume(name)
        return row

    def volumes(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM volumes ORDER BY name").fetchall()

    def volume_users(self, name: str) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT container_id FROM container_volumes WHERE volume = ?", (name,))]

    def container_volumes(self, cid: str) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT v.* FROM volumes v JOIN container_volumes cv ON cv.volume = v.name "
            "WHERE cv.container_id = ?", (cid,)).fetchall()

    def use_volume(self, cid: str, name: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR IGNORE INTO container_volumes VALUES (?, ?)", (cid, name))

    def claim_copy_up(self, name: str) -> bool:
        """Mark the volume as filled; True only for the one caller that marked it (two
        containers starting at once with a new volume: one copies)."""
        with self.transaction() as c:
            return c.execute("UPDATE volumes SET copied_up = 1 WHERE name = ? AND "
                             "copied_up = 0", (name,)).rowcount == 1

    def release_copy_up(self, name: str) -> None:
        """Undo `claim_copy_up` after a copy that failed and was removed again."""
        with self.transaction() as c:
            c.execute("UPDATE volumes SET copied_up = 0 WHERE name = ?", (name,))

    def remove_volume(self, name: str) -> None:
        """Delete the record; refuses while a container (in any state) uses it."""
        with self.transaction() as c:
            users = [r[0] for r in c.execute(
                "SELECT c.name FROM container_volumes cv JOIN containers c "
                "ON c.id = cv.container_id WHERE cv.volume = ?", (name,))]
            if users:
                raise VolumeInUse(name, users)
            if c.execute("DELETE FROM volumes WHERE name = ?", (name,)).rowcount == 0:
                raise NoSuchVolume(name)


def open_db(root: str) -> ContainerDB:
    return ContainerDB(os.path.join(root, "containers.db"))


def open_existing(root: str) -> ContainerDB | None:
    """The container database, or None when the store has none yet (so nothing uses
    anything). A lost one raises DatabaseLost: callers that decide what is unused must
    never take an unreadable database for an empty one."""
    path = os.path.join(root, "containers.db")
    if not os.path.exists(path) and not ContainerDB.content(path):
        return None
    return ContainerDB(path)
