"""A container's network namespace as a file: a bind mount of an nsfs file at
`RR/netns/<id>` (what `ip netns add` and podman do under /run/netns). It outlives the
container's processes until the backend has undone its work in it, and the runtime joins
it by path (the OCI config's `network` namespace with a `path`)."""

from __future__ import annotations

import errno
import os


def directory(runroot: str) -> str:
    return os.path.join(runroot, "netns")


def path_for(runroot: str, cid: str) -> str:
    return os.path.join(directory(runroot), cid)


def is_netns(path: str) -> bool:
    """A bind-mounted network namespace (not the empty file under it)."""
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
    except OSError:
        return False


def create(path: str) -> None:
    """A new, empty network namespace mounted at `path`. The calling thread enters it
    for the bind mount and goes back to its own."""
    from ..linux import mounts
    from ..linux import namespaces as ns

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    if is_netns(path):
        return
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    os.close(fd)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        ns.unshare(ns.CLONE_NEWNET)
        try:
            mounts.mount("/proc/thread-self/ns/net", path, None, mounts.MS_BIND)
        finally:
            ns.setns(own, ns.CLONE_NEWNET)
    except BaseException:
        _unlink(path)
        raise
    finally:
        os.close(own)


def remove(path: str) -> None:
    """Unmount and delete; nothing there is fine. The namespace itself goes when its last
    user (a process, a mount) is gone."""
    from ..linux import mounts

    while is_netns(path):
        try:
            mounts.umount2(path, mounts.MNT_DETACH)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOENT):
                raise
            break
    _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
