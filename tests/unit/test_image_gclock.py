"""The store's gc lock: shared for writers, exclusive for collectors, nesting and conversion.

flock(2) locks of different open file descriptions conflict even inside one process, so a
second descriptor of gc.lock probes what another process would be allowed to take."""

from __future__ import annotations

import fcntl
import os

import pytest

from sangja.image.gclock import GCLock, lock_for


def can(path: str, op: int) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.fixture
def lock(tmp_path):
    lk = GCLock(str(tmp_path))
    yield lk
    lk.close()


def test_shared_admits_writers_not_collectors(lock):
    with lock.shared():
        assert lock.mode == "shared"
        assert can(lock.path, fcntl.LOCK_SH) and not can(lock.path, fcntl.LOCK_EX)
        with lock.shared():  # nests
            assert lock.mode == "shared"
        assert not can(lock.path, fcntl.LOCK_EX)
    assert lock.mode is None and can(lock.path, fcntl.LOCK_EX)


def test_exclusive_admits_nobody_and_nests(lock):
    with lock.exclusive():
        assert not can(lock.path, fcntl.LOCK_SH)
        with lock.shared(), lock.exclusive():  # anything nests inside exclusive
            assert lock.mode == "exclusive"
        assert lock.mode == "exclusive" and not can(lock.path, fcntl.LOCK_SH)
    assert can(lock.path, fcntl.LOCK_EX)


def test_exclusive_inside_shared_converts_and_back(lock):
    with lock.shared():
        with lock.exclusive():
            assert lock.mode == "exclusive" and not can(lock.path, fcntl.LOCK_SH)
        assert lock.mode == "shared"
        assert can(lock.path, fcntl.LOCK_SH) and not can(lock.path, fcntl.LOCK_EX)
    assert can(lock.path, fcntl.LOCK_EX)


def test_released_on_error(lock):
    with pytest.raises(RuntimeError), lock.shared(), lock.exclusive():
        raise RuntimeError("boom")
    assert lock.mode is None and can(lock.path, fcntl.LOCK_EX)


def test_one_handle_per_root(tmp_path):
    os.symlink(tmp_path, tmp_path.parent / (tmp_path.name + "-link"))
    assert lock_for(str(tmp_path)) is lock_for(str(tmp_path.parent / (tmp_path.name + "-link")))
    assert lock_for(str(tmp_path)) is not lock_for(str(tmp_path / "other"))


def test_store_write_paths_hold_it(tmp_path, monkeypatch):
    """import_rootfs holds the lock shared while it writes; rmi takes it exclusive."""
    from sangja.image.store import ImageStore

    store = ImageStore(tmp_path / "root")
    seen = []
    real_put = store.blobs.put

    def put(*a, **kw):
        seen.append((store.lock.mode, can(store.lock.path, fcntl.LOCK_EX)))
        return real_put(*a, **kw)

    monkeypatch.setattr(store.blobs, "put", put)
    fs = tmp_path / "fs"
    (fs / "etc").mkdir(parents=True)
    (fs / "etc" / "x").write_text("x")
    image_id = store.import_rootfs(fs)
    assert seen and all(s == ("shared", False) for s in seen)
    real_delete = store.blobs.delete
    modes = []

    def delete(digest):
        modes.append((store.lock.mode, can(store.lock.path, fcntl.LOCK_SH)))
        return real_delete(digest)

    monkeypatch.setattr(store.blobs, "delete", delete)
    store.remove(image_id)
    assert modes and all(m == ("exclusive", False) for m in modes)
    store.close()
