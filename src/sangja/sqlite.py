"""SQLite done the same way for every record store: WAL journal, a busy timeout so
concurrent CLI processes queue instead of failing, `BEGIN IMMEDIATE` write transactions
(a crash before COMMIT leaves the previous state), foreign keys, and a schema versioned
with `PRAGMA user_version`.

A database is made when its store is new. When the store already holds what the database
describes (blobs, layers, containers) but the file is missing, empty or not a database,
opening it is an error naming the recovery (`DatabaseLost`), never a new empty database:
every clean-up reads "no record" as "garbage", so an empty database would have them delete
the whole store. Telling the two apart costs one stat of the file on every open."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import SangjaError

BUSY_TIMEOUT_MS = 10_000


class DatabaseError(SangjaError):
    pass


class DatabaseLost(DatabaseError):
    """The database of a store that holds content is missing, empty or not a database."""

    def __init__(self, db: SQLiteDB, why: str, held: str):
        root = os.path.dirname(os.path.abspath(db.path))
        holds = f", but {root} holds {held}" if held else ""
        super().__init__(f"{db.KIND} {db.path} {why}{holds}: restore it from a backup, or "
                         f"run 'sangja --root {root} system check --rebuild' to "
                         f"{db.REBUILD}")
        self.path = db.path
        self.why = why
        self.held = held


class SQLiteDB:
    """Subclasses set MIGRATIONS (MIGRATIONS[n] takes the schema from version n to n+1),
    KIND (named in errors), SYNCHRONOUS ("FULL" when a lost commit would lose data the
    user cannot recreate, "NORMAL" for records that describe live state), CONTENT (the
    directories, beside the database, whose entries mean the store is not new: see the
    module docstring) and REBUILD (what `system check --rebuild` does about a lost one).

    ``create=True`` opens even a lost database's path as a new one: only for the rebuild,
    after `move_aside` took the damaged file away. ``migrated_from`` is the schema
    version this open migrated from (None: no migration), for migrations that need more
    than SQL."""

    MIGRATIONS: list[str] = []
    KIND = "database"
    SYNCHRONOUS = "FULL"
    CONTENT: tuple[str, ...] = ()
    REBUILD = "start a new one"

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False):
        self.path = os.fspath(path)
        self.migrated_from: int | None = None
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), mode=0o700, exist_ok=True)
        if not create:
            self._refuse_lost()
        self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                    isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self._depth = 0
        try:
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._enable_wal()
            self.conn.execute(f"PRAGMA synchronous = {self.SYNCHRONOUS}")
            self.conn.execute("PRAGMA foreign_keys = ON")
            version = self.schema_version()
        except sqlite3.OperationalError:  # locked, cannot open...: not a verdict on the file
            self.conn.close()
            raise
        except sqlite3.DatabaseError as e:  # "file is not a database", "malformed"
            self.conn.close()
            raise DatabaseLost(self, f"is not a usable SQLite database ({e})", "") from None
        if version == 0 and not create and (held := self.content(self.path)):
            self.conn.close()  # a blank SQLite file in place of the store's records
            raise DatabaseLost(self, "has no records", held)
        if version != len(self.MIGRATIONS):
            with self.transaction():
                self._migrate()

    @classmethod
    def open_readonly(cls, path: str | os.PathLike[str], *, check_version: bool = True):
        """For commands that only look (ps, inspect, logs, images): the database opened
        read-only, without the pragmas, the lost-store checks or a migration; None when
        that is not possible (no file yet, an older schema that the full open migrates, a
        file SQLite cannot open read-only): then open it the usual way. Writing through
        it fails ("attempt to write a readonly database"). Without ``check_version`` the
        caller handles a query that does not fit the schema (sqlite3.Error)."""
        path = os.fspath(path)
        # a file: URI (urllib.parse would cost more than the open): escape what ends a path
        uri = os.path.abspath(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")
        try:
            conn = sqlite3.connect(f"file:{uri}?mode=ro", uri=True,
                                   timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error:
            return None
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0 or (check_version and version != len(cls.MIGRATIONS)):
                conn.close()
                return None
        except sqlite3.Error:
            conn.close()
            return None
        conn.row_factory = sqlite3.Row
        db = cls.__new__(cls)
        db.path, db.migrated_from, db.conn, db._depth = path, None, conn, 0
        return db

    def _refuse_lost(self) -> None:
        """DatabaseLost when the file is missing or empty in a store that holds content, or
        is not a regular file. One stat when all is well."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            why = "is missing"
        else:
            if not stat.S_ISREG(st.st_mode):
                raise DatabaseLost(self, "is not a regular file", "")
            if st.st_size:
                return
            why = "is empty"
        if held := self.content(self.path):
            raise DatabaseLost(self, why, held)

    @classmethod
    def content(cls, path: str) -> str:
        """What of CONTENT, beside the database at `path`, holds entries ("containers/,
        volumes/"); "" for a new store."""
        base = os.path.dirname(os.path.abspath(path))
        held = []
        for rel in cls.CONTENT:
            try:
                with os.scandir(os.path.join(base, rel)) as it:
                    if any(not e.name.startswith(".") for e in it):
                        held.append(rel.rstrip("/") + "/")
            except (FileNotFoundError, NotADirectoryError):
                continue
        return ", ".join(held)

    def _enable_wal(self) -> None:
        # Switching a fresh database to WAL can fail with "database is locked" without the
        # busy handler being consulted (several processes creating it at once): retry for
        # the busy timeout. WAL is persistent, so later opens see it already set.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                mode = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode.lower() != "wal":
                    mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise DatabaseError(f"{self.path}: cannot enable WAL (journal mode {mode})")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _migrate(self) -> None:
        version = self.schema_version()
        target = len(self.MIGRATIONS)
        if version > target:
            raise DatabaseError(f"{self.KIND} schema version {version} is newer than this "
                                f"sangja understands ({target})")
        if version < target:
            self.migrated_from = version
        while version < target:
            for stmt in self.MIGRATIONS[version].split(";"):
                if stmt.strip():
                    self.conn.execute(stmt)
            version += 1
            self.conn.execute(f"PRAGMA user_version = {int(version)}")

    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception. Nests by joining."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.conn
        except BaseException:
            self._depth = 0
            self.conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self.conn.execute("COMMIT")


def move_aside(path: str) -> str | None:
    """Rename a database file (and its -wal/-shm: a stale WAL would be replayed into a new
    database) to `<name>.damaged-<time>`; return the new name, None if there was no file.
    For the rebuild, before opening the path again with ``create=True``."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    moved = None
    for suffix in ("", "-wal", "-shm"):
        src = path + suffix
        if os.path.lexists(src):
            dst = f"{path}.damaged-{stamp}{suffix}"
            os.rename(src, dst)
            if not suffix:
                moved = dst
    return moved
