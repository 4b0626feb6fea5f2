"""The container's root filesystem, set up by its init inside the new mount namespace:
root propagation, config.json mounts in order, /dev nodes and links, pivot_root, then
the paths masked or made read-only. Every target is resolved inside the root first."""

from __future__ import annotations

import os
import stat

from ..errors import ConfigError
from ..linux import mounts as m
from ..linux.paths import create_file_in_root, fd_path, mkdir_all_in_root, open_in_root

DEFAULT_DEVICES = (  # name, major, minor, mode
    ("null", 1, 3, 0o666), ("zero", 1, 5, 0o666), ("full", 1, 7, 0o666),
    ("random", 1, 8, 0o666), ("urandom", 1, 9, 0o666), ("tty", 5, 0, 0o666),
)
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"))


def prepare_root(rootfs: str, propagation: str) -> None:
    """Stop our mounts from reaching the host, make rootfs a mount point of its own."""
    flag = m.PROPAGATION_WORDS.get(propagation, m.MS_SLAVE | m.MS_REC) if propagation \
        else m.MS_SLAVE | m.MS_REC
    m.mount(None, "/", None, flag)
    _make_parent_private(rootfs)
    m.mount(rootfs, rootfs, None, m.MS_BIND | m.MS_REC)


def _make_parent_private(path: str) -> None:
    """pivot_root refuses a new root whose parent mount is shared."""
    best, shared = "", False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = fields[4].replace("\\040", " ")
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                best = mp
                shared = any(x.startswith("shared:") for x in fields[6:fields.index("-")])
    if best and shared:
        m.mount(None, best, None, m.MS_PRIVATE)


class MountContext:
    """What mounting needs besides the spec: the bundle (for relative bind sources) and the
    container's cgroup directories (for `cgroup` mounts on v1 hosts)."""

    def __init__(self, rootfs: str, bundle: str, cgroup_dirs: list[str], cgroupns: bool,
                 enter_cgroup=lambda: None, idmap_fds: dict | None = None):
        self.enter_cgroup = enter_cgroup
        self.idmap_fds = idmap_fds or {}  # mounts[] index -> detached idmapped mount
        self.index = -1
        self.rootfs = rootfs
        self.bundle = bundle
        self.cgroup_dirs = cgroup_dirs
        self.cgroupns = cgroupns
        self.rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.rootfd)


def mount_all(ctx: MountContext, mounts: list) -> None:
    for i, mnt in enumerate(mounts):
        ctx.index = i
        try:
            mount_one(ctx, mnt)
        except OSError as e:
            raise OSError(e.errno, f"mounts[{i}] ({mnt.type or 'bind'} on {mnt.destination}): "
                                   f"{e.strerror}") from None


def mount_one(ctx: MountContext, mnt) -> None:
    opts = m.MountOptions(mnt.options)
    kind = mnt.type or ""
    if opts.is_bind and kind in ("", "none", "bind"):
        _bind(ctx, mnt, opts)
    elif kind in ("cgroup", "cgroup2"):
        _cgroup(ctx, mnt, opts)
    elif opts.is_bind:
        _bind(ctx, mnt, opts)
    else:
        if not kind:
            raise ConfigError(f"mount on {mnt.destination} has no type and is not a bind mount")
        copyup = opts.copyup and kind == "tmpfs"
        existed = copyup and _exists(ctx, mnt.destination)
        dfd = mkdir_all_in_root(ctx.rootfd, mnt.destination)
        try:
            if copyup:
                _tmpfs_copyup(ctx, mnt, opts, dfd, existed)
                _after(ctx, mnt.destination, opts)
                return
            try:
                m.mount(mnt.source or kind, fd_path(dfd), kind, opts.flags & ~m.MS_REMOUNT,
                        opts.data)
            except PermissionError:
                if kind != "sysfs":
                    raise
                # A user namespace may mount sysfs only with a network namespace of its own;
                # otherwise show the host's /sys read-only, as runc does.
                m.mount("/sys", fd_path(dfd), None, m.MS_BIND | m.MS_REC)
                _with_target(ctx, mnt.destination, lambda t: m.remount_bind(
                    t, m.MS_RDONLY | m.MS_NOSUID | m.MS_NODEV | m.MS_NOEXEC))
        finally:
            os.close(dfd)
        _after(ctx, mnt.destination, opts)


def _exists(ctx: MountContext, dest: str) -> bool:
    try:
        os.close(open_in_root(ctx.rootfd, dest))
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def _tmpfs_copyup(ctx: MountContext, mnt, opts: m.MountOptions, dfd: int,
                  existed: bool) -> None:
    """runc's `tmpcopyup`: a tmpfs that starts with the image's content of the directory it
    covers, and that directory's owner and mode if the image has it (else tmpfs's 1777).
    Made read-only, if asked, once it is filled."""
    src = os.open(fd_path(dfd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        flags = opts.flags & ~m.MS_REMOUNT
        m.mount(mnt.source or "tmpfs", fd_path(dfd), "tmpfs", flags & ~m.MS_RDONLY, opts.data)
        dst = open_in_root(ctx.rootfd, mnt.destination, os.O_RDONLY | os.O_DIRECTORY)
        try:
            from ..linux.fdtree import copy_tree

            copy_tree(src, dst, own_meta=existed)
        finally:
            os.close(dst)
        if flags & m.MS_RDONLY:
            _with_target(ctx, mnt.destination,
                         lambda t: m.mount(None, t, None, m.MS_REMOUNT | flags, opts.data))
    finally:
        os.close(src)


def _bind(ctx: MountContext, mnt, opts: m.MountOptions) -> None:
    src = mnt.source if mnt.source.startswith("/") else os.path.join(ctx.bundle, mnt.source)
    try:
        st = os.stat(src)
    except FileNotFoundError:
        raise OSError(2, f"bind source {src} does not exist") from None
    if stat.S_ISDIR(st.st_mode):
        dfd = mkdir_all_in_root(ctx.rootfd, mnt.destination)
    else:
        dfd = create_file_in_root(ctx.rootfd, mnt.destination)
    try:
        tree = ctx.idmap_fds.pop(ctx.index, None)
        if tree is not None:
            try:
                m.move_mount(tree, dfd)
            finally:
                os.close(tree)
        else:
            m.mount(src, fd_path(dfd), None, m.MS_BIND | (opts.flags & m.MS_REC))
    finally:
        os.close(dfd)
    per_mount = opts.flags & ~(m.MS_BIND | m.MS_REC | m.MS_REMOUNT)
    if per_mount:
        _with_target(ctx, mnt.destination, lambda t: m.remount_bind(t, per_mount))
    _after(ctx, mnt.destination, opts)


def _cgroup(ctx: MountContext, mnt, opts: m.MountOptions) -> None:
    """Show the container its own cgroup. On a v2-only host with a cgroup namespace that is
    a fresh cgroup2 mount; otherwise a tmpfs holding a bind of each hierarchy's directory."""
    ctx.enter_cgroup()  # our cgroup exists (and, if asked, our cgroup namespace) from here
    flags = opts.flags & ~(m.MS_BIND | m.MS_REC | m.MS_REMOUNT)
    v2_only = len(ctx.cgroup_dirs) == 1
    dfd = mkdir_all_in_root(ctx.rootfd, mnt.destination)
    try:
        if v2_only and ctx.cgroupns:
            m.mount("cgroup2", fd_path(dfd), "cgroup2", flags)
            return
        if v2_only:
            m.mount(ctx.cgroup_dirs[0], fd_path(dfd), None, m.MS_BIND | m.MS_REC)
            if flags:
                _with_target(ctx, mnt.destination, lambda t: m.remount_bind(t, flags))
            return
        m.mount("tmpfs", fd_path(dfd), "tmpfs", flags & ~m.MS_RDONLY, "mode=755")
    finally:
        os.close(dfd)
    for d in ctx.cgroup_dirs:
        name = d.split("/")[4] if d.startswith("/sys/fs/cgroup/") else os.path.basename(d)
        sub = f"{mnt.destination.rstrip('/')}/{name}"
        sfd = mkdir_all_in_root(ctx.rootfd, sub)
        try:
            m.mount(d, fd_path(sfd), None, m.MS_BIND | m.MS_REC)
        finally:
            os.close(sfd)
        _with_target(ctx, sub, lambda t: m.remount_bind(t, flags | m.MS_NOSUID | m.MS_NODEV
                                                       | m.MS_NOEXEC))
    if flags & m.MS_RDONLY:
        _with_target(ctx, mnt.destination,
                     lambda t: m.mount(None, t, None, m.MS_REMOUNT | flags, "mode=755"))


def _with_target(ctx: MountContext, dest: str, fn) -> None:
    """Run `fn` on a path naming the mount now on `dest` (re-resolved inside the root)."""
    fd = open_in_root(ctx.rootfd, dest)
    try:
        fn(fd_path(fd))
    finally:
        os.close(fd)


def _after(ctx: MountContext, dest: str, opts: m.MountOptions) -> None:
    if opts.propagation:
        def propagate(target: str) -> None:
            for p in opts.propagation:
                m.mount(None, target, None, p)

        _with_target(ctx, dest, propagate)
    if opts.attr_set or opts.attr_clr:
        _with_target(ctx, dest, lambda t: m.mount_setattr(t, opts.attr_set, opts.attr_clr))


def dev_is_bind(mounts: list) -> bool:
    for mnt in mounts:
        if mnt.destination.rstrip("/") == "/dev":
            return "bind" in mnt.options or "rbind" in mnt.options or mnt.type == "bind"
    return False


def create_devices(ctx: MountContext, devices: list, defaults: bool, bind: bool = False) -> None:
    """Default device nodes, linux.devices, and the /dev links every program expects.
    In a user namespace mknod is not allowed: the host's nodes are bind-mounted instead."""
    old = os.umask(0)
    try:
        devfd = mkdir_all_in_root(ctx.rootfd, "/dev")
        try:
            if defaults:
                for name, major, minor, mode in DEFAULT_DEVICES:
                    if bind:
                        _bind_device(ctx, f"/dev/{name}", f"/dev/{name}")
                    else:
                        _mknod_at(devfd, name, stat.S_IFCHR | mode, os.makedev(major, minor))
                for name, target in DEV_LINKS:
                    _symlink_at(devfd, name, target)
                if os.path.exists("/proc/kcore"):
                    _symlink_at(devfd, "core", "/proc/kcore")
                _symlink_at(devfd, "ptmx", "pts/ptmx", replace=True)
        finally:
            os.close(devfd)
        for d in devices:
            if defaults and os.path.normpath(d.path) == "/dev/ptmx":
                continue  # as runc: /dev/ptmx stays the link to this devpts's pts/ptmx
            kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
            if bind:
                _bind_device(ctx, d.path, d.path)
                continue
            parent, _, name = d.path.rstrip("/").rpartition("/")
            pfd = mkdir_all_in_root(ctx.rootfd, parent or "/")
            try:
                mode = d.file_mode if d.file_mode is not None else 0o666
                _mknod_at(pfd, name, kind[d.type] | (mode & 0o7777),
                          os.makedev(d.major, d.minor), replace=True)
                if d.uid is not None or d.gid is not None:
                    os.chown(name, d.uid if d.uid is not None else -1,
                             d.gid if d.gid is not None else -1, dir_fd=pfd,
                             follow_symlinks=False)
            finally:
                os.close(pfd)
    finally:
        os.umask(old)


def _bind_device(ctx: MountContext, host_path: str, dest: str) -> None:
    if not os.path.exists(host_path):
        raise OSError(2, f"device {host_path} does not exist on the host (needed for a bind "
                         "mount: a user namespace cannot mknod)")
    fd = create_file_in_root(ctx.rootfd, dest)
    try:
        m.mount(host_path, fd_path(fd), None, m.MS_BIND)
    finally:
        os.close(fd)


def _reopen_dir(fd: int) -> int:
    # mknodat/symlinkat need a real directory fd, not an O_PATH one, on some kernels.
    return os.open(fd_path(fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _mknod_at(dirfd: int, name: str, mode: int, dev: int, replace: bool = False) -> None:
    d = _reopen_dir(dirfd)
    try:
        try:
            os.mknod(name, mode, dev, dir_fd=d)
        except FileExistsError:
            st = os.stat(name, dir_fd=d, follow_symlinks=False)
            if not replace and stat.S_IFMT(st.st_mode) == stat.S_IFMT(mode) and \
                    st.st_rdev == dev:
                return
            os.unlink(name, dir_fd=d)
            os.mknod(name, mode, dev, dir_fd=d)
    finally:
        os.close(d)


def _symlink_at(dirfd: int, name: str, target: str, replace: bool = False) -> None:
    d = _reopen_dir(dirfd)
    try:
        try:
            os.symlink(target, name, dir_fd=d)
        except FileExistsError:
            if replace:
                os.unlink(name, dir_fd=d)
                os.symlink(target, name, dir_fd=d)
    finally:
        os.close(d)


def pivot(rootfs: str) -> None:
    """pivot_root without a put_old directory: stack the old root under the new one, then
    detach it (so nothing of the host stays reachable)."""
    oldroot = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    newroot = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(newroot)
        m.pivot_root(".", ".")
        os.fchdir(oldroot)
        m.mount(None, ".", None, m.MS_SLAVE | m.MS_REC)
        m.umount2(".", m.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(oldroot)
        os.close(newroot)


def chroot_into(rootfs: str) -> None:
    """--no-pivot: move the rootfs over / and chroot (for ramdisk roots)."""
    os.chdir(rootfs)
    m.mount(rootfs, "/", None, m.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def set_root_propagation(propagation: str) -> None:
    if propagation:
        m.mount(None, "/", None, m.PROPAGATION_WORDS[propagation])


def readonly_root() -> None:
    m.remount_bind("/", m.MS_RDONLY)


def make_readonly(path: str) -> None:
    try:
        m.mount(path, path, None, m.MS_BIND | m.MS_REC)
    except FileNotFoundError:
        return
    # A bind remount sets every per-mount flag anew: keep nosuid/nodev/noexec of the mount
    # we came from (/proc/sys stays noexec like /proc, as runc keeps it).
    keep = m.locked_flags(path) & (m.MS_NOSUID | m.MS_NODEV | m.MS_NOEXEC)
    m.remount_bind(path, m.MS_RDONLY | m.MS_REC | keep)


def mask(path: str) -> None:
    """Hide `path`: /dev/null over a file, an empty read-only tmpfs over a directory."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISDIR(st.st_mode):
        m.mount("tmpfs", path, "tmpfs", m.MS_RDONLY, "size=0k")
    else:
        m.mount("/dev/null", path, None, m.MS_BIND)
