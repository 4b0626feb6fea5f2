"""Per-container runtime state under the state root: a directory per container holding
state.json (written atomically) and the exec fifo, locked with flock while changed.

Status is never trusted from the file alone: it is derived from the recorded init pid
(checked against its start time, so a reused pid is not mistaken for ours) and the fifo.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from .. import OCI_VERSION
from ..errors import ContainerExists, ContainerNotFound, SangjaError
from ..fs import write_atomic
from ..jsonio import load_file

STATE_FILE = "state.json"
FIFO = "exec.fifo"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
MAX_ID = 255


def default_root() -> str:
    base = os.environ.get("SANGJA_RUNROOT") or "/run/sangja"
    return os.path.join(base, "runtime")


def validate_id(cid: str) -> None:
    if not cid:
        raise SangjaError("container id must not be empty")
    if len(cid) > MAX_ID:
        raise SangjaError(f"container id is longer than {MAX_ID} characters")
    if cid in (".", "..") or not set(cid) <= _ID_CHARS:
        raise SangjaError(f"invalid container id {cid!r}: use letters, digits and _ + - .")


class Container:
    """A container's directory and its recorded state (a plain dict, see `record`)."""

    def __init__(self, store: Store, cid: str, lockfd: int, record: dict):
        self.store = store
        self.id = cid
        self.dir = os.path.join(store.root, cid)
        self.lockfd = lockfd
        self.record = record

    @property
    def fifo(self) -> str:
        return os.path.join(self.dir, FIFO)

    @property
    def pid(self) -> int:
        return self.record.get("pid", 0)

    def save(self) -> None:
        # Runtime state is about live processes: it must survive a killed runtime (atomic
        # rename), not a reboot (the processes would not either), so no fsync.
        write_atomic(os.path.join(self.dir, STATE_FILE), _dumps(self.record), durable=False)

    def status(self) -> str:
        from ..linux.process import is_alive

        pid = self.pid
        if not pid:
            return "creating"
        if not is_alive(pid, self.record.get("init_start")):
            return "stopped"
        if self.record.get("cgroup") and _frozen(self.record):
            return "paused"
        if os.path.exists(self.fifo):
            return "created"
        return "running"

    def oci_state(self) -> dict:
        """The state document of runtime-spec ("state" command, hooks' stdin)."""
        status = self.status()
        st = {"ociVersion": OCI_VERSION, "id": self.id, "status": status,
              "pid": self.pid if status not in ("stopped", "creating") else 0,
              "bundle": self.record.get("bundle", "")}
        if self.record.get("annotations"):
            st["annotations"] = self.record["annotations"]
        return st

    def unlock(self) -> None:
        if self.lockfd >= 0:
            os.close(self.lockfd)
            self.lockfd = -1

    def remove(self) -> None:
        """Delete the directory; the lock is released last so waiters see it gone."""
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)
        self.unlock()


def _frozen(record: dict) -> bool:
    """v1 freezer when the host has one (a hybrid host's v2 tree says nothing), else v2."""
    dirs = record.get("cgroup_dirs", ())
    for d in sorted(dirs, key=lambda d: "/freezer/" not in d):
        for name, frozen in (("freezer.state", ("FROZEN", "FREEZING")), ("cgroup.freeze", ("1",))):
            try:
                with open(os.path.join(d, name)) as f:
                    return f.read().strip() in frozen
            except OSError:
                continue
    return False


def _dumps(obj) -> str:
    from ..jsonio import dumps

    return dumps(obj)


class Store:
    def __init__(self, root: str | None = None):
        self.root = os.path.abspath(root or default_root())

    def _lock_dir(self, path: str) -> int:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def reserve(self, cid: str, record: dict) -> Container:
        """Claim `cid` atomically (mkdir), lock it and write the first state."""
        validate_id(cid)
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        path = os.path.join(self.root, cid)
        try:
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise ContainerExists(cid) from None
        fd = self._lock_dir(path)
        c = Container(self, cid, fd, record)
        c.save()
        return c

    def open(self, cid: str) -> Container:
        """Lock and load `cid`; waits for a concurrent command on the same container."""
        validate_id(cid)
        path = os.path.join(self.root, cid)
        try:
            fd = self._lock_dir(path)
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerNotFound(cid) from None
        try:
            if os.fstat(fd).st_nlink == 0:  # removed while we waited for the lock
                raise ContainerNotFound(cid)
            try:
                record = load_file(os.path.join(path, STATE_FILE))
            except FileNotFoundError:
                record = {"id": cid, "pid": 0}
            except ValueError:
                record = {"id": cid, "pid": 0, "corrupt": True}
        except BaseException:
            os.close(fd)
            raise
        return Container(self, cid, fd, record)

    def peek(self, cid: str) -> Container:
        """Load without locking, for read-only views (state, list)."""
        validate_id(cid)
        path = os.path.join(self.root, cid)
        try:
            record = load_file(os.path.join(path, STATE_FILE))
        except (FileNotFoundError, NotADirectoryError):
            if os.path.isdir(path):
                return Container(self, cid, -1, {"id": cid, "pid": 0})
            raise ContainerNotFound(cid) from None
        except ValueError:
            record = {"id": cid, "pid": 0, "corrupt": True}
        return Container(self, cid, -1, record)

    @property
    def seccomp_cache(self) -> str:
        """Compiled seccomp programs (sangja.linux.seccomp.prepare). The "~" keeps the name
        out of the container ids' alphabet."""
        return os.path.join(self.root, "~seccomp")

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if set(n) <= _ID_CHARS
                      and os.path.isdir(os.path.join(self.root, n)))


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def ignore_missing(fn, *a) -> None:
    try:
        fn(*a)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
