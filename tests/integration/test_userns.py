"""User namespaces: uid/gid mappings, root inside that is unprivileged outside."""

from __future__ import annotations

import os
import tempfile

import pytest

from conftest import new_id, sh

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def traversable(tmp_path):
    """Root of the container is uid 100000 on the host: it must be able to walk down to
    its bundle (pytest makes its temp directories 0700)."""
    p = tmp_path
    while str(p) not in ("/", "/tmp"):
        p.chmod(p.stat().st_mode | 0o011)
        p = p.parent

HOST_BASE = 100000
MAPPED = {
    "uidMappings": [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}],
}


def userns(config, maps=MAPPED):
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"].update(maps)
    # the busybox rootfs belongs to host root (nobody inside): give the container /tmp
    config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "nodev", "mode=1777"]})


def host_ids(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


def test_root_inside_is_mapped_outside(runtime, make_bundle):
    bundle = make_bundle(userns, args=sh("id -u; id -g; cat /proc/self/uid_map; "
                                         "cat /proc/self/gid_map; sleep 1000"))
    cid = new_id()
    runtime.create(bundle, cid)
    pid = runtime.state(cid)["pid"]
    assert host_ids(pid) == (HOST_BASE, HOST_BASE)  # from the host: unprivileged
    runtime.start(cid)


def test_userns_view_from_inside(runtime, make_bundle):
    r = runtime.run_container(make_bundle(userns, args=sh(
        "id -u; cat /proc/self/uid_map; echo x > /dev/null && echo null-ok; "
        "touch /tmp/f && echo tmp-ok; hostname")))
    assert r.returncode == 0, r.stderr
    lines = [x.split() for x in r.stdout.splitlines()]
    assert lines[0] == ["0"]
    assert lines[1] == ["0", str(HOST_BASE), "65536"]
    assert "null-ok" in r.stdout and "tmp-ok" in r.stdout
    assert r.stdout.splitlines()[-1] == "sangja-test"


def test_several_ranges(runtime, make_bundle):
    maps = {
        "uidMappings": [{"containerID": 0, "hostID": HOST_BASE, "size": 1000},
                        {"containerID": 1000, "hostID": HOST_BASE + 5000, "size": 1000}],
        "gidMappings": [{"containerID": 0, "hostID": HOST_BASE, "size": 2000}],
    }
    r = runtime.run_container(make_bundle(lambda c: userns(c, maps),
                                          args=sh("cat /proc/self/uid_map")))
    assert r.returncode == 0, r.stderr
    rows = [x.split() for x in r.stdout.splitlines()]
    assert ["0", str(HOST_BASE), "1000"] in rows
    assert ["1000", str(HOST_BASE + 5000), "1000"] in rows


def test_exec_joins_the_user_namespace(runtime, make_bundle):
    bundle = make_bundle(userns, args=["sleep", "1000"])
    cid = new_id()
    runtime.create(bundle, cid)
    runtime.start(cid)
    r = runtime.run("exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:4] == ["0", "0", str(HOST_BASE), "65536"]


def test_non_root_user_in_userns(runtime, make_bundle):
    def cfg(c):
        userns(c)
        c["process"]["user"] = {"uid": 1000, "gid": 1000}

    bundle = make_bundle(cfg, args=sh("id -u; sleep 1000"))
    cid = new_id()
    runtime.create(bundle, cid)
    assert host_ids(runtime.state(cid)["pid"])[0] in (HOST_BASE, HOST_BASE + 1000)
    runtime.start(cid)
    runtime.wait_status(cid, "running")
    assert host_ids(runtime.state(cid)["pid"]) == (HOST_BASE + 1000, HOST_BASE + 1000)


@pytest.mark.sangja_only  # runc 1.1.5 silently ignores the mappings
def test_mappings_without_user_namespace_rejected(runtime, make_bundle):
    bundle = make_bundle(lambda c: c["linux"].update(MAPPED), args=["true"])
    r = runtime.run("run", "--bundle", bundle, new_id())
    assert r.returncode != 0
    assert r.stderr.strip()


@pytest.mark.sangja_only
def test_user_namespace_without_mappings_rejected(runtime, make_bundle):
    bundle = make_bundle(lambda c: c["linux"]["namespaces"].append({"type": "user"}),
                         args=["true"])
    r = runtime.run("run", "--bundle", bundle, new_id())
    assert r.returncode != 0
    assert "uidMappings" in r.stderr or "gidMappings" in r.stderr
    assert runtime.ids() == []


@pytest.mark.parametrize("option", ["idmap", "ridmap"])
def test_idmapped_bind_mount(runtime, make_bundle, host_dir, option):
    """Files of host root are root's inside (through the idmapped mount), and what the
    container's root writes there belongs to host root, not to uid 100000. (The targets
    exist in the rootfs: the container's root may not create directories in it.)"""
    d = host_dir()
    secret = d / "secret"
    secret.write_text("only-root\n")
    secret.chmod(0o600)

    def cfg(c):
        userns(c)
        c["mounts"].append({"destination": "/home", "type": "bind", "source": str(d),
                            "options": ["rbind", option]})
        c["mounts"].append({"destination": "/var", "type": "bind", "source": str(d),
                            "options": ["rbind"]})

    r = runtime.run_container(make_bundle(cfg, args=sh(
        "cat /home/secret; stat -c %u /home/secret; stat -c %u /var/secret; "
        "cat /var/secret 2>/dev/null || echo plain-denied; echo made > /home/new")))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["only-root", "0", "65534", "plain-denied"]
    assert (d / "new").stat().st_uid == 0


def test_idmap_without_user_namespace_rejected(runtime, make_bundle, host_dir):
    d = host_dir()
    bundle = make_bundle(lambda c: c["mounts"].append(
        {"destination": "/data", "type": "bind", "source": str(d), "options": ["rbind", "idmap"]}),
        args=["true"])
    r = runtime.run("run", "--bundle", bundle, new_id())
    assert r.returncode != 0
    assert "mounts[" in r.stderr or "idmap" in r.stderr
    assert runtime.ids() == []


@pytest.mark.sangja_only
def test_runtime_installed_in_private_dir(runtime, make_bundle, tmp_path):
    """The init must import all it needs before it becomes an unprivileged host uid: run a
    copy of the runtime from a 0700 directory (as a fresh clone under mktemp -d is)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    private = Path(tempfile.mkdtemp(prefix="sj-private-"))
    try:
        shutil.copytree(Path(__file__).resolve().parents[2] / "src", private / "src")
        os.chmod(private, 0o700)
        launcher = private / "sangja-runtime"
        launcher.write_text(f"#!{sys.executable} -S\nimport sys\n"
                            f"sys.path.insert(0, {str(private / 'src')!r})\n"
                            "from sangja.cli.runtime import main\nsys.exit(main())\n")
        launcher.chmod(0o700)

        # A plain config on purpose: features the runtime itself imports for checking
        # (seccomp, idmapped mounts) would hide a module the init alone would import late.
        bundle = make_bundle(userns, args=sh("echo started; sleep 1000"))
        cid = new_id()
        base = [str(launcher), "--root", str(tmp_path / "private-state")]
        out, err = tmp_path / "private.out", tmp_path / "private.err"
        try:
            with open(out, "w") as o, open(err, "w") as e:  # the container keeps them open
                rc = subprocess.run(base + ["run", "-d", "--bundle", str(bundle), cid],
                                    stdout=o, stderr=e, stdin=subprocess.DEVNULL,
                                    timeout=30).returncode
            assert rc == 0, err.read_text()
            r = subprocess.run(base + ["exec", cid, "id", "-u"], capture_output=True,
                               text=True, timeout=30)
            assert (r.returncode, r.stdout.strip()) == (0, "0"), r.stderr
            assert "started" in out.read_text()
        finally:
            subprocess.run(base + ["delete", "--force", cid], capture_output=True, timeout=30)
    finally:
        shutil.rmtree(private, ignore_errors=True)
