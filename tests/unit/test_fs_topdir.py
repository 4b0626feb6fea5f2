"""sangja.fs.mark_top_dir: the layers directory gets ext4's top-directory flag (chattr +T),
so that each layer unpacked in it is placed in a block group of its own."""

import subprocess

import pytest

from sangja.fs import mark_top_dir


def _attrs(path) -> str:
    r = subprocess.run(["lsattr", "-d", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"lsattr: {r.stderr.strip()}")
    return r.stdout.split()[0]


def test_marks_a_directory_once(tmp_path):
    d = tmp_path / "layers"
    d.mkdir()
    if subprocess.run(["chattr", "-T", str(d)], capture_output=True).returncode != 0:
        pytest.skip("the filesystem has no inode flags")
    assert "T" not in _attrs(d)
    mark_top_dir(str(d))
    assert "T" in _attrs(d)
    mark_top_dir(str(d))  # idempotent
    assert "T" in _attrs(d)


def test_never_through_a_symlink_and_never_fails(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    if subprocess.run(["chattr", "-T", str(target)], capture_output=True).returncode != 0:
        pytest.skip("the filesystem has no inode flags")
    (tmp_path / "link").symlink_to(target)
    mark_top_dir(str(tmp_path / "link"))
    mark_top_dir(str(tmp_path / "missing"))
    assert "T" not in _attrs(target)
