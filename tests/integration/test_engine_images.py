"""`sangja` image commands against a temporary storage root, with the host's real busybox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]


def sangja_exe() -> list[str]:
    exe = REPO / ".venv" / "bin" / "sangja"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sangja.cli.engine"]


def run(root, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*sangja_exe(), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory):
    from sangja.image.busybox import BusyboxNotFound, find_static_busybox

    try:
        find_static_busybox()
    except BusyboxNotFound as e:
        pytest.skip(str(e))
    root = tmp_path_factory.mktemp("engine") / "root"
    r = run(root, "bootstrap", "busybox")
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    return root, image_id


def test_images_lists_busybox(bootstrapped):
    root, image_id = bootstrapped
    r = run(root, "images")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    row = next(line for line in lines[1:] if line.startswith("localhost/busybox "))
    cols = row.split()
    assert cols[1] == "latest" and cols[2] == image_id[7:19]
    size = cols[-1]
    assert size.endswith("MB") and 1.0 <= float(size[:-2]) <= 4.0, size
    q = run(root, "images", "-q")
    assert image_id[7:19] in q.stdout.split()
    j = run(root, "images", "--format", "json")  # one object per line, as docker's
    rows = [json.loads(line) for line in j.stdout.splitlines()]
    assert any(x["Repository"] == "localhost/busybox" and x["ID"] == image_id[7:19]
               for x in rows)
    full = run(root, "images", "--no-trunc", "--format", "{{.Repository}} {{.ID}}")
    assert f"localhost/busybox {image_id}" in full.stdout.splitlines()
    t = run(root, "images", "--format", "table {{.Repository}}\t{{.Tag}}").stdout.splitlines()
    assert t[0] == "REPOSITORY          TAG" and "localhost/busybox   latest" in t
    d = run(root, "images", "--digests")
    assert "DIGEST" in d.stdout.splitlines()[0] and "sha256:" in d.stdout


def test_image_inspect(bootstrapped):
    root, image_id = bootstrapped
    r = run(root, "image", "inspect", "busybox")
    assert r.returncode == 0, r.stderr
    (info,) = json.loads(r.stdout)
    assert info["Id"] == image_id
    assert info["RepoTags"] == ["localhost/busybox:latest"]
    assert info["Os"] == "linux" and info["Architecture"]
    assert info["Config"]["Cmd"] == ["sh"]
    assert info["RootFS"]["Type"] == "layers" and len(info["RootFS"]["Layers"]) == 1
    assert 1_000_000 < info["Size"] < 4_000_000


def test_sangja_root_env(bootstrapped):
    root, image_id = bootstrapped
    env = dict(os.environ, SANGJA_ROOT=str(root))
    r = subprocess.run(
        [*sangja_exe(), "images", "-q"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 0 and image_id[7:19] in r.stdout


@pytest.mark.parametrize(
    "args, code",
    [
        (("rmi", "nosuch"), 1),  # docker: what its daemon refuses is exit 1
        (("tag", "nosuch", "x"), 1),
        (("image", "inspect", "nosuch"), 1),
        (("tag", "busybox", "UPPER/Case"), 125),
        (("rmi", "UPPER/Case"), 1),
        (("bootstrap", "busybox", "UPPER/Case"), 125),
        (("nosuchcommand",), 1),  # docker: "unknown command", exit 1
        (("images", "--bogus"), 125),
    ],
)
def test_bad_input(bootstrapped, args, code):
    root, _ = bootstrapped
    r = run(root, *args)
    assert r.returncode == code, (r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sangja: "), r.stderr
    assert "Traceback" not in r.stderr


def test_tag_then_rmi_empties_store(tmp_path):
    from sangja.image.busybox import BusyboxNotFound, find_static_busybox

    try:
        find_static_busybox()
    except BusyboxNotFound as e:
        pytest.skip(str(e))
    root = tmp_path / "root"
    assert run(root, "bootstrap", "busybox").returncode == 0
    r = run(root, "tag", "busybox", "example.com/team/bb:v1")
    assert r.returncode == 0, r.stderr
    r = run(root, "rmi", "busybox")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Untagged: localhost/busybox:latest"
    assert os.listdir(root / "blobs" / "sha256")
    r = run(root, "rmi", "example.com/team/bb:v1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1].startswith("Deleted: sha256:")
    assert os.listdir(root / "blobs" / "sha256") == []
    assert [n for n in os.listdir(root / "layers") if not n.startswith(".")] == []
    assert run(root, "images", "-q").stdout == ""
    assert not [n for n in os.listdir(root) if n.startswith(".bootstrap-")]
    assert os.listdir(root / "blobs" / "tmp") == []
