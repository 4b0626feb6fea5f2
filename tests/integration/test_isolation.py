"""Namespaces and the root filesystem, observed from inside the container."""

from __future__ import annotations

import os

import pytest

from conftest import parse_mountinfo, read_config, sh, write_config

pytestmark = pytest.mark.root


def _run_ok(runtime, bundle, **kw):
    r = runtime.run_container(bundle, **kw)
    assert r.returncode == 0, f"rc={r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r.stdout


def test_hostname(runtime, make_bundle):
    bundle = make_bundle(
        hostname="inner-host", args=sh("hostname; cat /proc/sys/kernel/hostname")
    )
    out = _run_ok(runtime, bundle).split()
    assert out == ["inner-host", "inner-host"]
    assert os.uname().nodename != "inner-host"


@pytest.mark.sangja_only  # runc 1.1.5 ignores "domainname" (support arrived in runc 1.2)
def test_domainname(runtime, make_bundle):
    bundle = make_bundle(
        hostname="inner-host",
        domainname="inner.example",
        args=sh("cat /proc/sys/kernel/domainname; hostname"),
    )
    out = _run_ok(runtime, bundle).split()
    assert out == ["inner.example", "inner-host"]


def test_default_hostname_from_config(runtime, make_bundle):
    out = _run_ok(runtime, make_bundle(args=["hostname"]))
    assert out.strip() == "sangja-test"


def test_pid_namespace_init_is_pid_1(runtime, make_bundle):
    out = _run_ok(runtime, make_bundle(args=sh("echo $$; ps -o pid,comm")))
    lines = out.splitlines()
    assert lines[0] == "1"
    # only the container's processes are visible: sh (1) and ps
    pids = [int(line.split()[0]) for line in lines[2:] if line.split()[0].isdigit()]
    assert 1 in pids
    assert len(pids) <= 3, out


def test_mountinfo_has_container_root_only(runtime, make_bundle):
    bundle = make_bundle(args=["cat", "/proc/self/mountinfo"])
    mounts = parse_mountinfo(_run_ok(runtime, bundle))
    points = [m["mountpoint"] for m in mounts]
    assert points.count("/") == 1, points
    root = next(m for m in mounts if m["mountpoint"] == "/")
    # the root mount is the bundle's rootfs (its root within its filesystem ends in /rootfs)
    assert root["root"].rstrip("/").endswith("/rootfs"), root["line"]
    # every other mount hangs below / and stems from the config, not from the host
    allowed_prefixes = ("/proc", "/dev", "/sys")
    for p in points:
        assert p == "/" or p.startswith(allowed_prefixes), f"unexpected mount {p}: {points}"
    for host_path in ("/work", "/tmp", "/home", "/mnt", "/run", "/var"):
        assert host_path not in points
    assert str(bundle) not in points


def test_proc_is_mounted(runtime, make_bundle):
    bundle = make_bundle(
        args=sh("cat /proc/self/mountinfo; echo ===; cat /proc/1/cmdline; exit 0")
    )
    out = _run_ok(runtime, bundle)
    mountinfo, cmdline = out.split("===\n")
    proc = [m for m in parse_mountinfo(mountinfo) if m["mountpoint"] == "/proc"]
    assert proc and proc[0]["fstype"] == "proc"
    assert cmdline.split("\0")[:2] == ["sh", "-c"]


def test_network_namespace_has_only_lo(runtime, make_bundle):
    out = _run_ok(runtime, make_bundle(args=["cat", "/proc/net/dev"]))
    ifaces = [line.split(":")[0].strip() for line in out.splitlines()[2:] if ":" in line]
    assert ifaces == ["lo"]


@pytest.mark.parametrize("ns", ["ipc", "uts", "mnt", "pid", "net"])
def test_namespace_inode_differs_from_host(runtime, make_bundle, ns):
    out = _run_ok(runtime, make_bundle(args=["readlink", f"/proc/self/ns/{ns}"]))
    inner = out.strip()
    assert inner.startswith(f"{ns}:["), inner
    assert inner != os.readlink(f"/proc/self/ns/{ns}")


@pytest.mark.parametrize("ns", ["cgroup", "user"])
def test_unrequested_namespaces_are_shared_with_host(runtime, make_bundle, ns):
    out = _run_ok(runtime, make_bundle(args=["readlink", f"/proc/self/ns/{ns}"]))
    assert out.strip() == os.readlink(f"/proc/self/ns/{ns}")


def test_join_existing_network_namespace(runtime, make_bundle, netns):
    _name, path = netns

    def join(config):
        config["linux"]["namespaces"] = [
            ns for ns in config["linux"]["namespaces"] if ns["type"] != "network"
        ] + [{"type": "network", "path": path}]

    out = _run_ok(runtime, make_bundle(join, args=["readlink", "/proc/self/ns/net"]))
    assert out.strip() == f"net:[{os.stat(path).st_ino}]"
    assert out.strip() != os.readlink("/proc/self/ns/net")


def test_readonly_root(runtime, make_bundle):
    bundle = make_bundle(args=sh("touch /x && echo wrote || echo denied; touch /tmp/y; echo $?"))
    out = _run_ok(runtime, bundle)
    assert out.splitlines()[0] == "denied"
    assert out.splitlines()[1] != "0"
    assert not (bundle / "rootfs" / "x").exists()


def test_writable_root(runtime, make_bundle):
    bundle = make_bundle(root={"readonly": False}, args=sh("touch /x && echo wrote"))
    out = _run_ok(runtime, bundle)
    assert out.strip() == "wrote"
    assert (bundle / "rootfs" / "x").exists()


def test_root_mount_flags_readonly(runtime, make_bundle):
    mounts = parse_mountinfo(_run_ok(runtime, make_bundle(args=["cat", "/proc/self/mountinfo"])))
    root = next(m for m in mounts if m["mountpoint"] == "/")
    assert "ro" in root["options"]


def test_rootfs_relative_path(runtime, make_bundle):
    bundle = make_bundle(args=["cat", "/marker"])
    os.rename(bundle / "rootfs", bundle / "other-root")
    (bundle / "other-root" / "marker").write_text("relative-ok\n")
    config = read_config(bundle)
    config["root"]["path"] = "other-root"
    write_config(bundle, config)
    assert _run_ok(runtime, bundle) == "relative-ok\n"


def test_rootfs_absolute_path(runtime, make_bundle, tmp_path):
    bundle = make_bundle(args=["cat", "/marker"])
    elsewhere = tmp_path / "elsewhere-rootfs"
    os.rename(bundle / "rootfs", elsewhere)
    (elsewhere / "marker").write_text("absolute-ok\n")
    config = read_config(bundle)
    config["root"]["path"] = str(elsewhere)
    write_config(bundle, config)
    assert _run_ok(runtime, bundle) == "absolute-ok\n"


def test_masked_and_readonly_paths(runtime, make_bundle):
    bundle = make_bundle(
        args=sh("cat /proc/self/mountinfo; echo ===; ls -A /sys/firmware | wc -l; "
                "cat /proc/timer_list | wc -c")
    )
    mountinfo, rest = _run_ok(runtime, bundle).split("===\n")
    mounts = parse_mountinfo(mountinfo)
    points = {m["mountpoint"]: m for m in mounts}
    for path in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware", "/proc/acpi"):
        if os.path.exists(path):  # masking skips paths the kernel does not have
            assert path in points, f"{path} not masked"
    for path in ("/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/proc/irq", "/proc/fs"):
        if os.path.exists(path):
            assert path in points and "ro" in points[path]["options"], f"{path} not read-only"
    assert rest.split() == ["0", "0"]
