"""The build context's file digests, remembered by what stat says of each file, so that a
build whose context did not change does not read it again.

An entry is keyed by the file's (st_dev, st_ino) and holds its size, mtime_ns, ctime_ns
and sha256: a file whose inode, size, mtime and ctime are all the same still has the same
content (ctime cannot be set back but by the clock). A file changed less than `RACY_NS`
before it was hashed is not remembered: a second write in the same clock tick could leave
all four as they were (git's "racy" entries), so it is hashed again at the next build.

The entries live in ``<root>/build-cache/context-digests.json``, read once per build that
copies from a context and written (not synced: a lost file costs one re-read) at the end
of a build that hashed something new. `builder prune -a` removes the file.
"""

from __future__ import annotations

import os
import time

__all__ = ["DigestCache", "FILE"]

FILE = os.path.join("build-cache", "context-digests.json")
RACY_NS = 2_000_000_000
MAX_ENTRIES = 100_000  # beyond it, only what the last build used is kept


class DigestCache:
    def __init__(self, root: str):
        self.path = os.path.join(root, FILE)
        self._entries: dict[str, list] | None = None  # read at the first lookup
        self._used: set[str] = set()
        self.changed = False

    def _load(self) -> dict[str, list]:
        if self._entries is None:
            from ..jsonio import loads

            try:
                with open(self.path, "rb") as f:
                    doc = loads(f.read())
                entries = doc.get("files") if isinstance(doc, dict) else None
                self._entries = entries if isinstance(entries, dict) else {}
            except (OSError, ValueError):  # none yet, or unreadable: start again
                self._entries = {}
        return self._entries

    @staticmethod
    def _id(st: os.stat_result) -> str:
        return f"{st.st_dev}:{st.st_ino}"

    def get(self, st: os.stat_result) -> bytes | None:
        """The remembered sha256 of the regular file `st` describes, or None."""
        entry = self._load().get(self._id(st))
        if not isinstance(entry, list) or len(entry) != 4 or \
                entry[:3] != [st.st_size, st.st_mtime_ns, st.st_ctime_ns]:
            return None
        try:
            digest = bytes.fromhex(entry[3])
        except (TypeError, ValueError):
            return None
        self._used.add(self._id(st))
        return digest if len(digest) == 32 else None

    def put(self, st: os.stat_result, digest: bytes) -> None:
        """Remember `digest` for the file `st` describes (just read from it)."""
        if max(st.st_mtime_ns, st.st_ctime_ns) > time.time_ns() - RACY_NS:
            return  # racy: it may change again without its stat changing
        key = self._id(st)
        self._load()[key] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest.hex()]
        self._used.add(key)
        self.changed = True

    def save(self) -> None:
        """Write the entries if anything was added (best effort: it is only a cache)."""
        if not self.changed or self._entries is None:
            return
        from ..fs import write_atomic
        from ..jsonio import dumps

        entries = self._entries
        if len(entries) > MAX_ENTRIES:
            entries = {k: v for k, v in entries.items() if k in self._used}
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            write_atomic(self.path, dumps({"files": entries}), durable=False)
        except OSError:
            pass
        self.changed = False
