"""Unit tests for sangja.image.blobs (no root needed)."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import signal
import time

import pytest

from sangja.image.blobs import (
    BlobStore,
    BlobUnknown,
    Descriptor,
    DigestMismatch,
    InvalidDigest,
    parse_digest,
)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha_dir_entries(root) -> list[str]:
    return sorted(os.listdir(os.path.join(root, "blobs", "sha256")))


def tmp_entries(root) -> list[str]:
    return sorted(os.listdir(os.path.join(root, "blobs", "tmp")))


def test_put_get_verify(tmp_path):
    store = BlobStore(tmp_path)
    data = b"hello blob\n" * 1000
    desc = store.put(data)
    assert desc == Descriptor(sha(data), len(data))
    assert store.exists(desc.digest)
    assert store.size(desc.digest) == len(data)
    with store.open(desc.digest) as f:
        assert f.read() == data
    assert store.path(desc.digest) == os.path.join(
        tmp_path, "blobs", "sha256", desc.digest.split(":")[1]
    )
    assert store.verify(desc.digest)
    assert list(store.digests()) == [desc.digest]
    assert tmp_entries(tmp_path) == []


def test_put_fileobj_with_expected(tmp_path):
    store = BlobStore(tmp_path)
    data = os.urandom(3 * 1024 * 1024 + 17)
    desc = store.put(io.BytesIO(data), expected_digest=sha(data), expected_size=len(data))
    assert desc.digest == sha(data) and desc.size == len(data)
    assert store.verify(desc.digest)


def test_sha512(tmp_path):
    store = BlobStore(tmp_path)
    data = b"x" * 100
    d = "sha512:" + hashlib.sha512(data).hexdigest()
    assert store.put(data, expected_digest=d).digest == d
    assert store.verify(d)
    assert d in set(store.digests())


def test_wrong_digest_refused_and_nothing_left(tmp_path):
    store = BlobStore(tmp_path)
    wrong = sha(b"something else")
    with pytest.raises(DigestMismatch) as ei:
        store.put(b"content", expected_digest=wrong)
    assert wrong in str(ei.value) and sha(b"content") in str(ei.value)
    assert isinstance(ei.value, ValueError)
    with pytest.raises(DigestMismatch):
        store.put(b"content", expected_size=3)
    with pytest.raises(DigestMismatch):
        store.put(b"content", expected_size=100)
    assert sha_dir_entries(tmp_path) == []
    assert tmp_entries(tmp_path) == []
    assert not store.exists(wrong)


def test_put_twice_idempotent(tmp_path):
    store = BlobStore(tmp_path)
    a = store.put(b"same")
    b = store.put(io.BytesIO(b"same"))
    assert a == b
    assert sha_dir_entries(tmp_path) == [a.digest.split(":")[1]]
    assert tmp_entries(tmp_path) == []


@pytest.mark.parametrize(
    "bad",
    [
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:../../etc/passwd",
        "sha256:" + "a" * 64 + "/x",
        "md5:" + "a" * 32,
        "sha512:" + "a" * 64,
        "a" * 64,
        "",
        None,
    ],
)
def test_invalid_digests_rejected(tmp_path, bad):
    store = BlobStore(tmp_path)
    with pytest.raises(InvalidDigest):
        parse_digest(bad)
    with pytest.raises(InvalidDigest):
        store.path(bad)
    with pytest.raises(InvalidDigest):
        store.delete(bad)


def test_delete_missing_and_verify_corrupt(tmp_path):
    store = BlobStore(tmp_path)
    d = store.put(b"abc").digest
    path = store.path(d)
    os.chmod(path, 0o644)
    with open(path, "wb") as f:
        f.write(b"abd")
    assert not store.verify(d)
    assert store.delete(d)
    assert not store.delete(d)
    assert not store.exists(d)
    assert not store.verify(d)
    with pytest.raises(BlobUnknown):
        store.open(d)
    with pytest.raises(BlobUnknown):
        store.size(d)


def _put_worker(root: str, seed: int, shared: bytes) -> tuple[str, str]:
    store = BlobStore(root)
    a = store.put(io.BytesIO(shared), expected_digest=sha(shared)).digest
    own = (b"%d-" % seed) * 200_000
    b = store.put(own).digest
    return a, b


def test_concurrent_puts(tmp_path):
    shared = os.urandom(4 * 1024 * 1024)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8) as pool:
        results = pool.starmap(_put_worker, [(str(tmp_path), i, shared) for i in range(8)])
    store = BlobStore(tmp_path)
    assert {a for a, _ in results} == {sha(shared)}
    owns = {b for _, b in results}
    assert len(owns) == 8
    assert set(store.digests()) == owns | {sha(shared)}
    for d in store.digests():
        assert store.verify(d)
    assert tmp_entries(tmp_path) == []


class _SlowReader(io.RawIOBase):
    """Returns one chunk, then signals the parent and hangs forever."""

    def __init__(self, ready_fd: int):
        self.ready_fd = ready_fd
        self.calls = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        self.calls += 1
        if self.calls == 1:
            return b"y" * (1 << 20)
        os.write(self.ready_fd, b"1")
        time.sleep(600)
        return b""


def _crash_mid_put(tmp_path) -> BlobStore:
    store = BlobStore(tmp_path)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: start a big put and hang in the middle of it
        try:
            os.close(r)
            BlobStore(tmp_path).put(_SlowReader(w))
        finally:
            os._exit(1)
    os.close(w)
    try:
        assert os.read(r, 1) == b"1"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
    assert sha_dir_entries(tmp_path) == []
    assert list(store.digests()) == []
    return store


def test_crash_mid_put_leaves_nothing(tmp_path):
    """The temp file is unnamed (O_TMPFILE): a killed writer leaves no trace."""
    _crash_mid_put(tmp_path)
    assert tmp_entries(tmp_path) == []


def test_crash_mid_put_without_tmpfile_leaves_only_temp(tmp_path, monkeypatch):
    """Without O_TMPFILE (here: no /proc to link it in through) a named temp file is left,
    which cleanup_temp collects once it is old."""
    from sangja.image import blobs

    monkeypatch.setattr(blobs, "_HAVE_PROC_FD", False)
    store = _crash_mid_put(tmp_path)
    leftovers = tmp_entries(tmp_path)
    assert len(leftovers) == 1
    assert store.cleanup_temp(older_than_seconds=3600) == 0  # too fresh to touch
    old = time.time() - 7200
    os.utime(os.path.join(tmp_path, "blobs", "tmp", leftovers[0]), (old, old))
    assert store.cleanup_temp(older_than_seconds=3600) == 1
    assert tmp_entries(tmp_path) == []


def test_put_without_tmpfile(tmp_path, monkeypatch):
    from sangja.image import blobs

    monkeypatch.setattr(blobs, "_HAVE_PROC_FD", False)
    store = BlobStore(tmp_path)
    d = store.put(b"named temp")
    assert store.read_bytes(d.digest) == b"named temp" and tmp_entries(tmp_path) == []
