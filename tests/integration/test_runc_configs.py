"""Configs runc takes, fed to the runtime from the outside: `runc spec`'s own bundle, ambient
capabilities the kernel will not raise, and namespaces joined by path (a pod's mount, UTS,
network and IPC namespaces) with a hostname and sysctls. Each effect is observed inside the
container or in the joined namespace, and the capability sets are compared with what runc
gives the same config.

What stays refused (named in one line, and the host left as it was): a config without a
mount namespace, and a namespace "joined" by a path that is the host's own when the config
would change it (root filesystem, hostname, sysctls). Those tests never run under runc:
runc would pivot the host's root, rename the host or change its sysctls.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DELETE, Runtime, runtime_is_runc, sh, wait_until

RUNC = shutil.which("runc") or "/usr/sbin/runc"
HAVE_RUNC = os.path.isfile(RUNC) and os.access(RUNC, os.X_OK)
needs_runc = pytest.mark.skipif(not HAVE_RUNC, reason="runc (the reference) not installed")

# Would change the host under runc: never run there, not even with the force variable.
not_under_runc = pytest.mark.skipif(runtime_is_runc(), reason="runc would change the host")

CAP_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
CAP_PROBE = sh("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status")


def _caps(out: str) -> dict[str, int]:
    caps = {k: int(v, 16) for k, v in (line.split(":\t") for line in out.splitlines())}
    assert set(caps) == set(CAP_FIELDS), out
    return caps


def _ok(r) -> str:
    assert r.returncode == 0, f"rc={r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r.stdout


@pytest.fixture
def runc(tmp_path):
    """runc with a state root of its own: the reference for what a config gives."""
    if not HAVE_RUNC:
        pytest.skip("runc (the reference) not installed")
    root = tmp_path / "runc-state"
    root.mkdir()
    rt = Runtime(RUNC, root, True)
    yield rt
    rt.cleanup()


# --------------------------------------------------------------------------------------------
# 1. ambient capabilities
# --------------------------------------------------------------------------------------------


@needs_runc
def test_runc_spec_bundle_runs(runtime, runc, tmp_path, busybox_rootfs):
    """`runc spec` as it comes (ambient without inheritable), only terminal off: it runs,
    with the capabilities runc gives it (CapAmb empty: the kernel refuses the raise)."""
    bundle = tmp_path / "spec-bundle"
    bundle.mkdir()
    shutil.copytree(busybox_rootfs, bundle / "rootfs", symlinks=True)
    subprocess.run([RUNC, "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["capabilities"]["ambient"], "runc spec changed: no ambient"
    assert "inheritable" not in config["process"]["capabilities"]
    config["process"]["terminal"] = False
    config["process"]["args"] = CAP_PROBE
    (bundle / "config.json").write_text(json.dumps(config))
    ours = _caps(_ok(runtime.run_container(bundle)))
    theirs = _caps(_ok(runc.run_container(bundle)))
    assert ours == theirs
    assert ours["CapAmb"] == 0 and ours["CapEff"] == ours["CapPrm"] == 0x20000420, ours


NET_BIND, KILL, AUDIT_WRITE, CHOWN = 10, 5, 29, 0
CAP_CASES = {
    # ambient, inheritable, permitted (names without CAP_), user, expected CapAmb bits
    "ambient-not-inheritable": (["NET_BIND_SERVICE", "KILL"], None, None, 0, []),
    "ambient-inheritable": (["NET_BIND_SERVICE", "KILL"], ["NET_BIND_SERVICE", "KILL"], None,
                            1000, [NET_BIND, KILL]),
    "some-inheritable": (["NET_BIND_SERVICE", "KILL"], ["KILL"], None, 1000, [KILL]),
    "inheritable-not-permitted": (["CHOWN", "KILL"], ["CHOWN", "KILL"], ["KILL"], 1000,
                                  [KILL]),
}


@needs_runc
@pytest.mark.parametrize("case", list(CAP_CASES))
def test_ambient_as_runc(runtime, runc, make_bundle, case):
    """The kernel raises an ambient capability only when it is permitted and inheritable;
    the container runs either way and holds what runc's would (a non-root user keeps its
    capabilities across exec only through the ambient set)."""
    ambient, inheritable, permitted, uid, expected = CAP_CASES[case]
    caps = {"bounding": ["CAP_" + c for c in ("NET_BIND_SERVICE", "KILL", "AUDIT_WRITE",
                                              "CHOWN")]}
    caps["effective"] = caps["permitted"] = ["CAP_" + c for c in (permitted or ambient)]
    caps["ambient"] = ["CAP_" + c for c in ambient]
    if inheritable is not None:
        caps["inheritable"] = ["CAP_" + c for c in inheritable]

    def set_caps(config):
        config["process"]["capabilities"] = caps
        config["process"]["user"] = {"uid": uid, "gid": uid}

    bundle = make_bundle(set_caps, args=CAP_PROBE)
    ours = _caps(_ok(runtime.run_container(bundle)))
    assert ours["CapAmb"] == sum(1 << b for b in expected), ours
    assert ours == _caps(_ok(runc.run_container(bundle)))


# --------------------------------------------------------------------------------------------
# 2. namespaces joined by path
# --------------------------------------------------------------------------------------------


class Holder:
    """A sleeping process in new mount, UTS, network and IPC namespaces: what a pod sandbox
    (or podman's network setup) hands a runtime by path."""

    def __init__(self):
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--uts", "--net", "--ipc", "--propagation", "private",
             "sleep", "1000"], stdin=subprocess.DEVNULL)
        me = os.readlink("/proc/self/ns/uts")
        wait_until(lambda: os.readlink(f"/proc/{self.proc.pid}/ns/uts") != me, timeout=10,
                   message="the holder's namespaces")

    def path(self, ns: str) -> str:
        return f"/proc/{self.proc.pid}/ns/{ns}"

    def inode(self, ns: str) -> str:
        return os.readlink(self.path(ns))

    def enter(self, flag: str, *argv: str) -> str:
        """Run a host command in the holder's namespace (flag: nsenter's -u, -n, -i, -m)."""
        return subprocess.run(["nsenter", "-t", str(self.proc.pid), flag, *argv],
                              check=True, capture_output=True, text=True).stdout

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def holder(runtime):
    """Torn down before `runtime` checks for leftovers: after a container pivots in the
    holder's mount namespace, that namespace shows the bundle."""
    h = Holder()
    yield h
    h.stop()


def join(**paths):
    """make_bundle mutator: the given namespace types joined by path."""

    def mutate(config):
        for n in config["linux"]["namespaces"]:
            if n["type"] in paths:
                n["path"] = paths[n["type"]]

    return mutate


def host_ns(name: str) -> str:
    """The path of this test's own namespace: the host's."""
    return f"/proc/{os.getpid()}/ns/{name}"


def drop_ns(ns_type):
    def mutate(config):
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                         if n["type"] != ns_type]

    return mutate


def _bundle_mounts(bundle: Path, table: str) -> list[str]:
    return [line for line in table.splitlines() if str(bundle) in line]


def test_mount_namespace_by_path(runtime, make_bundle, holder):
    """runc's behaviour: the container runs in the joined mount namespace and its root
    filesystem is set up there, not in the host's."""
    bundle = make_bundle(join(mount=holder.path("mnt")),
                         args=sh("readlink /proc/self/ns/mnt; cat /proc/self/mountinfo; "
                                 "echo END; exec sleep 1000"))
    out = bundle / "out"
    spawned = runtime.spawn("run", "--bundle", bundle, "ctr", stdout=out)
    try:
        wait_until(lambda: out.exists() and "END" in out.read_text(), timeout=20,
                   message="the container's report")
        lines = out.read_text().splitlines()
        assert lines[0] == holder.inode("mnt")
        assert any(" /proc " in line and " - proc " in line for line in lines), lines
        with open("/proc/self/mountinfo") as f:
            assert not _bundle_mounts(bundle, f.read())
        with open(f"/proc/{holder.proc.pid}/mountinfo") as f:
            assert " - proc " in f.read()  # the container's /proc, in the joined namespace
    finally:
        runtime.run("kill", "ctr", "KILL")
        spawned.wait(timeout=30)


def test_mount_namespace_by_path_hides_the_state_root(runtime, make_bundle, holder):
    """The runtime's state (the exec fifo) is the runtime's, not the joined namespace's:
    a namespace where the state root is something else still starts the container."""
    holder.enter("-m", "mount", "-t", "tmpfs", "-o", "size=1m", "sangja-hide",
                 str(runtime.root))
    bundle = make_bundle(join(mount=holder.path("mnt")), args=["echo", "started"])
    assert _ok(runtime.run_container(bundle)) == "started\n"


def test_mount_namespace_bind_mounted_file(runtime, make_bundle, tmp_path):
    """The namespace held by a bind-mounted nsfs file (`unshare --mount=FILE`), no process."""
    place = tmp_path / "nsdir"
    place.mkdir()
    nsfile = place / "mnt"
    nsfile.touch()
    subprocess.run(["mount", "--bind", str(place), str(place)], check=True)
    try:
        subprocess.run(["mount", "--make-private", str(place)], check=True)
        subprocess.run(["unshare", f"--mount={nsfile}", "--propagation", "private", "true"],
                       check=True)
        try:
            bundle = make_bundle(join(mount=str(nsfile)),
                                 args=sh("readlink /proc/self/ns/mnt; hostname"))
            lines = _ok(runtime.run_container(bundle)).split()
            assert lines == [f"mnt:[{os.stat(nsfile).st_ino}]", "sangja-test"]
            with open("/proc/self/mountinfo") as f:
                assert not _bundle_mounts(bundle, f.read())
        finally:
            subprocess.run(["umount", str(nsfile)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(place)], check=True)


@not_under_runc
def test_host_mount_namespace_by_path_refused(runtime, make_bundle):
    before = os.stat("/").st_ino, os.stat("/").st_dev
    bundle = make_bundle(join(mount=host_ns("mnt")), args=["true"])
    r = runtime.run_container(bundle)
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and "mount namespace" in r.stderr, r.stderr
    assert "is the host's" in r.stderr, r.stderr
    assert (os.stat("/").st_ino, os.stat("/").st_dev) == before
    with open("/proc/self/mountinfo") as f:
        assert not _bundle_mounts(bundle, f.read())


@not_under_runc
def test_no_mount_namespace_refused(runtime, make_bundle):
    """runc chroots then and leaves the container's mounts (its /proc, /dev...) on the host."""
    bundle = make_bundle(drop_ns("mount"), args=["true"])
    r = runtime.run_container(bundle)
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and "no mount namespace" in r.stderr, r.stderr
    with open("/proc/self/mountinfo") as f:
        assert not _bundle_mounts(bundle, f.read())


def test_uts_namespace_by_path_with_hostname(runtime, make_bundle, holder):
    """runc sets the hostname in the joined UTS namespace (a pod's containers share one)."""
    holder.enter("-u", "hostname", "pod-before")
    bundle = make_bundle(join(uts=holder.path("uts")), hostname="pod-host",
                         args=sh("readlink /proc/self/ns/uts; hostname"))
    assert _ok(runtime.run_container(bundle)).split() == [holder.inode("uts"), "pod-host"]
    assert holder.enter("-u", "hostname").strip() == "pod-host"
    assert os.uname().nodename != "pod-host"


@not_under_runc
def test_host_uts_namespace_with_hostname_refused(runtime, make_bundle):
    host = os.uname().nodename
    bundle = make_bundle(join(uts=host_ns("uts")), hostname="renamed-host", args=["true"])
    r = runtime.run_container(bundle)
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and "hostname" in r.stderr, r.stderr
    assert os.uname().nodename == host


# Validates the bundle, then mounts the host's namespace over the checked file (what a
# reused pid or another mount would do), then creates: the init must see it and refuse.
_SWAP_AFTER_CHECK = """
import subprocess, sys
from sangja.runtime.bundle import Bundle
from sangja.runtime.create import create
from sangja.runtime.store import Store
bundle, nsfile, host_ns, root = sys.argv[1:]
b = Bundle(bundle)
subprocess.run(["mount", "--bind", host_ns, nsfile], check=True)
try:
    create(Store(root), "swapped", b).unlock()
except Exception as e:
    print(e)
    sys.exit(1)
"""


@not_under_runc
def test_uts_path_swapped_for_the_hosts_after_the_check(runtime, make_bundle, tmp_path):
    place = tmp_path / "nsdir"
    place.mkdir()
    nsfile = place / "uts"
    nsfile.touch()
    subprocess.run(["mount", "--bind", str(place), str(place)], check=True)
    host = os.uname().nodename
    try:
        subprocess.run(["mount", "--make-private", str(place)], check=True)
        subprocess.run(["unshare", f"--uts={nsfile}", "true"], check=True)
        bundle = make_bundle(join(uts=str(nsfile)), hostname="swapped-host", args=["true"])
        out = tmp_path / "out"
        with open(out, "w") as f:  # a file: a created container would hold a pipe open
            r = subprocess.run([sys.executable, "-c", _SWAP_AFTER_CHECK, str(bundle),
                                str(nsfile), host_ns("uts"), str(runtime.root)],
                               stdout=f, stderr=subprocess.STDOUT, timeout=60)
        assert os.uname().nodename == host
        assert r.returncode == 1, out.read_text()
        assert "is the host's" in out.read_text()
        assert runtime.status("swapped") is None
    finally:
        if os.uname().nodename != host:
            subprocess.run(["hostname", host], check=False)
        for _ in range(2):  # the host's file, then the namespace of our own
            subprocess.run(["umount", str(nsfile)], check=False, capture_output=True)
        subprocess.run(["umount", "-l", str(place)], check=True)


def test_host_uts_namespace_without_hostname(runtime, make_bundle):
    """Sharing the host's UTS namespace is fine when nothing renames it."""
    bundle = make_bundle(join(uts=host_ns("uts")), hostname=DELETE, args=["hostname"])
    assert _ok(runtime.run_container(bundle)).strip() == os.uname().nodename


@pytest.mark.parametrize("key", ["net.ipv4.ping_group_range", "net/ipv4/ping_group_range"])
def test_network_namespace_by_path_with_sysctl(runtime, make_bundle, holder, key):
    """podman's default network: its netns by path and net.ipv4.ping_group_range (in either
    of sysctl's key forms) set in that namespace."""
    with open("/proc/sys/net/ipv4/ping_group_range") as f:
        before = f.read()
    bundle = make_bundle(join(network=holder.path("net")), linux={"sysctl": {key: "0 0"}},
                         args=sh("readlink /proc/self/ns/net; "
                                 "cat /proc/sys/net/ipv4/ping_group_range"))
    assert _ok(runtime.run_container(bundle)).split() == [holder.inode("net"), "0", "0"]
    assert holder.enter("-n", "cat", "/proc/sys/net/ipv4/ping_group_range").split() == \
        ["0", "0"]
    with open("/proc/sys/net/ipv4/ping_group_range") as f:
        assert f.read() == before


def test_ipc_namespace_by_path_with_sysctl(runtime, make_bundle, holder):
    bundle = make_bundle(join(ipc=holder.path("ipc")),
                         linux={"sysctl": {"kernel.shmmni": "1234"}},
                         args=sh("readlink /proc/self/ns/ipc; cat /proc/sys/kernel/shmmni"))
    assert _ok(runtime.run_container(bundle)).split() == [holder.inode("ipc"), "1234"]
    assert holder.enter("-i", "cat", "/proc/sys/kernel/shmmni").strip() == "1234"


@pytest.mark.parametrize(("ns", "key", "value"), [
    # runc refuses this one too ("not allowed in host network namespace")
    ("net", "net.ipv4.ping_group_range", "0 0"),
    # runc would set it in the host's IPC namespace
    pytest.param("ipc", "kernel.shmmni", "1234", marks=not_under_runc),
])
def test_host_namespace_with_sysctl_refused(runtime, make_bundle, ns, key, value):
    proc = "/proc/sys/" + key.replace(".", "/")
    with open(proc) as f:
        before = f.read()
    kind = {"net": "network", "ipc": "ipc"}[ns]
    bundle = make_bundle(join(**{kind: host_ns(ns)}), linux={"sysctl": {key: value}},
                         args=["true"])
    r = runtime.run_container(bundle)
    assert r.returncode != 0
    if not runtime.is_runc:
        assert r.stderr.count("\n") == 1 and key in r.stderr, r.stderr
    with open(proc) as f:
        assert f.read() == before


@pytest.mark.parametrize("key", ["net/../kernel/shmmni", "net.ipv4..x", "net/ipv4/./x"])
def test_sysctl_key_leaving_its_tree_refused(runtime, make_bundle, key):
    bundle = make_bundle(linux={"sysctl": {key: "1"}}, args=["true"])
    r = runtime.run_container(bundle)
    assert r.returncode != 0
    if not runtime.is_runc:
        assert r.stderr.count("\n") == 1 and "linux.sysctl" in r.stderr, r.stderr

