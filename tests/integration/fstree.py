"""Test helpers for file trees and the mounts tests leave: one copy for the snapshot,
commit and export tests."""

from __future__ import annotations

import os
import stat

from sangja.image.snapshots import mount_points
from sangja.linux.mounts import MNT_DETACH, umount2


def mounts_under(path) -> list[str]:
    real = os.path.realpath(str(path))
    return [p for p in mount_points() if p == real or p.startswith(real + "/")]


def unmount_all_under(path, attempts: int = 256) -> None:
    """Detach every mount left below `path` (deepest first), then insist none is left."""
    for _ in range(attempts):
        left = mounts_under(path)
        if not left:
            break
        try:
            umount2(max(left, key=lambda p: (p.count("/"), len(p))), MNT_DETACH)
        except OSError:
            pass
    assert not mounts_under(path)


def write(path, data: bytes | str = b"x", mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)


def tree(top, skip=(), xattr_prefix: str | None = None) -> dict[str, tuple]:
    """Everything a layer must carry, per relative path: type, content/target/device, mode,
    ids, xattrs (those starting with `xattr_prefix`, or all but trusted.*), mtime (not for
    directories)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, top)
            if rel in skip:
                continue
            st = os.lstat(p)
            body: object = None
            if stat.S_ISLNK(st.st_mode):
                body = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    body = f.read()
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                body = st.st_rdev
            xattrs = {} if stat.S_ISLNK(st.st_mode) else {
                n: os.getxattr(p, n) for n in os.listxattr(p)
                if (n.startswith(xattr_prefix) if xattr_prefix else
                    not n.startswith("trusted."))}
            out[rel] = (stat.S_IFMT(st.st_mode), body, stat.S_IMODE(st.st_mode), st.st_uid,
                        st.st_gid, xattrs, None if stat.S_ISDIR(st.st_mode) else
                        int(st.st_mtime))
    return out
