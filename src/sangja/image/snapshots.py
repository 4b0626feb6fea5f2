"""Container root filesystems over image layers: overlayfs snapshots, with a copy fallback.

Layout under ``<root>/overlay``::

    l/<short>                 symlink -> a layer directory (8 chars, stable, shared)
    empty/                    the single lower when the image has no layers
    <container_id>/upper      the container's writable layer (diff_dir)
    <container_id>/work       overlayfs workdir
    <container_id>/merged     the root filesystem (overlay mount point, or a plain copy)
    <container_id>/lower      the short links used, highest first (as in the mount)
    <container_id>/kind       "overlay" or "copy"

The short links are Docker overlay2's trick: mount(2) copies at most one page of option
data, and ``lowerdir=l/abcdefgh:l/...`` takes 11 bytes per layer wherever the layers live.
Relative lowerdirs are resolved against the mounting process's cwd, so when the absolute
spelling does not fit, the mount is made by a forked child that chdirs into
``<root>/overlay`` first (the parent's cwd is never touched).

Layer directories use overlayfs's own format: a whiteout is a character device 0:0, an
opaque directory carries the xattr ``trusted.overlay.opaque=y``.  The copy fallback (no
overlay support, e.g. the root is itself on overlayfs) applies the same rules while copying
the layers into ``merged`` in order; force it with ``force_copy=True`` or
``SANGJA_SNAPSHOT_COPY=1``.
"""

from __future__ import annotations

import base64
import errno
import os
import shutil
import stat

from ..digest import sha256 as _sha256
from ..errors import SangjaError
from ..linux.mounts import MNT_DETACH, mount, umount2

FORCE_COPY_ENV = "SANGJA_SNAPSHOT_COPY"
SHORT_LEN = 8
KIND_OVERLAY = "overlay"
KIND_COPY = "copy"
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_UNSAFE_IN_OPTIONS = set(",:\\\n")


class SnapshotError(SangjaError):
    """A snapshot cannot be made, found or removed."""


def _page_size() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 4096


def _unescape_mountinfo(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out: list[str] = []
    i = 0
    while i < len(field):
        c = field[i]
        if c == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(c)
            i += 1
    return "".join(out)


def mount_points() -> list[str]:
    """Every mount point of this process's mount namespace, in mountinfo order."""
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ")
            if len(fields) > 4:
                points.append(_unescape_mountinfo(fields[4]))
    return points


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _copy_xattrs(src: str, dst: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith(("trusted.overlay.", "user.overlay.")):
            continue
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False),
                        follow_symlinks=False)
        except OSError:
            pass  # e.g. security.* the filesystem refuses: the content matters more


def _copy_meta(src_st: os.stat_result, src: str, dst: str) -> None:
    os.lchown(dst, src_st.st_uid, src_st.st_gid)
    if not stat.S_ISLNK(src_st.st_mode):
        os.chmod(dst, stat.S_IMODE(src_st.st_mode))  # after chown, which clears setuid
    _copy_xattrs(src, dst)
    os.utime(dst, ns=(src_st.st_atime_ns, src_st.st_mtime_ns), follow_symlinks=False)


def _copy_layer(layer: str, merged: str) -> None:
    """Copy one layer over merged with overlay semantics (whiteouts, opaque dirs), keeping
    owners, modes, times, xattrs, symlinks, devices and the layer's own hard links."""
    from .layers import remove_path  # the copy fallback only: layers imports a lot

    links: dict[tuple[int, int], str] = {}
    dir_meta: list[tuple[os.stat_result, str, str]] = []

    def walk(src_dir: str, dst_dir: str) -> None:
        with os.scandir(src_dir) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            src = entry.path
            dst = os.path.join(dst_dir, entry.name)
            st = entry.stat(follow_symlinks=False)
            if _is_whiteout(st):
                remove_path(dst)
                continue
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                try:
                    existing = os.lstat(dst)
                except FileNotFoundError:
                    existing = None
                if existing is not None and not stat.S_ISDIR(existing.st_mode):
                    os.unlink(dst)
                    existing = None
                if existing is not None and _is_opaque(src):
                    shutil.rmtree(dst)
                    existing = None
                if existing is None:
                    os.mkdir(dst, 0o700)
                walk(src, dst)
                dir_meta.append((st, src, dst))
                continue
            remove_path(dst)
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                os.link(links[key], dst)
                continue
            if stat.S_ISREG(mode):
                with open(src, "rb") as fin, open(dst, "xb") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                os.mknod(dst, stat.S_IFMT(mode) | 0o600, st.st_rdev)
            elif stat.S_ISFIFO(mode):
                os.mkfifo(dst, 0o600)
            else:
                continue  # sockets: nothing to copy
            _copy_meta(st, src, dst)
            if st.st_nlink > 1:
                links[key] = dst

    walk(layer, merged)
    # directories last, deepest first, so their times survive the writes into them
    for st, src, dst in dir_meta:
        _copy_meta(st, src, dst)


def _overlay_child_mount(cwd: str, target: str, data: str) -> None:
    """mount(2) from a forked child whose cwd is `cwd` (relative lowerdirs resolve there);
    the mount lands in our mount namespace all the same."""
    pid = os.fork()
    if pid == 0:
        code = 125
        try:
            os.chdir(cwd)
            mount("overlay", target, "overlay", 0, data)
            code = 0
        except OSError as e:
            code = e.errno or 125
        except BaseException:
            code = 125
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        err = code if code > 0 else errno.EINTR
        raise OSError(err, f"mount overlay on {target}: {os.strerror(err)}")


# The snapshots of a storage root R live in R/snapshots (the engine's Paths.snapshots); the
# image store's collectors look there for the layers that mounted snapshots stack.
STORE_DIR = "snapshots"


def layers_in_use(root: str) -> set[str]:
    """Real paths of the layer directories that the mounted overlay snapshots under `root`
    (a Snapshotter root) stack: what running containers' files are, whatever any record
    says. A mounted snapshot whose layers cannot be read raises SnapshotError, so that a
    collector deletes nothing rather than guess."""
    base = os.path.join(os.path.abspath(root), "overlay")
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return set()
    points = set(mount_points())
    used: set[str] = set()
    for name in names:
        cdir = os.path.join(base, name)
        if name in ("l", "empty") or os.path.realpath(os.path.join(cdir, "merged")) not in points:
            continue
        try:
            with open(os.path.join(cdir, "lower"), encoding="utf-8") as f:
                shorts = f.read().strip().split(":")
            for short in shorts:
                used.add(os.path.realpath(os.readlink(os.path.join(base, short))))
        except OSError as e:
            raise SnapshotError(f"snapshot {name} is mounted but its layers cannot be read "
                                f"({e.strerror or e}): deleting no layer") from None
    return used


class Snapshotter:
    """Root filesystems for containers, as overlay mounts of image layer directories."""

    def __init__(self, root: str, force_copy: bool | None = None):
        self.root = os.path.abspath(root)
        self.base = os.path.join(self.root, "overlay")
        self.links = os.path.join(self.base, "l")
        if force_copy is None:
            force_copy = os.environ.get(FORCE_COPY_ENV, "") not in ("", "0")
        self.force_copy = force_copy

    # -- paths -------------------------------------------------------------------------------

    def _dir(self, container_id: str) -> str:
        if (not container_id or container_id in (".", "..", "l", "empty") or "/" in container_id
                or "\0" in container_id or set(container_id) & _UNSAFE_IN_OPTIONS):
            raise SnapshotError(f"invalid container id for a snapshot: {container_id!r}")
        return os.path.join(self.base, container_id)

    def merged_dir(self, container_id: str) -> str:
        return os.path.join(self._dir(container_id), "merged")

    def kind(self, container_id: str) -> str | None:
        """"overlay", "copy", or None when there is no such snapshot."""
        try:
            with open(os.path.join(self._dir(container_id), "kind"), encoding="utf-8") as f:
                return f.read().strip() or None
        except FileNotFoundError:
            return None

    def diff_dir(self, container_id: str) -> str:
        """The container's writable layer (overlay format: whiteouts are 0:0 devices)."""
        kind = self.kind(container_id)
        if kind is None:
            raise SnapshotError(f"no snapshot for container {container_id!r}")
        if kind == KIND_COPY:
            raise SnapshotError(
                f"snapshot of {container_id!r} is a copy (no overlayfs): it has no diff layer")
        return os.path.join(self._dir(container_id), "upper")

    # -- short links -------------------------------------------------------------------------

    def _short_link(self, layer: str) -> str:
        """The (stable) short name under l/ for a layer directory, made if missing."""
        os.makedirs(self.links, mode=0o700, exist_ok=True)
        for attempt in range(1000):
            seed = layer if attempt == 0 else f"{layer}\0{attempt}"
            digest = _sha256(seed.encode("utf-8", "surrogateescape")).digest()
            name = base64.b32encode(digest).decode().lower()[:SHORT_LEN]
            link = os.path.join(self.links, name)
            try:
                os.symlink(layer, link)
                return name
            except FileExistsError:
                try:
                    if os.readlink(link) == layer:
                        return name
                except OSError:
                    pass  # not a symlink: someone else's file, try the next name
        raise SnapshotError(f"no free short link name for layer {layer}")

    # -- prepare -----------------------------------------------------------------------------

    def prepare(self, container_id: str, layer_dirs: list[str]) -> str:
        """Make (or reuse) the root filesystem of `container_id` over `layer_dirs` (lowest
        first) and return its path. Overlay when the kernel allows it, else a copy."""
        cdir = self._dir(container_id)
        layers = [os.path.realpath(d) for d in layer_dirs]
        for d in layers:
            if not os.path.isdir(d):
                raise SnapshotError(f"layer directory {d} does not exist")
        merged = os.path.join(cdir, "merged")
        kind = self.kind(container_id)
        if kind == KIND_COPY or (kind == KIND_OVERLAY and self.mounted(container_id)):
            return merged
        os.makedirs(self.base, mode=0o700, exist_ok=True)
        os.makedirs(cdir, mode=0o700, exist_ok=True)
        for sub in ("upper", "work", "merged"):
            os.makedirs(os.path.join(cdir, sub), mode=0o755, exist_ok=True)

        if not self.force_copy:
            try:
                self._mount_overlay(container_id, layers)
            except OSError as e:
                if e.errno not in (errno.ENODEV, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM,
                                   errno.ENOTSUP, errno.ELOOP, errno.EXDEV):
                    raise
            else:
                self._write(cdir, "kind", KIND_OVERLAY)
                return merged
        if kind == KIND_OVERLAY:
            raise SnapshotError(
                f"snapshot of {container_id!r} was an overlay and can no longer be mounted")
        self._copy(cdir, layers)
        self._write(cdir, "kind", KIND_COPY)
        return merged

    @staticmethod
    def _write(cdir: str, name: str, text: str) -> None:
        tmp = os.path.join(cdir, f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(tmp, os.path.join(cdir, name))

    def overlay_options(self, container_id: str, layers: list[str]) -> tuple[str, bool]:
        """The overlay mount data and whether it must be mounted from `<root>/overlay`
        (relative paths). Raises SnapshotError when even that exceeds one page."""
        cdir = self._dir(container_id)
        if not layers:  # an empty lowerdir is invalid: one empty, never-written lower
            empty = os.path.join(self.base, "empty")
            os.makedirs(empty, mode=0o755, exist_ok=True)
            layers = [empty]
        shorts = [self._short_link(d) for d in layers]
        limit = _page_size() - 1  # the kernel copies one page, NUL included

        if not set(self.base) & _UNSAFE_IN_OPTIONS:
            lower = ":".join(os.path.join(self.links, s) for s in reversed(shorts))
            data = (f"lowerdir={lower},upperdir={os.path.join(cdir, 'upper')},"
                    f"workdir={os.path.join(cdir, 'work')}")
            if len(data.encode("utf-8", "surrogateescape")) <= limit:
                return data, False
        lower = ":".join(f"l/{s}" for s in reversed(shorts))
        data = f"lowerdir={lower},upperdir={container_id}/upper,workdir={container_id}/work"
        if len(data.encode("utf-8", "surrogateescape")) > limit:
            raise SnapshotError(
                f"{len(layers)} layers do not fit in one page of overlay mount options")
        return data, True

    def _mount_overlay(self, container_id: str, layers: list[str]) -> None:
        data, relative = self.overlay_options(container_id, layers)
        lower = data.split(",", 1)[0].removeprefix("lowerdir=")
        self._write(self._dir(container_id), "lower",
                    ":".join("l/" + os.path.basename(p) for p in lower.split(":")))
        merged = self.merged_dir(container_id)
        if relative:
            _overlay_child_mount(self.base, merged, data)
        else:
            mount("overlay", merged, "overlay", 0, data)

    def _copy(self, cdir: str, layers: list[str]) -> None:
        merged = os.path.join(cdir, "merged")
        for d in layers:
            _copy_layer(d, merged)
        if layers:
            top = os.stat(layers[-1])
            _copy_meta(top, layers[-1], merged)

    # -- state and removal -------------------------------------------------------------------

    def mounted(self, container_id: str) -> bool:
        merged = os.path.realpath(self.merged_dir(container_id))
        return merged in mount_points()

    def _mounts_under(self, cdir: str) -> list[str]:
        real = os.path.realpath(cdir)
        prefix = real.rstrip("/") + "/"
        return [p for p in mount_points() if p == real or p.startswith(prefix)]

    def unmount(self, container_id: str, lazy: bool = False) -> None:
        """Unmount the root filesystem but keep its upper layer (a stopped container holds
        no mounts; `prepare` mounts it again). Idempotent. ``lazy`` detaches at once and
        lets the kernel finish when the last user is gone."""
        cdir = self._dir(container_id)
        if not os.path.lexists(cdir):
            return
        for target in sorted(self._mounts_under(cdir), key=lambda p: (p.count("/"), len(p)),
                             reverse=True):
            try:
                umount2(target, MNT_DETACH if lazy else 0)
            except OSError as e:
                if e.errno == errno.EINVAL:
                    continue
                try:
                    umount2(target, MNT_DETACH)
                except OSError as e2:
                    if e2.errno != errno.EINVAL:
                        raise SnapshotError(f"cannot unmount {target}: {e2.strerror}") from None

    def remove(self, container_id: str) -> None:
        """Unmount and delete the snapshot. Idempotent. Refuses to delete anything while a
        mount remains under the container's directory."""
        cdir = self._dir(container_id)
        if not os.path.lexists(cdir):
            return
        for _ in range(64):
            under = self._mounts_under(cdir)
            if not under:
                break
            # deepest (and most recently stacked) first
            target = sorted(under, key=lambda p: (p.count("/"), len(p)))[-1]
            try:
                umount2(target)
            except OSError as e:
                if e.errno == errno.EINVAL:  # not a mount point (any more)
                    continue
                try:
                    umount2(target, MNT_DETACH)
                except OSError as e2:
                    if e2.errno != errno.EINVAL:
                        raise SnapshotError(f"cannot unmount {target}: {e2.strerror}")
        under = self._mounts_under(cdir)
        if under:
            raise SnapshotError(
                f"snapshot of {container_id!r} is still mounted at {under[0]}; not deleting")
        shutil.rmtree(cdir)
