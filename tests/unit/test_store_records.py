"""The record stores' safety rules without root: a lost database is an error (never a new
empty one) while a new store still gets its databases; each image keeps its own layer
blobs; the in-use answer fails closed."""

from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest

from sangja.engine.records import ContainerDB, open_existing
from sangja.engine.usage import images_in_use
from sangja.image.db import Database, Layer
from sangja.sqlite import DatabaseLost, move_aside


def dg(s: str) -> str:
    return "sha256:" + hashlib.sha256(s.encode()).hexdigest()


def lose(path, how: str) -> None:
    size = os.path.getsize(path)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.unlink(f"{path}{suffix}")
    if how == "empty":
        open(path, "wb").close()
    elif how == "zeroed":
        with open(path, "wb") as f:
            f.write(b"\0" * size)
    elif how == "garbage":
        with open(path, "wb") as f:
            f.write(b"garbage" * 1000)
    elif how == "blank":
        sqlite3.connect(path).execute("PRAGMA journal_mode = WAL").fetchall()
    elif how == "directory":
        os.mkdir(path)


@pytest.mark.parametrize("how", ["deleted", "empty", "zeroed", "garbage", "blank", "directory"])
@pytest.mark.parametrize(("cls", "name", "content"), [
    (Database, "images.db", "blobs/sha256/" + "ab" * 32),
    (Database, "images.db", "layers/" + "cd" * 32 + "/"),
    (ContainerDB, "containers.db", "containers/" + "ef" * 32 + "/"),
    (ContainerDB, "containers.db", "volumes/data/"),
])
def test_lost_database_of_a_store_with_content_is_an_error(tmp_path, cls, name, content, how):
    path = tmp_path / name
    cls(path).close()
    (tmp_path / content).parent.mkdir(parents=True, exist_ok=True)
    if content.endswith("/"):
        (tmp_path / content).mkdir()
    else:
        (tmp_path / content).write_bytes(b"x")
    lose(path, how)
    with pytest.raises(DatabaseLost) as e:
        cls(path)
    msg = str(e.value)
    assert str(path) in msg and "restore it from a backup" in msg
    assert f"sangja --root {tmp_path} system check --rebuild" in msg
    assert "\n" not in msg
    # nothing was made in its place
    assert how != "deleted" or not path.exists()


@pytest.mark.parametrize("how", ["deleted", "empty", "blank"])
def test_a_new_store_gets_its_database(tmp_path, how):
    """No content yet (temp entries do not count): the database is made, as always."""
    (tmp_path / "layers" / ".unpack-x").mkdir(parents=True)
    (tmp_path / "blobs" / "sha256").mkdir(parents=True)
    path = tmp_path / "images.db"
    Database(path).close()
    lose(path, how)
    with Database(path) as db:
        assert db.images() == []


def test_garbage_is_refused_even_in_a_new_store(tmp_path):
    path = tmp_path / "containers.db"
    path.write_bytes(b"not sqlite" * 100)
    with pytest.raises(DatabaseLost, match="not a usable SQLite database"):
        ContainerDB(path)
    assert path.read_bytes() == b"not sqlite" * 100  # left as it was


def test_move_aside_then_create(tmp_path):
    path = tmp_path / "images.db"
    Database(path).close()
    (tmp_path / "layers" / ("cd" * 32)).mkdir(parents=True)
    lose(path, "garbage")
    moved = move_aside(str(path))
    assert moved is not None and open(moved, "rb").read().startswith(b"garbage")
    with pytest.raises(DatabaseLost):
        Database(path)
    with Database(path, create=True) as db:
        assert db.images() == []
    Database(path).close()  # a database with its schema now: no longer lost


def test_images_in_use_fails_closed(tmp_path):
    root = str(tmp_path)
    assert images_in_use(root) == set()  # no container database yet: nothing in use
    assert open_existing(root) is None and not (tmp_path / "containers.db").exists()
    with ContainerDB(tmp_path / "containers.db") as db:
        db.insert({"id": "a" * 64, "name": "c1", "image_id": dg("img"), "image_name": "x",
                   "created": 0.0, "options": "{}", "state": "created"})
    (tmp_path / "containers" / ("a" * 64)).mkdir(parents=True)
    assert images_in_use(root) == {dg("img")}
    lose(tmp_path / "containers.db", "garbage")
    with pytest.raises(DatabaseLost):
        images_in_use(root)
    os.unlink(tmp_path / "containers.db")
    with pytest.raises(DatabaseLost, match="is missing"):
        images_in_use(root)


def test_each_image_keeps_its_own_layer_blob(tmp_path):
    """Two images of the same layer stored as different blobs (plain and gzip): each
    keeps the blob its manifest names, whichever was written last."""
    with Database(tmp_path / "images.db") as db:
        diff = dg("layer")
        db.add_image(dg("loaded"), layers=[Layer(diff, diff, 100)])
        db.add_image(dg("imported"), layers=[Layer(diff, dg("gz"), 40)])
        assert [la.blob_digest for la in db.image_layers(dg("loaded"))] == [diff]
        assert [la.blob_digest for la in db.image_layers(dg("imported"))] == [dg("gz")]
        assert [la.size for la in db.image_layers(dg("loaded"))] == [100]
        assert {diff, dg("gz")} <= db.referenced_blobs()
        db.remove_image(dg("imported"))
        assert dg("gz") not in db.referenced_blobs()  # the hint is not a reference
        assert diff in db.referenced_blobs()


def test_v2_records_migrate_to_their_layer_records_blob(tmp_path):
    path = tmp_path / "images.db"
    with Database(path) as db:
        diff = dg("layer")
        db.add_image(dg("img"), layers=[Layer(diff, dg("blob"), 7)])
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE build_cache")  # v4
    conn.execute("ALTER TABLE image_layers DROP COLUMN blob_digest")
    conn.execute("ALTER TABLE image_layers DROP COLUMN blob_size")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with Database(path) as db:
        assert db.migrated_from == 2
        assert [(la.blob_digest, la.size) for la in db.image_layers(dg("img"))] == [
            (dg("blob"), 7)]
