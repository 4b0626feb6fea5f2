"""unpack_stream: a layer unpacked in one pass while it streams in (what pull does) gives the
same tree as the two-pass unpack_layer, refuses the same hostile entries (never writing
outside dest: the caller throws dest away), holds the same limits, and passes every byte of
the stream, padding included, to ``seen`` (the diff_id's hash)."""

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile

import pytest
from tarentries import MTIME, d, f, hard, link, tar_bytes

from sangja.image.layers import (
    LayerError,
    LayerTooLarge,
    UnpackLimits,
    UnsafeLayer,
    decompressed,
    unpack_layer,
    unpack_stream,
)

ROOT = os.geteuid() == 0
MiB = 1 << 20


@pytest.fixture(params=["zlib", "igzip"])
def inflater(request, monkeypatch):
    if request.param == "igzip":
        if shutil.which("igzip") is None:
            pytest.skip("igzip (Debian's isal) not installed")
        monkeypatch.delenv("SANGJA_IGZIP", raising=False)
    else:
        monkeypatch.setenv("SANGJA_IGZIP", "0")
    return request.param


def _dirs(tmp_path, *names):
    out = []
    for n in names:
        p = tmp_path / n
        p.mkdir()
        out.append(p)
    return out


def _stream(data: bytes, dest, limits=None, given=None, gz=True):
    """Unpack `data` (gzip-compressed first unless gz=False) as pull does; return
    (stats, sha256 of what went through seen)."""
    sha = hashlib.sha256()
    src = gzip.compress(data) if gz else data
    with decompressed("gzip" if gz else "none", io.BytesIO(src).read) as read:
        stats = unpack_stream(read, dest, given=len(src) if given is None else given,
                              limits=limits, seen=sha.update)
    return stats, sha.hexdigest()


def _snapshot(root, entries):
    """Every path's metadata and content; the mtime only of those the layer lists (the
    directories and whiteouts made for it carry the time they were made)."""
    listed = {ti.name for ti, _ in entries}
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            full = os.path.join(dirpath, n)
            st = os.lstat(full)
            body = None
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as fh:
                    body = fh.read()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(full)
            xattrs = sorted((k, os.getxattr(full, k, follow_symlinks=False))
                            for k in os.listxattr(full, follow_symlinks=False))
            rel = os.path.relpath(full, root)
            out[rel] = (st.st_mode, st.st_uid, st.st_gid,
                        int(st.st_mtime) if rel in listed else None, st.st_nlink,
                        st.st_rdev, body, xattrs)
    return out


def test_same_tree_as_unpack_layer(tmp_path, inflater):
    entries = [
        d("bin", 0o755), f("bin/su", b"\x7fELF", 0o4755), f("bin/x", os.urandom(3 * MiB),
                                                                  0o700),
        link("bin/sh", "su"), hard("bin/hard", "bin/x"), d("tmp", 0o1777), d("ro", 0o555),
        f("ro/inner", b"i", 0o444), f("user", b"u", 0o640, uid=1000, gid=1000),
        f("dup", b"first"), f("dup", b"second"),
        f("a/.wh.gone"), f(".wh.top"), d("o"), f("o/.wh..wh..opq"), f("o/new", b"n"),
        f("p/.wh..wh..opq"), f("a/.wh.back"), f("a/back", b"again"),
        f("n" * 120 + "/" + "m" * 150, b"long", 0o600, uid=7, gid=9),
        f("x/attr", b"1", **{"SCHILY.xattr.user.keep": "k"}),
        *[f(f"many/{i}", b"%d" % i * (i % 700)) for i in range(300)],
    ]
    data = tar_bytes(entries)
    two, one = _dirs(tmp_path, "two", "one")
    expected = unpack_layer(io.BytesIO(data), two)
    stats, digest = _stream(data, one)
    assert _snapshot(one, entries) == _snapshot(two, entries)
    assert stats == expected
    assert digest == hashlib.sha256(data).hexdigest()  # the end-of-archive padding too


def test_seen_covers_trailing_bytes(tmp_path):
    data = tar_bytes([f("a", b"x")]) + b"\0" * 100_000  # padding past the end blocks
    (dest,) = _dirs(tmp_path, "dest")
    _, digest = _stream(data, dest, gz=False)
    assert digest == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(("entries", "entry", "why"), [
    ([link("lnk", "OUT"), f("lnk/passwd", b"owned")], "lnk/passwd", "symlink"),
    ([link("lnk", "OUT"), f("lnk/.wh.passwd")], "lnk/.wh.passwd", "symlink"),
    ([link("lnk", "OUT"), f("lnk/.wh..wh..opq")], "lnk/.wh..wh..opq", "symlink"),
    ([d("lnk"), link("lnk", "OUT"), f("lnk/x", b"owned")], "lnk/x", "symlink"),
    ([link("lnk", "OUT"), hard("h", "lnk/target")], "h", "symlink"),
    ([f("plain", b"p"), f("plain/.wh..wh..opq")], "plain/.wh..wh..opq", "not a directory"),
    ([f("/abs", b"x")], "/abs", "absolute"),
    ([f("a/../../evil", b"x")], "a/../../evil", "'..'"),
    ([hard("h", "../x")], "h", "'..'"),
    ([hard("h", "missing")], "h", "does not exist"),
    ([f("a/.wh..."), ], "a/.wh...", "whiteout"),
])
def test_hostile_refused_nothing_outside(tmp_path, entries, entry, why):
    dest, outside = _dirs(tmp_path, "dest", "outside")
    (outside / "target").write_text("t")
    fixed = []
    for ti, data in entries:  # "OUT": the absolute path of a directory outside dest
        if ti.linkname == "OUT":
            ti.linkname = str(outside)
        fixed.append((ti, data))
    with pytest.raises(UnsafeLayer) as info:
        _stream(tar_bytes([f("first", b"1"), *fixed]), dest)
    assert repr(entry) in str(info.value) and why in str(info.value)
    assert sorted(os.listdir(outside)) == ["target"]
    assert (outside / "target").read_text() == "t"
    assert os.stat(outside / "target").st_nlink == 1


def test_limits(tmp_path, inflater):
    """The stream itself is bounded (here: zeros after the archive's end, which no header
    declares), and so are the entries."""
    dest = tmp_path / "dest"
    padded = tar_bytes([f("a", b"a")]) + b"\0" * (16 * MiB)
    for data, limits, match in (
            (padded, UnpackLimits(max_size=MiB), r"^expands past 1 MiB \(SANGJA_LAYER_MAX_SIZE"),
            (padded, UnpackLimits(max_ratio=10, ratio_floor=MiB), "SANGJA_LAYER_MAX_RATIO=10"),
            (tar_bytes([f(f"e{i}") for i in range(10)]), UnpackLimits(max_entries=5),
             "more than 5 entries")):
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        with pytest.raises(LayerTooLarge, match=match):
            _stream(data, dest, limits=limits)


def test_declared_content_bounded_before_written(tmp_path):
    """A member declaring more than the bound is refused before its data is read."""
    (dest,) = _dirs(tmp_path, "dest")
    data = tar_bytes([f("small", b"s"), f("big", b"\0" * (2 * MiB))])
    with pytest.raises(LayerTooLarge, match="has files adding up to more than"):
        _stream(data, dest, limits=UnpackLimits(max_size=MiB + 4096 * 3), gz=False)
    assert not (dest / "big").exists()


def test_truncated_and_corrupt(tmp_path, inflater):
    data = tar_bytes([f("a", os.urandom(200_000)), f("b", os.urandom(200_000))])
    src = gzip.compress(data)
    for bad in (src[:len(src) // 2], src[:100] + b"\xff" * 50 + src[150:]):
        dest = tmp_path / f"d{len(bad)}"
        dest.mkdir()
        with pytest.raises(LayerError):  # noqa: PT012
            with decompressed("gzip", io.BytesIO(bad).read) as read:
                unpack_stream(read, dest, given=len(bad))
    dest = tmp_path / "plain"
    dest.mkdir()
    with pytest.raises(LayerError, match="unexpected end of data"):
        _stream(data[:300_000], dest, gz=False)


def test_huge_pax_header_refused(tmp_path):
    """A pax header is read into memory whole: one of more than 16 MiB is refused (it
    compresses to almost nothing)."""
    (dest,) = _dirs(tmp_path, "dest")
    data = tar_bytes([f("a", b"a", comment="x" * (17 << 20))])
    with pytest.raises(LayerError, match="a header of more than"):
        _stream(data, dest)


def test_not_empty(tmp_path):
    (dest,) = _dirs(tmp_path, "dest")
    (dest / "junk").write_text("j")
    with pytest.raises(LayerError, match="not empty"):
        _stream(tar_bytes([f("a")]), dest)


def test_sparse_member(tmp_path):
    """GNU tar's sparse members are read forward, holes as zeros."""
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as fh:
        fh.seek(3 * MiB)
        fh.write(b"end")
        fh.seek(MiB)
        fh.write(b"middle")
    tar = tmp_path / "s.tar"
    subprocess.run(["tar", "--sparse", "--format=posix", "-cf", str(tar), "-C", str(src),
                    "sparse"], check=True)
    with tarfile.open(tar) as tf:
        assert tf.getmember("sparse").sparse is not None
    (dest,) = _dirs(tmp_path, "dest")
    _stream(tar.read_bytes(), dest)
    assert (dest / "sparse").read_bytes() == (src / "sparse").read_bytes()


@pytest.mark.skipif(not ROOT, reason="needs root (ownership)")
def test_owners_kept(tmp_path):
    (dest,) = _dirs(tmp_path, "dest")
    _stream(tar_bytes([f("u", b"u", 0o4750, uid=1000, gid=1001)]), dest)
    st = os.lstat(dest / "u")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), int(st.st_mtime)) == \
           (1000, 1001, 0o4750, MTIME)
