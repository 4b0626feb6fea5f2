"""`sangja system check`, the containers' part: what a crash, a killed command or a lost
container database left behind, and (with ``repair``) its removal.

Findings, and what ``repair`` does with each:

    container without directory   a record whose R/containers/<id> is gone     make it again
    mount left                    a stopped container's root still mounted      unmount it
    leftover container            files of an id no record names: its           remove them
                                  directory, snapshot (with its writable
                                  layer), run directory, runtime state (an
                                  id only in the run root counts when a
                                  runtime's state puts its bundle in this
                                  root: run roots can be shared)
    running without a record      the same, while its processes run              (not repaired)
    network left                  a namespace, network state or IP lease of a    tear it down
                                  container that is not running (or gone)

Nothing a live container uses is touched: an id counts as live while its monitor runs, a
runtime reports it anything but stopped (or cannot tell), or a process has its root
filesystem as its root. Containers a command is working on (their lock is held) are
skipped: what is in progress is not a leftover.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..image.check import Finding
from .paths import runtime_name_of
from .status import PAUSED, RUNNING, live_state, monitor_alive

_HEX64 = re.compile(r"[0-9a-f]{64}")


def check_containers(engine, *, repair: bool = False) -> tuple[list[Finding], int]:
    """Findings (repaired ones marked) and the bytes reclaimed. Raises DatabaseLost when the
    container database is lost (see sangja.sqlite)."""
    return _Checker(engine, repair).run()


def runtime_states(runroot: str) -> dict[str, list[str]]:
    """Container id -> the runtimes (as `runtime_for` names them) holding state for it."""
    out: dict[str, list[str]] = {}
    try:
        names = sorted(os.listdir(runroot))
    except FileNotFoundError:
        return out
    for name in names:
        runtime = runtime_name_of(name)
        if runtime is None:
            continue
        try:
            entries = os.listdir(os.path.join(runroot, name))
        except (NotADirectoryError, FileNotFoundError):
            continue
        for cid in entries:
            if _HEX64.fullmatch(cid):
                out.setdefault(cid, []).append(runtime)
    return out


def processes_rooted_at(path: str) -> list[int]:
    """Pids whose root directory is `path` (same device and inode: a container's init and
    everything it started, whatever mount namespace they are in)."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            r = os.stat(f"/proc/{entry}/root")
        except OSError:
            continue
        if (r.st_dev, r.st_ino) == (st.st_dev, st.st_ino):
            out.append(int(entry))
    return out


@contextmanager
def _try_lock(path: str) -> Iterator[bool]:
    """An flock (a container's lock file, or a runtime's state directory) if nobody holds
    it: True, held for the block; False when a command is working on it. No such file:
    True (nothing can be holding it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                yield False
                return
            raise
        yield True
    finally:
        os.close(fd)


class _Checker:
    def __init__(self, engine, repair: bool):
        self.engine = engine
        self.paths = engine.paths
        self.repair = repair
        self.findings: list[Finding] = []
        self.reclaimed = 0
        self.runtimes = runtime_states(self.paths.runroot)

    def add(self, kind: str, subject: str, detail: str, fix: str | None,
            action: Callable[[], None] | None = None) -> None:
        f = Finding(kind, subject, detail, fix)
        self.findings.append(f)
        if action is not None and self.repair:
            action()
            f.repaired = True

    def run(self) -> tuple[list[Finding], int]:
        db = self.engine.db
        problems = [r[0] for r in db.conn.execute("PRAGMA quick_check") if r[0] != "ok"]
        if problems:
            self.add("database", db.path, "; ".join(problems[:5]) + ": restore it from a "
                     "backup (its records cannot be rebuilt)", None)
        rows = {r["id"]: r for r in db.all()}
        for cid, row in rows.items():
            self.recorded(cid, row)
        for cid in sorted(self.unrecorded_ids(set(rows))):
            self.leftover(cid)
        from ..network.check import check_networks

        check_networks(self.engine, self)
        return self.findings, self.reclaimed

    # -- what is live ------------------------------------------------------------------------
    def live(self, cid: str) -> str | None:
        """Why `cid` counts as live (see the module docstring), or None."""
        if monitor_alive(self.paths, cid):
            return "its monitor runs"
        for name in self.runtimes.get(cid, []):
            status = self._runtime_status(name, cid)
            if status != "stopped":
                return f"{name} reports it {status or 'in an unknown state'}"
        snaps = self.engine.snapshots()
        if snaps.kind(cid) is not None and processes_rooted_at(snaps.merged_dir(cid)):
            return "processes run in its root filesystem"
        return None

    def _runtime_status(self, name: str, cid: str) -> str | None:
        from .runtimes import runtime_for

        try:
            status = runtime_for(name, self.paths).status(cid)
        except Exception:  # cannot tell: live, so untouched
            return None
        if status == "creating" and name == "sangja-runtime":
            # a create in progress holds its state directory's lock; a killed one does not
            with _try_lock(os.path.join(self.paths.runtime_root(name), cid)) as free:
                return "stopped" if free else status
        return status

    # -- containers with a record ------------------------------------------------------------
    def recorded(self, cid: str, row) -> None:
        paths, snaps = self.paths, self.engine.snapshots()
        name = f"{cid[:12]} ({row['name']})"
        if not os.path.isdir(paths.container_dir(cid)):
            def mkdir(cid=cid) -> None:
                with self.engine.locked(cid):  # makes the directory, as any command would
                    pass

            self.add("container without directory", name,
                     f"{paths.container_dir(cid)} is gone (start writes its files again)",
                     "make the directory", mkdir)
        if live_state(row) in (RUNNING, PAUSED) or snaps.kind(cid) is None \
                or not snaps.mounted(cid):
            return
        with _try_lock(paths.lock_path(cid)) as free:
            if not free or self.live(cid):
                return  # a command is at work on it, or an interrupted start `start` adopts
            row = self.engine.db.get(cid)
            if live_state(row) in (RUNNING, PAUSED):
                return
            self.add("mount left", name,
                     f"{snaps.merged_dir(cid)} is mounted but the container is "
                     f"{live_state(row)}", "unmount it", lambda: snaps.unmount(cid))

    # -- ids without a record ----------------------------------------------------------------
    def unrecorded_ids(self, recorded: set[str]) -> set[str]:
        """Ids with files in this root, or with runtime state whose bundle is in this root.
        The run root may be shared by several roots (`--root` alone picks another store):
        an id found only there may be another store's container, not ours to judge."""
        ids: set[str] = set()
        for d in (os.path.join(self.paths.root, "containers"),
                  os.path.join(self.paths.snapshots, "overlay")):
            try:
                ids.update(n for n in os.listdir(d) if _HEX64.fullmatch(n))
            except FileNotFoundError:
                continue
        ids.update(cid for cid in set(self.runtimes) - ids - recorded
                   if self._bundle_here(cid))
        return ids - recorded

    def _bundle_here(self, cid: str) -> bool:
        from .runtimes import runtime_for

        for name in self.runtimes.get(cid, []):
            try:
                state = runtime_for(name, self.paths).state(cid)
            except Exception:  # noqa: BLE001 - cannot tell: not ours to touch
                continue
            if state and state.get("bundle") == self.paths.container_dir(cid):
                return True
        return False

    def leftover(self, cid: str) -> None:
        paths, snaps = self.paths, self.engine.snapshots()
        parts = []
        if os.path.isdir(paths.container_dir(cid)):
            parts.append("directory")
        if snaps.kind(cid) is not None or os.path.isdir(os.path.join(snaps.base, cid)):
            parts.append("snapshot" + (" (mounted)" if snaps.mounted(cid) else ""))
        if os.path.isdir(paths.run_dir(cid)):
            parts.append("run directory")
        parts += [f"{name} state" for name in self.runtimes.get(cid, [])]
        with _try_lock(paths.lock_path(cid)) as free:
            if not free:
                return  # being created or removed right now
            if self.engine.db.conn.execute("SELECT 1 FROM containers WHERE id = ?",
                                           (cid,)).fetchone():
                return  # recorded meanwhile
            why = self.live(cid)
            if why:
                runtimes = self.runtimes.get(cid) or ["sangja-runtime"]
                self.add("running without a record", cid[:12],
                         f"{', '.join(parts)} of an id no record names, and {why}: stop it "
                         f"with '{_kill_hint(self.paths, runtimes[0], cid)}', then repair",
                         None)
                return
            self.add("leftover container", cid[:12],
                     f"{', '.join(parts)} of an id no record names",
                     "remove them, its writable layer too", lambda: self._remove(cid))

    def _remove(self, cid: str) -> None:
        import shutil

        from ..image.store import tree_size
        from .runtimes import runtime_for

        for name in self.runtimes.get(cid, []):
            runtime_for(name, self.paths).delete(cid)
        snaps = self.engine.snapshots()
        sdir = os.path.join(snaps.base, cid)
        if os.path.isdir(sdir):
            snaps.unmount(cid)
            self.reclaimed += tree_size(sdir)
            snaps.remove(cid)
        shutil.rmtree(self.paths.run_dir(cid), ignore_errors=True)
        cdir = self.paths.container_dir(cid)
        if os.path.isdir(cdir):
            self.reclaimed += tree_size(cdir)
            shutil.rmtree(cdir)


def _kill_hint(paths, runtime: str, cid: str) -> str:
    exe = "sangja-runtime" if runtime == "sangja-runtime" else runtime
    return f"{exe} --root {paths.runtime_root(runtime)} kill {cid} KILL"


# ---------------------------------------------------------------------------- system check


class SystemCheck:
    """What `sangja system check [--repair [-f]] [--rebuild]` found and did: the image
    store's findings, then the containers'; a lost database is one finding, and the part of
    the check that would read it is skipped (never a check against an empty store)."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.reclaimed = 0
        self.rebuilt: list[str] = []  # one line per rebuilt database

    @property
    def remaining(self) -> list[Finding]:
        return [f for f in self.findings if not f.repaired]


def system_check(root: str, runroot: str, *, repair: bool = False, force: bool = False,
                 rebuild: bool = False) -> SystemCheck:
    from ..image.check import check
    from ..image.store import ImageStore
    from ..sqlite import DatabaseLost
    from .containers import Engine

    out = SystemCheck()
    if rebuild:
        out.rebuilt = rebuild_databases(root)
    try:
        with ImageStore(root) as store:
            report = check(store, repair=repair, force=force)
        out.findings += report.findings
        out.reclaimed += report.reclaimed
    except DatabaseLost as e:
        out.findings.append(_lost(e, "recreate the image records from the blobs"))
    try:
        with Engine(root, runroot) as engine:
            findings, reclaimed = check_containers(engine, repair=repair)
        out.findings += findings
        out.reclaimed += reclaimed
    except DatabaseLost as e:
        out.findings.append(_lost(e, "start an empty one"))
    return out


def _lost(e, fix: str) -> Finding:
    held = f", but the store holds {e.held}" if e.held else ""
    return Finding("database", e.path, f"{e.why}{held}: nothing that depends on it was "
                   "checked", fix, flags="--rebuild")


def rebuild_databases(root: str) -> list[str]:
    """Rebuild whichever of containers.db and images.db is lost (sangja.sqlite.DatabaseLost):
    the damaged file is kept aside; a new container database is empty, the image records
    are recreated from the blobs and tagged again with the names containers were made
    from. Returns one line per database rebuilt."""
    from ..image.rebuild import rebuild_images
    from ..sqlite import DatabaseLost, move_aside
    from .records import ContainerDB, open_existing

    lines = []
    path = os.path.join(root, "containers.db")
    try:
        db = open_existing(root)
    except DatabaseLost:
        moved = move_aside(path)
        db = ContainerDB(path, create=True)
        lines.append(f"rebuilt {path}: a new, empty container database"
                     + (f" (the damaged file is kept as {moved})" if moved else ""))
    names: dict[str, list[str]] = {}
    if db is not None:
        with db:
            for r in db.all():
                names.setdefault(r["image_id"], []).append(r["image_name"])
    report = rebuild_images(root, names)
    if report is not None:
        n = len(report.images)
        lines.append(f"rebuilt {os.path.join(root, 'images.db')}: {n} image"
                     f"{'s' if n != 1 else ''} recreated from the blobs, "
                     f"{len(report.tags)} tag{'s' if len(report.tags) != 1 else ''} restored"
                     + (f" ({', '.join(report.tags)})" if report.tags else "")
                     + (f" (the damaged file is kept as {report.moved_to})"
                        if report.moved_to else ""))
    return lines
