"""The host-side tree primitives against hostile trees (sangja.linux.fdtree.copy_tree,
image.layers.add_entry, engine.users.read_root_file, engine.volumes.copy_up): a device
node or FIFO is never opened, a symlink never followed, in the source or in a destination
that someone else writes while we copy. Opens are observed with inotify (IN_OPEN), links
by what happens to the host files they point at."""

from __future__ import annotations

import ctypes
import errno
import io
import os
import stat
import struct
import tarfile
import threading

import pytest
from fstree import tree, unmount_all_under, write

from sangja.linux.fdtree import copy_tree

SECRET = b"TOP SECRET host content\n"
# security.capability v2: cap_net_raw permitted and effective
CAP_NET_RAW = bytes.fromhex("0100000200200000000000000000000000000000")

_libc = ctypes.CDLL(None, use_errno=True)
IN_OPEN = 0x20


class OpenWatch:
    """inotify IN_OPEN on some paths: did anyone open them (O_PATH opens do not count)?"""

    def __init__(self, *paths):
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        self.names = {}
        for p in paths:
            wd = _libc.inotify_add_watch(self.fd, os.fsencode(str(p)), IN_OPEN)
            assert wd >= 0, os.strerror(ctypes.get_errno())
            self.names[wd] = str(p)

    def opened(self) -> list[str]:
        out = []
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return out
        while data:
            wd, _mask, _cookie, length = struct.unpack_from("iIII", data)
            out.append(self.names[wd])
            data = data[16 + length:]
        return out

    def close(self):
        os.close(self.fd)


def _dirfd(path) -> int:
    return os.open(str(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _copy(src, dst, **kw) -> int:
    s, d = _dirfd(src), _dirfd(dst)
    try:
        return copy_tree(s, d, **kw)
    finally:
        os.close(s)
        os.close(d)


def _bounded(fn, fifos=(), timeout: float = 20):
    """Run fn in a thread; if it has not returned in `timeout` (blocked opening one of
    `fifos`), unblock it by opening them for writing and fail."""
    result: list = []

    def run():
        try:
            result.append(("ok", fn()))
        except BaseException as e:  # noqa: BLE001 - reported below
            result.append(("err", e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        for f in fifos:
            try:
                os.close(os.open(str(f), os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        t.join(5)
        pytest.fail(f"{fn} hung (a FIFO was opened)")
    kind, value = result[0]
    if kind == "err":
        raise value
    return value


@pytest.fixture
def host(tmp_path):
    """A host secret and a host directory that no copy may touch."""
    secret = tmp_path / "host" / "secret"
    write(secret, SECRET, 0o600)
    (tmp_path / "host" / "dir").mkdir()
    yield secret, tmp_path / "host" / "dir"
    assert secret.read_bytes() == SECRET
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert os.stat(secret).st_uid == 0
    assert os.listdir(tmp_path / "host" / "dir") == []


def _source(top, secret) -> str:
    r = str(top)
    write(f"{r}/etc/passwd", "root:x:0:0::/root:/bin/sh\n")
    os.setxattr(f"{r}/etc/passwd", "user.mark", b"\x00\xffbinary")
    os.utime(f"{r}/etc/passwd", ns=(1_600_000_000_123_456_789, 1_600_000_001_987_654_321))
    write(f"{r}/bin/tool", b"\x7fELF...", 0o755)
    os.chmod(f"{r}/bin/tool", 0o4755)
    os.setxattr(f"{r}/bin/tool", "security.capability", CAP_NET_RAW)
    write(f"{r}/home/u/file", "user data", 0o600)
    os.chown(f"{r}/home/u/file", 1000, 1001)
    os.chown(f"{r}/home/u", 1000, 1000)
    os.chmod(f"{r}/home/u", 0o750)
    os.link(f"{r}/home/u/file", f"{r}/home/u/hard")
    os.symlink("../etc/passwd", f"{r}/home/rel")
    os.symlink(str(secret), f"{r}/home/abs")  # a host path: copied as text, never followed
    os.lchown(f"{r}/home/abs", 7, 8)
    os.makedirs(f"{r}/dev")
    os.mknod(f"{r}/dev/zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    os.chmod(f"{r}/dev/zero", 0o666)
    os.mknod(f"{r}/dev/loop9", stat.S_IFBLK | 0o660, os.makedev(7, 9))
    os.chown(f"{r}/dev/loop9", 0, 6)
    os.mkfifo(f"{r}/dev/fifo", 0o620)
    with open(f"{r}/sparse", "wb") as f:
        f.truncate(1 << 40)  # 1 TiB of hole
        f.seek(1 << 30)
        f.write(b"middle")
    os.makedirs(f"{r}/ro/inner")
    write(f"{r}/ro/inner/f", "in a read-only dir")
    os.chmod(f"{r}/ro", 0o555)
    return r


def test_copy_tree_keeps_everything(tmp_path, host):
    secret, _ = host
    src = _source(tmp_path / "src", secret)
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.bind(f"{src}/sock")
    s.close()
    dst = tmp_path / "dst"
    dst.mkdir()
    watch = OpenWatch(f"{src}/dev/zero", f"{src}/dev/fifo", f"{src}/dev/loop9")
    try:
        n = _bounded(lambda: _copy(src, dst, own_meta=True), fifos=[f"{src}/dev/fifo"])
        assert watch.opened() == []  # the nodes were made, never opened
    finally:
        watch.close()
    # what tree() does not compare (and its reads would change): ns times
    assert os.stat(dst / "etc/passwd").st_mtime_ns == 1_600_000_001_987_654_321
    assert os.stat(dst / "etc/passwd").st_atime_ns == 1_600_000_000_123_456_789
    want = tree(src, skip={"sock", "sparse"}, xattr_prefix="")
    got = tree(dst, skip={"sparse"}, xattr_prefix="")
    assert got == want
    assert n == len(want) + 1  # + sparse; the socket is left out
    assert not os.path.lexists(dst / "sock")
    # nor hardlinks, holes, the top's own metadata
    assert os.stat(dst / "home/u/file").st_ino == os.stat(dst / "home/u/hard").st_ino
    sp = os.stat(dst / "sparse")
    assert sp.st_size == 1 << 40 and sp.st_blocks * 512 < 1 << 20
    with open(dst / "sparse", "rb") as f:
        f.seek(1 << 30)
        assert f.read(6) == b"middle"
    assert os.getxattr(dst / "bin/tool", "security.capability") == CAP_NET_RAW
    assert os.stat(dst / "bin/tool").st_mode & 0o7777 == 0o4755
    top_src, top_dst = os.stat(src), os.stat(dst)
    assert (top_dst.st_mode, top_dst.st_uid, top_dst.st_mtime_ns) == \
        (top_src.st_mode, top_src.st_uid, top_src.st_mtime_ns)


def test_copy_tree_refuses_what_is_already_in_the_destination(tmp_path, host):
    """A destination entry planted before the copy is never written through or merged."""
    secret, hostdir = host
    src = tmp_path / "src"
    write(src / "a", "image content")
    write(src / "d" / "b", "image content")
    dst = tmp_path / "dst"
    dst.mkdir()
    os.symlink(secret, dst / "a")
    with pytest.raises(FileExistsError):
        _copy(src, dst)
    os.unlink(dst / "a")
    os.symlink(hostdir, dst / "d")
    with pytest.raises(FileExistsError):
        _copy(src, dst)


def test_copy_tree_swaps_in_the_destination_lead_nowhere(tmp_path, host):
    """A writer of the destination swaps each thing we just made for a symlink to the
    host (the `made` callback runs right after the creation, the worst moment): the
    directory's content, the node's owner and mode, never reach the host."""
    secret, hostdir = host
    src = tmp_path / "src"
    write(src / "d" / "b", "image content")
    dst = tmp_path / "dst"
    dst.mkdir()

    def swap_dir(name):
        os.rename(dst / name, tmp_path / "moved")
        os.symlink(hostdir, dst / name)

    with pytest.raises(OSError) as e:
        _copy(src, dst, made=swap_dir)
    assert e.value.errno == errno.ELOOP

    src2 = tmp_path / "src2"
    src2.mkdir()
    os.mknod(src2 / "n", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    os.chmod(src2 / "n", 0o4777)
    dst2 = tmp_path / "dst2"
    dst2.mkdir()

    def swap_node(name):
        os.unlink(dst2 / name)
        os.symlink(secret, dst2 / name)

    with pytest.raises(OSError) as e:
        _copy(src2, dst2, made=swap_node)
    assert e.value.errno == errno.ESTALE

    src3 = tmp_path / "src3"
    write(src3 / "f", "image content")
    dst3 = tmp_path / "dst3"
    dst3.mkdir()

    def swap_file(name):
        os.unlink(dst3 / name)
        os.symlink(secret, dst3 / name)

    _copy(src3, dst3, made=swap_file)  # the data went to the file we made, by fd


def test_copy_tree_racing_planter(tmp_path, host):
    """Another process keeps planting symlinks to the host at the names being copied (a
    container on the same volume): every copy either completes or fails, none writes on
    the host."""
    secret, hostdir = host
    src = tmp_path / "src"
    for i in range(20):
        write(src / f"f{i}", f"image content {i}")
        write(src / f"d{i}" / "inner", "image content")
    dst = tmp_path / "dst"
    dst.mkdir()
    stop = threading.Event()

    def plant():
        while not stop.is_set():
            for i in range(20):
                for name, to in ((f"f{i}", secret), (f"d{i}", hostdir)):
                    p = dst / name
                    try:
                        if p.is_symlink() or p.is_file():
                            p.unlink()
                        elif p.is_dir():
                            import shutil

                            shutil.rmtree(p)
                        os.symlink(to, p)
                    except OSError:
                        pass

    t = threading.Thread(target=plant, daemon=True)
    t.start()
    try:
        for _ in range(30):
            try:
                _copy(src, dst)
            except OSError:
                pass
    finally:
        stop.set()
        t.join()


def test_add_entry_never_opens_what_replaced_a_file(tmp_path):
    """cp, export and commit archive a running container's files: between the walk's lstat
    (a regular file) and the read, the container swaps in a FIFO or a device node. It is
    not opened (no blocking, no driver's open), and the archive fails cleanly."""
    from sangja.image.layers import LayerError, add_entry

    d = tmp_path / "tree"
    write(d / "f", "regular")
    st = os.lstat(d / "f")
    for kind in ("fifo", "zero"):
        os.unlink(d / "f")
        if kind == "fifo":
            os.mkfifo(d / "f")
        else:
            os.mknod(d / "f", stat.S_IFCHR | 0o666, os.makedev(1, 5))
        watch = OpenWatch(d / "f")
        try:
            tf = tarfile.open(fileobj=io.BytesIO(), mode="w|")
            with pytest.raises(LayerError, match="changed type"):
                _bounded(lambda tf=tf: add_entry(tf, str(d / "f"), "f", st, {}),
                         fifos=[d / "f"])
            assert watch.opened() == []
        finally:
            watch.close()


@pytest.mark.parametrize("kind", ["fifo", "zero", "symlink-to-host"])
def test_read_root_file_never_opens_a_node(tmp_path, host, kind):
    """--user NAME reads the image's /etc/passwd on the host: a FIFO there must not hang
    the engine, a device must not be opened, an absolute symlink stays in the root."""
    from sangja.engine.users import UserError, read_root_file

    secret, _ = host
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    p = root / "etc" / "passwd"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "zero":
        os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 5))
    else:
        os.symlink(secret, p)
        assert read_root_file(str(root), "/etc/passwd") is None  # dangling inside the root
        return
    watch = OpenWatch(p)
    try:
        with pytest.raises(UserError, match="not a regular file"):
            _bounded(lambda: read_root_file(str(root), "/etc/passwd"), fifos=[p])
        assert watch.opened() == []
    finally:
        watch.close()


# ---------------------------------------------------------------------------- copy_up


@pytest.fixture
def volume_env(tmp_path):
    from sangja.engine.records import ContainerDB

    db = ContainerDB(tmp_path / "containers.db")
    db.add_volume("vol")
    data = tmp_path / "vol" / "_data"
    data.mkdir(parents=True)
    rootfs = tmp_path / "rootfs"
    yield db, rootfs, data
    db.conn.close()
    unmount_all_under(tmp_path)


def test_copy_up_once_and_not_into_a_filled_volume(volume_env):
    from sangja.engine.volumes import copy_up

    db, rootfs, data = volume_env
    write(rootfs / "data" / "a", "from the image")
    os.chown(rootfs / "data", 999, 999)
    os.chmod(rootfs / "data", 0o700)
    assert copy_up(db, str(rootfs), "/data", "vol", str(data))
    assert (data / "a").read_text() == "from the image"
    st = os.stat(data)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (999, 0o700)
    os.unlink(data / "a")  # a container empties it: no second copy, ever
    assert not copy_up(db, str(rootfs), "/data", "vol", str(data))
    assert os.listdir(data) == []

    db.add_volume("vol2")
    data2 = data.parent.parent / "vol2" / "_data"
    write(data2 / "mine", "already here")
    assert not copy_up(db, str(rootfs), "/data", "vol2", str(data2))  # not empty: marked
    os.unlink(data2 / "mine")
    assert not copy_up(db, str(rootfs), "/data", "vol2", str(data2))
    assert os.listdir(data2) == []

    db.add_volume("vol3")  # nothing at the mount point: the volume stays unfilled
    data3 = data.parent.parent / "vol3" / "_data"
    data3.mkdir(parents=True)
    assert not copy_up(db, str(rootfs), "/nothing", "vol3", str(data3))
    assert copy_up(db, str(rootfs), "/data", "vol3", str(data3))


def test_copy_up_source_resolved_inside_the_root(volume_env, host):
    from sangja.engine.volumes import copy_up

    db, rootfs, data = volume_env
    _, hostdir = host
    write(hostdir.parent / "outside" / "x", "host")
    rootfs.mkdir()
    os.symlink(str(hostdir.parent / "outside"), rootfs / "data")  # absolute: in the root
    assert not copy_up(db, str(rootfs), "/data", "vol", str(data))
    assert os.listdir(data) == []


def test_copy_up_that_fails_is_undone(volume_env):
    """A copy that cannot finish (here: the volume's filesystem is full) leaves the volume
    empty and unfilled, and says why in one line."""
    from sangja.engine.volumes import CopyUpError, copy_up
    from sangja.linux.mounts import mount

    db, rootfs, data = volume_env
    write(rootfs / "data" / "a-small", "x")
    write(rootfs / "data" / "b-dir" / "c", "y")
    write(rootfs / "data" / "z-big", b"\1" * (2 << 20))
    mount("tmpfs", str(data), "tmpfs", 0, "size=1m")
    with pytest.raises(CopyUpError, match=r"copying the image's /data into volume vol:.*space"):
        copy_up(db, str(rootfs), "/data", "vol", str(data))
    assert os.listdir(data) == []
    assert db.volume("vol")["copied_up"] == 0
