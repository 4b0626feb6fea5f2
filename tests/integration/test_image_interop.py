"""Image interop with the real peers from Debian: skopeo, umoci and docker read what sangja
writes, and what they write loads here with the same ids, diff ids and files.

podman's side is in test_image_archives.py. Every peer works in temporary directories; the
docker tests start a private dockerd (own data root, exec root, socket, no bridge, no
iptables) and stop it at the end, checking that no process, mount or network link of it is
left.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import stop_private_daemon, wait_until

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
SKOPEO = shutil.which("skopeo")
UMOCI = shutil.which("umoci")
DOCKERD = shutil.which("dockerd")
# the client of the docker.io package (a newer static client may sit earlier on PATH)
DOCKER = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else shutil.which("docker")


def sangja_exe() -> list[str]:
    exe = REPO / ".venv" / "bin" / "sangja"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sangja.cli.engine"]


def run(root, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*sangja_exe(), "--root", str(root), *args], capture_output=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, (r.args, r.stderr.decode(errors="replace"))
    return r.stdout.decode()


def tool(*argv, check: bool = True, env=None, timeout: float = 180) -> str:
    r = subprocess.run([str(a) for a in argv], capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, env=env)
    if check:
        assert r.returncode == 0, (argv, r.stderr.decode(errors="replace"))
    return r.stdout.decode()


def need(path: str | None, name: str) -> str:
    if path is None:
        pytest.skip(f"{name} not installed")
    return path


def _need_busybox() -> None:
    from sangja.image.busybox import BusyboxNotFound, find_static_busybox

    try:
        find_static_busybox()
    except BusyboxNotFound as e:
        pytest.skip(str(e))


def snapshot(root, skip=()) -> dict[str, tuple]:
    """Every entry under root: type and mode, owner, mtime (not for directories, whose
    mtimes tools set differently), size and sha256 / link target / device number."""
    out = {}
    root = str(root)
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if rel in skip or rel.split("/")[0] in skip:
                continue
            st = os.lstat(full)
            extra: object = None
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    extra = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(full)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = st.st_rdev
            mtime = None if stat.S_ISDIR(st.st_mode) else int(st.st_mtime)
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, mtime, extra)
    return out


def store_of(root):
    from sangja.image.store import ImageStore

    return ImageStore(root)


def merged(root, name: str, dest: Path) -> Path:
    """The image's root filesystem: its stored layer blobs applied in order."""
    from sangja.image.layers import apply_layer

    dest.mkdir()
    with store_of(root) as store:
        img = store.resolve(name)
        blobs = {la.diff_id: la.blob_digest for la in store.db.layers()}
        for diff_id in img.layers:
            apply_layer(store.blobs.path(blobs[diff_id]), dest)
    return dest


def layer_dirs(root, name: str) -> list[str]:
    with store_of(root) as store:
        return store.unpacked_layers(store.resolve(name).id)


def inspect(root, name: str) -> dict:
    return json.loads(ok(run(root, "image", "inspect", name)))[0]


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    """A busybox image made here, its archives in both formats and its files."""
    _need_busybox()
    base = tmp_path_factory.mktemp("ours")
    root = base / "root"
    image_id = ok(run(root, "bootstrap", "busybox")).strip()
    oci, docker = base / "bb.oci.tar", base / "bb.docker.tar"
    ok(run(root, "save", "--format", "oci-archive", "-o", str(oci), "busybox"))
    ok(run(root, "save", "--format", "docker-archive", "-o", str(docker), "busybox"))
    info = inspect(root, "busybox")
    (layer,) = layer_dirs(root, "busybox")
    with store_of(root) as store:
        blob = {la.diff_id: la.blob_digest for la in store.db.layers()}[info["RootFS"]["Layers"][0]]
    return SimpleNamespace(root=root, id=image_id, oci=oci, docker=docker, info=info,
                           digest=info["Digest"], diff_ids=info["RootFS"]["Layers"],
                           blob=blob, files=snapshot(layer))


# ---------------------------------------------------------------------------- compressed


@pytest.mark.parametrize(("fmt", "compressor"), [("docker", "gzip"), ("oci", "zstd"),
                                                 ("docker", "xz")])
def test_compressed_archive_through_a_pipe(ours, tmp_path, fmt, compressor):
    """`docker save | gzip` and the like load from stdin (docker load accepts them too)."""
    exe = need(shutil.which(compressor), compressor)
    archive = ours.docker if fmt == "docker" else ours.oci
    root = tmp_path / "root"
    with open(archive, "rb") as f:
        comp = subprocess.Popen([exe, "-c"], stdin=f, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        r = subprocess.run([*sangja_exe(), "--root", str(root), "load"], stdin=comp.stdout,
                           capture_output=True, timeout=120)
        comp.stdout.close()
        comp.wait()
    assert ok(r).splitlines() == ["Loaded image: localhost/busybox:latest"]
    got = inspect(root, "busybox")
    assert got["Id"] == ours.id and got["RootFS"]["Layers"] == ours.diff_ids
    assert not [n for n in os.listdir(root) if n.startswith(".load-")]


# ---------------------------------------------------------------------------- skopeo


def test_skopeo_reads_ours(ours, tmp_path):
    skopeo = need(SKOPEO, "skopeo")
    got = json.loads(tool(skopeo, "inspect", f"oci-archive:{ours.oci}"))
    assert got["Digest"] == ours.digest
    assert got["Layers"] == [ours.blob]
    assert got["Architecture"] == ours.info["Architecture"] and got["Os"] == "linux"
    config = json.loads(tool(skopeo, "inspect", "--config", f"oci-archive:{ours.oci}"))
    assert config["rootfs"]["diff_ids"] == ours.diff_ids
    # copies out of our archive into an OCI layout and a docker-archive
    tool(skopeo, "copy", f"oci-archive:{ours.oci}", f"oci:{tmp_path / 'layout'}:copied")
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == ours.digest  # nothing rewritten
    tool(skopeo, "copy", f"oci-archive:{ours.oci}",
         f"docker-archive:{tmp_path / 'd.tar'}:example.com/sk/bb:1")
    assert tarfile.is_tarfile(tmp_path / "d.tar")
    # and our docker-archive
    got = json.loads(tool(skopeo, "inspect", f"docker-archive:{ours.docker}"))
    assert got["RepoTags"] == [] or "localhost/busybox" in json.dumps(got)
    config = json.loads(tool(skopeo, "inspect", "--config", f"docker-archive:{ours.docker}"))
    assert config["rootfs"]["diff_ids"] == ours.diff_ids


SKOPEO_FORMATS = [
    ("docker-archive", []),
    ("docker-archive", ["--format", "v2s2"]),
    ("oci-archive", []),
    ("oci-archive", ["--format", "v2s2"]),  # a Docker schema-2 manifest in an OCI archive
    ("oci-layout", ["--format", "v2s2"]),  # skopeo's oci: directory, tarred up
    ("oci-archive", ["--dest-compress-format", "zstd", "--dest-compress"]),
]


@pytest.mark.parametrize(("dest", "flags"), SKOPEO_FORMATS,
                         ids=["docker", "docker-v2s2", "oci", "oci-v2s2", "layout-v2s2",
                              "oci-zstd"])
def test_skopeo_archives_load_here(ours, tmp_path, dest, flags):
    skopeo = need(SKOPEO, "skopeo")
    if "zstd" in flags and shutil.which("zstd") is None:
        pytest.skip("zstd not installed")
    archive = tmp_path / "a.tar"
    if dest == "oci-layout":
        tool(skopeo, "copy", *flags, f"oci-archive:{ours.oci}", f"oci:{tmp_path / 'l'}:sk")
        with tarfile.open(archive, "w") as tf:
            for name in sorted(os.listdir(tmp_path / "l")):
                tf.add(tmp_path / "l" / name, arcname=name)
        want = "localhost/sk:latest"
    elif dest == "docker-archive":
        tool(skopeo, "copy", *flags, f"oci-archive:{ours.oci}",
             f"docker-archive:{archive}:example.com/sk/bb:1")
        want = "example.com/sk/bb:1"
    else:
        tool(skopeo, "copy", *flags, f"oci-archive:{ours.oci}", f"oci-archive:{archive}:sk")
        want = "localhost/sk:latest"
    if dest == "oci-layout":  # skopeo does not read back a v2s2 manifest from a layout
        entry = json.loads((tmp_path / "l" / "index.json").read_text())["manifests"][0]
        raw = (tmp_path / "l" / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_bytes()
    else:
        raw = tool(skopeo, "inspect", "--raw", f"{dest}:{archive}").encode()
    manifest = json.loads(raw)
    root = tmp_path / "root"
    assert ok(run(root, "load", "-i", str(archive))).splitlines() == [f"Loaded image: {want}"]
    got = inspect(root, want)
    assert got["Id"] == ours.id
    assert got["RootFS"]["Layers"] == ours.diff_ids
    if dest != "docker-archive":  # the manifest is kept exactly as skopeo wrote it
        want_type = ("application/vnd.docker.distribution.manifest.v2+json"
                     if "v2s2" in flags else "application/vnd.oci.image.manifest.v1+json")
        assert manifest["mediaType"] == want_type
        assert got["Digest"] == f"sha256:{hashlib.sha256(raw).hexdigest()}"
    (layer,) = layer_dirs(root, want)
    assert snapshot(layer) == ours.files
    # and it goes out again
    ok(run(root, "save", "--format", "oci-archive", "-o", str(tmp_path / "again.tar"), want))
    assert json.loads(tool(skopeo, "inspect", f"oci-archive:{tmp_path / 'again.tar'}"))["Layers"]


def _skopeo_v2s2_layout(ours, tmp_path: Path) -> tuple[Path, dict]:
    skopeo = need(SKOPEO, "skopeo")
    layout = tmp_path / "l"
    tool(skopeo, "copy", "--format", "v2s2", f"oci-archive:{ours.oci}", f"oci:{layout}:x")
    index = json.loads((layout / "index.json").read_text())
    return layout, index["manifests"][0]


def _add_blob(layout: Path, data: bytes) -> str:
    hexpart = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / hexpart).write_bytes(data)
    return f"sha256:{hexpart}"


def _tar_layout(layout: Path, archive: Path) -> None:
    with tarfile.open(archive, "w") as tf:
        for name in sorted(os.listdir(layout)):
            tf.add(layout / name, arcname=name)


def test_manifest_list_in_a_layout_picks_the_host(ours, tmp_path):
    """A Docker manifest list (our image for this host, others for other platforms whose
    blobs are not even there) in an OCI layout: the host's image is loaded."""
    from sangja.image.manifest import DOCKER_LIST, DOCKER_MANIFEST, host_platform

    layout, entry = _skopeo_v2s2_layout(ours, tmp_path)
    host = host_platform()
    missing = "sha256:" + "9" * 64
    listing = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": missing, "size": 500,
         "platform": {"architecture": "s390x", "os": "linux"}},
        {"mediaType": DOCKER_MANIFEST, "digest": entry["digest"], "size": entry["size"],
         "platform": {"architecture": host.architecture, "os": "linux",
                      **({"variant": host.variant} if host.variant else {})}},
    ]}
    data = json.dumps(listing).encode()
    digest = _add_blob(layout, data)
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": DOCKER_LIST, "digest": digest, "size": len(data),
         "annotations": {"org.opencontainers.image.ref.name": "example.com/multi:1"}}]}))
    archive = tmp_path / "multi.tar"
    _tar_layout(layout, archive)
    root = tmp_path / "root"
    assert "Loaded image: example.com/multi:1" in ok(run(root, "load", "-i", str(archive)))
    got = inspect(root, "example.com/multi:1")
    assert got["Id"] == ours.id and got["Digest"] == entry["digest"]

    # none for this host: refused, the platforms listed, the store unchanged
    listing["manifests"] = [listing["manifests"][0],
                            {**listing["manifests"][0],
                             "platform": {"architecture": "arm", "os": "linux",
                                          "variant": "v5"}}]
    if host.architecture in ("s390x", "arm"):
        pytest.skip("the test's foreign platforms are this host's")
    data = json.dumps(listing).encode()
    digest = _add_blob(layout, data)
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": DOCKER_LIST, "digest": digest, "size": len(data)}]}))
    _tar_layout(layout, archive)
    before = sorted(os.listdir(root / "blobs" / "sha256"))
    res = run(root, "load", "-i", str(archive))
    err = res.stderr.decode()
    assert res.returncode == 125 and len(err.splitlines()) == 1, err
    assert f"no image for {host}" in err and "linux/s390x, linux/arm/v5" in err
    assert sorted(os.listdir(root / "blobs" / "sha256")) == before


def test_schema1_and_foreign_layers_refused_clearly(ours, tmp_path):
    layout, entry = _skopeo_v2s2_layout(ours, tmp_path)
    algo, hexpart = entry["digest"].split(":")
    manifest = json.loads((layout / "blobs" / algo / hexpart).read_bytes())
    # a foreign layer whose blob is not in the archive
    layer = manifest["layers"][0]
    (layout / "blobs" / "sha256" / layer["digest"].split(":")[1]).unlink()
    foreign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    manifest["layers"][0] = {**layer, "urls": ["https://example.com/layer"],
                             "mediaType": foreign}
    data = json.dumps(manifest).encode()
    digest = _add_blob(layout, data)
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": manifest["mediaType"], "digest": digest, "size": len(data)}]}))
    archive = tmp_path / "foreign.tar"
    _tar_layout(layout, archive)
    res = run(tmp_path / "root", "load", "-i", str(archive))
    err = res.stderr.decode()
    assert res.returncode == 125 and len(err.splitlines()) == 1, err
    assert "foreign layer" in err and "https://example.com/layer" in err
    # schema 1
    data = json.dumps({"schemaVersion": 1, "name": "x", "tag": "1", "fsLayers": []}).encode()
    digest = _add_blob(layout, data)
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws",
         "digest": digest, "size": len(data)}]}))
    _tar_layout(layout, archive)
    res = run(tmp_path / "root", "load", "-i", str(archive))
    err = res.stderr.decode()
    assert res.returncode == 125 and "schema 1" in err and len(err.splitlines()) == 1, err


# ---------------------------------------------------------------------------- umoci


def _extract(archive: Path, dest: Path) -> Path:
    dest.mkdir()
    subprocess.run(["tar", "-C", str(dest), "-xf", str(archive)], check=True)
    return dest


# ---------------------------------------------------------------------------- layout dirs


@pytest.mark.parametrize("flags", [[], ["--format", "v2s2"]], ids=["oci", "v2s2"])
def test_layout_directories_load_here(ours, tmp_path, flags):
    """`load -i DIR` and `oci:DIR[:NAME]` read skopeo's OCI layout directories in place (no
    tar around them); `docker-archive:FILE` as skopeo spells it."""
    skopeo = need(SKOPEO, "skopeo")
    layout = tmp_path / "l"
    tool(skopeo, "copy", *flags, f"oci-archive:{ours.oci}", f"oci:{layout}:one")
    tool(skopeo, "copy", *flags, f"oci-archive:{ours.oci}", f"oci:{layout}:two")
    root = tmp_path / "root"
    out = ok(run(root, "load", "-i", str(layout))).splitlines()
    assert out == ["Loaded image: localhost/one:latest", "Loaded image: localhost/two:latest"]
    assert inspect(root, "one")["Id"] == ours.id
    (layer,) = layer_dirs(root, "one")
    assert snapshot(layer) == ours.files
    # one name out of several
    root2 = tmp_path / "root2"
    assert ok(run(root2, "load", "-i", f"oci:{layout}:two")).splitlines() == [
        "Loaded image: localhost/two:latest"]
    r = run(root2, "load", "-i", f"oci:{layout}:three")
    assert r.returncode == 125 and "names no image 'three'" in r.stderr.decode()
    assert ok(run(root2, "load", "-i", f"docker-archive:{ours.docker}")).splitlines() == [
        "Loaded image: localhost/busybox:latest"]


def test_layout_directory_links_and_devices_refused(ours, tmp_path):
    """A layout's blobs are opened beneath it, never through a symlink, never a FIFO read as
    data: each refused with one line, the store unchanged."""
    skopeo = need(SKOPEO, "skopeo")
    layout = tmp_path / "l"
    tool(skopeo, "copy", f"oci-archive:{ours.oci}", f"oci:{layout}:x")
    root = tmp_path / "root"
    ok(run(root, "images"))
    before = sorted(os.listdir(root / "blobs" / "sha256"))
    blob = layout / "blobs" / "sha256" / ours.blob.split(":")[1]
    outside = tmp_path / "outside"
    blob.rename(outside)
    for plant, why in ((lambda: blob.symlink_to(outside), "symlink"),
                       (lambda: os.mkfifo(blob), "not a regular file")):
        plant()
        r = run(root, "load", "-i", str(layout))
        err = r.stderr.decode()
        assert r.returncode == 125 and len(err.splitlines()) == 1 and why in err, err
        assert sorted(os.listdir(root / "blobs" / "sha256")) == before
        assert os.listdir(root / "layers") == []
        blob.unlink()
    # the directory itself a symlink to the layout is fine (the user named it); one that
    # is no layout is refused clearly
    (tmp_path / "empty").mkdir()
    r = run(root, "load", "-i", str(tmp_path / "empty"))
    assert r.returncode == 125 and "not an OCI image layout" in r.stderr.decode()


def test_umoci_unpacks_ours(ours, tmp_path):
    umoci = need(UMOCI, "umoci")
    layout = _extract(ours.oci, tmp_path / "layout")
    tool(umoci, "unpack", "--image", f"{layout}:localhost/busybox:latest", tmp_path / "bundle")
    assert snapshot(tmp_path / "bundle" / "rootfs") == ours.files
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert config["process"]["env"][0].startswith("PATH=")


def test_umoci_images_load_here(ours, tmp_path):
    """umoci init/new/insert/repack: a base image and a second one whose layer deletes and
    adds files (a whiteout) load here; the files match umoci's own unpack."""
    umoci = need(UMOCI, "umoci")
    layout = tmp_path / "layout"
    src = _extract(ours.oci, tmp_path / "src")  # our files, as umoci itself unpacks them
    tool(umoci, "unpack", "--image", f"{src}:localhost/busybox:latest", tmp_path / "b0")
    tool(umoci, "init", "--layout", layout)
    tool(umoci, "new", "--image", f"{layout}:base")
    tool(umoci, "insert", "--image", f"{layout}:base", tmp_path / "b0" / "rootfs", "/")
    tool(umoci, "config", "--image", f"{layout}:base", "--config.cmd", "sh")
    tool(umoci, "unpack", "--image", f"{layout}:base", tmp_path / "b1")
    rootfs = tmp_path / "b1" / "rootfs"
    (rootfs / "bin" / "ls").unlink()
    (rootfs / "opt").mkdir()
    (rootfs / "opt" / "made-by-umoci").write_text("umoci\n")
    tool(umoci, "repack", "--image", f"{layout}:v2", tmp_path / "b1")
    tool(umoci, "unpack", "--image", f"{layout}:v2", tmp_path / "b2")
    archive = tmp_path / "umoci.tar"
    _tar_layout(layout, archive)
    root = tmp_path / "root"
    out = ok(run(root, "load", "-i", str(archive))).splitlines()
    assert out == ["Loaded image: localhost/base:latest", "Loaded image: localhost/v2:latest"]
    got = inspect(root, "localhost/v2:latest")
    assert len(got["RootFS"]["Layers"]) == 2 and got["Config"]["Cmd"] == ["sh"]
    # the merged files are umoci's
    assert snapshot(merged(root, "localhost/v2:latest", tmp_path / "m")) == \
        snapshot(tmp_path / "b2" / "rootfs")
    # the top layer is in overlay format: the deleted file is a whiteout device
    lower, upper = layer_dirs(root, "localhost/v2:latest")
    st = os.lstat(os.path.join(upper, "bin", "ls"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert open(os.path.join(upper, "opt", "made-by-umoci")).read() == "umoci\n"
    assert snapshot(lower) == ours.files


# ---------------------------------------------------------------------------- docker


def _links() -> list[str]:
    """The host's links, less sangja's bridges (sj...) and netavark's veths, which tests
    of other workers make and remove meanwhile (dockerd runs here without a bridge: what
    it could leave is docker0 or a br-...)."""
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = (line.split(":")[1].strip() for line in out.splitlines() if ":" in line)
    return sorted(n for n in names if not n.startswith(("sj", "veth")))


@pytest.fixture(scope="module")
def docker():
    """A private dockerd: its own data root, exec root, socket and containerd; no bridge,
    no iptables. Skips when dockerd cannot start here."""
    need(DOCKERD, "dockerd")
    need(DOCKER, "docker")
    base = Path(tempfile.mkdtemp(prefix="sj-dk-", dir="/tmp"))  # unix socket paths are short
    links_before = _links()
    # containerd's shims and dockerd's plugins use these fixed paths whatever the roots
    fixed = ["/run/containerd/s", "/run/containerd", "/run/docker/plugins", "/run/docker"]
    fixed_before = {d for d in fixed if os.path.lexists(d)}
    (base / "daemon.json").write_text("{}")
    sock = f"unix://{base}/docker.sock"
    cmd = [DOCKERD, "--config-file", str(base / "daemon.json"), "--data-root",
           str(base / "data"), "--exec-root", str(base / "x"), "--pidfile", str(base / "pid"),
           "--host", sock, "--bridge=none", "--iptables=false", "--ip6tables=false",
           "--ip-forward=false", "--ip-masq=false", "--userland-proxy=false",
           "--storage-driver=overlay2", "--exec-opt", "native.cgroupdriver=cgroupfs",
           "--log-level=warn"]
    env = dict(os.environ, DOCKER_HOST=sock, DOCKER_CONFIG=str(base / "client"))
    with open(base / "log", "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def dk(*args, check=True, timeout=120) -> str:
        return tool(DOCKER, *args, check=check, env=env, timeout=timeout)

    dk.env = env  # for tests that need docker's exit code (test_cli_docker)

    def up() -> bool:
        if proc.poll() is not None:
            return True
        r = subprocess.run([DOCKER, "version", "--format", "{{.Server.Version}}"], env=env,
                           capture_output=True, timeout=30)
        return r.returncode == 0

    started = False
    try:
        wait_until(up, timeout=60, interval=0.2, message="dockerd")
        started = proc.poll() is None
    except AssertionError:
        pass
    try:
        if not started:
            tail = (base / "log").read_text(errors="replace").strip().splitlines()[-3:]
            pytest.skip(f"dockerd does not start here: {' | '.join(tail)}")
        yield dk
    finally:
        if started:
            ids = dk("ps", "-aq", check=False).split()
            if ids:
                dk("rm", "-f", *ids, check=False)
        # dockerd stops its containerd and shims; anything still running is a leak
        leftovers, leaked_mounts = stop_private_daemon(proc, base, fixed, fixed_before)
        assert leftovers == [], f"dockerd left processes: {leftovers}"
        assert leaked_mounts == [], f"dockerd left mounts: {leaked_mounts}"
        assert _links() == links_before, "dockerd left network links"


def test_docker_loads_and_runs_ours(ours, docker):
    out = docker("load", "-i", str(ours.docker))
    assert "Loaded image: localhost/busybox:latest" in out
    got = json.loads(docker("image", "inspect", "localhost/busybox:latest"))[0]
    assert got["Id"] == ours.id
    assert got["RootFS"]["Layers"] == ours.diff_ids
    out = docker("run", "--rm", "--network", "none", "localhost/busybox:latest",
                 "sh", "-c", "echo hi from $(cat /proc/1/comm)")
    assert out == "hi from sh\n"


def test_docker_save_loads_here(ours, docker, tmp_path):
    """docker import + a committed change (a deletion and a new file): docker save loads
    here with docker's ids and docker's files."""
    from sangja.image.busybox import build_busybox_rootfs

    rootfs = tmp_path / "rootfs"
    build_busybox_rootfs(str(rootfs))
    (rootfs / "etc").mkdir(exist_ok=True)
    (rootfs / "etc" / "motd").write_text("imported\n")
    tarball = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."],
                   check=True)
    docker("import", "--change", "CMD [\"sh\"]", str(tarball), "example.com/dk/base:1")
    name = f"sj-commit-{os.getpid()}"
    docker("run", "--name", name, "--network", "none", "example.com/dk/base:1", "sh", "-c",
           "rm /bin/ls /etc/motd && mkdir -p /opt/d && echo docker > /opt/d/f")
    docker("commit", name, "example.com/dk/img:2")
    docker("rm", name)
    archive = tmp_path / "docker.tar"
    docker("save", "-o", str(archive), "example.com/dk/img:2")
    root = tmp_path / "root"
    assert ok(run(root, "load", "-i", str(archive))).splitlines() == [
        "Loaded image: example.com/dk/img:2"]
    theirs = json.loads(docker("image", "inspect", "example.com/dk/img:2"))[0]
    got = inspect(root, "example.com/dk/img:2")
    assert got["Id"] == theirs["Id"]
    assert got["RootFS"]["Layers"] == theirs["RootFS"]["Layers"]
    assert len(got["RootFS"]["Layers"]) == 2
    # docker's view of the files: export of a (never started) container of the image
    cid = docker("create", "--network", "none", "example.com/dk/img:2").strip()
    exported = tmp_path / "export.tar"
    docker("export", "-o", str(exported), cid)
    docker("rm", cid)
    ref = tmp_path / "ref"
    ref.mkdir()
    subprocess.run(["tar", "-C", str(ref), "--numeric-owner", "-xf", str(exported)], check=True)
    mine = merged(root, "example.com/dk/img:2", tmp_path / "m")
    init_layer = {".dockerenv", "dev", "proc", "sys", "etc/hostname", "etc/hosts",
                  "etc/resolv.conf", "etc/mtab"}

    def files(tree):
        return {k: v[:3] + v[4:] for k, v in snapshot(tree, skip=init_layer).items()
                if not stat.S_ISDIR(v[0])}

    assert files(mine) == files(ref)
    assert not (mine / "bin" / "ls").exists() and not (mine / "etc" / "motd").exists()
    assert (mine / "opt" / "d" / "f").read_text() == "docker\n"
    _, upper = layer_dirs(root, "example.com/dk/img:2")
    assert stat.S_ISCHR(os.lstat(os.path.join(upper, "bin", "ls")).st_mode)

    # our image, through docker and back: the same image
    docker("load", "-i", str(ours.docker))
    docker("save", "-o", str(tmp_path / "bb.tar"), "localhost/busybox:latest")
    root2 = tmp_path / "root2"
    ok(run(root2, "load", "-i", str(tmp_path / "bb.tar")))
    back = inspect(root2, "localhost/busybox:latest")
    assert back["Id"] == ours.id and back["RootFS"]["Layers"] == ours.diff_ids
    (layer,) = layer_dirs(root2, "localhost/busybox:latest")
    assert snapshot(layer) == ours.files
