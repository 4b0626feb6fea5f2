"""sangja.engine.export: a container's root filesystem as a tar stream."""

from __future__ import annotations

import io
import os
import socket
import stat
import tarfile

import pytest
from fstree import tree, unmount_all_under, write

from sangja.engine.export import export_rootfs, open_root
from sangja.image.layers import apply_layer
from sangja.image.snapshots import Snapshotter
from sangja.linux.fdtree import walk_tree
from sangja.linux.mounts import MS_BIND, mount

SECRET = b"TOP SECRET host content\n"


@pytest.fixture
def tmp(tmp_path):
    yield tmp_path
    unmount_all_under(tmp_path)


def _rootfs(top) -> str:
    r = str(top)
    write(f"{r}/etc/passwd", "root:x:0:0::/root:/bin/sh\n")
    write(f"{r}/bin/tool", b"\x7fELF...", 0o4755)
    os.chown(f"{r}/bin/tool", 0, 0)
    os.chmod(f"{r}/bin/tool", 0o4755)
    write(f"{r}/home/u/file", "user data", 0o600)
    os.chown(f"{r}/home/u/file", 1000, 1000)
    os.chown(f"{r}/home/u", 1000, 1000)
    os.link(f"{r}/home/u/file", f"{r}/home/u/hard")
    os.symlink("../etc/passwd", f"{r}/home/rel")
    os.makedirs(f"{r}/dev")
    os.mknod(f"{r}/dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(f"{r}/dev/null", 0o666)
    os.mknod(f"{r}/dev/loop9", stat.S_IFBLK | 0o660, os.makedev(7, 9))
    os.mkfifo(f"{r}/dev/fifo")
    os.setxattr(f"{r}/etc/passwd", "user.mark", b"\x00\xffbinary")
    os.setxattr(f"{r}/bin/tool", "security.capability",
                bytes.fromhex("0100000200200000000000000000000000000000"))
    os.makedirs(f"{r}/proc")
    os.makedirs(f"{r}/mnt")
    os.makedirs(f"{r}/tmp")
    os.chmod(f"{r}/tmp", 0o1777)
    os.utime(f"{r}/etc/passwd", (1_600_000_000, 1_600_000_000))
    return r


def test_export_keeps_everything(tmp):
    root = _rootfs(tmp / "rootfs")
    s = socket.socket(socket.AF_UNIX)
    s.bind(f"{root}/tmp/sock")
    s.close()
    buf = io.BytesIO()
    n = export_rootfs(root, buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        members = {m.name: m for m in tf}
    assert n == len(members)
    assert "tmp/sock" not in members and "." not in members and "" not in members
    assert not any(name.startswith(("/", "./")) for name in members)
    tool = members["bin/tool"]
    assert tool.mode == 0o4755 and tool.uid == 0
    assert "SCHILY.xattr.security.capability" in tool.pax_headers
    assert members["home/u/file"].uid == 1000 and members["home/u"].uid == 1000
    assert members["home/u/hard"].islnk() or members["home/u/file"].islnk()
    assert members["home/rel"].issym() and members["home/rel"].linkname == "../etc/passwd"
    assert members["dev/null"].ischr() and (members["dev/null"].devmajor,
                                            members["dev/null"].devminor) == (1, 3)
    assert members["dev/loop9"].isblk() and members["dev/fifo"].isfifo()
    assert members["tmp"].mode == 0o1777
    assert members["etc/passwd"].mtime == 1_600_000_000
    # the tar applies back to the same tree
    out = tmp / "out"
    os.makedirs(out)
    buf.seek(0)
    apply_layer(buf, str(out))
    assert tree(out) == tree(root, skip={"tmp/sock"})


def test_export_leaves_out_mounts_inside(tmp):
    root = _rootfs(tmp / "rootfs")
    hostdir = tmp / "host"
    write(hostdir / "secret", SECRET, 0o600)
    mount("tmpfs", f"{root}/proc", "tmpfs", 0, "size=1m")  # like a leaked container mount
    write(f"{root}/proc/leak", "from a mount")
    mount(str(hostdir), f"{root}/mnt", None, MS_BIND)
    buf = io.BytesIO()
    export_rootfs(root, buf)
    assert SECRET not in buf.getvalue() and b"from a mount" not in buf.getvalue()
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        members = {m.name: m for m in tf}
    assert "proc" in members and "mnt" in members  # the directories of the rootfs itself
    assert members["proc"].mode == 0o755  # the rootfs's directory, not the mount's root
    assert not any(n.startswith(("proc/", "mnt/")) for n in members)
    # without open_tree the mount points are found in mountinfo and skipped the same way
    with open_root(root, detach=False) as view:
        assert view.skip == {"proc", "mnt"}
        rels = [rel for _f, rel, _st in walk_tree(view.fd, descend=view.descend)]
    assert "proc" in rels and not any(r.startswith(("proc/", "mnt/")) for r in rels)


def test_export_hostile_symlinks_are_links(tmp):
    root = _rootfs(tmp / "rootfs")
    secret = tmp / "host" / "secret"
    write(secret, SECRET, 0o600)
    os.symlink(str(secret), f"{root}/etc/evil")
    os.symlink("/../../../../../../" + str(tmp / "host"), f"{root}/hostdir")
    os.symlink("/", f"{root}/tmp/root")
    buf = io.BytesIO()
    export_rootfs(root, buf)
    assert SECRET not in buf.getvalue()
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        members = {m.name: m for m in tf}
    assert members["etc/evil"].issym() and members["hostdir"].issym()
    assert not any(n.startswith(("hostdir/", "tmp/root/")) for n in members)


def test_export_deep_tree_and_no_fd_leak(tmp):
    root = tmp / "rootfs"
    deep = os.path.join(str(root), *[f"d{i}" for i in range(150)])
    os.makedirs(deep)
    write(os.path.join(deep, "bottom"), "deep")
    write(f"{root}/zz-after", "after")
    fds = len(os.listdir("/proc/self/fd"))
    buf = io.BytesIO()
    n = export_rootfs(str(root), buf)
    assert len(os.listdir("/proc/self/fd")) == fds
    assert n == 150 + 2
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        names = tf.getnames()
    assert names[-1] == "zz-after" and names[-2].endswith("d149/bottom")


def test_export_overlay_snapshot(tmp):
    from sangja.image.busybox import BusyboxNotFound, build_busybox_rootfs
    from sangja.image.store import ImageStore

    base = tmp / "base"
    try:
        build_busybox_rootfs(str(base))
    except BusyboxNotFound as e:
        pytest.skip(str(e))
    store = ImageStore(str(tmp / "store"))
    image = store.import_rootfs(str(base))
    snap = Snapshotter(str(tmp / "snap"))
    merged = snap.prepare("c1", store.unpacked_layers(image))
    os.unlink(f"{merged}/etc/group")
    write(f"{merged}/root/new", "new in the container")
    buf = io.BytesIO()
    export_rootfs(merged, buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        members = {m.name: m for m in tf}
        assert tf.extractfile(members["root/new"]).read() == b"new in the container"
    assert "etc/group" not in members and "etc/passwd" in members
    assert members["bin/busybox"].isreg() and members["bin/sh"].issym()
    assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for m in members.values()
                   for k in m.pax_headers)
    snap.remove("c1")
    store.close()


def test_export_missing_root(tmp):
    with pytest.raises(FileNotFoundError):
        export_rootfs(str(tmp / "nope"), io.BytesIO())
