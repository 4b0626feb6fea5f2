"""`sangja bootstrap debian`: a Debian image from Debian's packages (mmdebstrap/debootstrap),
reproducible with SOURCE_DATE_EPOCH; bad input fails in one line leaving nothing behind; a
killed bootstrap leaves no process and no mount. Needs root and the Debian mirror."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import processes_referencing, wait_until

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
EPOCH = 1_700_000_000


def sangja_exe() -> list[str]:
    exe = REPO / ".venv" / "bin" / "sangja"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sangja.cli.engine"]


def run(root, *args: str, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([*sangja_exe(), "--root", str(root), *args], capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=env)


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout.decode()


def _need_tool() -> None:
    if not (shutil.which("mmdebstrap") or shutil.which("debootstrap")
            or os.access("/usr/sbin/debootstrap", os.X_OK)):
        pytest.skip("neither mmdebstrap nor debootstrap installed")


def _env(**extra) -> dict:
    return dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH), **extra)


def _mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == path or p.startswith(path + "/")]


def assert_nothing_left(root: Path) -> None:
    assert not [n for n in os.listdir(root) if n.startswith(".bootstrap-")]
    assert _mounts_under(str(root)) == []
    assert processes_referencing(str(root)) == []
    assert os.listdir(root / "blobs" / "tmp") == []


@pytest.fixture(scope="module")
def debian(tmp_path_factory):
    _need_tool()
    root = tmp_path_factory.mktemp("debian") / "root"
    tmp = tmp_path_factory.mktemp("tmpdir")  # the tools' temp files must not stay behind
    r = run(root, "bootstrap", "debian", env=dict(_env(), TMPDIR=str(tmp)))
    assert os.listdir(tmp) == []
    if r.returncode != 0 and b"Failed to fetch" in r.stderr:
        pytest.skip(f"no Debian mirror: {r.stderr.decode().strip()}")
    return root, ok(r).strip()


@pytest.mark.slow
def test_bootstrap_debian(debian):
    root, image_id = debian
    info = json.loads(ok(run(root, "image", "inspect", "localhost/debian:bookworm")))[0]
    assert info["Id"] == image_id
    assert info["Config"]["Cmd"] == ["bash"]
    assert info["Config"]["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert info["Created"] == "2023-11-14T22:13:20Z"  # SOURCE_DATE_EPOCH
    assert "bootstrap debian --suite bookworm --variant minbase" in \
        info["History"][0]["created_by"]
    from sangja.image.store import ImageStore

    with ImageStore(root) as store:
        (layer,) = store.unpacked_layers(image_id)
    layer = Path(layer)
    assert (layer / "etc" / "debian_version").read_text().startswith("12")
    assert os.access(layer / "usr" / "bin" / "bash", os.X_OK)
    assert (layer / "usr" / "bin" / "apt-get").exists()
    for host_file in ("etc/hostname", "etc/resolv.conf"):
        assert not os.path.lexists(layer / host_file)
    newest = max(os.lstat(os.path.join(d, n)).st_mtime
                 for d, dirs, files in os.walk(layer) for n in dirs + files)
    assert newest <= EPOCH
    assert info["Size"] > 100_000_000
    assert_nothing_left(root)


@pytest.mark.slow
def test_bootstrap_debian_is_reproducible(debian, tmp_path):
    root, image_id = debian
    other = tmp_path / "other"
    assert ok(run(other, "bootstrap", "debian", "--suite", "bookworm", "example.com/deb:12",
                  env=_env())).strip() == image_id
    assert_nothing_left(other)


@pytest.mark.parametrize(("args", "message"), [
    (["--variant", "tiny"], "unknown variant 'tiny'"),
    (["--include", "ok,Bad_Pkg"], "invalid package name 'Bad_Pkg'"),
    (["--suite", "bad suite"], "invalid suite"),
    (["--mirror", "ftp://x"], "invalid mirror"),
    (["Bad:Name:X"], "invalid image reference"),
    (["--suite", "nosuchsuite"], "nosuchsuite Release"),
    (["--mirror", "http://127.0.0.1:9/debian"], "127.0.0.1:9"),
])
def test_bad_input_one_line_nothing_left(tmp_path, args, message):
    _need_tool()
    root = tmp_path / "root"
    r = run(root, "bootstrap", "debian", *args, env=_env(), timeout=300)
    err = r.stderr.decode()
    assert r.returncode == 125, err
    assert len(err.splitlines()) == 1 and err.startswith("sangja: "), err
    assert message in err and "Traceback" not in err
    assert r.stdout == b""
    if root.exists():
        assert ok(run(root, "images", "-q")) == ""
        assert os.listdir(root / "blobs" / "sha256") == []
        assert_nothing_left(root)


@pytest.mark.slow
def test_unknown_package(tmp_path):
    _need_tool()
    root = tmp_path / "root"
    r = run(root, "bootstrap", "debian", "--include", "nosuchpkg-xyz", env=_env())
    err = r.stderr.decode()
    assert r.returncode == 125 and len(err.splitlines()) == 1, err
    assert "nosuchpkg-xyz" in err
    assert_nothing_left(root)


def _start_and_wait_for_the_tool(root: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([*sangja_exe(), "--root", str(root), "bootstrap", "debian"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env())

    def scratch_busy():
        if proc.poll() is not None:
            raise AssertionError(f"bootstrap ended early: {proc.stderr.read().decode()}")
        dirs = [root / n for n in os.listdir(root)] if root.exists() else []
        dirs = [d for d in dirs if d.name.startswith(".bootstrap-")]
        # the tool has started writing the new root (apt is fetching into it)
        if dirs and (dirs[0] / "rootfs" / "var" / "lib" / "dpkg").exists() \
                and processes_referencing(str(dirs[0])):
            return dirs[0]
        return None

    scratch = wait_until(scratch_busy, timeout=60, interval=0.1, message="mmdebstrap")
    time.sleep(1.0)  # well inside: apt/dpkg running, /proc and /dev mounted in its namespace
    return proc, scratch


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_killed_bootstrap_leaves_no_process_or_mount(tmp_path, sig):
    _need_tool()
    root = tmp_path / "root"
    proc, scratch = _start_and_wait_for_the_tool(root)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode != 0
    # the tool and everything it started die with sangja; their mounts never were ours
    wait_until(lambda: processes_referencing(str(scratch)) == [], timeout=20,
               message="the bootstrap tool's processes to go")
    assert _mounts_under(str(root)) == []
    if sig == signal.SIGTERM:  # cleaned up on the way out
        assert not scratch.exists()
        assert_nothing_left(root)
    else:  # left for the collector, but only files: removable without unmounting anything
        shutil.rmtree(scratch)
    assert ok(run(root, "images", "-q")) == ""
