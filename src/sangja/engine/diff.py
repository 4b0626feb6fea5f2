"""`diff`: what a container changed in its filesystem against its image, as Docker prints
it: `A` added, `C` changed, `D` deleted, one line per path, sorted by path:

    C /etc
    A /etc/x
    D /tmp/old

The container's writable layer (the overlay upper dir) is walked fd-relative with
nothing followed (sangja.linux.fdtree.walk_tree: a symlink the container made is an entry,
never a route), so a running container cannot redirect the walk. An entry is `C` when the
image has the path, else `A`; overlay whiteouts (0:0 character devices) are `D`, and so
are the image's entries below an opaque directory that the container emptied. The empty
files and directories the runtime made as mount points (/etc/hosts, /proc, ... where the
image has none) are the engine's, not the container's changes, and are left out, as
Docker's init layer hides them. The image's layers are looked up with
RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS: a path under a symlink of the image is not there."""

from __future__ import annotations

import errno
import os
import stat

ADDED, CHANGED, DELETED = "A", "C", "D"
_OPAQUE = "trusted.overlay.opaque"


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(full: str) -> bool:
    try:
        return os.getxattr(full, _OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


class _Lower:
    """The image's layers, topmost first, as directory fds."""

    def __init__(self, layer_dirs: list[str]):
        self.fds = [os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    for d in reversed(layer_dirs)]

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)

    def _lookup(self, fd: int, rel: str) -> os.stat_result | None:
        from ..linux.paths import open_beneath

        try:
            pfd = open_beneath(fd, rel)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EXDEV):
                return None
            raise
        try:
            return os.fstat(pfd)
        finally:
            os.close(pfd)

    def exists(self, rel: str) -> bool:
        parent = os.path.dirname(rel)
        for fd in self.fds:
            st = self._lookup(fd, rel)
            if st is not None:
                return not _is_whiteout(st)
            if parent and self._is_opaque(fd, parent):
                return False
        return False

    def _is_opaque(self, fd: int, rel: str) -> bool:
        from ..linux.paths import open_beneath

        try:
            pfd = open_beneath(fd, rel, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return False
        try:
            return os.getxattr(pfd, _OPAQUE) == b"y"
        except OSError:
            return False
        finally:
            os.close(pfd)

    def names(self, rel: str) -> set[str]:
        """What the image has in the directory `rel` (the union of the layers)."""
        from ..linux.paths import open_beneath

        out: set[str] = set()
        gone: set[str] = set()
        for fd in self.fds:
            try:
                dfd = open_beneath(fd, rel, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue
            try:
                with os.scandir(dfd) as it:
                    for e in it:
                        if e.name in gone or e.name in out:
                            continue
                        st = e.stat(follow_symlinks=False)
                        (gone if _is_whiteout(st) else out).add(e.name)
                try:
                    if os.getxattr(dfd, _OPAQUE) == b"y":
                        break
                except OSError:
                    pass
            finally:
                os.close(dfd)
        return out


def _mount_stubs(config_path: str) -> set[str]:
    """The mount destinations of the container's config ('etc/hosts', 'proc', ...)."""
    from ..jsonio import load_file

    try:
        spec = load_file(config_path)
    except (OSError, ValueError):
        return set()
    out = set()
    for m in spec.get("mounts") or []:
        d = str(m.get("destination") or "").strip("/")
        while d:
            out.add(d)
            d = os.path.dirname(d)
    return out


def changes(upper: str, layer_dirs: list[str], config_path: str) -> list[tuple[str, str]]:
    """[(kind, "/path")] of the upper dir `upper` against the layers `layer_dirs` (lowest
    first), sorted by path."""
    from ..linux.fdtree import walk_tree

    stubs = _mount_stubs(config_path)
    lower = _Lower(layer_dirs)
    found: dict[str, str] = {}
    kids: dict[str, list[str]] = {}  # dir -> its reported children
    stub_dirs: set[str] = set()  # dirs that hold a stub the runtime made
    try:
        ufd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        lower.close()
        return []
    try:
        for full, rel, st in walk_tree(ufd):
            parent = os.path.dirname(rel)
            if _is_whiteout(st):
                found[rel] = DELETED
                kids.setdefault(parent, []).append(rel)
                continue
            existed = lower.exists(rel)
            if not existed and rel in stubs and _empty(full, st):
                d = parent
                while d:
                    stub_dirs.add(d)
                    d = os.path.dirname(d)
                continue
            found[rel] = CHANGED if existed else ADDED
            kids.setdefault(parent, []).append(rel)
            if stat.S_ISDIR(st.st_mode) and existed and _opaque(full):
                here = set(_listdir(full) or ())
                for name in lower.names(rel) - here:
                    path = f"{rel}/{name}"
                    found[path] = DELETED
                    kids.setdefault(rel, []).append(path)
    finally:
        os.close(ufd)
        lower.close()

    def kept(rel: str) -> bool:
        """A changed directory copied up only for a stub below it is no change."""
        if found[rel] != CHANGED or rel not in stub_dirs:
            return True
        return any(kept(k) for k in kids.get(rel, ()))

    return sorted(((k, "/" + rel) for rel, k in found.items() if kept(rel)),
                  key=lambda x: x[1])


def _empty(full: str, st: os.stat_result) -> bool:
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    if stat.S_ISDIR(st.st_mode):
        return _listdir(full) == []
    return False


def _listdir(full: str) -> list[str] | None:
    """The names in a directory of the walk, opened without following a link a running
    container may have swapped in; None if it is no longer a directory."""
    try:
        fd = os.open(full, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.listdir(fd)
    finally:
        os.close(fd)


def container_diff(engine, ref: str) -> list[tuple[str, str]]:
    """The changes of the container `ref` (running or not)."""
    row = engine.get(ref)
    cid = row["id"]
    snaps = engine.snapshots()
    if snaps.kind(cid) is None:
        return []  # never started: no writable layer yet, so no change
    return changes(snaps.diff_dir(cid),
                   engine.images.unpacked_layers(row["image_id"]),
                   os.path.join(engine.paths.container_dir(cid), "config.json"))
