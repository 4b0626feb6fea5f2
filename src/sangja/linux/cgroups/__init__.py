"""Control groups: find the host's hierarchies (v1, v2 or hybrid) and manage one container's
cgroup across all of them.

`Cgroup.for_path()` is the entry point. Resource limits are applied by `resources.py`
(a later step); this module owns creation, membership, listing, freezing and removal.
"""

from __future__ import annotations

import errno
import os
import time

# errno of a cgroup directory removed under us: missing path, or a file of a dead cgroup
_GONE = (errno.ENOENT, errno.ENODEV)


class Hierarchy:
    """One mounted cgroup hierarchy: v1 (with its controllers) or the v2 unified tree."""

    __slots__ = ("mountpoint", "root", "controllers", "version")

    def __init__(self, mountpoint: str, root: str, controllers: tuple[str, ...], version: int):
        self.mountpoint = mountpoint
        self.root = root
        self.controllers = controllers
        self.version = version

    def __repr__(self) -> str:
        return f"Hierarchy({self.mountpoint!r}, v{self.version}, {self.controllers})"


def hierarchies(mountinfo: str = "/proc/self/mountinfo") -> list[Hierarchy]:
    """Every cgroup hierarchy mounted in this mount namespace, once each."""
    found: dict[str, Hierarchy] = {}
    with open(mountinfo) as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fstype, _source, superopts = post.split()[:3]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            fields = pre.split()
            root, mountpoint = _unescape(fields[3]), _unescape(fields[4])
            if fstype == "cgroup2":
                key, h = "", Hierarchy(mountpoint, root, (), 2)
            else:
                ctrls = tuple(
                    o for o in superopts.split(",")
                    if o not in ("rw", "ro", "relatime", "noprefix", "clone_children",
                                 "xattr", "nsdelegate", "cpuset_v2_mode", "favordynmods")
                    and not o.startswith("release_agent=")
                )
                key, h = ",".join(ctrls), Hierarchy(mountpoint, root, ctrls, 1)
            found.setdefault(key, h)
    return list(found.values())


def _unescape(s: str) -> str:
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace(
        "\\134", "\\")


def own_paths(pid: int | str = "self") -> dict[str, str]:
    """/proc/PID/cgroup as {controllers-key: path}; the v2 entry has the key ""."""
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, key, path = line.rstrip("\n").split(":", 2)
            out[key] = path
    return out


def mode() -> str:
    """"v2", "v1" or "hybrid" for this host."""
    hs = hierarchies()
    v1 = any(h.version == 1 and not all(c.startswith("name=") for c in h.controllers)
             for h in hs)
    v2 = any(h.version == 2 for h in hs)
    return "hybrid" if v1 and v2 else "v1" if v1 else "v2"


def prime_migration() -> None:
    """Start, in a background thread, a no-op move of this process into its own cgroup.

    The first cgroup migration after a quiet spell waits for an RCU grace period (the
    kernel's cgroup_threadgroup_rwsem: 7-20 ms here) while holding cgroup_mutex, which
    also holds up every cgroup mkdir and every fork meanwhile; moves within ~20 ms after it
    do not wait. Started first thing, the wait overlaps the runtime's imports and bundle
    parsing instead of delaying the container. Failure is harmless: the real move then
    pays the wait itself.

    Returns once the thread is about to write (~0.3 ms): left to the interpreter's thread
    switching it would start only after the caller's next imports, milliseconds later.
    """
    import _thread

    ready = _thread.allocate_lock()
    ready.acquire()
    _thread.start_new_thread(_noop_migration, (ready,))
    ready.acquire()  # released by the thread just before its write


def _noop_migration(ready) -> None:
    try:
        fd = os.open(_own_procs_file(), os.O_WRONLY | os.O_CLOEXEC)
    except (OSError, ValueError):
        ready.release()
        return
    ready.release()
    try:
        os.write(fd, b"0")  # the GIL is released while the kernel waits
    except OSError:
        pass
    finally:
        os.close(fd)


def _own_procs_file() -> str:
    """cgroup.procs of a cgroup this process is in: where the usual layout puts it (the
    first line of /proc/self/cgroup under /sys/fs/cgroup), else from the mount table."""
    own = own_paths()
    for key, path in own.items():
        for top in ((f"/sys/fs/cgroup/{key}",) if key else
                    ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")):
            candidate = f"{top}{path.rstrip('/')}/cgroup.procs"
            if os.path.exists(candidate):
                return candidate
    for h in hierarchies():
        rel = own.get(",".join(h.controllers) if h.version == 1 else "")
        if rel is None:
            continue
        if h.root != "/" and rel.startswith(h.root):
            rel = rel[len(h.root):]
        return os.path.join(h.mountpoint + rel, "cgroup.procs")
    raise ValueError("no cgroup hierarchy")


def systemd_path(path: str) -> str:
    """A systemd-style cgroupsPath ("slice:prefix:name", as podman and containerd pass with
    --systemd-cgroup) as the cgroupfs path systemd would have made for it."""
    parts = path.split(":")
    if len(parts) != 3 or path.startswith("/"):
        return path
    slice_, prefix, name = parts
    out = ""
    if slice_ and slice_ != "-.slice":
        stem = slice_.removesuffix(".slice")
        acc = ""
        for piece in stem.split("-"):
            acc = f"{acc}-{piece}" if acc else piece
            out += f"/{acc}.slice"
    unit = name if name.endswith((".scope", ".slice")) else f"{prefix}-{name}.scope" \
        if prefix else f"{name}.scope"
    return f"{out or '/system.slice'}/{unit}"


class Cgroup:
    """A container's cgroup: one directory per hierarchy, all at the same relative path."""

    def __init__(self, rel: str, dirs: list[tuple[Hierarchy, str]]):
        self.rel = rel
        self.dirs = dirs

    @classmethod
    def for_path(cls, cgroups_path: str | None, default: str) -> Cgroup:
        """Resolve runtime-spec `cgroupsPath`: absolute from each hierarchy's root, relative
        below this process's own cgroup, absent -> `default` (absolute)."""
        path = cgroups_path or default
        own = own_paths()
        dirs = []
        for h in hierarchies():
            key = ",".join(h.controllers) if h.version == 1 else ""
            if path.startswith("/"):
                rel = path
            else:
                rel = os.path.join(own.get(key, "/"), path)
            # The mount may show only a subtree (inside a cgroup namespace): strip its root.
            inside = rel
            if h.root != "/" and (rel == h.root or rel.startswith(h.root + "/")):
                inside = rel[len(h.root):] or "/"
            dirs.append((h, os.path.normpath(h.mountpoint + "/" + inside.lstrip("/"))))
        if ".." in path.split("/"):
            raise ValueError(f"linux.cgroupsPath {path!r} must not contain '..'")
        return cls(path, dirs)

    @classmethod
    def from_dirs(cls, rel: str, dirs: list[str]) -> Cgroup:
        """Rebuild a container's cgroup from the directories recorded at create."""
        hs = sorted(hierarchies(), key=lambda h: -len(h.mountpoint))
        pairs = []
        for d in dirs:
            h = next((h for h in hs if d.startswith(h.mountpoint.rstrip("/") + "/")), None)
            pairs.append((h or Hierarchy(os.path.dirname(d), "/", (), 1), d))
        return cls(rel, pairs)

    @classmethod
    def paths_only(cls, rel: str, dirs: list[str]) -> Cgroup:
        """The cgroup from its recorded directories without reading the mount table, for
        pids() and destroy(), which need only the directories. Each gets a placeholder
        hierarchy with no controllers (as from_dirs gives a directory under no mount);
        join(), controllers and resources need from_dirs."""
        return cls(rel, [(Hierarchy(os.path.dirname(d), "/", (), 1), d) for d in dirs])

    @property
    def paths(self) -> list[str]:
        return [d for _, d in self.dirs]

    def create(self) -> None:
        for attempt in range(5):
            try:
                for h, d in self.dirs:
                    if "cpuset" in h.controllers:
                        _mkdir_cpuset(h.mountpoint, d)
                    else:
                        os.makedirs(d, exist_ok=True)
                return
            except OSError as e:
                # A concurrent delete removed the shared parent (ENOENT), or removed it
                # while we had one of its files open (ENODEV): do it again.
                if e.errno not in _GONE or attempt == 4:
                    raise OSError(e.errno, f"cannot create cgroup {self.rel}: "
                                           f"{e.strerror}") from None

    def join(self, pid: int = 0) -> None:
        """Move `pid` (0: the caller) into every hierarchy of this cgroup."""
        data = str(pid).encode()
        for h, d in self.dirs:
            try:
                _write(os.path.join(d, "cgroup.procs"), data)
            except OSError as e:
                if h.version == 2 and len(self.dirs) > 1 and e.errno in (errno.EBUSY,
                                                                         errno.EOPNOTSUPP):
                    continue  # hybrid host: the v2 tree holds no controllers we rely on
                raise OSError(e.errno, f"cannot move process {pid or 'self'} into cgroup "
                                       f"{d}: {e.strerror}") from None

    def pids(self) -> list[int]:
        """Every process in the container's cgroup."""
        for d in self._listing_dirs():
            try:
                return read_pids(d)
            except FileNotFoundError:
                continue
        return []

    def _listing_dirs(self) -> list[str]:
        """pids or freezer hierarchies first: they always hold every process."""
        def rank(hd: tuple[Hierarchy, str]) -> int:
            h, d = hd
            named = {"pids", "freezer"} & set(h.controllers)
            return 0 if named or "/pids/" in d or "/freezer/" in d else 1

        return [d for _, d in sorted(self.dirs, key=rank)]

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.paths)

    @property
    def controllers(self) -> set[str]:
        """Controllers this cgroup has: its v1 hierarchies' plus those enabled for its v2
        directory (cgroup.controllers)."""
        out: set[str] = set()
        for h, d in self.dirs:
            if h.version == 1:
                out.update(c for c in h.controllers if not c.startswith("name="))
            else:
                try:
                    with open(os.path.join(d, "cgroup.controllers")) as f:
                        out.update(f.read().split())
                except OSError:
                    pass
        return out

    def freezer(self) -> tuple[int, str] | None:
        """(1, dir) for the v1 freezer, else (2, dir) for v2 cgroup.freeze, else None."""
        for h, d in self.dirs:
            if h.version == 1 and "freezer" in h.controllers:
                return 1, d
        for h, d in self.dirs:
            if h.version == 2 and os.path.exists(os.path.join(d, "cgroup.freeze")):
                return 2, d
        return None

    def frozen(self) -> bool:
        fz = self.freezer()
        if fz is None:
            return False
        ver, d = fz
        try:
            if ver == 1:
                with open(os.path.join(d, "freezer.state")) as f:
                    return f.read().strip() in ("FROZEN", "FREEZING")
            with open(os.path.join(d, "cgroup.freeze")) as f:
                return f.read().strip() == "1"
        except OSError:
            return False

    def freeze(self, timeout: float = 10.0) -> None:
        """Freeze every process; return once the kernel reports them frozen. On timeout
        the cgroup is thawed again and TimeoutError raised."""
        fz = self.freezer()
        if fz is None:
            raise OSError(errno.ENOTSUP, "no freezer: neither a v1 freezer hierarchy nor "
                                         "cgroup v2 cgroup.freeze")
        ver, d = fz
        deadline = time.monotonic() + timeout
        delay = 0.001
        if ver == 1:
            state = os.path.join(d, "freezer.state")
            while True:
                _write(state, b"FROZEN")
                with open(state) as f:
                    if f.read().strip() == "FROZEN":
                        return
                if time.monotonic() > deadline:
                    _write(state, b"THAWED")
                    raise TimeoutError(f"{state} still FREEZING after {timeout}s")
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        _write(os.path.join(d, "cgroup.freeze"), b"1")
        while True:
            if _events(d).get("frozen") == "1":
                return
            if time.monotonic() > deadline:
                _write(os.path.join(d, "cgroup.freeze"), b"0")
                raise TimeoutError(f"{d}/cgroup.events not frozen after {timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def thaw(self) -> None:
        fz = self.freezer()
        if fz is None:
            return
        ver, d = fz
        if ver == 1:
            _write(os.path.join(d, "freezer.state"), b"THAWED")
        else:
            _write(os.path.join(d, "cgroup.freeze"), b"0")

    def destroy(self, timeout: float = 5.0) -> None:
        """Remove every directory (deepest first); retry while exiting processes linger."""
        deadline = time.monotonic() + timeout
        for _, d in self.dirs:
            _rmdir_tree(d, deadline)
        # Remove the parent we made for the default path, when nobody else uses it. Every
        # container has a directory in every hierarchy: one parent still in use means the
        # others are too (not ten failing rmdirs at every container's end).
        for _, d in self.dirs:
            parent = os.path.dirname(d)
            if os.path.basename(parent) == "sangja":
                try:
                    os.rmdir(parent)
                except OSError as e:
                    if e.errno in (errno.EBUSY, errno.ENOTEMPTY):
                        break


def read_file(d: str | None, name: str) -> str:
    """Contents of a cgroup file, "" when the directory or file is not there."""
    if not d:
        return ""
    try:
        with open(os.path.join(d, name)) as f:
            return f.read()
    except OSError:
        return ""


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _events(d: str) -> dict[str, str]:
    try:
        with open(os.path.join(d, "cgroup.events")) as f:
            return dict(line.split(None, 1) for line in f.read().splitlines() if " " in line)
    except OSError:
        return {}


def read_pids(d: str) -> list[int]:
    """Processes in `d` and its sub-cgroups."""
    with open(os.path.join(d, "cgroup.procs")) as f:
        out = [int(x) for x in f.read().split()]
    with os.scandir(d) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                out.extend(read_pids(entry.path))
    return out


def _mkdir_cpuset(mountpoint: str, d: str) -> None:
    """cpuset v1 children start with no cpus and mems, and a cgroup without them takes no
    tasks: make the path one level at a time, filling each level from its parent. If a
    concurrent delete removes a level we passed (the shared parent), start again."""
    parts = os.path.relpath(d, mountpoint).split("/")
    for _ in range(10):
        cur = mountpoint
        try:
            for part in parts:
                parent, cur = cur, os.path.join(cur, part)
                try:
                    os.mkdir(cur)
                except FileExistsError:
                    pass
                for f in ("cpuset.cpus", "cpuset.mems"):
                    with open(os.path.join(cur, f)) as mine:
                        if mine.read().strip():
                            continue
                    with open(os.path.join(parent, f)) as src:
                        val = src.read().strip()
                    if val:
                        _write(os.path.join(cur, f), val.encode())
            return
        except OSError as e:
            if e.errno not in _GONE:
                raise
    raise OSError(errno.EAGAIN, f"cannot create {d}: its parent keeps disappearing")


def _rmdir_tree(d: str, deadline: float) -> None:
    try:
        with os.scandir(d) as it:
            subs = [e.path for e in it if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return
    for sub in subs:
        _rmdir_tree(sub, deadline)
    while True:
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
