"""Cgroup resource limits, update, pause/resume and events, observed from inside the
container and from the host's cgroup files. Works on v1, hybrid (v1 controllers) and v2.

Every container gets an explicit cgroupsPath under /sangja-test so the host side can find
its directories whatever the runtime's default is.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from conftest import new_id, sh, wait_until

pytestmark = pytest.mark.root

PARENT = "/sangja-test"
MB = 1 << 20


def _mounts() -> tuple[dict[str, str], str | None]:
    v1: dict[str, str] = {}
    v2 = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fstype, _, opts = post.split()[:3]
            mnt = pre.split()[4]
            if fstype == "cgroup":
                for o in opts.split(","):
                    v1.setdefault(o, mnt)
            elif fstype == "cgroup2" and v2 is None:
                v2 = mnt
    return v1, v2


V1, V2 = _mounts()


def _v2_has(ctrl: str) -> bool:
    try:
        with open(os.path.join(V2 or "/nonexistent", "cgroup.controllers")) as f:
            return ctrl in f.read().split()
    except OSError:
        return False


def is_v1(ctrl: str) -> bool:
    return ctrl in V1


def need(ctrl: str, v2name: str | None = None) -> None:
    if not is_v1(ctrl) and not _v2_has(v2name or ctrl):
        pytest.skip(f"no {ctrl} cgroup controller on this host")


def host_dir(ctrl: str, cid: str) -> str:
    base = V1[ctrl] if is_v1(ctrl) else V2
    return f"{base}{PARENT}/{cid}"


def host_read(ctrl: str, cid: str, name: str) -> str:
    with open(os.path.join(host_dir(ctrl, cid), name)) as f:
        return f.read().strip()


def inside_path(ctrl: str, v1name: str, v2name: str) -> str:
    """Where the container sees its own cgroup's file (the runtime binds its cgroup
    directories at /sys/fs/cgroup)."""
    if is_v1(ctrl):
        return f"/sys/fs/cgroup/{os.path.basename(V1[ctrl])}/{v1name}"
    return f"/sys/fs/cgroup/{v2name}"


def with_resources(cid: str, **resources):
    def mutate(config):
        config["linux"]["cgroupsPath"] = f"{PARENT}/{cid}"
        config["linux"]["resources"].update(resources)

    return mutate


@pytest.fixture(scope="module", autouse=True)
def _remove_parent():
    yield
    for base in list(V1.values()) + ([V2] if V2 else []):
        try:
            os.rmdir(base + PARENT)
        except OSError:
            pass


def _start_with_output(runtime, bundle, cid, out):
    runtime.create(bundle, cid, stdout=str(out), stderr=str(out))
    runtime.start(cid)


def _read_when(path, predicate, timeout=10.0):
    def get():
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        return text if predicate(text) else None

    return wait_until(get, timeout, message=f"output in {path}")


# ------------------------------------------------------------------------------------------


def test_memory_limit_inside_and_on_host(runtime, make_bundle, tmp_path):
    need("memory")
    cid = new_id("mem")
    f = inside_path("memory", "memory.limit_in_bytes", "memory.max")
    bundle = make_bundle(with_resources(cid, memory={"limit": 64 * MB}),
                         args=sh(f"cat {f}; echo END; sleep 1000"))
    out = tmp_path / "out"
    _start_with_output(runtime, bundle, cid, out)
    text = _read_when(out, lambda t: "END" in t)
    assert text.split()[0] == str(64 * MB), text
    name = "memory.limit_in_bytes" if is_v1("memory") else "memory.max"
    assert host_read("memory", cid, name) == str(64 * MB)
    runtime.run("delete", "--force", cid, check=True)


def test_memory_reservation_and_swap(runtime, make_bundle):
    need("memory")
    if is_v1("memory") and not os.path.exists(
            os.path.join(V1["memory"], "memory.memsw.limit_in_bytes")):
        pytest.skip("no swap accounting")
    cid = new_id("swap")
    bundle = make_bundle(with_resources(cid, memory={"limit": 32 * MB, "swap": 48 * MB,
                                                     "reservation": 16 * MB}),
                         args=["sleep", "1000"])
    runtime.create(bundle, cid)
    if is_v1("memory"):
        assert host_read("memory", cid, "memory.limit_in_bytes") == str(32 * MB)
        assert host_read("memory", cid, "memory.memsw.limit_in_bytes") == str(48 * MB)
        assert host_read("memory", cid, "memory.soft_limit_in_bytes") == str(16 * MB)
    else:
        assert host_read("memory", cid, "memory.max") == str(32 * MB)
        assert host_read("memory", cid, "memory.low") == str(16 * MB)
        if os.path.exists(os.path.join(host_dir("memory", cid), "memory.swap.max")):
            assert host_read("memory", cid, "memory.swap.max") == str(16 * MB)
    runtime.run("delete", "--force", cid, check=True)


def test_pids_limit_stops_a_fork_loop(runtime, make_bundle):
    need("pids")
    cid = new_id("pids")
    bundle = make_bundle(with_resources(cid, pids={"limit": 10}),
                         args=sh("for i in $(seq 20); do sleep 100 & done; echo loop-done"))
    r = runtime.run_container(bundle, cid, timeout=60)
    assert r.returncode != 0, r
    assert "loop-done" not in r.stdout
    assert "fork" in r.stderr or "Resource temporarily unavailable" in r.stderr, r.stderr


def test_pids_limit_allows_below_the_limit(runtime, make_bundle):
    need("pids")
    cid = new_id("pids")
    f = inside_path("pids", "pids.max", "pids.max")
    bundle = make_bundle(with_resources(cid, pids={"limit": 40}),
                         args=sh(f"for i in $(seq 20); do sleep 100 & done; echo loop-done; "
                                 f"cat {f}"))
    r = runtime.run_container(bundle, cid, timeout=60)
    assert r.returncode == 0, r
    assert r.stdout.split() == ["loop-done", "40"]


def test_cpu_quota_period_shares(runtime, make_bundle):
    need("cpu")
    cid = new_id("cpu")
    bundle = make_bundle(with_resources(cid, cpu={"shares": 512, "quota": 50000,
                                                  "period": 100000}),
                         args=["sleep", "1000"])
    runtime.create(bundle, cid)
    if is_v1("cpu"):
        assert host_read("cpu", cid, "cpu.cfs_quota_us") == "50000"
        assert host_read("cpu", cid, "cpu.cfs_period_us") == "100000"
        assert host_read("cpu", cid, "cpu.shares") == "512"
    else:
        assert host_read("cpu", cid, "cpu.max") == "50000 100000"
        # runc (old linear formula) writes 20, crun/sangja (quadratic) 59
        assert host_read("cpu", cid, "cpu.weight") in ("20", "59")
    runtime.run("delete", "--force", cid, check=True)


def test_cpuset_cpus(runtime, make_bundle, tmp_path):
    need("cpuset")
    cid = new_id("cpuset")
    bundle = make_bundle(with_resources(cid, cpu={"cpus": "0", "mems": "0"}),
                         args=sh("grep Cpus_allowed_list /proc/self/status; echo END; "
                                 "sleep 1000"))
    out = tmp_path / "out"
    _start_with_output(runtime, bundle, cid, out)
    text = _read_when(out, lambda t: "END" in t)
    assert text.split()[:2] == ["Cpus_allowed_list:", "0"], text
    assert host_read("cpuset", cid, "cpuset.cpus") == "0"
    runtime.run("delete", "--force", cid, check=True)


def _blkio_weight_file() -> str | None:
    if is_v1("blkio"):
        probe = os.path.join(V1["blkio"], f"sangja-probe-{os.getpid()}")
        os.mkdir(probe)
        try:
            for name in ("blkio.weight", "blkio.bfq.weight"):
                if os.path.exists(os.path.join(probe, name)):
                    return name
        finally:
            os.rmdir(probe)
        return None
    return None  # v2: io.weight needs a scheduler with weights; not tested here


def test_blkio_weight(runtime, make_bundle):
    need("blkio", "io")
    name = _blkio_weight_file()
    if name is None:
        pytest.skip("no blkio weight file on this host")
    cid = new_id("blkio")
    bundle = make_bundle(with_resources(cid, blockIO={"weight": 300}), args=["sleep", "1000"])
    runtime.create(bundle, cid)
    value = host_read("blkio", cid, name)
    assert value.split()[-1] == "300", value  # bfq shows "default 300"
    runtime.run("delete", "--force", cid, check=True)


def test_update_memory_of_running_container(runtime, make_bundle):
    need("memory")
    cid = new_id("upd")
    f = inside_path("memory", "memory.limit_in_bytes", "memory.max")
    bundle = make_bundle(with_resources(cid, memory={"limit": 64 * MB}), args=["sleep", "1000"])
    runtime.create(bundle, cid)
    runtime.start(cid)
    runtime.run("update", "--memory", str(128 * MB), cid, check=True)
    r = runtime.run("exec", cid, "cat", f, check=True)
    assert r.stdout.strip() == str(128 * MB)
    # the linux.resources JSON form, from stdin
    runtime.run("update", "-r", "-", cid, input=json.dumps({"memory": {"limit": 96 * MB}}),
                check=True)
    r = runtime.run("exec", cid, "cat", f, check=True)
    assert r.stdout.strip() == str(96 * MB)
    runtime.run("delete", "--force", cid, check=True)


def test_update_pids_and_cpu(runtime, make_bundle):
    need("pids")
    need("cpu")
    cid = new_id("upd")
    bundle = make_bundle(with_resources(cid, pids={"limit": 50}), args=["sleep", "1000"])
    runtime.create(bundle, cid)
    runtime.start(cid)
    runtime.run("update", "--pids-limit", "20", "--cpu-quota", "30000", "--cpu-period",
                "100000", cid, check=True)
    assert host_read("pids", cid, "pids.max") == "20"
    if is_v1("cpu"):
        assert host_read("cpu", cid, "cpu.cfs_quota_us") == "30000"
    else:
        assert host_read("cpu", cid, "cpu.max") == "30000 100000"
    runtime.run("delete", "--force", cid, check=True)


def test_update_below_usage_fails_clearly(runtime, make_bundle):
    need("memory")
    if not is_v1("memory"):
        pytest.skip("v2 reclaims (and OOM-kills) instead of refusing")
    cid = new_id("upd")
    bundle = make_bundle(with_resources(cid, memory={"limit": 64 * MB}), args=["sleep", "1000"])
    runtime.create(bundle, cid)
    runtime.start(cid)
    r = runtime.run("update", "--memory", "4096", cid)
    assert r.returncode != 0
    assert "memory" in r.stderr
    runtime.run("delete", "--force", cid, check=True)


def _proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def _frozen_on_host(cid: str) -> bool:
    if is_v1("freezer"):
        return host_read("freezer", cid, "freezer.state") == "FROZEN"
    with open(f"{V2}{PARENT}/{cid}/cgroup.events") as f:
        return "frozen 1" in f.read()


def test_pause_and_resume(runtime, make_bundle):
    cid = new_id("pause")
    bundle = make_bundle(with_resources(cid), args=sh("sleep 1000 & sleep 1000"))
    runtime.create(bundle, cid)
    runtime.start(cid)
    pid = runtime.state(cid)["pid"]
    runtime.run("pause", cid, check=True)
    assert runtime.state(cid)["status"] == "paused"
    assert _frozen_on_host(cid)
    if is_v1("freezer"):
        assert _proc_state(pid) == "D"  # frozen tasks sit in the refrigerator
    r = runtime.run("pause", cid)
    assert r.returncode != 0  # already paused
    runtime.run("resume", cid, check=True)
    assert runtime.state(cid)["status"] == "running"
    assert not _frozen_on_host(cid)
    wait_until(lambda: _proc_state(pid) == "S", 5, message="init sleeping again")
    r = runtime.run("resume", cid)
    assert r.returncode != 0  # not paused
    runtime.run("delete", "--force", cid, check=True)


def test_delete_force_of_paused_container(runtime, make_bundle):
    cid = new_id("pause")
    bundle = make_bundle(with_resources(cid), args=["sleep", "1000"])
    runtime.create(bundle, cid)
    runtime.start(cid)
    runtime.run("pause", cid, check=True)
    runtime.run("delete", "--force", cid, check=True)
    assert runtime.status(cid) is None


def test_events_stats(runtime, make_bundle):
    cid = new_id("ev")
    bundle = make_bundle(with_resources(cid, memory={"limit": 64 * MB}, pids={"limit": 30}),
                         args=sh("sleep 1000 & sleep 1000"))
    runtime.create(bundle, cid)
    runtime.start(cid)
    r = runtime.run("events", "--stats", cid, check=True)
    ev = json.loads(r.stdout)
    assert ev["type"] == "stats" and ev["id"] == cid
    data = ev["data"]
    assert data["memory"]["usage"]["usage"] > 0
    assert data["memory"]["usage"]["limit"] == 64 * MB
    assert data["pids"]["current"] >= 1
    assert data["pids"]["limit"] == 30
    assert data["cpu"]["usage"]["total"] > 0
    assert isinstance(data["memory"]["raw"], dict)
    runtime.run("delete", "--force", cid, check=True)


def test_events_stream_prints_stats(runtime, make_bundle, tmp_path):
    cid = new_id("ev")
    bundle = make_bundle(with_resources(cid), args=["sleep", "1000"])
    runtime.create(bundle, cid)
    runtime.start(cid)
    out = tmp_path / "events"
    proc = runtime.spawn("events", "--interval", "200ms", cid, stdout=str(out))
    try:
        text = _read_when(out, lambda t: t.count("\n") >= 2)
        lines = [json.loads(x) for x in text.splitlines() if x.strip()]
        assert all(e["type"] == "stats" and e["id"] == cid for e in lines)
    finally:
        proc.kill()
    runtime.run("delete", "--force", cid, check=True)


def test_oom_kill_is_reported_by_events(runtime, make_bundle, tmp_path):
    need("memory")
    cid = new_id("oom")
    memory = {"limit": 8 * MB}
    if not is_v1("memory") or os.path.exists(
            os.path.join(V1["memory"], "memory.memsw.limit_in_bytes")):
        memory["swap"] = 8 * MB  # no escape into swap
    # tail buffers its whole (newline-free) input: 64 MiB against an 8 MiB limit
    bundle = make_bundle(with_resources(cid, memory=memory),
                         args=sh("sleep 1; head -c 64m /dev/zero | tail; echo tail=$?; "
                                 "sleep 1000"))
    runtime.create(bundle, cid)
    out = tmp_path / "events"
    proc = runtime.spawn("events", "--interval", "1s", cid, stdout=str(out))
    try:
        time.sleep(0.3)  # let events register for the notification
        runtime.start(cid)
        text = _read_when(out, lambda t: '"oom"' in t, timeout=30)
        ooms = [json.loads(x) for x in text.splitlines() if '"oom"' in x]
        assert ooms[0] == {"type": "oom", "id": cid}
    finally:
        proc.kill()
    if is_v1("memory"):
        assert "oom_kill 0" not in host_read("memory", cid, "memory.oom_control")
    else:
        assert "oom_kill 0" not in host_read("memory", cid, "memory.events")
    runtime.run("delete", "--force", cid, check=True)


@pytest.mark.sangja_only
def test_events_exits_when_container_stops(runtime, make_bundle):
    cid = new_id("ev")
    bundle = make_bundle(with_resources(cid), args=["sleep", "1"])
    runtime.create(bundle, cid)
    proc = runtime.spawn("events", "--interval", "200ms", cid)
    runtime.start(cid)
    r = proc.wait(timeout=15)
    assert r.returncode == 0, r
    assert '"stats"' in r.stdout
    runtime.run("delete", "--force", cid, check=True)


def test_no_cgroup_left_after_delete(runtime, make_bundle):
    cid = new_id("gone")
    bundle = make_bundle(with_resources(cid, memory={"limit": 64 * MB}, pids={"limit": 30},
                                        cpu={"shares": 512}), args=["sleep", "1000"])
    runtime.create(bundle, cid)
    runtime.start(cid)
    dirs = [f"{b}{PARENT}/{cid}" for b in list(V1.values()) + ([V2] if V2 else [])]
    assert any(os.path.isdir(d) for d in dirs)
    runtime.run("delete", "--force", cid, check=True)
    left = [d for d in dirs if os.path.exists(d)]
    assert not left, left


@pytest.mark.sangja_only
@pytest.mark.parametrize("resources, field", [
    ({"memory": {"limit": "64m"}}, "linux.resources.memory.limit"),
    ({"cpu": {"shares": 1}}, "linux.resources.cpu.shares"),
    ({"pids": {"limit": "x"}}, "linux.resources.pids.limit"),
    ({"memory": {"limit": 64 * MB, "swap": 32 * MB}}, "linux.resources.memory.swap"),
    ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness"),
    ({"hugepageLimits": [{"pageSize": "3MB", "limit": 0}]}, "linux.resources.hugepageLimits"),
])
def test_bad_resources_named(runtime, make_bundle, resources, field):
    cid = new_id("bad")
    bundle = make_bundle(with_resources(cid, **resources), args=["true"])
    r = runtime.run("create", "--bundle", bundle, cid)
    assert r.returncode != 0
    assert field in r.stderr, r.stderr
    assert runtime.status(cid) is None


@pytest.mark.sangja_only
def test_missing_controller_is_refused(runtime, make_bundle):
    if "net_cls" in V1:
        pytest.skip("this host has net_cls")
    cid = new_id("bad")
    bundle = make_bundle(with_resources(cid, network={"classID": 42}), args=["true"])
    r = runtime.run("create", "--bundle", bundle, cid)
    assert r.returncode != 0
    assert "linux.resources.network.classID" in r.stderr, r.stderr
    assert runtime.status(cid) is None
