"""Unit tests for sangja.image.db (no root needed)."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sqlite3

import pytest

from sangja.image.db import (
    SCHEMA_VERSION,
    AmbiguousImage,
    Database,
    DatabaseError,
    ImageNotFound,
    Layer,
)


def dg(s: str) -> str:
    return "sha256:" + hashlib.sha256(s.encode()).hexdigest()


@pytest.fixture
def db(tmp_path):
    d = Database(tmp_path / "images.db")
    yield d
    d.close()


def test_schema_created(tmp_path, db):
    c = db.conn
    assert db.schema_version() == SCHEMA_VERSION >= 1
    tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"images", "tags", "layers", "image_layers", "image_blobs"} <= tables
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert c.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert c.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    # reopening does not migrate again or lose data
    db.add_image(dg("cfg"))
    with Database(tmp_path / "images.db") as again:
        assert again.schema_version() == SCHEMA_VERSION
        assert [i.id for i in again.images()] == [dg("cfg")]


def test_newer_schema_refused(tmp_path):
    p = tmp_path / "x.db"
    conn = sqlite3.connect(p)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(DatabaseError, match="newer"):
        Database(p)


def test_add_tag_resolve(db):
    img = db.add_image(
        dg("cfg1"),
        manifest_digest=dg("man1"),
        layers=[Layer(dg("d1"), dg("b1"), 10), Layer(dg("d2"), dg("b2"), 20)],
        created="2024-01-01T00:00:00Z",
        size=30,
        architecture="amd64",
        os="linux",
    )
    assert img.layers == (dg("d1"), dg("d2"))
    db.tag("docker.io/library/busybox:latest", img.id)
    assert db.resolve("docker.io/library/busybox:latest").id == img.id
    assert db.resolve(img.id).tags == ("docker.io/library/busybox:latest",)
    hexid = img.id.split(":")[1]
    assert db.resolve(hexid[:12]).id == img.id
    assert db.resolve("sha256:" + hexid[:20]).id == img.id
    with pytest.raises(ImageNotFound):
        db.resolve(hexid[:11])  # too short to count as a prefix
    with pytest.raises(ImageNotFound):
        db.resolve("nope:latest")
    with pytest.raises(ImageNotFound):
        db.tag("x:y", dg("missing"))
    # retag moves the name
    other = db.add_image(dg("cfg2"))
    db.tag("docker.io/library/busybox:latest", other.id)
    assert db.resolve("docker.io/library/busybox:latest").id == other.id
    assert db.untag("docker.io/library/busybox:latest") == other.id
    with pytest.raises(ImageNotFound):
        db.untag("docker.io/library/busybox:latest")
    # re-adding an image keeps its tags
    db.tag("keep:me", img.id)
    db.add_image(img.id, size=99)
    assert db.resolve("keep:me").size == 99


def test_prefix_ambiguity(db):
    # find two ids sharing a 12-hex-digit prefix by construction (ids are just digests)
    a = "sha256:" + "abcdef012345" + "0" * 52
    b = "sha256:" + "abcdef012345" + "1" * 52
    db.add_image(a)
    db.add_image(b)
    with pytest.raises(AmbiguousImage) as ei:
        db.resolve("abcdef012345")
    assert a in str(ei.value) and b in str(ei.value)
    assert db.resolve("abcdef0123450").id == a
    assert db.resolve("sha256:abcdef0123451").id == b


def test_remove_cascades(db):
    shared = Layer(dg("shared"), dg("bshared"), 1)
    one = db.add_image(dg("c1"), manifest_digest=dg("m1"), layers=[shared, Layer(dg("own"))])
    two = db.add_image(dg("c2"), manifest_digest=dg("m2"), layers=[shared], blobs=[dg("idx")])
    db.tag("one:1", one.id)
    db.tag("one:2", one.id)
    db.tag("two:1", two.id)
    assert db.unreferenced_layers() == []
    assert db.referenced_blobs() == {dg("c1"), dg("m1"), dg("bshared"), dg("c2"), dg("m2"),
                                     dg("idx")}
    db.remove_image(one.id)
    assert db.tags() == {"two:1": two.id}
    assert [layer.diff_id for layer in db.unreferenced_layers()] == [dg("own")]
    assert db.referenced_blobs() == {dg("c2"), dg("m2"), dg("bshared"), dg("idx")}
    with pytest.raises(sqlite3.IntegrityError):
        db.remove_layer(dg("shared"))  # still used by two
    db.remove_layer(dg("own"))
    assert db.unreferenced_layers() == []
    with pytest.raises(ImageNotFound):
        db.remove_image(one.id)
    db.remove_image(two.id)
    assert db.images() == [] and db.tags() == {} and db.referenced_blobs() == set()
    assert [layer.diff_id for layer in db.unreferenced_layers()] == [dg("shared")]


def test_transaction_rolls_back_on_exception(db):
    img = db.add_image(dg("c"))
    with pytest.raises(RuntimeError):
        with db.transaction():
            db.tag("a:1", img.id)
            db.remove_image(img.id)
            raise RuntimeError("boom")
    assert db.tags() == {}
    assert [i.id for i in db.images()] == [img.id]
    # the connection is usable afterwards
    db.tag("a:1", img.id)
    assert db.tags() == {"a:1": img.id}


def test_killed_mid_transaction_keeps_previous_state(tmp_path):
    path = tmp_path / "images.db"
    with Database(path) as d:
        d.add_image(dg("c"))
        d.tag("before:1", dg("c"))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            child = Database(path)
            with child.transaction():
                child.untag("before:1")
                child.add_image(dg("new"))
                os.write(w, b"1")
                signal.pause()
        finally:
            os._exit(1)
    os.close(w)
    try:
        assert os.read(r, 1) == b"1"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
    with Database(path) as d:
        assert d.tags() == {"before:1": dg("c")}
        assert [i.id for i in d.images()] == [dg("c")]
        d.tag("after:1", dg("c"))  # the dead writer's lock is gone


def _tag_worker(path: str, worker: int) -> int:
    d = Database(path)
    try:
        for i in range(50):
            image = dg(f"img{i % 3}")
            with d.transaction():
                d.add_image(image)
                d.tag(f"w{worker}/name:{i}", image)
        return worker
    finally:
        d.close()


def test_concurrent_writers(tmp_path):
    path = str(tmp_path / "images.db")  # created concurrently by the workers themselves
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(6) as pool:
        assert sorted(pool.starmap(_tag_worker, [(path, w) for w in range(6)])) == list(range(6))
    with Database(path) as d:
        tags = d.tags()
        assert len(tags) == 6 * 50
        assert tags["w5/name:49"] == dg("img1")
        assert len(d.images()) == 3
