"""The image store's garbage-collection lock: ``flock(2)`` on ``<root>/gc.lock``.

Why: every writer puts files first and its database record last (see ``store``), so between
the two its blobs, unpacked layers and temp files look exactly like garbage. A collector
(``image prune``, ``system prune``, ``system check``, ``rmi``'s clean-up) must never run in
that window, and a writer must never rely on a blob that a collector decided to delete.

The rule:

* **Writers** hold the lock *shared* from their first file written until their database
  record is committed: ``ImageStore.import_rootfs``, ``unpacked_layers``, archive ``load``,
  ``import``, ``bootstrap``, and the engine's ``commit`` (anything that creates files under the
  root that no record names yet). Shared holders run concurrently with each other.
* **Collectors** hold it *exclusive* while they decide what is unreferenced and delete it:
  ``rmi`` (record removal + file clean-up), ``prune_images``/``collect`` and ``check``.
  While a collector holds it no writer is between "files written" and "record committed",
  so "not referenced by any record" really means garbage, and every temp file is a leftover
  of a killed writer (no age heuristics needed).
* A writer that fails cleans up its own files under the *exclusive* lock (``exclusive()``
  while holding it shared converts the lock): another writer may have found one of those
  blobs already present and be about to record it; the exclusive lock waits for that record.
  The conversion is not atomic (``flock`` drops the shared lock first), so it is only for
  clean-ups that give up their own unrecorded files anyway.

One handle per storage root per process (:func:`lock_for`), shared by every ``ImageStore``
of that root, so nesting works across objects (an engine holding it exclusive can call code
that opens its own store and takes it shared).

Order: always take this lock before a database write transaction, never while holding one
(the collectors wait for writers on the lock, writers wait for each other on SQLite).
The lock belongs to the open file description: it is released when the process dies
(``kill -9`` included) and is not held by a forked child after ``exec`` (``O_CLOEXEC``);
do not fork without exec while holding it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

LOCK_NAME = "gc.lock"
_LOCKS: dict[str, GCLock] = {}


def lock_for(root: str) -> GCLock:
    """This process's handle of the gc lock of storage root `root`."""
    key = os.path.realpath(root)
    lock = _LOCKS.get(key)
    if lock is None:
        lock = _LOCKS[key] = GCLock(key)
    return lock


class GCLock:
    """Per-process handle of the store's gc lock; nests (shared in shared, anything in
    exclusive), and converts shared -> exclusive -> shared (see the module docstring)."""

    def __init__(self, root: str):
        self.path = os.path.join(root, LOCK_NAME)
        self._fd: int | None = None
        self.mode: str | None = None  # None, "shared" or "exclusive"
        self._depth = 0

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd

    def close(self) -> None:
        """Close the file (dropping the lock); only when nothing in this process holds it."""
        if self._fd is not None and self.mode is None:
            os.close(self._fd)  # releases the lock if still held
            self._fd = None
            self.mode = None
            self._depth = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the lock at least shared (writers)."""
        if self.mode is not None:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        fcntl.flock(self._file(), fcntl.LOCK_SH)
        self.mode, self._depth = "shared", 1
        try:
            yield
        finally:
            self.mode, self._depth = None, 0
            fcntl.flock(self._file(), fcntl.LOCK_UN)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock exclusive (collectors). Inside a shared hold of this process the
        lock is converted, not atomically, and converted back to shared afterwards."""
        if self.mode == "exclusive":
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        fd = self._file()
        previous, depth = self.mode, self._depth
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.mode, self._depth = "exclusive", 1
        try:
            yield
        finally:
            if previous == "shared":
                fcntl.flock(fd, fcntl.LOCK_SH)
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
            self.mode, self._depth = previous, depth
