"""Snapshotter: overlay root filesystems over layer directories, and the copy fallback."""

from __future__ import annotations

import os
import stat

import pytest
from fstree import mounts_under, unmount_all_under

from sangja.image.snapshots import FORCE_COPY_ENV, SnapshotError, Snapshotter
from sangja.linux.mounts import umount2


@pytest.fixture
def root(tmp_path):
    """A snapshot root; teardown unmounts anything left under tmp_path, even on failure."""
    yield tmp_path / "store"
    unmount_all_under(tmp_path)


def _write(path, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _read(path) -> str:
    with open(path) as f:
        return f.read()


@pytest.fixture
def layers(tmp_path):
    l1 = tmp_path / "layers" / "1"
    l2 = tmp_path / "layers" / "2"
    _write(l1 / "a" / "file1", "one")
    os.makedirs(l1 / "dir" / "x")
    _write(l1 / "dir" / "keep", "kept")
    os.symlink("a/file1", l1 / "link")
    _write(l1 / "hard1", "hard")
    os.link(l1 / "hard1", l1 / "hard2")
    os.chown(l1 / "a" / "file1", 1234, 5678)
    os.chmod(l1 / "a" / "file1", 0o640)
    _write(l2 / "a" / "file1", "two")
    os.makedirs(l2 / "dir")
    os.mknod(l2 / "dir" / "x", stat.S_IFCHR | 0o600, os.makedev(0, 0))  # overlay whiteout
    _write(l2 / "b" / "file2", "file2")
    return [str(l1), str(l2)]


def _snapshot(layers: list[str]) -> dict[str, tuple]:
    """Everything about a tree that both snapshot kinds must agree on."""
    out = {}
    for layer in layers:
        for dirpath, dirnames, filenames in os.walk(layer):
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                out[os.path.relpath(p, layer)] = os.lstat(p)
    return out


def _check_view(merged: str) -> None:
    assert _read(os.path.join(merged, "a", "file1")) == "two"
    assert _read(os.path.join(merged, "b", "file2")) == "file2"
    assert _read(os.path.join(merged, "dir", "keep")) == "kept"
    assert not os.path.lexists(os.path.join(merged, "dir", "x"))
    assert os.readlink(os.path.join(merged, "link")) == "a/file1"
    h1 = os.lstat(os.path.join(merged, "hard1"))
    h2 = os.lstat(os.path.join(merged, "hard2"))
    assert (h1.st_ino, h1.st_dev) == (h2.st_ino, h2.st_dev)


@pytest.mark.parametrize("force_copy", [False, True], ids=["overlay", "copy"])
def test_prepare_view_write_remove(root, layers, force_copy):
    before = _snapshot(layers)
    snap = Snapshotter(str(root), force_copy=force_copy)
    merged = snap.prepare("c1", layers)
    assert merged == os.path.join(str(root), "overlay", "c1", "merged")
    assert snap.mounted("c1") is (not force_copy)
    assert snap.kind("c1") == ("copy" if force_copy else "overlay")
    _check_view(merged)
    # the lower owner/mode survive (file1 from layer2 is root-owned 0644 by default)
    st = os.stat(os.path.join(merged, "hard1"))
    assert stat.S_IMODE(st.st_mode) == stat.S_IMODE(os.stat(os.path.join(layers[0],
                                                                           "hard1")).st_mode)

    _write(os.path.join(merged, "new"), "new")
    _write(os.path.join(merged, "a", "file1"), "changed")
    os.unlink(os.path.join(merged, "b", "file2"))
    assert _read(os.path.join(merged, "a", "file1")) == "changed"
    if not force_copy:
        upper = snap.diff_dir("c1")
        assert _read(os.path.join(upper, "new")) == "new"
        assert _read(os.path.join(upper, "a", "file1")) == "changed"
        wh = os.lstat(os.path.join(upper, "b", "file2"))
        assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    else:
        with pytest.raises(SnapshotError):
            snap.diff_dir("c1")
    after = _snapshot(layers)
    assert after.keys() == before.keys()
    for k in before:
        assert (after[k].st_ino, after[k].st_size, after[k].st_mtime_ns) == (
            before[k].st_ino, before[k].st_size, before[k].st_mtime_ns), k

    # prepare again is a no-op returning the same root
    assert snap.prepare("c1", layers) == merged
    assert len(mounts_under(root)) == (0 if force_copy else 1)

    snap.remove("c1")
    assert not mounts_under(root)
    assert not os.path.lexists(os.path.join(str(root), "overlay", "c1"))
    assert not snap.mounted("c1")
    snap.remove("c1")  # idempotent
    snap.remove("never-made")
    assert _read(os.path.join(layers[1], "a", "file1")) == "two"


def test_copy_keeps_owner_and_mode(root, layers):
    snap = Snapshotter(str(root), force_copy=True)
    merged = snap.prepare("c", [layers[0]])
    st = os.lstat(os.path.join(merged, "a", "file1"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o640)
    snap.remove("c")


def test_force_copy_env(root, layers, monkeypatch):
    monkeypatch.setenv(FORCE_COPY_ENV, "1")
    snap = Snapshotter(str(root))
    merged = snap.prepare("c", layers)
    assert snap.kind("c") == "copy" and not snap.mounted("c")
    _check_view(merged)
    snap.remove("c")
    assert not os.path.lexists(os.path.join(str(root), "overlay", "c"))


def test_opaque_dir(root, tmp_path):
    l1 = tmp_path / "o1"
    l2 = tmp_path / "o2"
    _write(l1 / "d" / "old", "old")
    _write(l2 / "d" / "new", "new")
    os.setxattr(l2 / "d", "trusted.overlay.opaque", b"y")
    for force in (False, True):
        snap = Snapshotter(str(root), force_copy=force)
        merged = snap.prepare(f"c{force}", [str(l1), str(l2)])
        assert sorted(os.listdir(os.path.join(merged, "d"))) == ["new"], force
        snap.remove(f"c{force}")


def test_128_layers(root, tmp_path):
    # long layer paths, so the absolute spelling cannot fit in a page
    base = tmp_path / ("layers-with-a-long-directory-name-" + "x" * 60)
    layers = []
    for i in range(128):
        d = base / f"layer-{i:03d}"
        _write(d / "files" / f"f{i:03d}", str(i))
        layers.append(str(d))
    snap = Snapshotter(str(root))
    data, relative = snap.overlay_options("big", layers)
    assert relative and len(data) < 4096
    merged = snap.prepare("big", layers)
    assert snap.mounted("big")
    names = sorted(os.listdir(os.path.join(merged, "files")))
    assert names == [f"f{i:03d}" for i in range(128)]
    assert _read(os.path.join(merged, "files", "f127")) == "127"
    # short links are stable and reused
    links = sorted(os.listdir(os.path.join(str(root), "overlay", "l")))
    assert len(links) == 128 and all(len(n) == 8 for n in links)
    snap.prepare("big2", layers)
    assert sorted(os.listdir(os.path.join(str(root), "overlay", "l"))) == links
    snap.remove("big")
    snap.remove("big2")
    assert not mounts_under(root)

    copy = Snapshotter(str(root), force_copy=True)
    merged = copy.prepare("big3", layers)
    assert len(os.listdir(os.path.join(merged, "files"))) == 128
    copy.remove("big3")


def test_short_link_collision(root, tmp_path):
    snap = Snapshotter(str(root))
    a = tmp_path / "A"
    os.makedirs(a)
    name = snap._short_link(str(a))
    # someone else's layer took that name: the next candidate is used, stably
    link = os.path.join(str(root), "overlay", "l", name)
    os.unlink(link)
    os.symlink("/somewhere/else", link)
    other = snap._short_link(str(a))
    assert other != name and len(other) == 8
    assert snap._short_link(str(a)) == other
    assert os.readlink(os.path.join(str(root), "overlay", "l", other)) == str(a)


def test_empty_layer_list(root):
    for force in (False, True):
        snap = Snapshotter(str(root), force_copy=force)
        merged = snap.prepare("e", [])
        assert os.listdir(merged) == []
        _write(os.path.join(merged, "x"), "x")
        assert os.listdir(os.path.join(str(root), "overlay", "empty")) == []
        snap.remove("e")


def test_remove_refuses_or_unmounts_nested(root, layers, tmp_path):
    snap = Snapshotter(str(root))
    merged = snap.prepare("c", layers)
    # a bind mount inside the container root (as a runtime would leave one) is unmounted too
    from sangja.linux.mounts import MS_BIND, mount

    src = tmp_path / "bindsrc"
    _write(src / "precious", "keep me")
    os.makedirs(os.path.join(merged, "mnt"), exist_ok=True)
    mount(str(src), os.path.join(merged, "mnt"), None, MS_BIND)
    snap.remove("c")
    assert not mounts_under(root)
    assert _read(src / "precious") == "keep me"


def test_invalid_ids(root):
    snap = Snapshotter(str(root))
    for bad in ("", ".", "..", "a/b", "l", "a,b", "a:b"):
        with pytest.raises(SnapshotError):
            snap.prepare(bad, [])


def test_nested_on_overlay_falls_back_to_copy(root, tmp_path, layers):
    # the store itself on overlayfs: overlay refuses such an upperdir, so a copy is made
    from sangja.linux.mounts import mount

    for d in ("lo", "up", "wk", "m"):
        os.makedirs(tmp_path / "outer" / d)
    o = tmp_path / "outer"
    mount("overlay", str(o / "m"), "overlay", 0,
          f"lowerdir={o / 'lo'},upperdir={o / 'up'},workdir={o / 'wk'}")
    snap = Snapshotter(str(o / "m" / "store"))
    merged = snap.prepare("c", layers)
    if snap.kind("c") == "overlay":  # a kernel that allows it: still a correct view
        assert snap.mounted("c")
    else:
        assert snap.kind("c") == "copy" and not snap.mounted("c")
    _check_view(merged)
    snap.remove("c")
    assert not os.path.lexists(o / "m" / "store" / "overlay" / "c")
    umount2(str(o / "m"))
