"""Attacks on CDI devices (sangja.engine.cdi): the spec is the administrator's, but its
device nodes and mounts land in a root the image controls. Links the image planted where
a node or mount goes (absolute links to host paths, relative ones that climb out) are
followed inside the container's root, never on the host. Spec files that cannot be
trusted or read (anyone may write them, another user owns them, a FIFO, a dangling link,
huge, nested too deeply, a directory that cannot be read, a -1 device number that would
be the cgroup wildcard) fail the command with one line, and nothing is created."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.root

NONE = ("--network", "none")
DEV = "sangja.test/dev=gpu"


def write_spec(d, edits: dict, name: str = "test.json") -> None:
    (d / name).write_text(json.dumps({
        "cdiVersion": "0.6.0", "kind": "sangja.test/dev",
        "devices": [{"name": "gpu", "containerEdits": edits}]}))
    os.chmod(d / name, 0o644)


@pytest.fixture
def spec_dir(tmp_path, monkeypatch):
    d = tmp_path / "cdi"
    d.mkdir()
    monkeypatch.setenv("SANGJA_CDI_SPEC_DIRS", str(d))
    return d


@pytest.fixture
def linked_image(cli, tmp_path):
    """An image whose /opt/gpu, /opt/leaf, /opt/rel and /mnt/cdi are links to a host
    directory (absolute, and relative climbing above the root) and to a host file."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "victim").write_text("host file\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    up = "../" * 12
    (ctx / "Containerfile").write_text(
        "FROM busybox\n"
        f"RUN mkdir -p /opt /mnt && ln -s {host} /opt/gpu && ln -s {host}/victim /opt/leaf"
        f" && ln -s {up}{str(host).lstrip('/')} /opt/rel && ln -s {host} /mnt/cdi\n")
    tag = f"localhost/zz-cdi-links:{os.getpid()}"
    cli.ok("build", "-q", "-t", tag, str(ctx), timeout=120)
    yield tag, host
    left = [c["ID"] for c in cli.ps() if c["Image"] == tag]
    if left:
        cli.ok("rm", "-f", *left)
    cli.ok("rmi", tag)


def host_state(host) -> dict[str, str]:
    return {n: (host / n).read_text() if (host / n).is_file() else "?"
            for n in sorted(os.listdir(host))}


def test_nodes_and_mounts_through_image_links_stay_in_the_root(cli, spec_dir, linked_image,
                                                                 tmp_path):
    tag, host = linked_image
    src = tmp_path / "src"
    src.mkdir()
    (src / "from-cdi").write_text("cdi data\n")
    write_spec(spec_dir, {
        "deviceNodes": [
            {"path": "/opt/gpu/card0", "type": "c", "major": 1, "minor": 3},
            {"path": "/opt/leaf", "type": "c", "major": 1, "minor": 3},
            {"path": "/opt/rel/card1", "type": "c", "major": 1, "minor": 3}],
        "mounts": [{"hostPath": str(src), "containerPath": "/mnt/cdi/data",
                    "options": ["rbind", "ro"]}]})
    before = host_state(host)
    out = cli.out(*NONE, "--device", DEV, tag, "sh", "-c",
                  f"stat -c '%n %F' {host}/card0 /opt/leaf {host}/card1; "
                  f"cat {host}/data/from-cdi; ls {host}")
    lines = out.splitlines()
    # inside: each link was followed as if the root were "/" (the host path made inside)
    assert lines[:3] == [f"{host}/card0 character special file",
                         "/opt/leaf character special file",
                         f"{host}/card1 character special file"]
    assert lines[3] == "cdi data"
    assert "victim" not in lines[4:]  # the container's directory, not the host's
    # outside: nothing made, replaced, written or mounted
    assert host_state(host) == before == {"victim": "host file\n"}
    with open("/proc/self/mountinfo") as f:
        assert not any(f" {host}" in line for line in f)
    assert sorted(os.listdir(src)) == ["from-cdi"]


def test_node_on_a_link_the_container_made_at_run_time(cli, spec_dir, tmp_path):
    """The container's own process replaces the node's directory with a link to a host
    directory; at the next start the node is made inside the root again."""
    host = tmp_path / "host"
    host.mkdir()
    write_spec(spec_dir, {"deviceNodes": [
        {"path": "/srv/dev/card0", "type": "c", "major": 1, "minor": 3}]})
    cid = cli.create(*NONE, "--device", DEV, "busybox", "sh", "-c",
                     f"if [ -e /planted ]; then stat -c %F {host}/card0; else "
                     f"rm -rf /srv/dev && ln -s {host} /srv/dev && touch /planted; fi")
    cli.ok("start", "-a", cid)
    out = cli.ok("start", "-a", cid)
    assert out.strip() == "character special file"
    assert os.listdir(host) == []


def _refused(cli, want: str) -> None:
    before = {r["ID"] for r in cli.ps()}
    err = cli.fails(125, "run", "--rm", *NONE, "--device", DEV, "busybox", "true",
                    timeout=60)
    assert want in err, err
    assert {r["ID"] for r in cli.ps()} == before


GOOD = {"env": ["CDI=1"]}


def test_world_writable_spec_is_refused(cli, spec_dir):
    write_spec(spec_dir, GOOD)
    assert cli.out(*NONE, "--device", DEV, "busybox", "sh", "-c", "echo $CDI") == "1\n"
    os.chmod(spec_dir / "test.json", 0o666)
    _refused(cli, "writable by everyone")


def test_spec_of_another_user_is_refused(cli, spec_dir):
    write_spec(spec_dir, GOOD)
    os.chown(spec_dir / "test.json", 1000, 1000)
    _refused(cli, "owned by uid 1000")


def test_fifo_spec_fails_closed_without_hanging(cli, spec_dir):
    write_spec(spec_dir, GOOD)
    os.mkfifo(spec_dir / "other.json")
    _refused(cli, "not a regular file")


def test_dangling_link_spec_fails_closed(cli, spec_dir, tmp_path):
    write_spec(spec_dir, GOOD)
    os.symlink(tmp_path / "gone.json", spec_dir / "gone.json")
    _refused(cli, "No such file")


def test_device_node_spec_is_not_opened(cli, spec_dir):
    """A link to a device node: refused from its O_PATH stat, never opened (a device's
    open runs its driver)."""
    write_spec(spec_dir, GOOD)
    os.symlink("/dev/zero", spec_dir / "zero.json")
    _refused(cli, "not a regular file")


def test_huge_and_deep_specs(cli, spec_dir):
    with open(spec_dir / "huge.json", "wb") as f:
        f.write(b" " * (5 << 20))
    _refused(cli, "larger than 4 MiB")
    os.unlink(spec_dir / "huge.json")
    (spec_dir / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    _refused(cli, "nested deeper")


def test_unreadable_spec_directory_fails_closed(cli, monkeypatch, tmp_path):
    plain = tmp_path / "file"
    plain.write_text("")
    monkeypatch.setenv("SANGJA_CDI_SPEC_DIRS", f"{tmp_path / 'missing'}:{plain}/cdi")
    _refused(cli, "CDI spec directory")


@pytest.mark.parametrize("number", [-1, True])
def test_wildcard_device_number_is_refused(cli, spec_dir, number):
    """-1 in the device cgroup rule is the wildcard (every char device); the CDI library
    refuses negative numbers, and a JSON true is not a number."""
    write_spec(spec_dir, {"deviceNodes": [
        {"path": "/dev/x", "type": "c", "major": number, "minor": 3}]})
    _refused(cli, "integer major and minor")
