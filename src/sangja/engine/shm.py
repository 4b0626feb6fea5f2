"""The /dev/shm of a `--ipc shareable` container: a tmpfs mounted on the host at
R/containers/<id>/shm while the container runs (Docker's way), bound at the container's
/dev/shm and at the /dev/shm of every `--ipc container:ID` that joins it, so that they
share POSIX shared memory as well as SysV IPC. A container with a private IPC namespace
keeps the tmpfs of its own that the runtime mounts. Unmounted (detached: a joiner keeps
its bind until it exits) when the container's init is gone or it is removed."""

from __future__ import annotations

import os


def shm_dir(paths, cid: str) -> str:
    return os.path.join(paths.container_dir(cid), "shm")


def is_mounted(path: str) -> bool:
    return os.path.ismount(path)


def mount_shm(paths, cid: str, size: int) -> str:
    """The host side of the container's shareable /dev/shm, mounted if it is not yet."""
    from ..linux import mounts

    path = shm_dir(paths, cid)
    os.makedirs(path, mode=0o700, exist_ok=True)
    if not is_mounted(path):
        mounts.mount("shm", path, "tmpfs", mounts.MS_NOSUID | mounts.MS_NODEV |
                     mounts.MS_NOEXEC, f"mode=1777,size={size}")
    return path


def unmount_shm(paths, cid: str) -> None:
    from ..linux import mounts

    path = shm_dir(paths, cid)
    while is_mounted(path):
        try:
            mounts.umount2(path, mounts.MNT_DETACH)
        except OSError:
            return
    try:
        os.rmdir(path)
    except OSError:
        pass
