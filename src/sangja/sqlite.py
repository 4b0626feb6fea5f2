"""SQLite done the same way for every record store: WAL journal, a busy timeout so
concurrent CLI processes queue instead of failing, `BEGIN IMMEDIATE` write transactions
(a crash before COMMIT leaves the previous state), foreign keys, and a schema versioned
with `PRAGMA user_version`."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import SangjaError

BUSY_TIMEOUT_MS = 10_000


class DatabaseError(SangjaError):
    pass


class SQLiteDB:
    """Subclasses set MIGRATIONS (MIGRATIONS[n] takes the schema from version n to n+1),
    KIND (named in errors) and SYNCHRONOUS ("FULL" when a lost commit would lose data the
    user cannot recreate, "NORMAL" for records that describe live state)."""

    MIGRATIONS: list[str] = []
    KIND = "database"
    SYNCHRONOUS = "FULL"

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), mode=0o700, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                    isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self._depth = 0
        self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._enable_wal()
        self.conn.execute(f"PRAGMA synchronous = {self.SYNCHRONOUS}")
        self.conn.execute("PRAGMA foreign_keys = ON")
        if self.schema_version() != len(self.MIGRATIONS):
            with self.transaction():
                self._migrate()

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
