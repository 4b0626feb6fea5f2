"""unpack_layer: a layer into an empty directory in overlayfs's layer format (whiteouts as 0:0
character devices, opaque directories as an xattr), with apply_layer's checks, from paths,
file objects and regions of a bigger file."""

import gzip
import io
import os
import stat
import subprocess
import tarfile

import pytest
from tarentries import MTIME, d, f, link, tar_bytes

from sangja.image.layers import (
    FileRegion,
    LayerError,
    UnsafeLayer,
    apply_layer,
    unpack_layer,
)

ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not ROOT, reason="needs root (ownership, trusted xattrs)")
OPAQUE = "trusted.overlay.opaque" if ROOT else "user.overlay.opaque"


@pytest.fixture
def dest(tmp_path):
    p = tmp_path / "layer"
    p.mkdir()
    return p


def test_overlay_format(tmp_path, dest):
    layer = tmp_path / "l.tar"
    layer.write_bytes(tar_bytes([
        d("a"), f("a/.wh.gone"), f(".wh.top"), f("deep/er/.wh.x"),
        d("o"), f("o/.wh..wh..opq"), f("o/new", b"n"),
        f("p/.wh..wh..opq"),  # opaque directory the layer does not list itself
        f("a/.wh.back"), f("a/back", b"again"),  # a whiteout and a re-creation: entry wins
    ]))
    stats = unpack_layer(layer, dest)
    for w in ("a/gone", "top", "deep/er/x"):
        st = os.lstat(dest / w)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, w
    assert (dest / "a/back").read_bytes() == b"again"
    assert os.getxattr(dest / "o", OPAQUE) == b"y"
    assert os.getxattr(dest / "p", OPAQUE) == b"y"
    assert (dest / "o/new").read_bytes() == b"n"
    assert not any(n.startswith(".wh.") for _, _, files in os.walk(dest) for n in files)
    assert (stats.whiteouts, stats.opaque_dirs, stats.files) == (3, 2, 2)


def test_metadata_like_apply_layer(tmp_path, dest):
    entries = [
        d("bin", 0o755), f("bin/su", b"\x7fELF", 0o4755), f("bin/sg", b"g", 0o2711),
        f("bin/x", b"x" * 100_000, 0o700), link("bin/sh", "su"),
        link("bin/hard", "bin/x", tarfile.LNKTYPE), d("tmp", 0o1777), d("ro", 0o555),
        f("ro/inner", b"i", 0o444), f("user", b"u", 0o640, uid=1000, gid=1000),
        f("dup", b"first"), f("dup", b"second"),  # the later entry wins
    ]
    layer = tmp_path / "l.tar"
    layer.write_bytes(tar_bytes(entries))
    unpack_layer(layer, dest)
    other = tmp_path / "applied"
    other.mkdir()
    apply_layer(layer, other)
    for rel in ("bin", "bin/su", "bin/sg", "bin/x", "bin/sh", "bin/hard", "tmp", "ro",
                "ro/inner", "user", "dup"):
        a, b = os.lstat(dest / rel), os.lstat(other / rel)
        assert (a.st_mode, a.st_uid, a.st_gid, int(a.st_mtime)) == \
               (b.st_mode, b.st_uid, b.st_gid, int(b.st_mtime)), rel
        assert int(a.st_mtime) == MTIME
    assert stat.S_IMODE(os.lstat(dest / "bin/su").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(dest / "tmp").st_mode) == 0o1777
    assert os.lstat(dest / "bin/hard").st_ino == os.lstat(dest / "bin/x").st_ino
    assert (dest / "dup").read_bytes() == b"second"
    if ROOT:
        assert os.lstat(dest / "user").st_uid == 1000


def test_region_of_a_bigger_file(tmp_path, dest):
    data = tar_bytes([d("x"), f("x/a", b"hello" * 1000), link("x/l", "a")])
    blob = tmp_path / "big"
    # the layer sits between other bytes, and has no end-of-archive blocks of its own
    trimmed = data.rstrip(b"\0")
    trimmed += b"\0" * (-len(trimmed) % 512)
    blob.write_bytes(b"J" * 1536 + trimmed + tar_bytes([f("after/evil", b"e")]))
    with open(blob, "rb") as fh:
        unpack_layer(FileRegion(fh, 1536, len(trimmed)), dest)
    assert (dest / "x/a").read_bytes() == b"hello" * 1000
    assert os.readlink(dest / "x/l") == "a"
    assert not (dest / "after").exists()


def test_gzip_bytesio_and_pipe(tmp_path, dest):
    data = tar_bytes([d("x"), f("x/a", b"hello" * 1000)])
    unpack_layer(io.BytesIO(gzip.compress(data)), dest)  # no descriptor: the slow copy
    assert (dest / "x/a").read_bytes() == b"hello" * 1000
    second = tmp_path / "second"
    second.mkdir()
    r, w = os.pipe()
    with os.fdopen(w, "wb") as wf:
        wf.write(data[:60000])
    with os.fdopen(r, "rb") as rf:
        unpack_layer(rf, second)
    assert (second / "x/a").read_bytes() == b"hello" * 1000


def test_truncated_and_not_empty(tmp_path, dest):
    data = tar_bytes([f("a", b"x" * 10_000), f("b", b"y" * 10_000)])
    (tmp_path / "t.tar").write_bytes(data[:6000])
    with pytest.raises(LayerError):
        unpack_layer(tmp_path / "t.tar", dest)
    (dest / "junk").write_text("j")
    (tmp_path / "ok.tar").write_bytes(data)
    with pytest.raises(LayerError, match="not empty"):
        unpack_layer(tmp_path / "ok.tar", dest)


@pytest.mark.parametrize(("entries", "entry", "why"), [
    ([link("lnk", "/etc"), f("lnk/.wh.passwd")], "lnk/.wh.passwd", "symlink"),
    ([f("lnk/.wh.passwd"), link("lnk", "/etc")], "lnk/.wh.passwd", "symlink"),
    ([link("lnk", "/etc"), f("lnk/.wh..wh..opq")], "lnk/.wh..wh..opq", "symlink"),
    ([f("plain", b"p"), f("plain/.wh..wh..opq")], "plain/.wh..wh..opq", "not a directory"),
    ([f("/abs", b"x")], "/abs", "absolute"),
    ([f("a/../../evil", b"x")], "a/../../evil", "'..'"),
    ([link("h", "../x", tarfile.LNKTYPE)], "h", "'..'"),
    ([f("a/.wh..."), ], "a/.wh...", "whiteout"),
])
def test_hostile_refused_nothing_written(tmp_path, dest, entries, entry, why):
    layer = tmp_path / "evil.tar"
    layer.write_bytes(tar_bytes([f("first", b"1"), *entries]))
    with pytest.raises(UnsafeLayer) as info:
        unpack_layer(layer, dest)
    assert repr(entry) in str(info.value) and why in str(info.value)
    assert os.listdir(dest) == []


@root_only
def test_overlay_xattrs_in_the_tar_are_not_applied(tmp_path, dest):
    layer = tmp_path / "l.tar"
    layer.write_bytes(tar_bytes([
        d("x"), f("x/f", b"1", **{"SCHILY.xattr.trusted.overlay.redirect": "/etc",
                                  "SCHILY.xattr.user.keep": "k"}),
    ]))
    stats = unpack_layer(layer, dest)
    assert os.listxattr(dest / "x/f") == ["user.keep"]
    assert stats.xattrs_skipped == 1


@root_only
def test_same_tree_as_gnu_tar(tmp_path, dest):
    """A realistic tree (devices, setuid, hardlinks, symlinks, long names) unpacks exactly as
    `tar -x --numeric-owner --xattrs` does."""
    entries = [d("usr"), d("usr/bin"), f("usr/bin/p", b"\x7fELF" * 3000, 0o4755),
               link("usr/bin/q", "usr/bin/p", tarfile.LNKTYPE), link("usr/bin/r", "p"),
               d("dev")]
    dev = tarfile.TarInfo("dev/null")
    dev.type, dev.devmajor, dev.devminor, dev.mode, dev.mtime = tarfile.CHRTYPE, 1, 3, 0o666, MTIME
    entries += [(dev, None), f("n" * 50 + "/" + "m" * 120, b"long", 0o600, uid=7, gid=9)]
    layer = tmp_path / "l.tar"
    layer.write_bytes(tar_bytes(entries))
    unpack_layer(layer, dest)
    ref = tmp_path / "ref"
    ref.mkdir()
    subprocess.run(["tar", "-xf", str(layer), "-C", str(ref), "--numeric-owner", "--xattrs"],
                   check=True)

    def snapshot(root):
        out = {}
        for dirpath, dirs, files in os.walk(root):
            for n in dirs + files:
                full = os.path.join(dirpath, n)
                st = os.lstat(full)
                body = None
                if stat.S_ISREG(st.st_mode):
                    with open(full, "rb") as fh:
                        body = fh.read()
                out[os.path.relpath(full, root)] = (st.st_mode, st.st_uid, st.st_gid,
                                                    int(st.st_mtime), st.st_nlink, st.st_rdev,
                                                    body)
        return out

    assert snapshot(dest) == snapshot(ref)
