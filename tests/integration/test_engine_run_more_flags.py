"""`run`/`create` flags of issue 13 observed from inside the container: the namespace
links in /proc/self/ns against the host's (--pid, --ipc, --uts, --cgroupns), the
container's own cgroup files (--memory-reservation, --memory-swap), /proc/self/oom_score_adj,
a device node the container makes and opens (--device-cgroup-rule, CDI), what the
container sees of another's volumes (--volumes-from). Bad input: one line, exit 125,
nothing made (the `cli` fixture checks for leaks)."""

from __future__ import annotations

import json
import os

import pytest
from engine_cli import wait_until

pytestmark = pytest.mark.root

NS_SCRIPT = "for n in pid ipc uts cgroup; do echo $n $(readlink /proc/self/ns/$n); done"
NONE = ("--network", "none")


def host_ns() -> dict[str, str]:
    return {n: os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "ipc", "uts", "cgroup")}


def container_ns(cli, *flags: str, ref: str | None = None) -> dict[str, str]:
    if ref:
        out = cli.exec_out(ref, "sh", "-c", NS_SCRIPT)
    else:
        out = cli.out(*NONE, *flags, "busybox", "sh", "-c", NS_SCRIPT)
    return dict(line.split() for line in out.splitlines())


def test_default_namespaces_are_private(cli):
    ns, host = container_ns(cli), host_ns()
    for t in ("pid", "ipc", "uts"):
        assert ns[t] != host[t]


def test_pid_ipc_uts_host(cli):
    host = host_ns()
    ns = container_ns(cli, "--pid", "host", "--ipc", "host", "--uts", "host")
    assert (ns["pid"], ns["ipc"], ns["uts"]) == (host["pid"], host["ipc"], host["uts"])
    # with --uts host the container sees (and cannot set) the host's name
    out = cli.out(*NONE, "--uts", "host", "busybox", "hostname")
    assert out.strip() == os.uname().nodename
    cli.fails(125, "run", "--rm", *NONE, "--uts", "host", "--hostname", "x1", "busybox",
              "true")


def test_cgroupns_private_and_host(cli):
    host = host_ns()
    assert container_ns(cli, "--cgroupns", "private")["cgroup"] != host["cgroup"]
    assert container_ns(cli, "--cgroupns", "host")["cgroup"] == host["cgroup"]


def test_pid_and_ipc_of_another_container(cli):
    donor = cli.detach(*NONE, "--ipc", "shareable", "busybox", "sh", "-c",
                       "echo from-donor > /dev/shm/d; exec sleep 300")
    wait_until(lambda: cli("exec", donor, "test", "-e", "/dev/shm/d").returncode == 0)
    theirs = container_ns(cli, ref=donor)
    ns = container_ns(cli, "--pid", f"container:{donor}", "--ipc", f"container:{donor}")
    assert (ns["pid"], ns["ipc"]) == (theirs["pid"], theirs["ipc"])
    assert ns["uts"] != theirs["uts"]
    # the donor's init is pid 1 of the shared pid namespace
    out = cli.out(*NONE, "--pid", f"container:{donor}", "busybox", "cat", "/proc/1/cmdline")
    assert out.split("\0")[:2] == ["sleep", "300"]
    # and its /dev/shm (POSIX shared memory), both ways
    out = cli.out(*NONE, "--ipc", f"container:{donor}", "busybox", "sh", "-c",
                  "cat /dev/shm/d; echo from-joiner > /dev/shm/j")
    assert out.strip() == "from-donor"
    assert cli.exec_out(donor, "cat", "/dev/shm/j").strip() == "from-joiner"
    # a private one stays private
    assert cli("run", "--rm", *NONE, "busybox", "test", "-e", "/dev/shm/d").returncode == 1
    # Docker's rule: only a --ipc shareable container's namespace may be joined
    plain = cli.detach(*NONE, "busybox", "sleep", "300")
    err = cli.fails(125, "run", "--rm", *NONE, "--ipc", f"container:{plain}", "busybox",
                    "true")
    assert "non-shareable" in err


@pytest.mark.parametrize("flag", ["--pid", "--ipc"])
def test_join_missing_or_stopped_container(cli, flag):
    err = cli.fails(125, "run", "--rm", *NONE, flag, "container:zz-missing", "busybox",
                    "true")
    assert "zz-missing" in err
    stopped = cli.create(*NONE, *(["--ipc", "shareable"] if flag == "--ipc" else []),
                         "busybox", "true")
    before = {r["ID"] for r in cli.ps()}
    r = cli("run", "--rm", *NONE, flag, f"container:{stopped}", "busybox", "true")
    assert r.returncode == 125 and "non running" in r.stderr, r.stderr
    assert {r["ID"] for r in cli.ps()} == before  # --rm: the failed container is gone


def test_ipc_none_has_no_shm(cli):
    out = cli.out(*NONE, "--ipc", "none", "busybox", "sh", "-c",
                  "test -e /dev/shm && echo shm || echo none")
    assert out.strip() == "none"


@pytest.mark.parametrize("flag,value", [
    ("--pid", "private"), ("--pid", "container:"), ("--ipc", "bogus"), ("--uts", "private"),
    ("--cgroupns", "shared"), ("--userns", "keep-id"), ("--oom-score-adj", "1001"),
    ("--memory-reservation", "1k"), ("--device-cgroup-rule", "c 1:3"),
    ("--device-cgroup-rule", "x 1:3 rwm"), ("--device-cgroup-rule", "c a:3 rwm"),
    ("--volumes-from", "x:rx"), ("--health-interval", "soon"), ("--health-retries", "-1"),
    ("--gpus", "many"), ("--domainname", "-bad"),
])
def test_bad_values(cli, flag, value):
    before = {r["ID"] for r in cli.ps()}
    err = cli.fails(125, "run", "--rm", *NONE, f"{flag}={value}", "busybox", "true")
    assert flag in err or "mode" in err
    assert {r["ID"] for r in cli.ps()} == before


def test_userns_host_accepted(cli):
    assert cli.out(*NONE, "--userns", "host", "busybox", "echo", "ok").strip() == "ok"


def test_domainname(cli):
    out = cli.out(*NONE, "--hostname", "box1", "--domainname", "example.org", "busybox",
                  "sh", "-c", "hostname; cat /proc/sys/kernel/domainname")
    assert out.split() == ["box1", "example.org"]


def test_oom_score_adj(cli):
    assert cli.out(*NONE, "--oom-score-adj", "345", "busybox", "cat",
                   "/proc/self/oom_score_adj").strip() == "345"
    assert cli.out(*NONE, "busybox", "cat", "/proc/self/oom_score_adj").strip() == "0"


def _memory_files(cli, *flags: str) -> list[str]:
    return cli.out(*NONE, *flags, "busybox", "sh", "-c",
                   "cd /sys/fs/cgroup; if [ -d memory ]; then cd memory; "
                   "cat memory.limit_in_bytes memory.soft_limit_in_bytes "
                   "memory.memsw.limit_in_bytes; else cat memory.max memory.low "
                   "memory.swap.max; fi").split()


def test_memory_reservation_and_swap(cli):
    if not (os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
            or os.path.exists("/sys/fs/cgroup/cgroup.controllers")):
        pytest.skip("no swap accounting on this host")
    v1 = os.path.isdir("/sys/fs/cgroup/memory")
    limit, low, swap = _memory_files(cli, "-m", "64m", "--memory-swap", "100m",
                                     "--memory-reservation", "32m")
    assert int(limit) == 64 << 20 and int(low) == 32 << 20
    assert int(swap) == (100 << 20 if v1 else 36 << 20)  # v1: memory+swap; v2: swap alone
    _, _, swap = _memory_files(cli, "-m", "64m", "--memory-swap", "-1")
    assert swap == "max" or int(swap) > 1 << 50
    err = cli.fails(125, "run", "--rm", *NONE, "-m", "16m", "--memory-reservation", "32m",
                    "busybox", "true")
    assert "reservation" in err


def _open_fuse(cli, *flags: str):
    return cli(*("run", "--rm", *NONE, *flags, "busybox", "sh", "-c",
                 "mknod /tmp/f c 10 229 && : < /tmp/f && echo opened"))


def test_device_cgroup_rule(cli):
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse (10:229) on this host")
    r = _open_fuse(cli)
    assert "opened" not in r.stdout and "Operation not permitted" in r.stderr
    r = _open_fuse(cli, "--device-cgroup-rule", "c 10:229 rwm")
    assert r.stdout.strip() == "opened", r.stderr
    r = _open_fuse(cli, "--device-cgroup-rule", "c 10:* m")  # m only: made, not opened
    assert "opened" not in r.stdout


def test_cidfile(cli, tmp_path):
    path = tmp_path / "cid"
    cid = cli.create(*NONE, "--cidfile", str(path), "busybox", "true")
    assert path.read_text() == cid
    assert cli.inspect(cid)["HostConfig"]["ContainerIDFile"] == str(path)
    before = {r["ID"] for r in cli.ps()}
    err = cli.fails(125, "create", *NONE, "--cidfile", str(path), "busybox", "true")
    assert "Container ID file found" in err
    assert path.read_text() == cid and {r["ID"] for r in cli.ps()} == before
    # a link put at the name is not followed: refused, and its target untouched
    target = tmp_path / "target"
    target.write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(target)
    cli.fails(125, "create", *NONE, "--cidfile", str(link), "busybox", "true")
    assert target.read_text() == "keep"
    # a create that fails leaves no file
    failed = tmp_path / "failed"
    cli.fails(125, "create", *NONE, "--cidfile", str(failed), "localhost/nope:1", "true")
    assert not failed.exists()


def test_volumes_from(cli, tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "f").write_text("bind\n")
    src = cli.detach(*NONE, "-v", f"{tmp_path / 'b'}:/bind", "-v", "/anon", "busybox", "sh",
                     "-c", "echo anon > /anon/g; sleep 300")
    cli.exec_out(src, "true")
    out = cli.out(*NONE, "--volumes-from", src, "busybox", "sh", "-c",
                  "cat /bind/f /anon/g; echo more > /anon/h && echo wrote")
    assert out.split() == ["bind", "anon", "wrote"]
    assert cli.exec_out(src, "cat", "/anon/h").strip() == "more"
    r = cli("run", "--rm", *NONE, "--volumes-from", f"{src}:ro", "busybox", "sh", "-c",
            "touch /anon/x")
    assert r.returncode != 0 and "Read-only" in r.stderr
    err = cli.fails(125, "run", "--rm", *NONE, "--volumes-from", "zz-missing", "busybox",
                    "true")
    assert "zz-missing" in err


def _cdi_spec(tmp_path, host_node: str) -> str:
    d = tmp_path / "cdi"
    d.mkdir()
    (d / "test.json").write_text(json.dumps({
        "cdiVersion": "0.6.0", "kind": "sangja.test/dev",
        "containerEdits": {"env": ["CDI_KIND=1"]},
        "devices": [{"name": "one", "containerEdits": {
            "env": ["CDI_DEVICE=one"],
            "deviceNodes": [{"path": "/dev/sangja-test", "hostPath": host_node}]}}],
    }))
    return str(d)


def test_cdi_device(cli, tmp_path, monkeypatch):
    node = "/dev/fuse" if os.path.exists("/dev/fuse") else "/dev/null"
    monkeypatch.setenv("SANGJA_CDI_SPEC_DIRS", _cdi_spec(tmp_path, node))
    out = cli.out(*NONE, "--device", "sangja.test/dev=one", "busybox", "sh", "-c",
                  "env | grep ^CDI_ | sort; stat -c '%F %t:%T' /dev/sangja-test; "
                  ": < /dev/sangja-test && echo opened")
    lines = out.splitlines()
    assert lines[:2] == ["CDI_DEVICE=one", "CDI_KIND=1"]
    st = os.stat(node)
    assert lines[2] == (f"character special file {os.major(st.st_rdev):x}:"
                        f"{os.minor(st.st_rdev):x}")
    assert lines[3] == "opened"  # the spec's node is allowed in the device cgroup
    err = cli.fails(125, "run", "--rm", *NONE, "--device", "sangja.test/dev=two", "busybox",
                    "true")
    assert "sangja.test/dev=two" in err
    err = cli.fails(125, "run", "--rm", *NONE, "--gpus", "all", "busybox", "true")
    assert "nvidia.com/gpu=all" in err
