"""sangja.engine.records: the volume records' copy-up mark, and a database made before
it existed."""

from __future__ import annotations

import sqlite3

from sangja.engine.records import _SCHEMA_V1, ContainerDB


def test_copy_up_is_claimed_once(tmp_path):
    db = ContainerDB(tmp_path / "containers.db")
    db.add_volume("v")
    assert db.volume("v")["copied_up"] == 0
    assert db.claim_copy_up("v") is True
    assert db.claim_copy_up("v") is False  # a second start, or a racing one: no copy
    db.release_copy_up("v")  # a failed copy, undone
    assert db.claim_copy_up("v") is True
    assert db.claim_copy_up("no-such-volume") is False


def test_version_1_database_keeps_working(tmp_path):
    """A database written before the mark existed: its volumes and containers are kept,
    and its volumes may still be filled once."""
    path = tmp_path / "containers.db"
    conn = sqlite3.connect(path)
    for stmt in _SCHEMA_V1.split(";"):
        if stmt.strip():
            conn.execute(stmt)
    conn.execute("INSERT INTO volumes (name, created, anonymous) VALUES ('old', 1.0, 0)")
    conn.execute("INSERT INTO containers (id, name, image_id, image_name, created, options, "
                 "state) VALUES ('c1', 'box', 'img', 'busybox', 1.0, '{}', 'exited')")
    conn.execute("INSERT INTO container_volumes VALUES ('c1', 'old')")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    db = ContainerDB(path)
    assert db.schema_version() == 2
    assert db.volume("old")["copied_up"] == 0
    assert db.volume_users("old") == ["c1"]
    assert db.get("box")["state"] == "exited"
    assert db.claim_copy_up("old") is True
    db.conn.close()
    assert ContainerDB(path).volume("old")["copied_up"] == 1  # reopened: no migration again
