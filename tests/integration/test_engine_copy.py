"""sangja.engine.copy: `cp` both ways, Docker's path rules, ownership, hostile symlinks."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from sangja.engine.copy import CopyError, copy_in, copy_out

SECRET = b"TOP SECRET host content\n"


def _write(path, data: bytes | str = b"x", uid: int | None = None, mode: int | None = None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    if uid is not None:
        os.chown(path, uid, uid)
    if mode is not None:
        os.chmod(path, mode)


def _read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _tree(top) -> dict[str, tuple]:
    """rel -> (type, content or link target, mode, uid, gid)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                body = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                body = _read(p)
            else:
                body = None
            out[os.path.relpath(p, top)] = (stat.S_IFMT(st.st_mode), body,
                                            stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


@pytest.fixture
def env(tmp_path):
    """A container root with ordinary and hostile content, and a host secret beside it."""
    host = tmp_path / "host"
    secret = host / "secret"
    _write(secret, SECRET, mode=0o600)
    hostdir = host / "dir"
    _write(hostdir / "keep", "host file")
    rootfs = tmp_path / "rootfs"
    _write(rootfs / "etc" / "hosts", "127.0.0.1 localhost\n", mode=0o644)
    _write(rootfs / "data" / "a.txt", "alpha", uid=1000, mode=0o640)
    _write(rootfs / "data" / "sub" / "b.txt", "beta", uid=1001, mode=0o600)
    os.chown(rootfs / "data", 1000, 1000)
    os.chmod(rootfs / "data", 0o750)
    os.link(rootfs / "data" / "a.txt", rootfs / "data" / "a-hard")
    os.symlink("sub/b.txt", rootfs / "data" / "rel-link")
    os.mkfifo(rootfs / "data" / "fifo")
    os.chmod(rootfs / "data" / "fifo", 0o620)
    os.mknod(rootfs / "data" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.setxattr(rootfs / "data" / "a.txt", "user.note", b"hello")
    os.utime(rootfs / "data" / "a.txt", (1_600_000_000, 1_600_000_000))
    os.makedirs(rootfs / "tmp")
    # hostile symlinks: every one of them points at the host when followed on the host
    os.symlink(f"/../../../../../../..{secret}", rootfs / "etc" / "evil")
    os.symlink(str(secret), rootfs / "abs-secret")
    os.symlink(str(hostdir), rootfs / "abs-dir")
    os.symlink("../../../../../../../../../..", rootfs / "escape")
    os.symlink("/", rootfs / "tmp2")
    os.symlink(str(hostdir), rootfs / "data" / "sub" / "to-host")
    before = _tree(host)
    yield {"rootfs": str(rootfs), "host": host, "secret": secret, "hostdir": hostdir,
           "out": tmp_path / "out", "tmp": tmp_path}
    assert _tree(host) == before, "the host side was modified"
    assert _read(secret) == SECRET


def _secret_nowhere(top) -> None:
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                assert SECRET not in _read(p), p


# ---------------------------------------------------------------------------- copy out


def test_out_file_to_new_path_owned_by_caller(env):
    dest = env["out"]
    copy_out(env["rootfs"], "/data/a.txt", str(dest))
    st = os.lstat(dest)
    assert _read(dest) == b"alpha"
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert stat.S_IMODE(st.st_mode) == 0o640 and int(st.st_mtime) == 1_600_000_000
    assert os.getxattr(dest, "user.note") == b"hello"


def test_out_archive_keeps_ids(env):
    os.makedirs(env["out"])
    copy_out(env["rootfs"], "data", str(env["out"]), archive=True)
    t = _tree(env["out"])
    assert t["data"][3:] == (1000, 1000) and t["data"][2] == 0o750
    assert t["data/a.txt"][3:] == (1000, 1000)
    assert t["data/sub/b.txt"][3:] == (1001, 1001)
    a = os.lstat(env["out"] / "data" / "a.txt")
    assert os.lstat(env["out"] / "data" / "a-hard").st_ino == a.st_ino
    assert t["data/rel-link"][:2] == (stat.S_IFLNK, "sub/b.txt")
    assert t["data/fifo"][0] == stat.S_IFIFO and t["data/fifo"][2] == 0o620
    null = os.lstat(env["out"] / "data" / "null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    # a symlink to the host inside the copied tree is copied as a link, never followed
    assert t["data/sub/to-host"][:2] == (stat.S_IFLNK, str(env["hostdir"]))
    assert not os.path.exists(env["out"] / "data" / "sub" / "keep")


def test_out_dir_rules(env):
    out = env["out"]
    os.makedirs(out)
    copy_out(env["rootfs"], "/data", str(out / "new"))  # missing dest: created, content
    assert _read(out / "new" / "sub" / "b.txt") == b"beta"
    assert os.lstat(out / "new" / "a.txt").st_uid == os.getuid()
    copy_out(env["rootfs"], "/data/", str(out))  # existing dir: copied into it
    assert _read(out / "data" / "a.txt") == b"alpha"
    os.makedirs(out / "content")
    copy_out(env["rootfs"], "/data/.", str(out / "content"))  # "/.": the content only
    assert sorted(os.listdir(out / "content")) == sorted(os.listdir(out / "data"))
    copy_out(env["rootfs"], "/etc/hosts", str(out / "content"))  # file into a dir
    assert _read(out / "content" / "hosts") == b"127.0.0.1 localhost\n"
    _write(out / "existing", "old")
    copy_out(env["rootfs"], "/etc/hosts", str(out / "existing"))  # file over file
    assert _read(out / "existing") == b"127.0.0.1 localhost\n"


def test_out_errors(env):
    out = env["out"]
    os.makedirs(out)
    _write(out / "file", "f")
    root = env["rootfs"]
    with pytest.raises(CopyError, match=r"^Could not find the file /nope in container ctr$"):
        copy_out(root, "/nope", str(out), container="ctr")
    with pytest.raises(CopyError, match="Could not find the file /etc/hosts/x in container"):
        copy_out(root, "/etc/hosts/x", str(out))
    with pytest.raises(CopyError, match="not a directory"):
        copy_out(root, "/etc/hosts/", str(out))
    with pytest.raises(CopyError, match="cannot copy a directory to a file"):
        copy_out(root, "/data", str(out / "file"))
    with pytest.raises(CopyError, match="does not exist"):
        copy_out(root, "/etc/hosts", str(out / "missing" / "x"))
    with pytest.raises(CopyError, match="does not exist"):
        copy_out(root, "/etc/hosts", str(out / "missing") + "/")
    assert sorted(os.listdir(out)) == ["file"]


def test_out_symlink_and_follow(env):
    out = env["out"]
    os.makedirs(out)
    copy_out(env["rootfs"], "/data/rel-link", str(out))
    assert os.readlink(out / "rel-link") == "sub/b.txt"
    copy_out(env["rootfs"], "/data/rel-link", str(out / "followed"), follow_link=True)
    assert _read(out / "followed") == b"beta"
    os.symlink("data", os.path.join(env["rootfs"], "dlink"))
    copy_out(env["rootfs"], "/dlink", str(out / "dl"), follow_link=True)
    assert _read(out / "dl" / "a.txt") == b"alpha"


def test_out_tar_stream(env):
    buf = io.BytesIO()
    copy_out(env["rootfs"], "/data", buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        members = {m.name: m for m in tf}
        assert members["data/a.txt"].uid == 1000  # a stream always carries the real ids
        # the first name in walk order holds the data, the other links to it
        assert members["data/a-hard"].isreg()
        assert members["data/a.txt"].islnk() and members["data/a.txt"].linkname == "data/a-hard"
        assert members["data/rel-link"].issym()
        assert tf.extractfile("data/sub/b.txt").read() == b"beta"
    buf = io.BytesIO()
    copy_out(env["rootfs"], "/data/.", buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        names = tf.getnames()
    assert "./a.txt" in names and not any(n.startswith("data") for n in names)


def test_out_escape_attempts(env):
    """Every hostile path resolves inside the root: the host secret is never read."""
    out = env["out"]
    os.makedirs(out)
    root = env["rootfs"]
    secret_rel = str(env["secret"]).lstrip("/")
    for src, follow in [
        ("/etc/evil", True),  # absolute link climbing with ..
        ("/abs-secret", True),  # absolute link to the host path
        (f"/escape/{secret_rel}", False),  # relative link climbing out
        (f"/tmp2/../../../{secret_rel}", False),
        ("/abs-dir/keep", False),
        ("/abs-dir/", False),
        ("/data/sub/to-host/keep", False),
    ]:
        with pytest.raises(CopyError, match="Could not find the file"):
            copy_out(root, src, str(out / "x"), follow_link=follow)
    # without -L the links themselves are copied, as links
    copy_out(root, "/etc/evil", str(out / "evil"))
    assert os.readlink(out / "evil").endswith(str(env["secret"]))
    # /tmp2 -> / is the container's root, not the host's
    copy_out(root, "/tmp2/etc/hosts", str(out / "hosts"))
    assert _read(out / "hosts") == b"127.0.0.1 localhost\n"
    copy_out(root, "/escape/etc/hosts", str(out / "hosts2"))
    assert _read(out / "hosts2") == b"127.0.0.1 localhost\n"
    copy_out(root, "/tmp2/", str(out / "whole"), archive=True)
    assert _read(out / "whole" / "data" / "a.txt") == b"alpha"
    assert os.path.islink(out / "whole" / "abs-secret")
    buf = io.BytesIO()
    copy_out(root, "/", buf)
    assert SECRET not in buf.getvalue()
    _secret_nowhere(out)


# ---------------------------------------------------------------------------- copy in


def test_in_file_owned_by_root_by_default(env):
    src = env["tmp"] / "src" / "f.txt"
    _write(src, "hello", uid=1234, mode=0o604)
    os.utime(src, (1_500_000_000, 1_500_000_000))
    copy_in(env["rootfs"], str(src), "/tmp")
    dest = os.path.join(env["rootfs"], "tmp", "f.txt")
    st = os.lstat(dest)
    assert _read(dest) == b"hello" and (st.st_uid, st.st_gid) == (0, 0)
    assert stat.S_IMODE(st.st_mode) == 0o604 and int(st.st_mtime) == 1_500_000_000
    copy_in(env["rootfs"], str(src), "/tmp/kept", archive=True)
    st = os.lstat(os.path.join(env["rootfs"], "tmp", "kept"))
    assert (st.st_uid, st.st_gid) == (1234, 1234)
    copy_in(env["rootfs"], str(src), "/tmp/remapped", owner=(100000, 100000))
    assert os.lstat(os.path.join(env["rootfs"], "tmp", "remapped")).st_uid == 100000


def test_in_dir_rules(env):
    src = env["tmp"] / "src" / "tree"
    _write(src / "one", "1", uid=1234)
    _write(src / "deep" / "two", "2")
    os.link(src / "one", src / "one-hard")
    os.symlink("/etc/hosts", src / "abs")
    root = env["rootfs"]
    copy_in(root, str(src), "/tmp")  # into an existing dir
    t = _tree(os.path.join(root, "tmp", "tree"))
    assert t["one"][1] == b"1" and t["one"][3:] == (0, 0)
    assert t["deep/two"][1] == b"2"
    assert t["abs"][:2] == (stat.S_IFLNK, "/etc/hosts")
    one = os.lstat(os.path.join(root, "tmp", "tree", "one"))
    assert one.st_ino == os.lstat(os.path.join(root, "tmp", "tree", "one-hard")).st_ino
    copy_in(root, str(src), "/tmp/newname")  # missing: created with the content
    assert _read(os.path.join(root, "tmp", "newname", "deep", "two")) == b"2"
    os.makedirs(os.path.join(root, "tmp", "c"))
    copy_in(root, str(src) + "/.", "/tmp/c")  # the content only
    assert sorted(os.listdir(os.path.join(root, "tmp", "c"))) == sorted(os.listdir(src))
    _write(os.path.join(root, "tmp", "file"), "old")
    copy_in(root, str(src / "one"), "/tmp/file")  # file over file
    assert _read(os.path.join(root, "tmp", "file")) == b"1"
    with pytest.raises(CopyError, match="cannot copy a directory to a file"):
        copy_in(root, str(src), "/tmp/file")
    with pytest.raises(CopyError, match="Could not find the file /nope/deeper in container"):
        copy_in(root, str(src / "one"), "/nope/deeper/x")
    with pytest.raises(CopyError, match="does not exist"):
        copy_in(root, str(src / "one"), "/tmp/notyet/")
    with pytest.raises(CopyError, match="lstat .*: no such file or directory"):
        copy_in(root, str(src / "missing"), "/tmp")
    with pytest.raises(CopyError, match="not a directory"):
        copy_in(root, str(src / "one") + "/", "/tmp")
    # a directory never replaces a file below the destination, nor a file a directory
    os.makedirs(os.path.join(root, "tmp", "clash", "tree"))
    _write(os.path.join(root, "tmp", "clash", "tree", "deep"), "file where a dir comes")
    with pytest.raises(CopyError, match="cannot overwrite non-directory"):
        copy_in(root, str(src), "/tmp/clash")


def test_in_follow_link(env):
    src = env["tmp"] / "src"
    _write(src / "real", "real content")
    os.symlink("real", src / "link")
    copy_in(env["rootfs"], str(src / "link"), "/tmp")
    assert os.readlink(os.path.join(env["rootfs"], "tmp", "link")) == "real"
    copy_in(env["rootfs"], str(src / "link"), "/tmp/followed", follow_link=True)
    assert _read(os.path.join(env["rootfs"], "tmp", "followed")) == b"real content"


def test_in_tar_stream(env):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in [("x.txt", b"ex"), ("/abs/y.txt", b"why")]:
            ti = tarfile.TarInfo(name)
            ti.size, ti.uid, ti.gid, ti.mode = len(data), 42, 43, 0o600
            tf.addfile(ti, io.BytesIO(data))
    root = env["rootfs"]
    buf.seek(0)
    copy_in(root, buf, "/tmp")
    assert _read(os.path.join(root, "tmp", "x.txt")) == b"ex"
    assert _read(os.path.join(root, "tmp", "abs", "y.txt")) == b"why"  # "/" is the dest
    assert os.lstat(os.path.join(root, "tmp", "x.txt")).st_uid == 0
    buf.seek(0)
    copy_in(root, buf, "/data", archive=True)
    assert os.lstat(os.path.join(root, "data", "x.txt")).st_uid == 42
    buf.seek(0)
    with pytest.raises(CopyError, match='destination "/etc/hosts" must be a directory'):
        copy_in(root, buf, "/etc/hosts")
    with pytest.raises(CopyError, match="invalid tar archive"):
        copy_in(root, io.BytesIO(b"this is not a tar" * 100), "/tmp")


def _tar(*entries) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, arg in entries:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                ti.size = len(arg)
                tf.addfile(ti, io.BytesIO(arg))
                continue
            if kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, arg
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, arg
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
            tf.addfile(ti)
    buf.seek(0)
    return buf


def test_in_escape_attempts(env):
    """Writes through hostile symlinks land inside the root, or fail; the host is untouched
    (checked by the fixture: every host file has the same content, mode and owner)."""
    root = env["rootfs"]
    src = env["tmp"] / "src" / "payload"
    _write(src, "PWNED")
    secret_rel = str(env["secret"]).lstrip("/")
    # a link to "/" is the container's root
    copy_in(root, str(src), "/tmp2/landed")
    assert _read(os.path.join(root, "landed")) == b"PWNED"
    copy_in(root, str(src), "/escape/landed2")
    assert _read(os.path.join(root, "landed2")) == b"PWNED"
    # the destination is a symlink to the host secret: it is replaced, never followed out
    copy_in(root, str(src), "/etc/evil")
    assert not os.path.islink(os.path.join(root, "etc", "evil"))
    assert _read(os.path.join(root, "etc", "evil")) == b"PWNED"
    copy_in(root, str(src), "/abs-secret")
    assert _read(os.path.join(root, "abs-secret")) == b"PWNED"
    # the parent is a link to a host directory: it does not exist in the container
    with pytest.raises(CopyError, match="Could not find the file"):
        copy_in(root, str(src), "/abs-dir/keep")
    with pytest.raises(CopyError, match="Could not find the file"):
        copy_in(root, str(src), f"/escape/{os.path.dirname(secret_rel)}/secret")
    with pytest.raises(CopyError, match="does not exist in container"):
        copy_in(root, str(src), "/data/sub/to-host/")
    # tar streams: climbing names are refused; links planted by the archive stay inside
    with pytest.raises(CopyError, match="outside the destination"):
        copy_in(root, _tar(("../../../../../../../tmp/evil", "file", b"x")), "/tmp")
    copy_in(root, _tar(("s", "sym", "/"), ("s/via-link", "file", b"in root")), "/tmp")
    assert _read(os.path.join(root, "via-link")) == b"in root"
    assert not os.path.exists("/via-link")
    with pytest.raises(CopyError):
        copy_in(root, _tar(("h", "sym", str(env["hostdir"])), ("h/keep", "file", b"x")),
                "/tmp")
    with pytest.raises(CopyError, match="outside the destination"):
        copy_in(root, _tar(("hl", "hard", "../../../../../../.." + str(env["secret"]))),
                "/tmp")
    # a hardlink through an archive symlink to the host secret cannot reach it either
    with pytest.raises(CopyError):
        copy_in(root, _tar(("hs", "sym", str(env["host"])), ("hl", "hard", "hs/secret")),
                "/tmp")
    assert os.lstat(env["secret"]).st_nlink == 1
    _secret_nowhere(root)


def test_symlink_loops_are_errors(env):
    root = env["rootfs"]
    os.symlink("loop2", os.path.join(root, "loop1"))
    os.symlink("/loop1", os.path.join(root, "loop2"))
    src = env["tmp"] / "src" / "f"
    _write(src, "f")
    with pytest.raises(CopyError, match="symbolic links"):
        copy_out(root, "/loop1", str(env["out"]), follow_link=True)
    with pytest.raises(CopyError, match="symbolic links"):
        copy_in(root, str(src), "/loop1/x")
    with pytest.raises(CopyError, match="symbolic links"):
        copy_in(root, io.BytesIO(), "/loop2")
    copy_out(root, "/loop1", str(env["out"]))  # not followed: the link itself
    assert os.readlink(env["out"]) == "loop2"
