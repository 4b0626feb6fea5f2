"""sangja.image.commit: an overlay upper dir becomes a layer of a new image."""

from __future__ import annotations

import io
import os
import shutil
import socket
import stat
import tarfile

import pytest
from fstree import tree, unmount_all_under, write

from sangja import jsonio
from sangja.image.commit import CommitError, commit, merge_config
from sangja.image.layers import apply_layer
from sangja.image.snapshots import Snapshotter
from sangja.image.store import ImageStore


def _read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def env(tmp_path):
    from sangja.image.busybox import BusyboxNotFound, build_busybox_rootfs

    base = tmp_path / "base"
    try:
        build_busybox_rootfs(str(base))
    except BusyboxNotFound as e:
        pytest.skip(str(e))
    write(base / "opt" / "app" / "a", "a")
    write(base / "opt" / "app" / "b", "b")
    write(base / "opt" / "app" / "sub" / "c", "c")
    write(base / "opt" / "keep", "keep")
    write(base / "opt" / "keep2", "keep2")
    store = ImageStore(str(tmp_path / "store"))
    base_id = store.import_rootfs(str(base), config_overrides={"Labels": {"base": "yes"}})
    store.tag("localhost/base:latest", base_id)
    snap = Snapshotter(str(tmp_path / "snap"))
    yield {"store": store, "base_id": base_id, "snap": snap, "tmp": tmp_path}
    store.close()
    unmount_all_under(tmp_path)


def _container(env, cid: str) -> str:
    store, snap = env["store"], env["snap"]
    merged = snap.prepare(cid, store.unpacked_layers(env["base_id"]))
    if snap.kind(cid) != "overlay":
        pytest.skip("no overlayfs here: nothing to commit from")
    return merged


def _change(merged: str) -> None:
    m = merged
    write(f"{m}/new.txt", "new file", 0o640)
    os.chown(f"{m}/new.txt", 1234, 5678)
    os.setxattr(f"{m}/new.txt", "user.note", b"kept")
    with open(f"{m}/etc/passwd", "a") as f:
        f.write("app:x:1000:1000::/home/app:/bin/sh\n")
    os.unlink(f"{m}/etc/group")  # deleted: whiteout
    shutil.rmtree(f"{m}/opt/app")  # replaced: opaque directory
    os.mkdir(f"{m}/opt/app")
    write(f"{m}/opt/app/only", "only this")
    os.rmdir(f"{m}/home")  # a deleted directory
    os.chown(f"{m}/opt/keep", 42, 43)  # metadata-only copy-up
    os.rename(f"{m}/opt/keep2", f"{m}/opt/moved")
    os.symlink("/etc/passwd", f"{m}/lnk")
    write(f"{m}/data/h1", "linked")
    os.link(f"{m}/data/h1", f"{m}/data/h2")
    os.mkfifo(f"{m}/data/fifo")
    os.mknod(f"{m}/data/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    s = socket.socket(socket.AF_UNIX)
    s.bind(f"{m}/tmp/sock")  # a socket: not something a layer can hold
    s.close()


def _layer_blobs(store: ImageStore, image_id: str) -> list[str]:
    img = store.resolve(image_id)
    manifest = jsonio.loads(store.blobs.read_bytes(img.manifest_digest))
    return [d["digest"] for d in manifest["layers"]]


def _apply_all(store: ImageStore, image_id: str, dest) -> None:
    os.makedirs(dest)
    for digest in _layer_blobs(store, image_id):
        with store.blobs.open(digest) as f:
            apply_layer(f, str(dest))


def test_commit_layer_reproduces_the_container(env):
    store = env["store"]
    merged = _container(env, "c1")
    _change(merged)
    upper = env["snap"].diff_dir("c1")
    assert os.getxattr(f"{upper}/opt/app", "trusted.overlay.opaque") == b"y"
    assert stat.S_ISCHR(os.lstat(f"{upper}/etc/group").st_mode)
    calls = []
    new_id = commit(store, "localhost/base", upper, author="Ann <ann@example.com>",
                    message="add things", created_by="sangja commit c1",
                    reference="example/committed:v1",
                    config_overrides={"Env": ["PATH=/bin", "X=1"], "Labels": {"app": "1"}},
                    pause=lambda: calls.append("pause") or (lambda: calls.append("resume")))
    assert calls == ["pause", "resume"]
    assert store.resolve("example/committed:v1").id == new_id

    # the layer itself: OCI whiteouts, no overlay bookkeeping
    blobs = _layer_blobs(store, new_id)
    assert len(blobs) == 2 and blobs[0] == _layer_blobs(store, env["base_id"])[0]
    with store.blobs.open(blobs[1]) as f, tarfile.open(fileobj=f, mode="r:") as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert "etc/.wh.group" in names and ".wh.home" in names and "opt/.wh.keep2" in names
    assert names.index("opt/app/.wh..wh..opq") == names.index("opt/app") + 1
    assert "tmp/sock" not in names and "opt/app/a" not in names
    assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for m in members
                   for k in m.pax_headers)
    links = [m for m in members if m.islnk()]
    assert [(m.name, m.linkname) for m in links] == [("data/h2", "data/h1")]

    # applied in order, the layers give exactly the container's tree
    out = env["tmp"] / "applied"
    _apply_all(store, new_id, out)
    assert tree(out, xattr_prefix="user.") == tree(merged, skip={"tmp/sock"}, xattr_prefix="user.")
    assert not os.path.lexists(out / "etc" / "group")
    assert not os.path.lexists(out / "home")
    assert sorted(os.listdir(out / "opt" / "app")) == ["only"]
    assert sorted(os.listdir(out / "opt")) == ["app", "keep", "moved"]
    assert os.lstat(out / "opt" / "keep").st_uid == 42
    assert os.lstat(out / "data" / "h1").st_ino == os.lstat(out / "data" / "h2").st_ino
    assert _read(out / "etc" / "passwd").endswith(b"app:x:1000:1000::/home/app:/bin/sh\n")

    # the config: base layers + one, history, author, overrides merged
    cfg = store.config(new_id)
    base_cfg = store.config(env["base_id"])
    assert cfg["rootfs"]["diff_ids"][:-1] == base_cfg["rootfs"]["diff_ids"]
    assert len(cfg["rootfs"]["diff_ids"]) == 2
    assert cfg["author"] == "Ann <ann@example.com>"
    assert cfg["config"]["Env"] == ["PATH=/bin", "X=1"]
    assert cfg["config"]["Labels"] == {"base": "yes", "app": "1"}
    assert cfg["config"]["Cmd"] == base_cfg["config"]["Cmd"]
    assert cfg["history"][:-1] == base_cfg["history"]
    last = cfg["history"][-1]
    assert last["created_by"] == "sangja commit c1" and last["comment"] == "add things"
    assert last["author"] == "Ann <ann@example.com>" and "empty_layer" not in last
    img = store.resolve(new_id)
    assert img.layers == tuple(cfg["rootfs"]["diff_ids"])
    # the new layer's directory is there at once: a first container unpacks nothing
    new_layer = store.layer_path(cfg["rootfs"]["diff_ids"][-1])
    assert os.path.isdir(new_layer) and os.path.isfile(f"{new_layer}/new.txt")
    assert stat.S_ISCHR(os.lstat(f"{new_layer}/etc/group").st_mode)  # overlay whiteout
    assert os.getxattr(f"{new_layer}/opt/app", "trusted.overlay.opaque") == b"y"
    assert os.path.isdir(upper)  # the container's own layer is left alone
    assert img.size > store.resolve(env["base_id"]).size
    info = store.inspect("example/committed:v1")
    assert info["RepoTags"] == [store.canonical("example/committed:v1")]
    assert info["History"][-1]["comment"] == "add things"


def test_commit_is_reproducible(env):
    store = env["store"]
    merged = _container(env, "c2")
    _change(merged)
    upper = env["snap"].diff_dir("c2")
    a = commit(store, env["base_id"], upper, created="2024-01-01T00:00:00Z")
    b = commit(store, env["base_id"], upper, created="2024-01-01T00:00:00Z")
    c = commit(store, env["base_id"], upper, message="other")
    assert a == b and c != a
    assert _layer_blobs(store, a) == _layer_blobs(store, c)
    assert store.config(a)["rootfs"] == store.config(c)["rootfs"]
    blob = _layer_blobs(store, a)[-1]
    # the plain tar (as podman keeps local layers): the blob is the diff id
    assert blob == store.config(a)["rootfs"]["diff_ids"][-1]
    with store.blobs.open(blob) as f:
        raw = f.read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        members = tf.getmembers()
    assert all(m.uname == "" and m.gname == "" for m in members)
    # depth-first, names sorted within each directory (whiteouts and markers in place)
    dirs: dict[str, list[str]] = {}
    for m in members:
        parent, _, name = m.name.rpartition("/")
        if name != ".wh..wh..opq":  # a whiteout sits where the name it deletes would
            dirs.setdefault(parent, []).append(name.removeprefix(".wh."))
    assert all(names == sorted(names) for names in dirs.values())


def test_commit_without_changes_adds_no_layer(env):
    store = env["store"]
    _container(env, "c3")
    new_id = commit(store, env["base_id"], env["snap"].diff_dir("c3"), message="nothing")
    cfg = store.config(new_id)
    assert cfg["rootfs"] == store.config(env["base_id"])["rootfs"]
    assert cfg["history"][-1]["empty_layer"] is True
    assert _layer_blobs(store, new_id) == _layer_blobs(store, env["base_id"])
    out = env["tmp"] / "applied"
    _apply_all(store, new_id, out)  # still a whole image
    assert os.path.isfile(out / "bin" / "busybox")


def test_commit_changes_instructions(env):
    pytest.importorskip("sangja.image.changes")
    store = env["store"]
    _container(env, "c4")
    new_id = commit(store, env["base_id"], env["snap"].diff_dir("c4"),
                    changes=['CMD ["echo", "hi"]', "ENV A=b", "WORKDIR /srv",
                             "EXPOSE 8080", 'LABEL x="y"'])
    inner = store.config(new_id)["config"]
    assert inner["Cmd"] == ["echo", "hi"]
    assert "A=b" in inner["Env"]
    assert inner["WorkingDir"] == "/srv"
    assert "8080/tcp" in inner["ExposedPorts"]
    assert inner["Labels"]["x"] == "y" and inner["Labels"]["base"] == "yes"


def test_commit_errors(env, tmp_path):
    store = env["store"]
    with pytest.raises(CommitError, match="does not exist"):
        commit(store, env["base_id"], str(tmp_path / "nope"))
    upper = tmp_path / "upper"
    os.makedirs(upper / "d")
    os.setxattr(upper / "d", "trusted.overlay.redirect", b"/old")
    with pytest.raises(CommitError, match="renamed directory"):
        commit(store, env["base_id"], str(upper))
    before = len(store.db.images())
    with pytest.raises(Exception, match="not found|invalid"):
        commit(store, "sha256:" + "0" * 64, str(tmp_path))
    assert len(store.db.images()) == before


def test_merge_config():
    base = {"Env": ["A=1"], "Labels": {"a": "1"}, "Cmd": ["sh"], "Volumes": {"/v": {}}}
    out = merge_config(base, {"Labels": {"b": "2"}, "Cmd": None, "Env": ["B=2"],
                              "Volumes": {"/w": {}}})
    assert out == {"Env": ["B=2"], "Labels": {"a": "1", "b": "2"},
                   "Volumes": {"/v": {}, "/w": {}}}
    assert base["Labels"] == {"a": "1"}  # not modified
