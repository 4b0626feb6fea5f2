"""Unpack limits (sangja.image.layers.UnpackLimits): a layer that would expand past them is
refused with LayerTooLarge, its destination and spool directory left empty."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tarfile

import pytest

from sangja.image.layers import (
    LayerError,
    LayerTooLarge,
    UnpackLimits,
    apply_layer,
    binary_size,
    unpack_layer,
)

MiB = 1 << 20


def _tar(entries: list[tuple[str, int]]) -> bytes:
    """A tar of zero-filled files (name, size)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, size in entries:
            ti = tarfile.TarInfo(name)
            ti.size = size
            tf.addfile(ti, io.BytesIO(b"\0" * size))
    return buf.getvalue()


@pytest.fixture
def dirs(tmp_path):
    dest, spool = tmp_path / "dest", tmp_path / "spool"
    dest.mkdir()
    spool.mkdir()
    return dest, spool


def _refused(src: bytes, dirs, limits: UnpackLimits, match: str) -> str:
    dest, spool = dirs
    with pytest.raises(LayerTooLarge, match=match) as info:
        unpack_layer(io.BytesIO(src), dest, spool_dir=str(spool), limits=limits)
    assert os.listdir(dest) == [] and os.listdir(spool) == []
    return str(info.value)


def test_gzip_bomb_stops_at_max_size(dirs):
    bomb = gzip.compress(_tar([("zeros", 16 * MiB)]))
    assert len(bomb) < 64 << 10
    msg = _refused(bomb, dirs, UnpackLimits(max_size=MiB),
                   r"^expands past 1 MiB \(SANGJA_LAYER_MAX_SIZE=1 MiB\): refused$")
    assert "\n" not in msg


def test_gzip_bomb_stops_at_ratio(dirs):
    bomb = gzip.compress(_tar([("zeros", 16 * MiB)]))
    limits = UnpackLimits(max_ratio=10, ratio_floor=0)
    msg = _refused(bomb, dirs, limits, "SANGJA_LAYER_MAX_RATIO=10 times that")
    assert f"expands past {binary_size(10 * len(bomb))}" in msg


def test_ratio_floor_lets_small_layers_through(dirs):
    bomb = gzip.compress(_tar([("zeros", 2 * MiB)]))
    stats = unpack_layer(io.BytesIO(bomb), dirs[0],
                         limits=UnpackLimits(max_ratio=10, ratio_floor=4 * MiB))
    assert stats.bytes == 2 * MiB


def test_sparse_content_is_bounded(dirs, tmp_path):
    """A sparse entry costs the tar nothing but declares (and would write) its whole size:
    the files must fit the limits too."""
    if not shutil.which("tar"):
        pytest.skip("no GNU tar to make a sparse archive")
    (tmp_path / "src").mkdir()
    with open(tmp_path / "src" / "holes", "wb") as f:
        f.truncate(1 << 40)
    subprocess.run(["tar", "-S", "-cf", str(tmp_path / "sparse.tar"), "-C",
                    str(tmp_path / "src"), "holes"], check=True)
    src = (tmp_path / "sparse.tar").read_bytes()
    assert len(src) < 64 << 10
    _refused(src, dirs, UnpackLimits(), r"^has files adding up to more than 256 MiB")


def test_entries_are_bounded(dirs):
    src = _tar([(f"f{i}", 0) for i in range(50)])
    _refused(src, dirs, UnpackLimits(max_entries=10),
             r"^has more than 10 entries \(see SANGJA_LAYER_MAX_ENTRIES\): refused$")
    assert unpack_layer(io.BytesIO(src), dirs[0], limits=UnpackLimits(max_entries=50)).files == 50


def test_apply_layer_has_the_same_bounds(tmp_path):
    bomb = gzip.compress(_tar([("zeros", 8 * MiB)]))
    with pytest.raises(LayerTooLarge):
        apply_layer(io.BytesIO(bomb), tmp_path, limits=UnpackLimits(max_size=MiB))
    assert os.listdir(tmp_path) == []


def test_limits_from_the_environment():
    assert UnpackLimits.from_env({}) == UnpackLimits()
    got = UnpackLimits.from_env({"SANGJA_LAYER_MAX_SIZE": "8g", "SANGJA_LAYER_MAX_RATIO": "0",
                                 "SANGJA_LAYER_RATIO_FLOOR": "512m",
                                 "SANGJA_LAYER_MAX_ENTRIES": "10"})
    assert got == UnpackLimits(max_size=8 << 30, max_ratio=0, ratio_floor=512 * MiB,
                               max_entries=10)
    assert got.allowed(1) == 8 << 30  # no ratio bound
    for var, bad in (("SANGJA_LAYER_MAX_SIZE", "lots"), ("SANGJA_LAYER_MAX_RATIO", "1.5x"),
                     ("SANGJA_LAYER_MAX_ENTRIES", "-1")):
        with pytest.raises(LayerError, match=var):
            UnpackLimits.from_env({var: bad})


def test_allowed():
    limits = UnpackLimits(max_size=100 * MiB, max_ratio=10, ratio_floor=MiB)
    assert limits.allowed(None) == 100 * MiB
    assert limits.allowed(1000) == MiB  # the floor
    assert limits.allowed(2 * MiB) == 20 * MiB
    assert limits.allowed(50 * MiB) == 100 * MiB  # the absolute bound


# ---------------------------------------------------------------------------- igzip


@pytest.fixture(params=["zlib", "igzip"])
def inflater(request, monkeypatch):
    """Both gzip decoders: zlib in-process, and igzip (ISA-L) in a process of its own."""
    if request.param == "igzip":
        if shutil.which("igzip") is None:
            pytest.skip("igzip (Debian's isal) not installed")
        monkeypatch.delenv("SANGJA_IGZIP", raising=False)
    else:
        monkeypatch.setenv("SANGJA_IGZIP", "0")
    return request.param


def test_gzip_decoders_agree(inflater):
    from sangja.image import layers

    data = os.urandom(3 * MiB) + b"\0" * (5 * MiB)
    two = gzip.compress(data[:MiB]) + gzip.compress(data[MiB:])  # concatenated members
    out = io.BytesIO()
    layers.decompress("gzip", io.BytesIO(two).read, out.write)
    assert out.getvalue() == data
    with pytest.raises(LayerError, match="corrupt gzip data in layer"):
        layers.decompress("gzip", io.BytesIO(two[:len(two) // 2]).read, out.write)
    # a failing source is reported as itself, not as a broken stream
    src = io.BytesIO(two)

    def broken(n):
        if src.tell() > MiB:
            raise OSError("the download broke")
        return src.read(n)

    with pytest.raises(OSError, match="the download broke"):
        layers.decompress("gzip", broken, out.write)


def test_gzip_bomb_refused_by_both_decoders(dirs, inflater):
    bomb = gzip.compress(_tar([("zeros", 16 * MiB)]))
    _refused(bomb, dirs, UnpackLimits(max_size=MiB), "expands past 1 MiB")
