"""`sangja system check`: find (and with ``repair`` fix) what a crash or a damaged disk left.

Runs under the gc lock held exclusive (see :mod:`sangja.image.gclock`), so a writer that is
merely in progress is never reported: every temp entry and unreferenced file is a leftover.

Findings, and what ``repair`` does with each:

    temp                temp files/dirs of a killed writer                    remove
    stray file          a non-digest name among the blobs                     remove
    corrupt blob        content does not match its digest                     remove
    dangling tag        a tag naming a missing image                          remove
    broken image        config/manifest/layer blob or layer record missing,   remove, with force
                        or a layer blob its manifest names
    layer blob record   an image's layer record names another blob than its   record the
                        manifest, and the store has the manifest's            manifest's
    unreferenced layer  a layer record no image uses (and its directory)      remove
    stale layer path    recorded as unpacked, directory gone                  forget the path
                        (it is unpacked again on demand)
    orphan layer dir    a layer directory with no record                      remove
    unreferenced blob   a blob no record references                           remove
    database            SQLite's quick_check fails                            (not repairable)

Broken images stay (and are reported, so the check fails) unless ``force`` is given too.
Layer directories that a mounted container snapshot stacks are never removed. A lost
images.db is not checked here: opening the store fails (sangja.sqlite.DatabaseLost), and the
engine's check reports it (``--rebuild`` recreates the records, see rebuild.py).
"""

from __future__ import annotations

import os
import re

from sangja.image.blobs import ALGORITHMS
from sangja.image.gc import entry_size, remove_entry, temp_leftovers
from sangja.image.store import ImageStore
from sangja.records import dataclass, field

__all__ = ["CheckReport", "Finding", "check"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass
class Finding:
    kind: str
    subject: str
    detail: str
    fix: str | None  # what repair does; None: cannot be repaired here
    needs_force: bool = False
    repaired: bool = False
    flags: str | None = None  # the flags that fix it, when not --repair [-f]

    def line(self) -> str:
        text = f"{self.kind}: {self.subject}: {self.detail}"
        if self.repaired:
            return f"{text}: repaired ({self.fix})"
        if self.fix is None:
            return f"{text} (cannot be repaired)"
        flags = self.flags or ("--repair -f" if self.needs_force else "--repair")
        return f"{text} ({flags} would {self.fix})"


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    reclaimed: int = 0

    @property
    def remaining(self) -> list[Finding]:
        return [f for f in self.findings if not f.repaired]

    @property
    def repaired(self) -> list[Finding]:
        return [f for f in self.findings if f.repaired]


def check(store: ImageStore, *, repair: bool = False, force: bool = False) -> CheckReport:
    with store.lock.exclusive():
        return _Checker(store, repair, force).run()


class _Checker:
    def __init__(self, store: ImageStore, repair: bool, force: bool):
        self.store = store
        self.repair = repair
        self.force = force
        self.report = CheckReport()

    def add(self, kind: str, subject: str, detail: str, fix: str | None,
            action=None, needs_force: bool = False) -> Finding:
        f = Finding(kind, subject, detail, fix, needs_force)
        self.report.findings.append(f)
        if action is not None and self.repair and (self.force or not needs_force):
            action()
            f.repaired = True
        return f

    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.store.root)

    def run(self) -> CheckReport:
        self.database()
        self.temp()
        bad = self.blobs()
        self.tags()
        self.layer_blob_records()
        self.images(bad)
        self.layers()
        self.unreferenced_blobs(bad)
        return self.report

    def database(self) -> None:
        rows = self.store.db.conn.execute("PRAGMA quick_check").fetchall()
        problems = [r[0] for r in rows if r[0] != "ok"]
        if problems:
            self.add("database", "images.db", "; ".join(problems[:5]), None)

    def temp(self) -> None:
        for path in temp_leftovers(self.store):
            size = entry_size(path)

            def rm(path=path, size=size) -> None:
                remove_entry(path)
                self.report.reclaimed += size

            self.add("temp", self.rel(path), "left by an interrupted writer", "remove it", rm)

    def blobs(self) -> set[str]:
        """Stray names and corrupt blobs; returns the digests that are (or were) corrupt."""
        blobs = self.store.blobs
        for algo, length in ALGORITHMS.items():
            d = os.path.join(blobs.blobs_dir, algo)
            try:
                names = sorted(os.listdir(d))
            except FileNotFoundError:
                continue
            for name in names:
                path = os.path.join(d, name)
                if len(name) == length and re.fullmatch(r"[0-9a-f]+", name) \
                        and os.path.isfile(path) and not os.path.islink(path):
                    continue
                self.add("stray file", self.rel(path), "not a blob (bad name or type)",
                         "remove it", lambda path=path: remove_entry(path))
        bad: set[str] = set()
        for digest in sorted(blobs.digests()):
            if blobs.verify(digest):
                continue
            bad.add(digest)
            self.add("corrupt blob", digest, "content does not match its digest", "remove it",
                     lambda digest=digest: blobs.delete(digest))
        return bad

    def tags(self) -> None:
        db = self.store.db
        for name, image_id in sorted(db.dangling_tags().items()):
            self.add("dangling tag", name, f"points at missing image {image_id}", "remove it",
                     lambda name=name: db.untag(name))

    def layer_blob_records(self) -> None:
        """Records made before each image kept its own layer blobs (db._SCHEMA_V3)."""
        store = self.store
        for img, pos, digest, size in store.manifest_mismatches():
            self.add("layer blob record", f"{img.id} layer {pos}",
                     f"records another blob than {digest}, which its manifest names",
                     "record the manifest's blob",
                     lambda i=img.id, p=pos, d=digest, n=size:
                     store.db.set_image_layer_blob(i, p, d, n))

    def images(self, bad: set[str]) -> None:
        store, db = self.store, self.store.db
        no_record = db.missing_layer_records()

        def state(digest: str) -> str | None:
            if digest in bad:
                return "corrupt"
            return None if store.blobs.exists(digest) else "missing"

        for img in db.images():
            problems = []
            if (s := state(img.id)) is not None:
                problems.append(f"config blob is {s}")
            if img.manifest_digest and (s := state(img.manifest_digest)) is not None:
                problems.append(f"manifest blob {img.manifest_digest} is {s}")
            own = db.image_layers(img.id)
            for layer in own:
                diff_id = layer.diff_id
                if diff_id in no_record.get(img.id, []):
                    problems.append(f"layer {diff_id} has no record")
                    continue
                if layer.blob_digest is None:
                    s = "missing"
                else:
                    s = state(layer.blob_digest)
                if s is not None:
                    unpacked = os.path.isdir(store.layer_path(diff_id))
                    problems.append(f"blob of layer {diff_id} is {s}"
                                    + (" (still unpacked)" if unpacked else ""))
            named = store.manifest_layer_blobs(img) if not problems else None
            for layer, (digest, _) in zip(own, named or [], strict=False):
                if digest != layer.blob_digest and (s := state(digest)) is not None:
                    problems.append(f"its manifest names blob {digest} for layer "
                                    f"{layer.diff_id}, which is {s}")
            if not problems:
                continue
            subject = img.id + (f" ({', '.join(img.tags)})" if img.tags else "")
            self.add("broken image", subject, "; ".join(problems), "remove the image",
                     lambda img=img: db.remove_image(img.id), needs_force=True)

    def layers(self) -> None:
        store, db = self.store, self.store.db
        mounted = store.mounted_layers()
        unreferenced = {layer.diff_id for layer in db.unreferenced_layers()
                        if layer.diff_id.partition(":")[2] not in mounted}
        for layer in db.layers():
            if layer.diff_id in unreferenced:

                def rm(diff_id=layer.diff_id) -> None:
                    db.remove_layer(diff_id)
                    self.report.reclaimed += store.remove_layer_dir(diff_id)

                self.add("unreferenced layer", layer.diff_id, "no image uses it", "remove it", rm)
                continue
            if layer.unpacked_path and not os.path.isdir(layer.unpacked_path):
                self.add("stale layer path", layer.diff_id,
                         f"recorded as unpacked at {layer.unpacked_path}, which is gone",
                         "forget the path (it is unpacked again when needed)",
                         lambda diff_id=layer.diff_id: db.set_layer_path(diff_id, None))
        recorded = {layer.diff_id.partition(":")[2] for layer in db.layers()} | mounted
        for name in sorted(os.listdir(store.layers_dir)):
            if name.startswith(".") or name in recorded:
                continue
            path = os.path.join(store.layers_dir, name)

            def rm_dir(name=name, path=path) -> None:
                if _HEX64.fullmatch(name):
                    self.report.reclaimed += store.remove_layer_dir(f"sha256:{name}")
                else:
                    self.report.reclaimed += entry_size(path)
                    remove_entry(path)

            self.add("orphan layer dir", self.rel(path), "no layer record", "remove it", rm_dir)

    def unreferenced_blobs(self, bad: set[str]) -> None:
        store = self.store
        still = store.db.referenced_blobs()
        for digest in sorted(store.blobs.digests()):
            if digest in still or digest in bad:
                continue
            size = entry_size(store.blobs.path(digest))

            def rm(digest=digest, size=size) -> None:
                if store.blobs.delete(digest):
                    self.report.reclaimed += size

            self.add("unreferenced blob", digest, "no image references it", "remove it", rm)
