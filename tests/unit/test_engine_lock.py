"""Engine.locked when the container is removed while the caller waits for its lock.

The race (seen once in a full run): `rm` holds the lock, deletes the record and then the
directory (files first, then rmdir). A command that read the record before that opens the
lock file with O_CREAT; landing between rm's unlink of `lock` and its rmdir, it puts the
file back, so rm's rmdir fails and the directory stays. The waiter, once it holds the lock
and finds the record gone, must take the directory back."""

from __future__ import annotations

import os

import pytest

from sangja.engine.containers import Engine
from sangja.engine.paths import Paths
from sangja.engine.records import NoSuchContainer

CID = "c" * 64


class _RemovedWhileWaiting:
    """A records db whose container is there at the first read, gone at the next (the
    removal happened while the caller waited for the lock)."""

    def __init__(self) -> None:
        self.reads = 0

    def get(self, ref: str) -> dict:
        self.reads += 1
        if self.reads == 1:
            return {"id": CID}
        raise NoSuchContainer(ref)


def _engine(tmp_path) -> Engine:
    eng = Engine.__new__(Engine)  # only what locked() uses: the records and the paths
    eng._db = _RemovedWhileWaiting()  # the records db: its get() only
    eng.paths = Paths(str(tmp_path / "root"), str(tmp_path / "run"))
    return eng


def test_a_waiter_takes_back_the_directory_its_lock_file_kept(tmp_path):
    eng = _engine(tmp_path)
    os.makedirs(eng.paths.container_dir(CID))
    # what is left after rm's rmtree lost the race: the lock file the waiter put back
    open(eng.paths.lock_path(CID), "w").close()
    with pytest.raises(NoSuchContainer):
        with eng.locked(CID):
            pass
    assert not os.path.exists(eng.paths.container_dir(CID))


def test_a_waiter_whose_directory_went_first_leaves_nothing(tmp_path):
    """The directory was gone before the open: made again for the lock, then taken back."""
    eng = _engine(tmp_path)
    os.makedirs(os.path.dirname(eng.paths.container_dir(CID)))
    with pytest.raises(NoSuchContainer):
        with eng.locked(CID):
            pass
    assert os.listdir(os.path.dirname(eng.paths.container_dir(CID))) == []
