"""Local volumes: a directory `R/volumes/NAME/_data` and a record. Named volumes are made
on first use (as Docker does); anonymous ones belong to one container and go with
`rm -v`/`--rm`. A volume a container uses cannot be removed."""

from __future__ import annotations

import os

from ..errors import SangjaError
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
    return db.add_volume(name, labels=dumps(labels or {}), anonymous=anonymous)


def remove_volume(db: ContainerDB, paths, name: str, *, missing_ok: bool = False) -> None:
    import shutil

    try:
        db.remove_volume(name)  # refuses while in use
    except NoSuchVolume:
        if not missing_ok:
            raise
    shutil.rmtree(os.path.join(paths.volumes, name), ignore_errors=True)


def volume_info(paths, row) -> dict:
    """`volume inspect`'s view of one volume."""
    from ..jsonio import loads

    t = row["created"]
    import time

    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    return {"CreatedAt": created, "Driver": "local", "Labels": loads(row["labels"]) or {},
            "Mountpoint": paths.volume_data(row["name"]), "Name": row["name"],
            "Options": loads(row["options"]) or {}, "Scope": "local"}


def copy_up(rootfs: str, target: str, data: str) -> None:
    """Docker's first-mount copy: an empty volume takes the image's content at its mount
    point. The source is resolved inside the root (a hostile image cannot point it at the
    host with a symlink)."""
    import shutil

    if os.listdir(data):
        return
    from ..linux.paths import O_PATH, fd_path, open_in_root

    rootfd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = open_in_root(rootfd, target, O_PATH | os.O_DIRECTORY)
        except OSError:
            return  # nothing there (or not a directory): nothing to copy
        try:
            src = fd_path(fd)
            for entry in os.scandir(src):
                s = os.path.join(src, entry.name)
                d = os.path.join(data, entry.name)
                if entry.is_dir(follow_symlinks=False):
                    shutil.copytree(s, d, symlinks=True)
                else:
                    shutil.copy2(s, d, follow_symlinks=False)
            st = os.stat(src)
            os.chown(data, st.st_uid, st.st_gid)
            os.chmod(data, st.st_mode & 0o7777)
        finally:
            os.close(fd)
    finally:
        os.close(rootfd)


def tree_size(path: str) -> int:
    total = 0
    for dirpath, dirs, files in os.walk(path):
        for n in files + dirs:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
            except OSError:
                pass
    return total


def prune_volumes(db: ContainerDB, paths, *, anonymous_only: bool = True) -> tuple[list[str], int]:
    """Remove volumes no container uses (only anonymous ones unless told, as Docker 23+)."""
    from .records import VolumeInUse

    gone, size = [], 0
    for row in db.volumes():
        if anonymous_only and not row["anonymous"]:
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
    return gone, size
