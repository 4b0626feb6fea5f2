"""Layer application (safe extraction, whiteouts, metadata) and layer diffs."""

import gzip
import io
import os
import shutil
import stat
import subprocess
import tarfile

import pytest
from tarentries import MTIME, d, f, hard, link, tar_bytes

from sangja.image.layers import LayerError, UnsafeLayer, apply_layer, write_diff

ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not ROOT, reason="needs root")


def dev(name):
    ti = tarfile.TarInfo(name)
    ti.type, ti.devmajor, ti.devminor, ti.mode = tarfile.CHRTYPE, 1, 3, 0o666
    return ti, None


def write_tar(path, entries):
    path.write_bytes(tar_bytes(entries))
    return path


def listing(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                extra = os.readlink(full)
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as fh:
                    extra = fh.read()
            else:
                extra = None
            out.append((os.path.relpath(full, root), st.st_mode, st.st_uid, st.st_gid, extra))
    return sorted(out)


@pytest.fixture
def dest(tmp_path):
    p = tmp_path / "rootfs"
    p.mkdir()
    return p


def test_basic_tree(tmp_path, dest):
    layer = write_tar(tmp_path / "l.tar", [
        d("./"),
        d("./etc"),
        f("./etc/passwd", b"root:x:0:0\n", 0o644, uid=7, gid=8),
        f("bin/su", b"\x7fELF", 0o4755),
        f("bin/wall", b"w", 0o2755),
        d("tmp", 0o1777),
        d("ro", 0o555),
        f("ro/inside", b"i", 0o444),
        link("bin/sh", "/bin/busybox"),
        link("escape", "../../../../etc/shadow"),
        hard("bin/su2", "bin/su"),
    ])
    stats = apply_layer(layer, dest)
    assert (stats.files, stats.symlinks, stats.hardlinks) == (4, 2, 1)
    assert (dest / "etc/passwd").read_bytes() == b"root:x:0:0\n"
    assert stat.S_IMODE(os.stat(dest / "bin/su").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(dest / "bin/wall").st_mode) == 0o2755
    assert stat.S_IMODE(os.stat(dest / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(dest / "ro").st_mode) == 0o555
    assert os.readlink(dest / "bin/sh") == "/bin/busybox"
    assert os.readlink(dest / "escape") == "../../../../etc/shadow"
    assert os.stat(dest / "bin/su").st_ino == os.stat(dest / "bin/su2").st_ino
    assert os.stat(dest / "etc/passwd").st_mtime == MTIME
    assert os.stat(dest / "etc").st_mtime == MTIME
    assert os.stat(dest / "bin").st_mode & 0o777 == 0o755  # implicit parent
    if ROOT:
        st = os.stat(dest / "etc/passwd")
        assert (st.st_uid, st.st_gid) == (7, 8)


@root_only
def test_ownership_keeps_setuid_and_devices(tmp_path, dest):
    layer = write_tar(tmp_path / "l.tar", [f("su", b"x", 0o4755, uid=1000, gid=1000), dev("null")])
    apply_layer(layer, dest)
    st = os.stat(dest / "su")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o4755)
    st = os.lstat(dest / "null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3


def test_whiteouts_and_opaque(tmp_path, dest):
    apply_layer(write_tar(tmp_path / "1.tar", [
        d("a"), f("a/keep", b"k"), f("a/gone", b"g"), d("a/sub"), f("a/sub/x", b"x"),
        d("o"), f("o/old1", b"1"), d("o/olddir"), f("o/olddir/y", b"y"),
        f("top", b"t"),
    ]), dest)
    stats = apply_layer(write_tar(tmp_path / "2.tar", [
        f("a/.wh.gone"), f("a/.wh.sub"), f(".wh.top"),
        d("o"), f("o/.wh..wh..opq"), f("o/new", b"n"),
        f("a/new", b"n2"),
    ]), dest)
    assert (stats.whiteouts, stats.opaque_dirs) == (3, 1)
    assert sorted(os.listdir(dest)) == ["a", "o"]
    assert sorted(os.listdir(dest / "a")) == ["keep", "new"]
    assert sorted(os.listdir(dest / "o")) == ["new"]
    # a whiteout and a re-creation of the same name in one layer: the new file stays
    apply_layer(write_tar(tmp_path / "3.tar", [f("a/new", b"v3"), f("a/.wh.new")]), dest)
    assert (dest / "a/new").read_bytes() == b"v3"


def test_replace_types(tmp_path, dest):
    (dest / "d").mkdir()
    (dest / "d/child").write_text("c")
    (dest / "f").write_text("f")
    os.symlink("/etc", dest / "s")
    apply_layer(write_tar(tmp_path / "l.tar", [
        f("d", b"now a file"), d("f"), f("f/x", b"x"), d("s"), f("s/y", b"y"),
    ]), dest)
    assert (dest / "d").read_bytes() == b"now a file"
    assert (dest / "f/x").read_bytes() == b"x"
    assert not os.path.islink(dest / "s") and (dest / "s/y").read_bytes() == b"y"


HOSTILE = [
    ("abs", [f("/etc/passwd", b"x")], "/etc/passwd", "absolute"),
    ("dotdot", [f("../../evil", b"x")], "../../evil", "'..'"),
    ("dotdot-mid", [d("a"), f("a/../../evil", b"x")], "a/../../evil", "'..'"),
    ("symlink-parent", [link("lnk", "/etc"), f("lnk/passwd", b"x")], "lnk/passwd", "symlink"),
    ("symlink-parent-deep", [link("lnk", "."), d("lnk/x")], "lnk/x", "symlink"),
    ("dest-symlink-parent", [f("dl/passwd", b"x")], "dl/passwd", "symlink"),
    ("hardlink-outside", [hard("h", "../outside")], "h", "'..'"),
    ("hardlink-abs", [hard("h", "/etc/passwd")], "h", "absolute"),
    ("hardlink-through-symlink", [link("lnk", "/etc"), hard("h", "lnk/passwd")], "h", "symlink"),
    ("hardlink-through-dest-symlink", [hard("h", "dl/passwd")], "h", "symlink"),
    ("hardlink-missing", [hard("h", "nope")], "h", "does not exist"),
    ("hardlink-dir", [d("dd"), hard("h", "dd")], "h", "directory"),
    ("whiteout-through-symlink", [f("dl/.wh.passwd")], "dl/.wh.passwd", "symlink"),
    ("whiteout-dotdot", [f("a/.wh...")], "a/.wh...", "whiteout"),
    ("parent-is-file", [f("plain", b"p"), f("plain/x", b"x")], "plain/x", "not a directory"),
    ("too-big", [f("a", b"x" * 60), f("b", b"x" * 60)], "b", "max_bytes"),
]


@pytest.mark.parametrize(("entries", "entry", "why"), [h[1:] for h in HOSTILE],
                         ids=[h[0] for h in HOSTILE])
def test_hostile_refused_and_dest_unchanged(tmp_path, dest, entries, entry, why):
    (dest / "keep").write_text("lower")
    (dest / "a").mkdir()
    os.symlink(str(tmp_path / "outside"), dest / "dl")
    (tmp_path / "outside").mkdir()
    layer = write_tar(tmp_path / "evil.tar", [f("victim.wh", b"first"), f("keep", b"new"),
                                              f("a/.wh.zzz"), *entries])
    before, outside = listing(dest), listing(tmp_path / "outside")
    with pytest.raises(UnsafeLayer) as info:
        apply_layer(layer, dest, max_bytes=100)
    assert repr(entry) in str(info.value) and why in str(info.value)
    assert isinstance(info.value, ValueError)
    assert listing(dest) == before
    assert listing(tmp_path / "outside") == outside


@pytest.mark.skipif(ROOT, reason="as root device nodes are allowed")
def test_device_refused_when_not_root(tmp_path, dest):
    with pytest.raises(UnsafeLayer, match="'null'.*root"):
        apply_layer(write_tar(tmp_path / "l.tar", [dev("null")]), dest)
    assert os.listdir(dest) == []


ENTRIES = [d("x"), f("x/a", b"hello" * 1000), link("x/l", "a")]


def _check(dest):
    assert (dest / "x/a").read_bytes() == b"hello" * 1000
    assert os.readlink(dest / "x/l") == "a"


def test_gzip_path_and_fileobj(tmp_path, dest):
    data = gzip.compress(tar_bytes(ENTRIES))
    (tmp_path / "l.tgz").write_bytes(data)
    apply_layer(tmp_path / "l.tgz", dest)
    _check(dest)
    shutil.rmtree(dest)
    dest.mkdir()
    buf = io.BytesIO(b"junk" + data)
    buf.seek(4)  # the layer starts at the caller's position
    apply_layer(buf, dest, compression="gzip")
    _check(dest)


def test_non_seekable_stream(tmp_path, dest):
    r, w = os.pipe()
    data = tar_bytes(ENTRIES)
    with os.fdopen(w, "wb") as wf:
        wf.write(data)  # small enough for the pipe buffer
    with os.fdopen(r, "rb") as rf:
        apply_layer(rf, dest)
    _check(dest)


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd command not installed")
def test_zstd(tmp_path, dest):
    raw = write_tar(tmp_path / "l.tar", ENTRIES)
    subprocess.run(["zstd", "-q", str(raw), "-o", str(tmp_path / "l.tar.zst")], check=True)
    apply_layer(tmp_path / "l.tar.zst", dest)
    _check(dest)
    shutil.rmtree(dest)
    dest.mkdir()
    apply_layer(io.BytesIO((tmp_path / "l.tar.zst").read_bytes()), dest)
    _check(dest)


def test_corrupt_layer(tmp_path, dest):
    (tmp_path / "bad.tgz").write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(LayerError):
        apply_layer(tmp_path / "bad.tgz", dest)


@root_only
def test_security_capability_xattr(tmp_path, dest):
    # VFS_CAP_REVISION_2, effective, CAP_NET_BIND_SERVICE (bit 10) permitted
    cap = bytes.fromhex("01000002" "00040000" "00000000" "00000000" "00000000")
    value = cap.decode("utf-8", "surrogateescape")
    layer = write_tar(tmp_path / "l.tar", [
        f("ping", b"\x7fELF", 0o755, uid=0, gid=0, **{"SCHILY.xattr.security.capability": value}),
    ])
    stats = apply_layer(layer, dest)
    assert stats.xattrs == 1
    assert os.getxattr(dest / "ping", "security.capability") == cap


def test_write_diff_roundtrip(tmp_path):
    base, changed, target = tmp_path / "base", tmp_path / "changed", tmp_path / "target"
    base.mkdir()
    apply_layer(write_tar(tmp_path / "b.tar", [
        d("etc"), f("etc/a", b"a"), f("etc/same", b"s"), f("etc/gone", b"g"),
        d("olddir"), f("olddir/x", b"x"), f("mode", b"m", 0o644), f("size", b"1"),
    ]), base)
    shutil.copytree(base, changed, symlinks=True)
    shutil.copytree(base, target, symlinks=True)
    (changed / "etc/a").write_bytes(b"A")  # same size, new content
    os.utime(changed / "etc/a", (MTIME, MTIME))
    os.unlink(changed / "etc/gone")
    shutil.rmtree(changed / "olddir")
    os.chmod(changed / "mode", 0o600)
    (changed / "size").write_bytes(b"22")
    (changed / "new").mkdir()
    (changed / "new/f").write_bytes(b"n")
    os.link(changed / "new/f", changed / "new/f2")
    os.symlink("../etc/a", changed / "new/l")
    buf = io.BytesIO()
    write_diff(base, changed, buf)
    buf.seek(0)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        names = set(tf.getnames())
    assert "etc/same" not in names
    assert {"etc/a", "etc/.wh.gone", ".wh.olddir", "mode", "size", "new/f", "new/l"} <= names
    apply_layer(buf, target)
    assert listing(target) == listing(changed)
    assert os.stat(target / "new/f").st_ino == os.stat(target / "new/f2").st_ino
