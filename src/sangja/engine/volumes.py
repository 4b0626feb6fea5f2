"""Local volumes: a directory `R/volumes/NAME/_data` and a record. Named volumes are made
on first use (as Docker does); anonymous ones belong to one container and go with
`rm -v`/`--rm`. A volume a container uses cannot be removed. What happens to a volume
is logged here, once, as Docker's volume events (create, destroy, mount, unmount, prune)."""

from __future__ import annotations

import os

from ..errors import SangjaError
from .events import volume_event
from .records import ContainerDB, NoSuchVolume

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def validate_volume_name(name: str) -> None:
    if len(name) < 2 or not set(name) <= _NAME_CHARS or not name[0].isalnum():
        raise SangjaError(f'"{name}" includes invalid characters for a local volume name, '
                          "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")


def ensure_volume(db: ContainerDB, paths, name: str, *, anonymous: bool = False,
                  labels: dict | None = None) -> bool:
    """Make the volume if it does not exist; True when it was made now."""
    from ..jsonio import dumps

    validate_volume_name(name)
    os.makedirs(paths.volume_data(name), mode=0o755, exist_ok=True)
    os.chmod(os.path.dirname(paths.volume_data(name)), 0o700)
    made = db.add_volume(name, labels=dumps(labels or {}), anonymous=anonymous)
    if made:
        volume_event(paths.runroot, "create", name)
    return made


def remove_volume(db: ContainerDB, paths, name: str, *, missing_ok: bool = False) -> None:
    """Remove the volume and its data (Docker's `destroy` event when there was one)."""
    import shutil

    try:
        db.remove_volume(name)  # refuses while in use
    except NoSuchVolume:
        if not missing_ok:
            raise
    else:
        volume_event(paths.runroot, "destroy", name)
    shutil.rmtree(os.path.join(paths.volumes, name), ignore_errors=True)


def mount_events(paths, cid: str, mounts, action: str) -> None:
    """Docker's `mount` (with where and how) or `unmount` event of each volume of a
    container (`mounts`: its options' mounts) as it starts or stops."""
    for m in mounts:
        if m.type != "volume" or not m.source:
            continue
        extra = {"container": cid}
        if action == "mount":
            extra.update({"destination": m.target, "read/write": str(not m.readonly).lower(),
                          "propagation": ""})
        volume_event(paths.runroot, action, m.source, extra)


def volume_info(paths, row) -> dict:
    """`volume inspect`'s view of one volume."""
    from ..jsonio import loads

    t = row["created"]
    import time

    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    return {"CreatedAt": created, "Driver": "local", "Labels": loads(row["labels"]) or {},
            "Mountpoint": paths.volume_data(row["name"]), "Name": row["name"],
            "Options": loads(row["options"]) or {}, "Scope": "local"}


class CopyUpError(SangjaError):
    """The image's content could not be copied into a new volume (the start fails)."""


def copy_up(db: ContainerDB, rootfs: str, target: str, name: str, data: str) -> bool:
    """Docker's volume population: a new, empty volume takes what the image (the
    container's root `rootfs`) has at the mount point `target`. True when it copied.

    Once per volume, recorded in its record: after the first copy (or the first time the
    volume is found holding data already) it never happens again, so a container that
    empties a shared volume cannot have it filled again (Podman's rule; Docker copies
    once per container created). Nothing at `target`, or not a directory there: nothing
    to copy, and the next container may still fill the volume.

    Host root does this while containers may be running on the same volume, so it is an
    fd walk (`sangja.linux.fdtree.copy_tree`): the source is resolved inside the root,
    nodes are made as nodes (never opened or read), symlinks made as symlinks (never
    followed), every entry created new beneath the volume's directory. A copy that fails
    is removed again and the volume left unfilled."""
    if db.volume(name)["copied_up"]:
        return False
    from ..linux.paths import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2
    from .export import open_root

    with open_root(rootfs) as view:
        try:
            src = openat2(view.fd, target.lstrip("/") or ".", os.O_RDONLY | os.O_DIRECTORY,
                          resolve=RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | view.resolve_extra)
        except OSError:
            return False  # nothing there, or not a directory: nothing to copy
        try:
            dst = os.open(data, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                with os.scandir(dst) as it:
                    empty = next(it, None) is None
                if not db.claim_copy_up(name) or not empty:
                    return False
                _copy_into(db, src, dst, view.descend, name, target)
                return True
            finally:
                os.close(dst)
        finally:
            os.close(src)


def _copy_into(db: ContainerDB, src: int, dst: int, descend, name: str, target: str) -> None:
    from ..linux.fdtree import copy_tree

    made: list[str] = []
    try:
        copy_tree(src, dst, own_meta=True, descend=descend, made=made.append)
    except BaseException as e:
        for entry in made:
            _remove_entry(dst, entry)
        db.release_copy_up(name)
        if isinstance(e, OSError):
            what = f"{e.filename}: " if e.filename and not str(e.filename).startswith(
                "/proc/") else ""
            raise CopyUpError(f"copying the image's {target} into volume {name}: {what}"
                              f"{e.strerror or e}") from None
        raise


def _remove_entry(dirfd: int, name: str) -> None:
    """Remove `name` from the directory `dirfd` (a tree: fd-relative, no link followed)."""
    import shutil
    import stat

    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=dirfd)
        else:
            os.unlink(name, dir_fd=dirfd)
    except OSError:
        pass


def tree_size(path: str) -> int:
    """Disk use of the tree at `path` (volume prune's "reclaimed space"): an fd walk, no
    link followed."""
    from ..linux.fdtree import walk_tree

    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        total = os.fstat(fd).st_blocks * 512
        for _full, _rel, st in walk_tree(fd):
            total += st.st_blocks * 512
        return total
    except OSError:
        return total
    finally:
        os.close(fd)


def _labels(row) -> dict[str, str]:
    from ..jsonio import loads

    return loads(row["labels"]) or {}


def prune_volumes(db: ContainerDB, paths, *, anonymous_only: bool = True,
                  select=None) -> tuple[list[str], int]:
    """`volume prune` and `system prune --volumes`: remove volumes no container uses (only
    anonymous ones unless told, as Docker 23+; only those `select(created, labels)`
    accepts: sangja.engine.filters.PruneFilter). Returns (names, bytes reclaimed)."""
    from .records import VolumeInUse

    gone, size = [], 0
    for row in db.volumes():
        if anonymous_only and not row["anonymous"]:
            continue
        if select is not None and not select(row["created"], _labels(row)):
            continue
        if db.volume_users(row["name"]):
            continue
        n = tree_size(os.path.join(paths.volumes, row["name"]))
        try:
            remove_volume(db, paths, row["name"], missing_ok=True)
        except VolumeInUse:
            continue
        gone.append(row["name"])
        size += n
    volume_event(paths.runroot, "prune", "", {"reclaimed": str(size)})
    return gone, size
