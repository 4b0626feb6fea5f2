"""Attacks on the engine's host-side file work, from the outside: hostile images (device
nodes, FIFOs, symlinks to host paths where files are expected) and hostile containers
(planting links in a shared volume while another container starts, swapping files while
cp, export and commit read them). The effect is observed on the host (the files the links
point at, what lands in the volume, tar contents) and from inside the containers."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import tarfile
import uuid

import pytest
from engine_cli import Cli, remove_everything, wait_no_leaks, wait_until
from fstree import unmount_all_under

pytestmark = pytest.mark.root

SECRET = b"TOP SECRET host content\n"
MARKER = b"BLOCK-DEVICE-CONTENT-" + uuid.uuid4().hex.encode()


# ---------------------------------------------------------------------------- helpers


def _entry(name: str, kind: bytes, *, data: bytes = b"", mode: int = 0o644,
           link: str = "", dev: tuple[int, int] = (0, 0)) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = kind, mode, 1_700_000_000
    ti.size = len(data)
    ti.linkname = link
    ti.devmajor, ti.devminor = dev
    return ti, data


def d(name, mode=0o755):
    return _entry(name, tarfile.DIRTYPE, mode=mode)


def f(name, data: bytes | str, mode=0o644):
    return _entry(name, tarfile.REGTYPE, data=data.encode() if isinstance(data, str) else data,
                  mode=mode)


def sym(name, target):
    return _entry(name, tarfile.SYMTYPE, link=str(target), mode=0o777)


def chr_(name, major, minor):
    return _entry(name, tarfile.CHRTYPE, dev=(major, minor), mode=0o666)


def blk(name, major, minor):
    return _entry(name, tarfile.BLKTYPE, dev=(major, minor), mode=0o660)


def fifo(name):
    return _entry(name, tarfile.FIFOTYPE, mode=0o644)


def build_image(cli: Cli, name: str, entries, *, drop=(), changes=()) -> str:
    """busybox's files (less `drop`) plus `entries`, imported as the image `name`."""
    cid = cli.create("busybox")
    base = cli("export", cid, text=False).stdout
    cli.ok("rm", cid)
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(base)) as src, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for m in src:
            if m.name.lstrip("./") in drop:
                continue
            tf.addfile(m, src.extractfile(m) if m.isreg() else None)
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    flags = [x for c in changes for x in ("-c", c)]
    cli.ok("import", *flags, "-", name, input=out.getvalue(), text=False)
    return name


@pytest.fixture
def images(cli):
    made: list[str] = []
    yield made
    for name in made:
        cli("rmi", "-f", name)


@pytest.fixture
def host(tmp_path):
    """A host secret and an empty host directory: nothing may read or change them."""
    top = tmp_path / "host"
    top.mkdir()
    secret = top / "secret"
    secret.write_bytes(SECRET)
    os.chmod(secret, 0o600)
    hostdir = top / "dir"
    hostdir.mkdir()
    yield secret, hostdir

    assert secret.read_bytes() == SECRET
    st = os.stat(secret)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 0, 0)
    assert os.listdir(hostdir) == []


@pytest.fixture
def loopdev(tmp_path):
    """A loop block device holding MARKER: a copy that reads the node gets the marker."""
    backing = tmp_path / "disk.img"
    backing.write_bytes(MARKER + b"\0" * ((1 << 20) - len(MARKER)))
    r = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"no loop device: {r.stderr.strip()}")
    dev = r.stdout.strip()
    rdev = os.stat(dev).st_rdev
    try:
        yield os.major(rdev), os.minor(rdev)
    finally:
        subprocess.run(["losetup", "-d", dev], check=True)


@pytest.fixture
def small_engine(tmp_path):
    """An engine whose whole storage is a 256 MiB tmpfs: a copy that reads /dev/zero as
    data fills it in a moment and fails, instead of filling the host's disk."""
    from sangja.linux.mounts import mount

    top = tmp_path / "small"
    top.mkdir()
    mount("tmpfs", str(top), "tmpfs", 0, "size=256m")
    cli = Cli(top / "root", top / "run")
    try:
        cli.ok("bootstrap", "busybox")
        yield cli
    finally:
        try:
            remove_everything(cli)
            wait_no_leaks(cli)
        finally:
            unmount_all_under(top)


def volume_dir(cli: Cli, ref: str, target: str) -> str:
    (m,) = [m for m in cli.inspect(ref)["Mounts"] if m["Destination"] == target]
    return m["Source"]


def all_bytes_under(top: str) -> bytes:
    out = []
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            p = os.path.join(dirpath, name)
            if stat.S_ISREG(os.lstat(p).st_mode):
                with open(p, "rb") as fh:
                    out.append(fh.read())
    return b"".join(out)


# ---------------------------------------------------------------------------- copy-up


def test_copy_up_makes_device_nodes_never_reads_them(small_engine, loopdev):
    """An image's VOLUME directory holds device nodes: /dev/zero's numbers (a read never
    ends), /dev/null's, and a host block device's (a loop device holding MARKER). The new
    volume gets the same nodes, not data; inside, the device cgroup still refuses them."""
    cli = small_engine
    major, minor = loopdev
    build_image(cli, "devimg", [d("data"), chr_("data/zero", 1, 5), chr_("data/null", 1, 3),
                                blk("data/disk", major, minor), f("data/f", "hello\n")],
                changes=["VOLUME /data"])
    out = cli.ok("run", "--name", "victim", "devimg", "sh", "-c",
                 "ls /data; head -c 64 /data/disk; echo rc=$?", timeout=120)
    assert out.split() == ["disk", "f", "null", "zero", "rc=1"], out  # EPERM inside
    vol = volume_dir(cli, "victim", "/data")
    kinds = {}
    for name in os.listdir(vol):
        st = os.lstat(os.path.join(vol, name))
        kinds[name] = (stat.S_IFMT(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev))
    assert kinds == {"zero": (stat.S_IFCHR, 1, 5), "null": (stat.S_IFCHR, 1, 3),
                     "disk": (stat.S_IFBLK, major, minor), "f": (stat.S_IFREG, 0, 0)}
    assert MARKER not in all_bytes_under(vol)


def test_copy_up_fifo_does_not_hang(cli, images):
    images.append(build_image(cli, "fifoimg", [d("data"), fifo("data/p"), d("data/sub"),
                                               fifo("data/sub/q"), f("data/f", "x")],
                              changes=["VOLUME /data"]))
    out = cli.out("fifoimg", "sh", "-c",
                  "for x in /data/p /data/sub/q; do [ -p $x ] && echo fifo; done; cat /data/f",
                  timeout=30)
    assert out.split() == ["fifo", "fifo", "x"]


def test_copy_up_happens_once_per_volume(cli, images):
    """Once a volume was filled from an image (or found holding data), emptying it never
    makes a later start or container fill it again. `nocopy` neither copies nor marks."""
    images.append(build_image(cli, "contentimg", [d("data"), f("data/a", "from image\n")]))
    assert cli.out("-v", "once:/data", "contentimg", "ls", "/data").split() == ["a"]
    cli.out("-v", "once:/data", "busybox", "sh", "-c", "rm -rf /data/*")
    assert cli.out("-v", "once:/data", "contentimg", "ls", "/data").split() == []
    # a restart of the same container does not copy again either
    c = cli.create("-v", "once2:/data", "contentimg", "ls", "/data")
    assert cli.ok("start", "-a", c).split() == ["a"]
    cli.out("-v", "once2:/data", "busybox", "sh", "-c", "rm -rf /data/*")
    assert cli.ok("start", "-a", c).split() == []
    # a volume that already holds data is never filled, even once emptied
    cli.ok("volume", "create", "pre")
    (info,) = json.loads(cli.ok("volume", "inspect", "pre"))
    with open(os.path.join(info["Mountpoint"], "mine"), "w") as fh:
        fh.write("mine\n")
    assert cli.out("-v", "pre:/data", "contentimg", "ls", "/data").split() == ["mine"]
    os.unlink(os.path.join(info["Mountpoint"], "mine"))
    assert cli.out("-v", "pre:/data", "contentimg", "ls", "/data").split() == []
    # nocopy leaves the volume to the next container that copies
    assert cli.out("-v", "nc:/data:nocopy", "contentimg", "ls", "/data").split() == []
    assert cli.out("-v", "nc:/data", "contentimg", "ls", "/data").split() == ["a"]


def test_shared_volume_links_planted_during_copy_up(cli, images, host):
    """Container A keeps emptying a shared volume and planting symlinks to a host file and
    a host directory at the names the image has there, while containers with that image
    start on the volume (the first copy races A). Nothing is written on the host; a start
    that lost the race fails with one line and leaves the volume to the next."""
    secret, hostdir = host
    images.append(build_image(cli, "raceimg", [d("data"), f("data/a", "from image\n"),
                                               d("data/d"), f("data/d/b", "from image\n")]))
    planter = cli.detach("--name", "planter", "-v", "race:/data:nocopy", "busybox", "sh",
                         "-c", f"while :; do rm -rf /data/a /data/d; ln -s {secret} /data/a;"
                               f" ln -s {hostdir} /data/d; done")
    try:
        for _ in range(25):
            r = cli("run", "--rm", "-v", "race:/data", "raceimg", "true", timeout=60)
            if r.returncode != 0:
                assert r.returncode == 125, r.stderr
                assert "copying the image's /data into volume race" in r.stderr, r.stderr
                assert len(r.stderr.splitlines()) == 1, r.stderr
            assert secret.read_bytes() == SECRET
            assert os.listdir(hostdir) == []
    finally:
        cli.ok("rm", "-f", planter)


# ---------------------------------------------------------------------------- cp, export, commit


SWAPPER = ("while :; do echo data > /d/f; rm -f /d/f; ln -s {secret} /d/f; rm -f /d/f; "
           "mknod /d/f c 1 5; rm -f /d/f; mkfifo /d/f; rm -f /d/f; done")


def _check_copied_tree(top: str, secret, major: int, minor: int) -> None:
    def kind(name):
        st = os.lstat(os.path.join(top, name))
        return stat.S_IFMT(st.st_mode), st.st_rdev

    assert os.readlink(os.path.join(top, "link")) == str(secret)
    assert kind("zero") == (stat.S_IFCHR, os.makedev(1, 5))
    assert kind("disk") == (stat.S_IFBLK, os.makedev(major, minor))
    assert kind("fifo")[0] == stat.S_IFIFO
    if os.path.lexists(os.path.join(top, "f")):  # the swapped file, as whatever it was then
        k, rdev = kind("f")
        if k == stat.S_IFREG:
            with open(os.path.join(top, "f"), "rb") as fh:  # caught before or after `echo`
                assert fh.read() in (b"", b"data\n")
        elif k == stat.S_IFCHR:
            assert rdev == os.makedev(1, 5)
        else:
            assert k in (stat.S_IFLNK, stat.S_IFIFO)


def test_cp_export_commit_of_a_hostile_running_container(cli, images, host, loopdev,
                                                         tmp_path):
    """A running container holds links to the host, device nodes (one of a host block
    device), a FIFO, and keeps swapping /d/f between a file, a link to the host, /dev/zero's
    node and a FIFO. cp out, export and commit read it: each finishes (or fails with one
    line), nothing of the host is read or written, nodes stay nodes, nothing hangs."""
    secret, hostdir = host
    major, minor = loopdev
    setup = (f"mkdir -p /d && ln -s {secret} /d/link && ln -s {hostdir} /d/dirlink && "
             f"mknod /d/zero c 1 5 && mknod /d/disk b {major} {minor} && mkfifo /d/fifo && "
             f"ln -s / /v/esc && touch /d/ready && ")
    cli.detach("--name", "hostile", "-v", "/v", "busybox", "sh", "-c",
               setup + SWAPPER.format(secret=secret))
    wait_until(lambda: cli("exec", "hostile", "test", "-e", "/d/ready").returncode == 0,
               message="the container to plant its files")
    for i in range(6):
        out = tmp_path / f"cp{i}"
        r = cli("cp", "hostile:/d", str(out), timeout=60)
        if r.returncode == 0:
            _check_copied_tree(str(out), secret, major, minor)
        else:
            assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
        r = cli("export", "hostile", text=False, timeout=60)
        if r.returncode == 0:
            assert SECRET not in r.stdout and MARKER not in r.stdout
            with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
                members = {m.name.lstrip("./"): m for m in tf}
            assert members["d/link"].issym() and members["d/link"].linkname == str(secret)
            assert members["d/disk"].isblk() and members["d/disk"].size == 0
            assert members["d/zero"].ischr() and members["d/fifo"].isfifo()
        else:
            assert len(r.stderr.splitlines()) == 1, r.stderr
    r = cli("commit", "hostile", "hostile-commit", timeout=120)
    if r.returncode == 0:
        images.append("hostile-commit")
        shown = cli.out("hostile-commit", "sh", "-c",
                        "stat -c '%n %F %t:%T' /d/zero /d/disk /d/fifo; readlink /d/link")
        assert f"/d/disk block special file {major:x}:{minor:x}" in shown, shown
        assert "/d/zero character special file 1:5" in shown, shown
        assert "/d/fifo fifo" in shown, shown
        assert str(secret) in shown
    else:
        assert len(r.stderr.splitlines()) == 1, r.stderr
    # cp through a volume: a link in it resolves inside it, never to the host's /
    r = cli("cp", f"hostile:/v/esc{secret}", str(tmp_path / "leak"))
    assert r.returncode != 0 and not (tmp_path / "leak").exists()
    r = cli("cp", str(secret), f"hostile:/v/esc{hostdir}/pwned")
    assert r.returncode != 0
    cli.ok("rm", "-f", "hostile")


# ---------------------------------------------------------------------------- /etc files


def test_hostile_etc_files_in_the_image(cli, images, host):
    """The image's /etc/hosts is an absolute link to a host file, /etc/hostname a FIFO,
    /etc/resolv.conf /dev/zero's node: the engine's own files are mounted over them inside
    the root, nothing on the host is touched, nothing hangs. An /etc/passwd that is
    /dev/zero's node (a read never ends) and an /etc/group FIFO, which the engine reads to
    resolve the user, fail the run with one line."""
    secret, _ = host
    images.append(build_image(cli, "etcimg", [
        sym("etc/hosts", secret), fifo("etc/hostname"), chr_("etc/resolv.conf", 1, 5)],
        drop={"etc/hosts", "etc/hostname", "etc/resolv.conf"}))
    out = cli.out("--hostname", "boxname", "etcimg", "sh", "-c",
                  "cat /etc/hostname; grep -c localhost /etc/hosts; "
                  "head -c 4096 /etc/resolv.conf | grep -c nameserver", timeout=30)
    lines = out.split()
    assert lines[0] == "boxname" and int(lines[1]) >= 1 and int(lines[2]) >= 1, out
    images.append(build_image(cli, "pwimg", [chr_("etc/passwd", 1, 5)], drop={"etc/passwd"}))
    line = cli.fails(125, "run", "--rm", "pwimg", "true", timeout=30)
    assert "/etc/passwd" in line and "not a regular file" in line
    images.append(build_image(cli, "grimg", [fifo("etc/group")], drop={"etc/group"}))
    line = cli.fails(125, "run", "--rm", "--group-add", "wheel", "grimg", "true", timeout=30)
    assert "/etc/group" in line and "not a regular file" in line
