"""ImageStore: import a rootfs, list, inspect, tag/untag, rmi cascade, reproducible digests."""

from __future__ import annotations

import gzip
import hashlib
import json
import os

import pytest

from sangja.image.db import AmbiguousImage, ImageNotFound
from sangja.image.reference import InvalidReference
from sangja.image.store import (
    MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_LAYER_GZIP,
    MEDIA_TYPE_MANIFEST,
    ImageInUse,
    ImageStore,
    goarch,
)

MTIME = 1_700_000_000


def make_rootfs(path, extra: str = "") -> str:
    for d in ("bin", "etc", "tmp"):
        (path / d).mkdir(parents=True, exist_ok=True)
    (path / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n" + extra.encode())
    os.chmod(path / "bin" / "tool", 0o755)
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    os.symlink("tool", path / "bin" / "sh")
    os.link(path / "bin" / "tool", path / "bin" / "tool2")
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.utime(os.path.join(root, n), (MTIME, MTIME), follow_symlinks=False)
    return str(path)


@pytest.fixture
def store(tmp_path):
    s = ImageStore(tmp_path / "root")
    yield s
    s.close()


def blob_files(store) -> set[str]:
    return set(os.listdir(os.path.join(store.root, "blobs", "sha256")))


def layer_dirs(store) -> set[str]:
    return {n for n in os.listdir(store.layers_dir) if not n.startswith(".")}


def test_default_root_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SANGJA_ROOT", str(tmp_path / "envroot"))
    with ImageStore() as s:
        assert s.root == str(tmp_path / "envroot")
    assert os.path.isfile(tmp_path / "envroot" / "images.db")


def test_goarch_mapping():
    assert goarch("x86_64") == "amd64"
    assert goarch("aarch64") == "arm64"


def test_import_writes_oci_blobs(store, tmp_path):
    image_id = store.import_rootfs(make_rootfs(tmp_path / "fs"), config_overrides={})
    img = store.resolve(image_id)
    config_bytes = store.blobs.read_bytes(image_id)
    assert image_id == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    config = json.loads(config_bytes)
    assert config["os"] == "linux" and config["architecture"] == goarch()
    assert config["config"]["Cmd"] == ["sh"]
    assert any(e.startswith("PATH=") for e in config["config"]["Env"])
    assert config["history"][0]["created_by"]
    manifest = json.loads(store.blobs.read_bytes(img.manifest_digest))
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == MEDIA_TYPE_MANIFEST
    assert manifest["config"] == {
        "mediaType": MEDIA_TYPE_CONFIG,
        "digest": image_id,
        "size": len(config_bytes),
    }
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == MEDIA_TYPE_LAYER_GZIP
    raw = store.blobs.read_bytes(layer["digest"])
    assert len(raw) == layer["size"]
    tar = gzip.decompress(raw)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(tar).hexdigest()]


def test_config_overrides(store, tmp_path):
    image_id = store.import_rootfs(
        make_rootfs(tmp_path / "fs"), config_overrides={"Cmd": ["/bin/tool"], "WorkingDir": "/"}
    )
    cfg = store.inspect(image_id)["Config"]
    assert cfg["Cmd"] == ["/bin/tool"] and cfg["WorkingDir"] == "/"


def test_reproducible(tmp_path):
    fs = make_rootfs(tmp_path / "fs")
    with ImageStore(tmp_path / "a") as a, ImageStore(tmp_path / "b") as b:
        first = a.import_rootfs(fs, config_overrides={})
        again = a.import_rootfs(fs, config_overrides={})
        other = b.import_rootfs(fs, config_overrides={})
        assert first == again == other
        assert blob_files(a) == blob_files(b)
        assert len(a.db.images()) == 1


def test_images_and_inspect(store, tmp_path):
    image_id = store.import_rootfs(make_rootfs(tmp_path / "fs"), config_overrides={})
    rows = store.images()
    assert [(r["repository"], r["tag"], r["id"]) for r in rows] == [("<none>", "<none>", image_id)]
    assert store.tag("demo", image_id) == "localhost/demo:latest"
    (row,) = store.images()
    assert (row["repository"], row["tag"], row["id"]) == ("localhost/demo", "latest", image_id)
    assert row["created"] == "2023-11-14T22:13:20Z"
    assert row["size"] > 0
    info = store.inspect("demo")
    assert info["Id"] == image_id
    assert info["RepoTags"] == ["localhost/demo:latest"]
    assert info["Created"] == row["created"]
    assert info["Architecture"] == goarch() and info["Os"] == "linux"
    assert info["Size"] == row["size"]
    assert info["RootFS"]["Type"] == "layers"
    assert info["RootFS"]["Layers"] == store.config(image_id)["rootfs"]["diff_ids"]


def test_unpacked_layers_shared_and_once(store, tmp_path):
    image_id = store.import_rootfs(make_rootfs(tmp_path / "fs"), config_overrides={})
    (path,) = store.unpacked_layers(image_id)
    assert os.path.basename(path) == store.inspect(image_id)["RootFS"]["Layers"][0][7:]
    assert open(os.path.join(path, "bin", "tool")).read().startswith("#!/bin/sh")
    assert os.readlink(os.path.join(path, "bin", "sh")) == "tool"
    assert os.stat(os.path.join(path, "bin", "tool")).st_mtime == MTIME
    marker = os.path.join(path, "marker")
    open(marker, "w").close()  # a second call must not unpack again
    assert store.unpacked_layers(image_id) == [path]
    assert os.path.exists(marker)
    assert store.db.layers()[0].unpacked_path == path


def test_resolve(store, tmp_path):
    image_id = store.import_rootfs(make_rootfs(tmp_path / "fs"), config_overrides={})
    store.tag("docker.io/busybox:1", image_id)
    hexpart = image_id[7:]
    for text in (
        image_id,
        hexpart,
        hexpart[:12],
        f"sha256:{hexpart[:12]}",
        "docker.io/library/busybox:1",
        "docker.io/busybox:1",
    ):
        assert store.resolve(text).id == image_id, text
    manifest = store.resolve(image_id).manifest_digest
    assert store.resolve(f"docker.io/busybox@{manifest}").id == image_id
    with pytest.raises(ImageNotFound):
        store.resolve(hexpart[:11])
    with pytest.raises(ImageNotFound):
        store.resolve("busybox:1")  # localhost/busybox:1, not docker.io
    with pytest.raises(InvalidReference):
        store.resolve("UPPER/Case")


def test_resolve_ambiguous_prefix(store):
    for last in "01":
        store.db.add_image("sha256:" + "ab" * 31 + "c" + last)
    assert store.resolve("ab" * 31 + "c1").id.endswith("c1")
    with pytest.raises(AmbiguousImage):
        store.resolve("ab" * 6)
    with pytest.raises(ImageNotFound):
        store.resolve("0" * 64)


def test_tag_untag_rmi_cascade(store, tmp_path):
    fs = make_rootfs(tmp_path / "fs")
    a = store.import_rootfs(fs, config_overrides={})
    b = store.import_rootfs(fs, config_overrides={"Cmd": ["/bin/tool"]})  # same layer
    assert a != b
    store.tag("a", a)
    store.tag("a:two", a)
    store.tag("b", b)
    store.unpacked_layers(a)
    assert len(layer_dirs(store)) == 1
    assert len(blob_files(store)) == 5  # 1 layer + 2 configs + 2 manifests

    assert store.untag("a:two") == a
    assert store.resolve("a").tags == ("localhost/a:latest",)
    store.tag("a:two", "a")

    with pytest.raises(ImageInUse):
        store.remove(a)  # by id while two tags refer to it
    assert store.remove("a:two") == ["Untagged: localhost/a:two"]
    assert store.resolve(a).tags == ("localhost/a:latest",)

    assert store.remove("a") == ["Untagged: localhost/a:latest", f"Deleted: {a}"]
    with pytest.raises(ImageNotFound):
        store.resolve(a)
    assert len(blob_files(store)) == 3  # the shared layer stays for b
    assert len(layer_dirs(store)) == 1
    assert store.unpacked_layers("b")

    store.tag("b:x", b)
    out = store.remove(b, force=True)
    assert out[-1] == f"Deleted: {b}" and len(out) == 3
    assert blob_files(store) == set()
    assert layer_dirs(store) == set()
    assert store.db.layers() == [] and store.images() == []


def test_remove_unknown(store):
    with pytest.raises(ImageNotFound):
        store.remove("nosuch")
    with pytest.raises(InvalidReference):
        store.tag("Bad Name", "nosuch")
