"""The stores under attack from the outside: damaged or lost databases, records that name
the wrong blob, leftovers of crashed containers, a seccomp profile edited after create.
Every test damages a real store (its own --root), then runs the real CLI and observes the
effect: what is left on disk, what a running container still sees, one line on stderr."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
from pathlib import Path

import pytest
from engine_cli import HEX64, Cli, mounts_under, remove_everything, wait_no_leaks, wait_until

pytestmark = pytest.mark.root

DAMAGES = ["deleted", "empty", "zeroed", "garbage", "blank", "directory"]


@pytest.fixture
def store(tmp_path):
    """An engine of its own (the test damages its databases) with busybox; afterwards its
    containers are removed and nothing of them may remain."""
    from sangja.image.busybox import BusyboxNotFound, find_static_busybox

    try:
        find_static_busybox()
    except BusyboxNotFound as e:
        pytest.skip(str(e))
    cli = Cli(tmp_path / "root", tmp_path / "run")
    cli.ok("bootstrap", "busybox")
    yield cli
    remove_everything(cli)
    wait_no_leaks(cli)


def files(root: Path) -> dict[str, list[str]]:
    """What the image store keeps on disk."""
    def ls(p: Path) -> list[str]:
        return sorted(os.listdir(p)) if p.is_dir() else []

    return {"blobs": ls(root / "blobs" / "sha256"), "layers": ls(root / "layers")}


def backup(db: Path) -> Path:
    """A consistent copy (WAL included) to put back with `restore`."""
    saved = db.with_name(db.name + ".saved")
    src, dst = sqlite3.connect(db), sqlite3.connect(saved)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return saved


def restore(db: Path, saved: Path) -> None:
    drop(db)
    shutil.copyfile(saved, db)


def drop(db: Path) -> None:
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def damage(db: Path, how: str) -> None:
    """Lose the database the way a disk, a user or an attacker can."""
    size = db.stat().st_size
    drop(db)  # its WAL too: else SQLite would replay it into whatever stands there
    if how == "empty":
        db.write_bytes(b"")
    elif how == "zeroed":
        db.write_bytes(b"\0" * max(size, 4096))
    elif how == "garbage":
        db.write_bytes(b"not a database " * 1000)
    elif how == "blank":  # a valid SQLite file without any of our records
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.close()
    elif how == "directory":
        db.mkdir()
    else:
        assert how == "deleted"


def init_pid(cli: Cli, cid: str) -> int:
    with open(cli.runroot / "runtime" / cid / "state.json") as f:
        return json.load(f)["pid"]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def check(cli: Cli, *args: str) -> tuple[int, list[str]]:
    r = cli("system", "check", *args)
    assert r.returncode in (0, 1) and not r.stderr, (r.returncode, r.stdout, r.stderr)
    return r.returncode, r.stdout.splitlines()


# ---------------------------------------------------------------------------- in use


@pytest.mark.parametrize("how", [*DAMAGES, "locked"])
def test_prune_deletes_nothing_when_containers_db_is_unreadable(store, how):
    """image prune -a / system prune -a must not take an unreadable containers.db for
    "no container uses any image": they fail with one line, and the running container's
    image, layers and files stay."""
    cid = store.detach("busybox", "sleep", "1000")
    db = store.root / "containers.db"
    saved = backup(db)
    before = files(store.root)
    holder = None
    try:
        if how == "locked":  # another process holds it (WAL readers need EXCLUSIVE mode)
            holder = sqlite3.connect(db, isolation_level=None)
            holder.execute("PRAGMA locking_mode = EXCLUSIVE")
            holder.execute("BEGIN EXCLUSIVE")
        else:
            damage(db, how)
        line = store.fails(125, "image", "prune", "-a", "-f")
        assert "containers.db" in line or "locked" in line, line
        if how != "locked":
            assert "--rebuild" in line, line
            line = store.fails(125, "system", "prune", "-a", "-f")
            assert "containers.db" in line and "--rebuild" in line, line
            store.fails(125, "rmi", "busybox")
        assert files(store.root) == before
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
        else:
            restore(db, saved)
    assert store.status(cid) == "running"
    assert store.exec_out(cid, "ls", "/bin/busybox").strip() == "/bin/busybox"
    assert store.ok("images", "-q").strip()


def test_layers_under_a_running_container_survive_lost_image_records(store):
    """Records that no longer name the layer a running container stacks (edited behind
    sangja's back): prune and check --repair leave that layer directory alone."""
    cid = store.detach("busybox", "sleep", "1000")
    (layer,) = files(store.root)["layers"]
    conn = sqlite3.connect(store.root / "images.db")  # foreign keys off: nothing cascades
    conn.executescript("DELETE FROM image_layers; DELETE FROM tags; DELETE FROM images;")
    conn.close()
    store.ok("image", "prune", "-a", "-f")
    assert (store.root / "layers" / layer / "bin" / "busybox").is_file()
    rc, lines = check(store, "--repair")
    assert not any(layer in line and "repaired" in line for line in lines), lines
    assert (store.root / "layers" / layer / "bin" / "busybox").is_file()
    assert store.exec_out(cid, "ls", "/bin/busybox").strip() == "/bin/busybox"
    store.ok("rm", "-f", cid)
    store.ok("image", "prune", "-a", "-f")  # no snapshot mounted: now it is garbage
    assert files(store.root)["layers"] == []


# ---------------------------------------------------------------------------- blob records


def docker_archive_of_busybox(store: Cli, tmp_path: Path) -> tuple[Path, Path, str]:
    """`save` busybox (docker-archive: an uncompressed layer.tar); return the archive, its
    layer tar extracted, and the layer's diff_id."""
    archive = tmp_path / "busybox.tar"
    store.ok("save", "-o", str(archive), "busybox")
    with tarfile.open(archive) as tf:
        (member,) = [m for m in tf.getmembers() if m.name.endswith("/layer.tar")]
        data = tf.extractfile(member).read()
    layer = tmp_path / "layer.tar"
    layer.write_bytes(data)
    return archive, layer, "sha256:" + hashlib.sha256(data).hexdigest()


def oci_layer_blobs(archive: Path) -> list[str]:
    with tarfile.open(archive) as tf:
        index = json.load(tf.extractfile("index.json"))
        digest = index["manifests"][0]["digest"]
        manifest = json.load(tf.extractfile(f"blobs/sha256/{digest[7:]}"))
    return [d["digest"] for d in manifest["layers"]]


def test_load_then_import_of_the_same_layer_keeps_the_loaded_image_whole(store, tmp_path):
    """A second writer of a layer (import: gzip) must not take the blob of the first
    (load: plain tar) from the image that names it: after prune and check --repair the
    loaded image still runs, from its own blob, and saves with it."""
    archive, layer_tar, diff_id = docker_archive_of_busybox(store, tmp_path)
    cli = Cli(tmp_path / "other", tmp_path / "other-run")
    cli.ok("load", "-i", str(archive))
    cli.ok("import", str(layer_tar), "imp:1")
    assert check(cli) == (0, ["no problems found"])
    cli.ok("rmi", "imp:1")
    cli.ok("image", "prune", "-f")
    assert check(cli, "--repair") == (0, ["no problems found"])
    assert (cli.root / "blobs" / "sha256" / diff_id[7:]).is_file()  # the loaded image's
    shutil.rmtree(cli.root / "layers" / diff_id[7:])  # unpacked again from its own blob
    assert cli.out("busybox", "echo", "still runs") == "still runs\n"
    saved = tmp_path / "again.tar"
    cli.ok("save", "--format", "oci-archive", "-o", str(saved), "busybox")
    assert oci_layer_blobs(saved) == [diff_id]
    remove_everything(cli)
    wait_no_leaks(cli)


def test_schema_v2_records_adopt_the_blobs_their_manifests_name(store, tmp_path):
    """A store written by a sangja before schema v3, with the damage already done (the
    import replaced the loaded image's layer blob in the shared record): opening it
    migrates and gives each image the blob its manifest names again, so gc keeps it."""
    archive, layer_tar, diff_id = docker_archive_of_busybox(store, tmp_path)
    cli = Cli(tmp_path / "old", tmp_path / "old-run")
    cli.ok("load", "-i", str(archive))
    cli.ok("import", str(layer_tar), "imp:1")
    db = cli.root / "images.db"
    conn = sqlite3.connect(db)
    (gz,) = conn.execute("SELECT blob_digest FROM image_layers il JOIN tags t ON "
                         "t.image_id = il.image_id WHERE t.name = 'localhost/imp:1'").fetchone()
    assert gz != diff_id
    conn.execute("UPDATE layers SET blob_digest = ?", (gz,))  # what the old import did
    conn.execute("ALTER TABLE image_layers DROP COLUMN blob_digest")
    conn.execute("ALTER TABLE image_layers DROP COLUMN blob_size")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    cli.ok("images")  # opens and migrates
    conn = sqlite3.connect(db)
    rows = dict(conn.execute("SELECT t.name, il.blob_digest FROM image_layers il JOIN tags t"
                             " ON t.image_id = il.image_id").fetchall())
    from sangja.image.db import SCHEMA_VERSION

    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    assert rows == {"localhost/busybox:latest": diff_id, "localhost/imp:1": gz}
    cli.ok("rmi", "imp:1")
    assert check(cli, "--repair") == (0, ["no problems found"])
    saved = tmp_path / "again.tar"
    cli.ok("save", "--format", "oci-archive", "-o", str(saved), "busybox")
    assert oci_layer_blobs(saved) == [diff_id]
    remove_everything(cli)
    wait_no_leaks(cli)


# ---------------------------------------------------------------------------- lost images.db


@pytest.mark.parametrize("how", DAMAGES)
def test_lost_images_db_is_an_error_and_check_deletes_nothing(store, how):
    cid = store.detach("busybox", "sleep", "1000")
    image_id = store.inspect(cid)["Image"]
    store.create(image_id[7:19], "true")  # named by an id prefix: no tag comes of that
    before = files(store.root)
    damage(store.root / "images.db", how)
    for args in (["images"], ["run", "--rm", "busybox", "true"], ["image", "prune", "-a", "-f"],
                 ["system", "prune", "-a", "-f"], ["rmi", "busybox"], ["system", "df"],
                 ["load", "-i", "/dev/null"], ["history", "busybox"]):
        line = store.fails(125, *args)
        assert "images.db" in line and "system check --rebuild" in line, (args, line)
    rc, lines = check(store, "--repair")
    assert rc == 1
    assert lines[0].startswith(f"database: {store.root}/images.db: ") and "--rebuild" in lines[0]
    assert files(store.root) == before
    assert store.exec_out(cid, "ls", "/bin/busybox").strip() == "/bin/busybox"
    # the recovery: the image comes back from the blobs, its tag from the container
    rc, lines = check(store, "--rebuild")
    assert rc == 0, lines
    assert re.match(rf"rebuilt {store.root}/images.db: 1 image recreated from the blobs, 1 "
                    r"tag restored \(localhost/busybox:latest\)", lines[0]), lines
    if how not in ("deleted",):
        assert list(store.root.glob("images.db.damaged-*")), "the damaged file is kept"
    assert files(store.root) == before
    assert [(i["Repository"], i["Tag"]) for i in map(json.loads, store.ok(
        "images", "--format", "json").splitlines())] == [("localhost/busybox", "latest")]
    assert store.out("busybox", "echo", "back") == "back\n"
    assert check(store) == (0, ["no problems found"])
    store.ok("rm", "-f", cid)
    assert check(store, "--rebuild")[1][0] == ("nothing to rebuild: images.db and "
                                               "containers.db are readable")


def test_a_new_store_still_gets_its_databases(tmp_path):
    cli = Cli(tmp_path / "new", tmp_path / "new-run")
    assert cli.ok("images", "-q") == ""
    assert cli.ok("ps", "-a", "-q") == ""
    assert (cli.root / "images.db").is_file() and (cli.root / "containers.db").is_file()


# ---------------------------------------------------------------------------- lost containers.db


def test_lost_containers_db_rebuild_then_check_stops_at_what_runs(store):
    cid = store.detach("busybox", "sleep", "1000")
    pid = init_pid(store, cid)
    damage(store.root / "containers.db", "zeroed")
    line = store.fails(125, "ps")
    assert "containers.db" in line and "--rebuild" in line
    rc, lines = check(store, "--repair")
    assert rc == 1 and lines[0].startswith(f"database: {store.root}/containers.db: ")
    rc, lines = check(store, "--rebuild")
    assert lines[0].startswith(f"rebuilt {store.root}/containers.db: a new, empty container "
                               "database (the damaged file is kept as "), lines
    (running,) = [line for line in lines if line.startswith("running without a record: ")]
    assert cid[:12] in running and "(cannot be repaired)" in running
    rc, lines = check(store, "--repair")
    assert rc == 1 and alive(pid)  # nothing of a running container is touched
    assert mounts_under(store.root / "snapshots")
    assert (store.root / "containers" / cid).is_dir()
    assert store.ok("ps", "-a", "-q") == ""
    # stop it as the finding says, then the repair takes what it left
    command = re.search(r"stop it with '([^']+)'", running).group(1)
    r = subprocess.run(command.split(), capture_output=True, text=True,
                       env={**os.environ, "PATH": f"{store.argv()[0].rsplit('/', 1)[0]}:"
                            f"{os.environ['PATH']}"})
    assert r.returncode == 0, r.stderr
    wait_until(lambda: not alive(pid), 10)
    rc, lines = check(store, "--repair")
    assert any(line.startswith(f"leftover container: {cid[:12]}: ") and "repaired" in line
               for line in lines), lines
    assert check(store) == (0, ["no problems found"])


# ---------------------------------------------------------------------------- leftovers


def test_check_repairs_container_leftovers(store):
    """What crashes leave: a record whose directory is gone, a stopped container's root
    still mounted, and the files of an id no record names. A running container is left
    alone throughout."""
    running = store.detach("busybox", "sleep", "1000")
    created = store.create("busybox", "echo", "hello")
    shutil.rmtree(store.root / "containers" / created)
    # a dead container whose clean-up never ran: its monitor and init killed
    dead = store.detach("busybox", "sleep", "1000")
    with open(store.runroot / "engine" / dead / "monitor.pid") as f:
        monitor = int(f.read())
    os.kill(monitor, 9)
    pid = init_pid(store, dead)
    os.kill(pid, 9)
    wait_until(lambda: not alive(pid) and not alive(monitor), 10)
    # an id no record names
    ghost = os.urandom(32).hex()
    (store.root / "containers" / ghost).mkdir()
    (store.root / "snapshots" / "overlay" / ghost / "upper").mkdir(parents=True)
    (store.root / "snapshots" / "overlay" / ghost / "upper" / "data").write_text("x")
    (store.runroot / "engine" / ghost).mkdir()

    rc, lines = check(store)
    assert rc == 1
    text = "\n".join(lines)
    assert f"container without directory: {created[:12]} " in text
    assert f"mount left: {dead[:12]} " in text
    assert re.search(rf"leftover container: {ghost[:12]}: directory, snapshot, run directory "
                     r"of an id no record names \(--repair would remove them", text)
    assert running[:12] not in text
    rc, lines = check(store, "--repair")
    assert rc == 0, lines
    assert check(store) == (0, ["no problems found"])
    assert not (store.root / "containers" / ghost).exists()
    assert not (store.root / "snapshots" / "overlay" / ghost).exists()
    assert not (store.runroot / "engine" / ghost).exists()
    assert not any(dead in m for m in mounts_under(store.root))
    assert store.ok("start", "-a", created) == "hello\n"
    assert store.exec_out(running, "ls", "/bin/busybox").strip() == "/bin/busybox"


def test_check_leaves_another_stores_containers_alone(store, tmp_path):
    """Two stores can share a run root (`--root` alone picks another store; the run root
    stays /run/sangja): one store's check neither reports nor removes the other's
    containers, running or dead with their runtime state and run directory left."""
    other = Cli(tmp_path / "other", store.runroot)
    other.ok("bootstrap", "busybox")
    try:
        running = other.detach("busybox", "sleep", "1000")
        dead = other.detach("busybox", "sleep", "1000")
        with open(store.runroot / "engine" / dead / "monitor.pid") as f:
            monitor = int(f.read())
        os.kill(monitor, 9)  # nobody cleans up after it: its runtime state says stopped
        pid = init_pid(store, dead)
        os.kill(pid, 9)
        wait_until(lambda: not alive(pid) and not alive(monitor), 10)
        state = store.runroot / "runtime" / dead
        assert state.is_dir()
        assert check(store) == (0, ["no problems found"])
        assert check(store, "--repair") == (0, ["no problems found"])
        assert state.is_dir() and (store.runroot / "engine" / dead).is_dir()
        assert other.exec_out(running, "echo", "alive").strip() == "alive"
        rc, lines = check(other)  # its own check sees its dead container
        assert rc == 1 and any(dead[:12] in line for line in lines), lines
    finally:
        remove_everything(other)
        wait_no_leaks(other)


# ---------------------------------------------------------------------------- seccomp=FILE


def test_seccomp_profile_is_kept_from_create(store, tmp_path):
    """The profile given at create is the container's: editing the file to allow
    everything, or deleting it, changes nothing at the next start."""
    profile = tmp_path / "p.json"
    content = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    profile.write_text(json.dumps(content, indent=2))
    cid = store.create("--security-opt", f"seccomp={profile}", "busybox", "sh", "-c",
                       "grep Seccomp: /proc/self/status; mkdir /tmp/d && echo MADE; true")

    def start() -> str:
        r = store("start", "-a", cid)
        assert r.returncode == 0, r.stderr
        return r.stdout + r.stderr

    out = start()
    assert "Seccomp:\t2" in out and "MADE" not in out and "Operation not permitted" in out
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW"}))
    out = start()
    assert "Seccomp:\t2" in out and "MADE" not in out and "Operation not permitted" in out
    profile.unlink()
    out = start()
    assert "Seccomp:\t2" in out and "MADE" not in out and "Operation not permitted" in out
    assert store.inspect(cid)["HostConfig"]["SecurityOpt"] == [
        "seccomp=" + json.dumps(content, separators=(",", ":"))]


@pytest.mark.parametrize(("content", "why"), [
    (None, "opening seccomp profile"),
    ('{"syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}',
     "defaultAction is required"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": "mkdir"}', "syscalls"),
    (" " * (1 << 20) + "{}", "is larger than"),
])
def test_bad_seccomp_file_fails_at_create(store, tmp_path, content, why):
    profile = tmp_path / "bad.json"
    if content is not None:
        profile.write_text(content)
    before = store.ok("ps", "-a", "-q")
    line = store.fails(125, "create", "--security-opt", f"seccomp={profile}", "busybox", "true")
    assert why in line and str(profile) in line, line
    assert store.ok("ps", "-a", "-q") == before
    made = store.root / "containers"
    assert not (made.is_dir() and [n for n in os.listdir(made) if HEX64.fullmatch(n)])
