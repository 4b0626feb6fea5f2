"""sangja against a private dockerd (test_image_interop's fixture): `inspect` and `image
inspect` have docker's keys (HostConfig's in docker's order), `info --format` gives the
same facts, and exit codes are docker's for the same commands. Every container here is on
`--network none`."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from engine_cli import wait_until
from test_image_interop import docker  # noqa: F401 - the private dockerd fixture

pytestmark = pytest.mark.root

IMAGE = "localhost/busybox:latest"


@pytest.fixture(scope="module")
def dk(docker, engine, tmp_path_factory):  # noqa: F811 - the fixture imported above
    """The private dockerd with sangja's busybox loaded (the same image id on both)."""
    archive = tmp_path_factory.mktemp("dk") / "busybox.tar"
    engine.ok("save", "-o", str(archive), IMAGE)
    docker("load", "-i", str(archive))
    return docker


def dk_status(dk, *args: str) -> int:
    """docker's exit code for a command against the fixture's dockerd."""
    from test_image_interop import DOCKER

    return subprocess.run([DOCKER, *args], capture_output=True, env=dk.env, timeout=120,
                          stdin=subprocess.DEVNULL).returncode


def keys(d: dict) -> list[str]:
    return list(d)


def test_inspect_has_dockers_keys(cli, dk):
    flags = ["--network", "none", "--memory", "64m"]
    theirs = json.loads(dk("inspect", dk("create", *flags, IMAGE, "sleep", "100").strip()))[0]
    ours = cli.inspect(cli.create(*flags, IMAGE, "sleep", "100"))
    assert set(ours) == set(theirs)
    assert keys(ours["HostConfig"]) == keys(theirs["HostConfig"])  # docker's 65, its order
    assert ours["HostConfig"]["MemorySwap"] == theirs["HostConfig"]["MemorySwap"] == 2 * 64 << 20
    for part in ("State", "Config", "GraphDriver"):
        assert set(ours[part]) == set(theirs[part]), part
    assert set(ours["GraphDriver"]["Data"]) == set(theirs["GraphDriver"]["Data"])
    assert set(ours["NetworkSettings"]) == set(theirs["NetworkSettings"])
    assert set(theirs["NetworkSettings"]["Networks"]["none"]) <= set(
        ours["NetworkSettings"]["Networks"]["none"])
    assert ours["ExecIDs"] is theirs["ExecIDs"] is None
    assert "Health" not in ours["State"] and "Health" not in theirs["State"]
    # the paths are real: a running container's writes land in UpperDir, the image's
    # files are in LowerDir
    cid = cli.detach("--network", "none", IMAGE, "sh", "-c", "echo x > /written; sleep 1000")
    wait_until(lambda: "x" in cli.exec_out(cid, "cat", "/written"), 10)
    data = cli.inspect(cid)["GraphDriver"]["Data"]
    assert open(os.path.join(data["UpperDir"], "written")).read() == "x\n"
    assert any(os.path.exists(os.path.join(p, "bin", "busybox"))
               for p in data["LowerDir"].split(":"))


def test_image_inspect_has_dockers_keys(cli, dk):
    (theirs,) = json.loads(dk("image", "inspect", IMAGE))
    (ours,) = json.loads(cli.ok("image", "inspect", IMAGE))
    assert keys(ours)[:len(theirs)] == keys(theirs)
    assert keys(ours)[len(theirs):] == ["Digest", "History"]  # sangja's, after docker's
    assert set(ours["Config"]) == set(theirs["Config"])
    assert set(ours["ContainerConfig"]) == set(theirs["ContainerConfig"])
    assert ours["Id"] == theirs["Id"] and ours["RootFS"] == theirs["RootFS"]
    assert ours["VirtualSize"] == ours["Size"]
    assert cli.ok("image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", IMAGE) == \
        dk("image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", IMAGE)


def test_info_and_version_format_like_docker(cli, dk):
    fields = "{{.OSType}} {{.Architecture}} {{.NCPU}} {{.MemTotal}} {{.CgroupVersion}} " \
             "{{.CgroupDriver}} {{.KernelVersion}} {{.OperatingSystem}} {{.OSVersion}}"
    assert cli.ok("info", "--format", fields) == dk("info", "--format", fields)
    ours = json.loads(cli.ok("info", "--format", "{{json .}}"))
    theirs = json.loads(dk("info", "--format", "{{json .}}"))
    assert set(theirs) <= set(ours)
    text = cli.ok("info")
    for line in ("Client:", "Server:", " Containers: ", "  Running: ", " Images: ",
                 " Storage Driver: overlay", " Cgroup Version: ", " Docker Root Dir: "):
        assert line in text and line in dk("info"), line
    assert f" Docker Root Dir: {cli.root}\n" in text
    v_ours = json.loads(cli.ok("version", "--format", "json"))
    v_theirs = json.loads(dk("version", "--format", "{{json .}}"))
    assert set(v_ours) == set(v_theirs) == {"Client", "Server"}
    assert set(v_theirs["Server"]) <= set(v_ours["Server"])
    from sangja import __version__

    assert cli.ok("version", "-f", "{{.Server.Version}}") == f"{__version__}\n"


@pytest.mark.parametrize("args", [
    ["rm", "nope"], ["rm", "-f", "nope"], ["rmi", "nope"], ["start", "nope"],
    ["stop", "nope"], ["kill", "nope"], ["wait", "nope"], ["logs", "nope"],
    ["inspect", "nope"], ["image", "inspect", "nope"], ["container", "inspect", "nope"],
    ["exec", "nope", "true"], ["port", "nope"], ["history", "nope"], ["tag", "nope", "x:1"],
    ["ps", "--filter", "foo=bar"], ["images", "--filter", "dangling=maybe"],
    ["ps", "--filter", "status=nope"], ["ps", "--filter", "health=bad"],
    ["ps", "--filter", "since=nope"], ["images", "--filter", "before=nope"],
    ["ps", "--filter", "foo"], ["inspect", "-f", "{{.Id", IMAGE],
    ["inspect", "-f", "{{.Nope}}", IMAGE], ["rename", "nope", "x"],
])
def test_exit_codes_are_dockers(cli, dk, args):
    r = cli(*args)
    assert r.returncode == dk_status(dk, *args), (args, r.returncode, r.stderr)
    if r.returncode:
        assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("sangja: "), r.stderr


@pytest.mark.parametrize("args", [["exec", "{}", "true"], ["top", "{}"], ["attach", "{}"],
                                  ["kill", "{}"], ["pause", "{}"], ["unpause", "{}"],
                                  ["logs", "{}"], ["port", "{}", "80"]])
def test_exit_codes_on_a_stopped_container_are_dockers(cli, dk, args):
    flags = ["--network", "none", "--log-driver", "none"]
    theirs = dk("create", *flags, IMAGE, "true").strip()
    ours = cli.create(*flags, IMAGE, "true")
    r = cli(*[a.format(ours) for a in args])
    assert r.returncode == dk_status(dk, *[a.format(theirs) for a in args]) == 1, r.stderr
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("sangja: "), r.stderr


def test_rmi_of_an_image_in_use_as_docker(cli, dk):
    dk("create", "--network", "none", IMAGE, "true")
    cid = cli.create("--network", "none", IMAGE, "true")
    line = cli.fails(1, "rmi", IMAGE)
    assert line == (f'sangja: conflict: unable to remove repository reference "{IMAGE}" (must '
                    f"force) - container {cid[:12]} is using its referenced image "
                    f"{cli.inspect(cid)['Image'][7:19]}")
    assert dk_status(dk, "rmi", IMAGE) == 1
    assert IMAGE in cli.ok("images", "--format", "{{.Repository}}:{{.Tag}}")


def test_wait_on_a_created_container_returns_at_once_as_docker(cli, dk):
    dk_id = dk("create", "--network", "none", IMAGE, "sleep", "5").strip()
    cid = cli.create("--network", "none", IMAGE, "sleep", "5")
    assert dk("wait", dk_id, timeout=30) == "0\n"
    assert cli.ok("wait", cid, timeout=30) == "0\n"
    assert cli.inspect(cid)["State"]["Status"] == "created"
