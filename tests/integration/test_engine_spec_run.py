"""The engine's config.json (sangja.engine.spec) run for real, by sangja-runtime and by
runc: what a process inside sees must be what `docker run` gives (Docker's 14
capabilities, seccomp on, masked and read-only /proc and /sys, hostname, /etc files,
limits, --user, --privileged, --init, mounts), and nothing may be left behind."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import uuid

import pytest

from conftest import REPO, Runtime, assert_clean
from sangja.engine import docker_defaults as dd
from sangja.engine import etc_files
from sangja.engine.options import ContainerOptions, Ulimit
from sangja.engine.spec import ResolvedMount, all_capabilities, build_spec

pytestmark = pytest.mark.root

DOCKER_CAPS = 0x00000000A80425FB
IMAGE = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
         "Cmd": ["sh"]}
RUNTIMES = {"sangja-runtime": str(REPO / ".venv" / "bin" / "sangja-runtime"),
            "runc": shutil.which("runc") or "/usr/sbin/runc"}

PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
/* Syscalls the default profile refuses, each called so that without seccomp the kernel
   gives a different answer: vmsplice on a bad fd is EBADF (seccomp: EPERM), request_key
   for a key nobody has is ENOKEY (seccomp: not allowed at all, so ENOSYS). */
int main(void) {
    long r = syscall(SYS_vmsplice, -1, 0, 0, 0);
    printf("vmsplice %ld %d\n", r, r < 0 ? errno : 0);
    r = syscall(SYS_request_key, "user", "sangja-no-such-key", 0, 0);
    printf("request_key %ld %d\n", r, r < 0 ? errno : 0);
    return 0;
}
"""


@pytest.fixture(params=sorted(RUNTIMES))
def rt(request, tmp_path):
    binary = RUNTIMES[request.param]
    if not os.access(binary, os.X_OK):
        pytest.skip(f"{binary} is not installed")
    root = tmp_path / f"state-{request.param}"
    root.mkdir()
    r = Runtime(binary, root, request.param == "runc")
    yield r
    r.cleanup()


@pytest.fixture(scope="session")
def probe_bin(tmp_path_factory):
    from conftest import static_binary

    return static_binary(tmp_path_factory, "probe", PROBE_C)


def cgroup_dirs(cid: str) -> list[str]:
    from sangja.linux.cgroups import Cgroup

    return Cgroup.for_path(f"/sangja/{cid}", f"/sangja/{cid}").paths


class Ran:
    def __init__(self, result, spec, cid, bundle):
        self.result, self.spec, self.cid, self.bundle = result, spec, cid, bundle
        self.out = result.stdout

    def status(self) -> dict[str, str]:
        out = {}
        for line in self.out.splitlines():
            k, sep, v = line.partition(":")
            if sep and k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "Seccomp",
                             "NoNewPrivs"):
                out[k] = v.strip()
        return out

    def value(self, key: str) -> str:
        """The text after `key=` on its own line (scripts print `echo key=...`)."""
        for line in self.out.splitlines():
            if line.startswith(key + "="):
                return line[len(key) + 1:]
        raise AssertionError(f"{key}= not in output:\n{self.out}\n{self.result.stderr}")


@pytest.fixture
def run(rt, tmp_path, busybox_rootfs):
    """run(script, image=IMAGE, mounts=None, init_path=None, probe=None, **options) -> Ran.

    Builds a bundle from a copy of the busybox rootfs with build_spec's config, runs it in
    the foreground, and checks that the runtime left nothing: no state, process, mount or
    cgroup of it."""

    def factory(script, image=IMAGE, mounts=None, init_path=None, probe=None, **kw):
        cid = f"spec-{uuid.uuid4().hex[:12]}"
        bundle = tmp_path / cid
        bundle.mkdir()
        subprocess.run(["cp", "-a", str(busybox_rootfs), str(bundle / "rootfs")], check=True)
        if probe is not None:
            shutil.copy(probe, bundle / "rootfs" / "bin" / "probe")
        opts = ContainerOptions(image="busybox", command=["sh", "-c", script], **kw)
        spec = build_spec(opts, image, container_id=cid, rootfs=str(bundle / "rootfs"),
                          container_dir=str(bundle / "ctr"), mounts=mounts,
                          init_path=init_path)
        (bundle / "config.json").write_text(json.dumps(spec))
        result = rt.run("run", "--bundle", bundle, cid, timeout=60)
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert_clean(rt, cid, bundle)
        leftover = [d for d in cgroup_dirs(cid) if os.path.exists(d)]
        assert not leftover, f"cgroups left behind: {leftover}"
        return Ran(result, spec, cid, bundle)

    return factory


STATUS = "grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/self/status; "


def test_docker_defaults(run):
    r = run(STATUS + "echo host=$(hostname); echo uid=$(id -u); "
            "echo hosts=$(base64 /etc/hosts | tr -d '\\n'); "
            "echo hostname=$(cat /etc/hostname); "
            "echo sys=$(grep ' /sys sysfs ' /proc/mounts | cut -d' ' -f4); "
            "echo procsys=$(grep ' /proc/sys proc ' /proc/mounts | cut -d' ' -f4); "
            "echo shm=$(df -k /dev/shm | tail -1 | awk '{print $2}'); "
            "echo writesys=$(echo x 2>/dev/null > /proc/sys/kernel/domainname && echo ok || "
            "echo denied); echo env=$(env | grep -c HOSTNAME=)")
    st = r.status()
    assert int(st["CapEff"], 16) == DOCKER_CAPS
    assert int(st["CapBnd"], 16) == DOCKER_CAPS
    assert int(st["CapPrm"], 16) == DOCKER_CAPS
    assert int(st["CapInh"], 16) == 0 and int(st["CapAmb"], 16) == 0
    assert st["Seccomp"] == "2"
    assert r.value("host") == r.cid[:12] == r.value("hostname")
    assert r.value("uid") == "0"
    import base64

    assert base64.b64decode(r.value("hosts")).decode() == etc_files.hosts("none", r.cid[:12])
    assert "ro" in r.value("sys").split(",")
    assert "ro" in r.value("procsys").split(",")
    assert r.value("shm") == str(64 * 1024)
    assert r.value("writesys") == "denied"


def test_masked_paths(run):
    present = [p for p in dd.masked_paths() if os.path.exists(p)]
    if not present:
        pytest.skip("none of the masked paths exists on this host")
    script = "".join(
        f"echo '{p}='$(cat {p} 2>/dev/null | wc -c); " if os.path.isfile(p) else
        f"echo '{p}='$(ls -A {p} 2>/dev/null | wc -l); " for p in present)
    r = run(script)
    for p in present:
        assert r.value(p) == "0", p


def test_seccomp_blocks_syscalls(run, probe_bin):
    r = run("/bin/probe", probe=probe_bin)
    assert f"vmsplice -1 {errno.EPERM}" in r.out
    assert f"request_key -1 {errno.ENOSYS}" in r.out
    r = run("/bin/probe; " + STATUS, probe=probe_bin, seccomp="unconfined")
    assert f"vmsplice -1 {errno.EBADF}" in r.out  # the kernel's own answer
    assert r.status()["Seccomp"] == "0"


def test_limits(run):
    r = run("echo nofile=$(ulimit -n); echo hard=$(ulimit -Hn); "
            "echo shm=$(df -k /dev/shm | tail -1 | awk '{print $2}'); "
            "echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "
            "cat /sys/fs/cgroup/memory.max); "
            "echo pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || "
            "cat /sys/fs/cgroup/pids.max)",
            memory=64 << 20, shm_size=32 << 20, pids_limit=64,
            ulimits=[Ulimit("nofile", 1234, 2345)])
    assert r.value("nofile") == "1234" and r.value("hard") == "2345"
    assert r.value("shm") == str(32 * 1024)
    assert r.value("mem") == str(64 << 20)
    assert r.value("pids") == "64"


def test_non_root_user(run):
    r = run(STATUS + "echo id=$(id -u):$(id -g)", user="1000", cap_add=["NET_ADMIN"])
    st = r.status()
    assert r.value("id") == "1000:0"
    assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0
    assert int(st["CapBnd"], 16) == DOCKER_CAPS | 1 << 12  # + CAP_NET_ADMIN, bounding only
    assert int(st["CapAmb"], 16) == 0
    assert st["Seccomp"] == "2"


def test_cap_drop_all(run):
    r = run(STATUS, cap_drop=["ALL"], cap_add=["NET_BIND_SERVICE"])
    assert int(r.status()["CapEff"], 16) == 1 << 10
    assert int(r.status()["CapBnd"], 16) == 1 << 10


def test_privileged(run):
    from sangja.linux.capabilities import NUMBERS

    want = sum(1 << NUMBERS[c] for c in all_capabilities())
    host_block = next((p for p in sorted(os.listdir("/dev")) if
                       os.path.exists(f"/dev/{p}") and
                       stat.S_ISBLK(os.stat(f"/dev/{p}").st_mode)), None)
    r = run(STATUS + "echo sys=$(grep ' /sys sysfs ' /proc/mounts | cut -d' ' -f4); "
            f"echo blk=$(test -b /dev/{host_block or 'none'} && echo yes || echo no); "
            "echo irq=$(cat /proc/interrupts 2>/dev/null | wc -c)", privileged=True)
    st = r.status()
    assert int(st["CapEff"], 16) == want
    assert st["Seccomp"] == "0"
    assert "rw" in r.value("sys").split(",")
    if host_block:
        assert r.value("blk") == "yes"
    if os.path.isfile("/proc/interrupts"):
        assert int(r.value("irq")) > 0  # not masked


def test_init(run):
    if not os.access(dd.DEFAULT_INIT_BINARY, os.X_OK):
        pytest.skip("tini-static is not installed")
    r = run("echo one=$(tr '\\0' ' ' < /proc/1/cmdline); echo me=$$",
            init_path=dd.DEFAULT_INIT_BINARY)
    assert r.value("one").startswith("/sbin/sangja-init -- sh -c")
    assert r.value("me") != "1"


def test_mounts(run, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello").write_text("hi\n")
    hosts = tmp_path / "myhosts"
    hosts.write_text("10.9.8.7\tcustom\n")
    mounts = [ResolvedMount("bind", str(data), "/data", ["ro"]),
              ResolvedMount("tmpfs", None, "/scratch", ["size=1048576"]),
              ResolvedMount("bind", str(hosts), "/etc/hosts", [])]
    r = run("echo hello=$(cat /data/hello); "
            "echo w=$(touch /data/x 2>/dev/null && echo ok || echo denied); "
            "echo scratch=$(df -k /scratch | tail -1 | awk '{print $2}'); "
            "echo sw=$(touch /scratch/x && echo ok); echo hosts=$(cat /etc/hosts)",
            mounts=mounts)
    assert r.value("hello") == "hi"
    assert r.value("w") == "denied"
    assert r.value("scratch") == "1024" and r.value("sw") == "ok"
    assert r.value("hosts") == "10.9.8.7 custom"
    assert not (data / "x").exists()


def test_read_only_root(run):
    r = run("echo root=$(touch /x 2>/dev/null && echo ok || echo denied); "
            "echo shm=$(touch /dev/shm/x && echo ok); "
            "echo hosts=$(sh -c 'echo >> /etc/hosts' 2>/dev/null && echo ok || echo denied)",
            read_only=True)
    assert r.value("root") == "denied"
    assert r.value("shm") == "ok"
    assert r.value("hosts") == "denied"


def test_env_and_workdir(run):
    r = run("echo pwd=$(pwd); echo a=$A; echo b=$B; echo path=$PATH",
            image={**IMAGE, "Env": IMAGE["Env"] + ["A=image", "B=image"], "WorkingDir": "/etc"},
            env=["B=user"])
    assert r.value("pwd") == "/etc"
    assert r.value("a") == "image" and r.value("b") == "user"
    assert r.value("path") == IMAGE["Env"][0][5:]


def test_device(run):
    from sangja.engine.options import DeviceRequest

    r = run("echo dev=$(ls -l /dev/xnull | cut -c1); echo w=$(echo hi > /dev/xnull && "
            "echo ok)", devices=[DeviceRequest("/dev/null", "/dev/xnull", "rwm")])
    assert r.value("dev") == "c" and r.value("w") == "ok"
