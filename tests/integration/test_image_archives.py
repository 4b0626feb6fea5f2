"""`sangja save` / `sangja load`: docker-archive and oci-archive round trips, podman in both
directions (isolated as in test_podman.py), and refusal of truncated or tampered archives."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
PODMAN = shutil.which("podman")
RUNC = shutil.which("runc") or "/usr/sbin/runc"


def sangja_exe() -> list[str]:
    exe = REPO / ".venv" / "bin" / "sangja"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sangja.cli.engine"]


def run(root, *args: str, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*sangja_exe(), "--root", str(root), *args],
        capture_output=True,
        timeout=180,
        stdin=stdin,
    )


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout.decode()


def _need_busybox() -> None:
    from sangja.image.busybox import BusyboxNotFound, find_static_busybox

    try:
        find_static_busybox()
    except BusyboxNotFound as e:
        pytest.skip(str(e))


@pytest.fixture
def root(tmp_path):
    _need_busybox()
    r = tmp_path / "root"
    image_id = ok(run(r, "bootstrap", "busybox")).strip()
    return r, image_id


def _blob_files(root: Path) -> list[str]:
    return sorted(os.listdir(root / "blobs" / "sha256"))


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_round_trip(root, tmp_path, fmt):
    r, image_id = root
    before = json.loads(ok(run(r, "image", "inspect", "busybox")))[0]
    archive = tmp_path / "a.tar"
    ok(run(r, "save", "--format", fmt, "-o", str(archive), "busybox"))
    with tarfile.open(archive) as tf:
        names = set(tf.getnames())
    if fmt == "docker-archive":
        assert "manifest.json" in names and f"{image_id[7:]}.json" in names
        assert any(n.endswith("/layer.tar") for n in names)
    else:
        assert {"oci-layout", "index.json", f"blobs/sha256/{image_id[7:]}"} <= names
    ok(run(r, "rmi", "busybox"))
    assert ok(run(r, "images", "-q")) == ""
    assert _blob_files(r) == []
    with open(archive, "rb") as f:  # stdin, through a pipe (not seekable)
        p = subprocess.Popen(["cat"], stdin=f, stdout=subprocess.PIPE)
        out = ok(run(r, "load", stdin=p.stdout))
        p.wait()
    assert out.splitlines() == ["Loaded image: localhost/busybox:latest"]
    after = json.loads(ok(run(r, "image", "inspect", "busybox")))[0]
    assert after["Id"] == image_id
    assert after["RepoTags"] == ["localhost/busybox:latest"]
    assert after["RootFS"] == before["RootFS"]
    if fmt == "oci-archive":
        assert after["Digest"] == before["Digest"]
    # loading it again is harmless
    ok(run(r, "load", "-i", str(archive)))
    assert ok(run(r, "images", "-q")).split() == [image_id[7:19]]
    assert os.listdir(r / "blobs" / "tmp") == []


def test_save_refuses_terminal_and_unknown(root):
    r, _ = root
    bad = run(r, "save", "nosuch")
    assert bad.returncode == 1 and b"not found" in bad.stderr  # docker's code for it
    bad = run(r, "save", "--format", "zip", "busybox")
    assert bad.returncode == 125
    import pty

    master, slave = pty.openpty()
    try:
        p = subprocess.run([*sangja_exe(), "--root", str(r), "save", "busybox"], stdout=slave,
                           stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    assert p.returncode == 125 and b"terminal" in p.stderr


def _rewrite(src: Path, dst: Path, change) -> None:
    """Copy a tar archive, passing each regular member's bytes through change(name, data)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for m in tin.getmembers():
            if m.isreg():
                data = change(m.name, tin.extractfile(m).read())
                m.size = len(data)
                tout.addfile(m, io.BytesIO(data))
            else:
                tout.addfile(m)


def _flip(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at] ^= 0x01
    return bytes(b)


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
@pytest.mark.parametrize("damage", ["truncated", "tampered", "garbage"])
def test_bad_archives_refused(root, tmp_path, fmt, damage):
    r, image_id = root
    good = tmp_path / "good.tar"
    ok(run(r, "save", "--format", fmt, "-o", str(good), "busybox"))
    ok(run(r, "rmi", "busybox"))
    # a second image so "unchanged" is not just "empty"
    ok(run(r, "bootstrap", "busybox", "other:1"))
    bad = tmp_path / "bad.tar"
    if damage == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif damage == "garbage":
        bad.write_bytes(b"this is not a tar archive\n" * 100)
    elif fmt == "docker-archive":
        _rewrite(good, bad, lambda n, d: _flip(d, 200_000) if n.endswith("layer.tar") else d)
    else:
        big = re.compile(r"blobs/sha256/[0-9a-f]{64}")
        _rewrite(good, bad, lambda n, d: _flip(d, 500_000) if big.fullmatch(n) and len(d) > 600_000
                 else d)
    images_before = ok(run(r, "images", "-q"))
    blobs_before = _blob_files(r)
    res = run(r, "load", "-i", str(bad))
    assert res.returncode == 125, res
    err = res.stderr.decode()
    assert len(err.splitlines()) == 1 and err.startswith("sangja: ") and "Traceback" not in err
    assert ok(run(r, "images", "-q")) == images_before
    assert _blob_files(r) == blobs_before
    assert os.listdir(r / "blobs" / "tmp") == []
    assert not [n for n in os.listdir(r) if n.startswith(".load-")]


def test_tampered_diff_id_refused(root, tmp_path):
    """A gzip layer whose blob digest is fine but whose content is not the config's diff_id."""
    r, _ = root
    good = tmp_path / "good.tar"
    ok(run(r, "save", "-o", str(good), "busybox"))
    ok(run(r, "rmi", "busybox"))
    bad = tmp_path / "bad.tar"
    import gzip

    _rewrite(good, bad, lambda n, d: gzip.compress(_flip(d, 200_000), mtime=0)
             if n.endswith("layer.tar") else d)
    res = run(r, "load", "-i", str(bad))
    assert res.returncode == 125 and b"diff_id" in res.stderr, res
    assert ok(run(r, "images", "-q")) == "" and _blob_files(r) == []
    # the same layer gzipped but intact is accepted (compressed docker-archive layers)
    ok_tar = tmp_path / "gz.tar"
    _rewrite(good, ok_tar, lambda n, d: gzip.compress(d, mtime=0) if n.endswith("layer.tar") else d)
    assert "Loaded image: localhost/busybox:latest" in ok(run(r, "load", "-i", str(ok_tar)))


# ---------------------------------------------------------------------------- podman


def _mounts_under(path: str) -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == path or point.startswith(path + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


@pytest.fixture
def podman(tmp_path):
    if PODMAN is None:
        pytest.skip("podman not installed")
    if not os.access(RUNC, os.X_OK):
        pytest.skip("runc not installed")
    _need_busybox()
    store = tmp_path / "podman"
    short = Path(tempfile.mkdtemp(prefix="sj-ar-", dir="/tmp"))
    for d in (store / "storage", store / "networks", short / "run", short / "tmp"):
        d.mkdir(parents=True)
    (store / "containers.conf").write_text(
        "[containers]\ndefault_ulimits = []\n[engine]\n"
        'cgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        f'events_logfile_path = "{short}/tmp/events.log"\n'
        f'[network]\nnetwork_config_dir = "{store}/networks"\n'
    )
    (store / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\nrunroot = "{short}/run"\ngraphroot = "{store}/storage"\n'
    )
    env = dict(os.environ, CONTAINERS_CONF=str(store / "containers.conf"),
               CONTAINERS_STORAGE_CONF=str(store / "storage.conf"))

    def pm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = [PODMAN, "--root", str(store / "storage"), "--runroot", str(short / "run"),
                "--tmpdir", str(short / "tmp"), "--storage-driver", "overlay",
                "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                "--network-config-dir", str(store / "networks"), "--runtime", RUNC, *args]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            p = subprocess.run(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                               timeout=180)
            out.seek(0)
            err.seek(0)
            res = subprocess.CompletedProcess(argv, p.returncode, out.read().decode(),
                                              err.read().decode())
        if check:
            assert res.returncode == 0, f"{' '.join(argv)}: {res.stderr}"
        return res

    try:
        yield pm
    finally:
        pm("rm", "-af", "-t", "0", check=False)
        for base in (str(store), str(short)):
            for point in _mounts_under(base):
                subprocess.run(["umount", "-l", point], check=False, stderr=subprocess.DEVNULL)
        shutil.rmtree(short, ignore_errors=True)
        if not _mounts_under(str(store)):
            shutil.rmtree(store, ignore_errors=True)


def test_docker_archive_loads_into_podman(root, tmp_path, podman):
    r, image_id = root
    archive = tmp_path / "bb.tar"
    ok(run(r, "save", "-o", str(archive), "busybox"))
    res = podman("load", "-i", str(archive))
    assert "localhost/busybox:latest" in res.stdout + res.stderr
    out = podman("run", "--rm", "--runtime", RUNC, "--network", "none",
                 "localhost/busybox:latest", "echo", "hi")
    assert out.stdout == "hi\n"
    ids = podman("images", "--no-trunc", "--format", "{{.ID}}").stdout.split()
    assert image_id[7:] in [i.removeprefix("sha256:") for i in ids]


def test_podman_docker_archive_loads_into_sangja(tmp_path, podman):
    from sangja.image.busybox import build_busybox_rootfs
    from sangja.image.store import ImageStore

    rootfs = tmp_path / "rootfs"
    build_busybox_rootfs(str(rootfs))
    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
    podman("import", str(tar), "example.com/team/pbb:v2")
    archive = tmp_path / "p.tar"
    podman("save", "--format", "docker-archive", "-o", str(archive), "example.com/team/pbb:v2")
    r = tmp_path / "sroot"
    out = ok(run(r, "load", "-i", str(archive)))
    assert out.splitlines() == ["Loaded image: example.com/team/pbb:v2"]
    with ImageStore(r) as store:
        img = store.resolve("example.com/team/pbb:v2")
        pid = podman("image", "inspect", "--format", "{{.Id}}", "example.com/team/pbb:v2")
        assert img.id.removeprefix("sha256:") == pid.stdout.strip().removeprefix("sha256:")
        (layer,) = store.unpacked_layers(img.id)
        assert os.path.isfile(os.path.join(layer, "bin", "busybox"))
    # and back out as OCI, into podman again
    oci = tmp_path / "o.tar"
    ok(run(r, "save", "--format", "oci-archive", "-o", str(oci), "example.com/team/pbb:v2"))
    podman("rmi", "example.com/team/pbb:v2")
    podman("load", "-i", str(oci))
    out = podman("run", "--rm", "--runtime", RUNC, "--network", "none",
                 "example.com/team/pbb:v2", "echo", "hi")
    assert out.stdout == "hi\n"
