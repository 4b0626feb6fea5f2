"""Unit tests for cgroup resource limits: v1->v2 conversions, check() errors, apply() and
stats() against fake cgroup trees (plain files in tmp_path), freeze/thaw, and the
parsers of update/events. No root needed."""

from __future__ import annotations

import errno
import os

import pytest

from sangja.errors import ConfigError, Unsupported
from sangja.linux.cgroups import Cgroup, Hierarchy
from sangja.linux.cgroups import resources as R
from sangja.linux.cgroups import stats as S
from sangja.runtime import events as E
from sangja.runtime import update as U

MB = 1 << 20
UNLIMITED_V1 = "9223372036854771712"


# ------------------------------------------------------------------------------------------
# fake trees
# ------------------------------------------------------------------------------------------


def files(d, table: dict | None = None, **content):
    """Write files into d: `table` by real name, keyword names with "__" for "."."""
    os.makedirs(d, exist_ok=True)
    items = dict(table or {})
    items.update({k.replace("__", "."): v for k, v in content.items()})
    for name, value in items.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(value)


V1_FILES = {
    "memory": {
        "memory.limit_in_bytes": UNLIMITED_V1,
        "memory.memsw.limit_in_bytes": UNLIMITED_V1,
        "memory.soft_limit_in_bytes": UNLIMITED_V1,
        "memory.swappiness": "60",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        "memory.use_hierarchy": "1",
        "memory.kmem.limit_in_bytes": UNLIMITED_V1,
        "memory.kmem.tcp.limit_in_bytes": UNLIMITED_V1,
        "memory.usage_in_bytes": "4096000",
        "memory.max_usage_in_bytes": "8192000",
        "memory.failcnt": "3",
        "memory.memsw.usage_in_bytes": "4096000",
        "memory.memsw.max_usage_in_bytes": "8192000",
        "memory.memsw.failcnt": "0",
        "memory.stat": "cache 1000\nrss 2000\ntotal_rss 2000\n",
    },
    "cpu": {
        "cpu.shares": "1024",
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "-1",
        "cpu.cfs_burst_us": "0",
        "cpu.idle": "0",
        "cpu.rt_period_us": "1000000",
        "cpu.rt_runtime_us": "0",
        "cpu.stat": "nr_periods 10\nnr_throttled 4\nthrottled_time 5000\n",
    },
    "cpuacct": {
        "cpuacct.usage": "123456789",
        "cpuacct.usage_percpu": "100000000 23456789 ",
        "cpuacct.usage_all": "cpu user system\n0 90000000 10000000\n1 20000000 3456789\n",
        "cpuacct.stat": "user 10\nsystem 2\n",
    },
    "cpuset": {
        "cpuset.cpus": "0-1",
        "cpuset.mems": "0",
        "cpuset.cpu_exclusive": "0",
        "cpuset.sched_load_balance": "1",
        "cpuset.sched_relax_domain_level": "-1",
    },
    "pids": {"pids.max": "max", "pids.current": "3"},
    "blkio": {
        "blkio.weight": "500",
        "blkio.weight_device": "",
        "blkio.leaf_weight": "500",
        "blkio.leaf_weight_device": "",
        "blkio.throttle.read_bps_device": "",
        "blkio.throttle.write_bps_device": "",
        "blkio.throttle.read_iops_device": "",
        "blkio.throttle.write_iops_device": "",
        "blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
    },
    "freezer": {"freezer.state": "THAWED"},
}


@pytest.fixture
def v1(tmp_path):
    """A v1 host: one hierarchy per controller, the container at /ctr."""
    dirs = []
    for ctrl, content in V1_FILES.items():
        mount = tmp_path / ctrl
        files(mount, content)  # the root has the controller's files too
        files(mount / "ctr", content)
        dirs.append((Hierarchy(str(mount), "/", (ctrl,), 1), str(mount / "ctr")))
    return Cgroup("/ctr", dirs)


def v1dir(cg, ctrl):
    return next(d for h, d in cg.dirs if ctrl in h.controllers)


def read(d, name):
    with open(os.path.join(d, name)) as f:
        return f.read()


V2_CTRLS = "cpuset cpu io memory hugetlb pids"
V2_LEAF = {
    "cgroup.controllers": "",
    "cgroup.subtree_control": "",
    "memory.max": "max",
    "memory.swap.max": "max",
    "memory.low": "0",
    "memory.current": "5000000",
    "memory.peak": "6000000",
    "memory.swap.current": "1000",
    "memory.events": "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n",
    "memory.stat": "anon 3000\nfile 2000\nkernel 700\nsock 0\n",
    "cpu.weight": "100",
    "cpu.max": "max 100000",
    "cpu.max.burst": "0",
    "cpu.idle": "0",
    "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 7\n"
                "nr_throttled 2\nthrottled_usec 30\n",
    "cpuset.cpus": "",
    "cpuset.mems": "",
    "cpuset.cpus.effective": "0-3",
    "cpuset.mems.effective": "0",
    "pids.max": "max",
    "pids.current": "2",
    "io.weight": "default 100",
    "io.max": "",
    "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
    "hugetlb.2MB.max": "max",
    "hugetlb.2MB.current": "0",
    "cgroup.freeze": "0",
    "cgroup.events": "populated 1\nfrozen 0\n",
}


@pytest.fixture
def v2(tmp_path):
    """A pure v2 host: mount/sangja/ctr with the leaf's files; parents offer V2_CTRLS."""
    mount = tmp_path / "unified"
    files(mount, cgroup__controllers=V2_CTRLS, cgroup__subtree_control="")
    files(mount / "sangja", cgroup__controllers=V2_CTRLS, cgroup__subtree_control="")
    files(mount / "sangja" / "ctr", V2_LEAF, cgroup__controllers=V2_CTRLS)
    return Cgroup("/sangja/ctr", [(Hierarchy(str(mount), "/", (), 2),
                                   str(mount / "sangja" / "ctr"))])


def v2dir(cg):
    return cg.dirs[0][1]


def v2host(cg, available=V2_CTRLS):
    mount = cg.dirs[0][0].mountpoint
    files(mount, cgroup__controllers=available)
    return R.Host([cg.dirs[0][0]])


def v1host(cg):
    return R.Host([h for h, _ in cg.dirs])


# ------------------------------------------------------------------------------------------
# conversions
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shares, weight", [
    (0, 0), (1, 1), (2, 1), (1024, 100), (512, 59), (2048, 174), (262144, 10000),
    (10 ** 6, 10000),
])
def test_shares_to_weight(shares, weight):
    assert R.shares_to_weight(shares) == weight


def test_shares_to_weight_is_monotonic_and_in_range():
    prev = 0
    for s in range(2, 262145, 97):
        w = R.shares_to_weight(s)
        assert 1 <= w <= 10000 and w >= prev
        prev = w


@pytest.mark.parametrize("blkio, io", [(0, 0), (10, 1), (1000, 10000), (500, 4950)])
def test_blkio_weight_to_io_weight(blkio, io):
    assert R.blkio_weight_to_io_weight(blkio) == io


@pytest.mark.parametrize("swap, limit, out", [
    (0, 0, None), (0, 64 * MB, None), (0, -1, -1), (-1, 64 * MB, -1), (-1, 0, -1),
    (96 * MB, 64 * MB, 32 * MB), (64 * MB, 64 * MB, 0),
])
def test_swap_to_v2(swap, limit, out):
    assert R.swap_to_v2(swap, limit) == out


@pytest.mark.parametrize("swap, limit, msg", [
    (64 * MB, 0, "needs linux.resources.memory.limit"),
    (32 * MB, 64 * MB, "must be >="),
    (64 * MB, -1, "unlimited"),
])
def test_swap_to_v2_errors(swap, limit, msg):
    with pytest.raises(ConfigError, match=msg):
        R.swap_to_v2(swap, limit)


@pytest.mark.parametrize("quota, period, current, out", [
    (0, 0, "max 100000", None),
    (50000, 100000, "max 100000", "50000 100000"),
    (-1, 100000, "max 100000", "max 100000"),
    (20000, 0, "max 100000", "20000"),
    (-1, 0, "20000 100000", "max"),
    (0, 50000, "20000 100000", "20000 50000"),
    (0, 50000, "max 100000", "max 50000"),
])
def test_cpu_max(quota, period, current, out):
    assert R.cpu_max(quota, period, current) == out


def test_size_names():
    assert R._size_name(2 * MB) == "2MB"
    assert R._size_name(1 << 30) == "1GB"
    assert R._size_name(64 << 10) == "64KB"


# ------------------------------------------------------------------------------------------
# check
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("resources, msg", [
    ({"memory": {"limit": "64m"}}, r"linux\.resources\.memory\.limit must be an integer"),
    ({"memory": {"limit": True}}, r"memory\.limit must be an integer"),
    ({"memory": {"limit": -2}}, r"memory\.limit must be -1 \(unlimited\)"),
    ({"memory": {"swappiness": 101}}, r"memory\.swappiness must be between 0 and 100"),
    ({"memory": {"disableOOMKiller": 1}}, r"memory\.disableOOMKiller must be a boolean"),
    ({"memory": {"limit": 64 * MB, "swap": 32 * MB}}, r"memory\.swap .* must be >="),
    ({"memory": []}, r"linux\.resources\.memory must be an object"),
    ({"cpu": {"shares": 1}}, r"cpu\.shares must be between 2 and 262144"),
    ({"cpu": {"quota": 500}}, r"cpu\.quota must be -1, 0 or at least 1000"),
    ({"cpu": {"period": 100}}, r"cpu\.period must be between 1000 and 1000000"),
    ({"cpu": {"cpus": "0-"}}, r"cpu\.cpus '0-' is not a CPU/node list"),
    ({"cpu": {"cpus": 3}}, r"cpu\.cpus must be a string"),
    ({"cpu": {"idle": 2}}, r"cpu\.idle must be between 0 and 1"),
    ({"pids": {"limit": "x"}}, r"pids\.limit must be an integer"),
    ({"blockIO": {"weight": 5}}, r"blockIO\.weight must be between 10 and 1000"),
    ({"blockIO": {"weight": 2000}}, r"blockIO\.weight must be between 0 and 1000"),
    ({"blockIO": {"weightDevice": [{"major": 8, "weight": 100}]}},
     r"blockIO\.weightDevice\[0\]\.minor is required"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}},
     r"throttleReadBpsDevice\[0\]\.rate is required"),
    ({"hugepageLimits": [{"limit": 1}]}, r"hugepageLimits\[0\]\.pageSize is required"),
    ({"unified": {"memory.high": 5}}, r"unified\['memory\.high'\] must be a string"),
    ({"unified": {"../x": "1"}}, r"CONTROLLER\.PARAMETER"),
    ({"unified": {"cgroup.procs": "1"}}, r"CONTROLLER\.PARAMETER"),
])
def test_check_type_and_range_errors(v1, resources, msg):
    with pytest.raises(ConfigError, match=msg):
        R.check(resources, "v1", host=v1host(v1))


def test_check_accepts_a_full_v1_config(v1):
    R.check({"devices": [{"allow": False, "access": "rwm"}],
             "memory": {"limit": 64 * MB, "swap": 128 * MB, "reservation": 32 * MB,
                        "swappiness": 0, "disableOOMKiller": True, "kernelTCP": 0},
             "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1,3",
                     "mems": "0", "realtimeRuntime": 0, "idle": 0},
             "pids": {"limit": 100},
             "blockIO": {"weight": 500, "leafWeight": 300,
                         "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                         "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]}},
            "v1", host=v1host(v1))


def test_check_unknown_field_is_refused(v1):
    with pytest.raises(Unsupported, match=r"linux\.resources\.intelRdt"):
        R.check({"intelRdt": {}}, "v1", host=v1host(v1))
    with pytest.raises(Unsupported, match=r"linux\.resources\.memory\.colour"):
        R.check({"memory": {"colour": 1}}, "v1", host=v1host(v1))


def test_check_missing_controllers(v1):
    host = v1host(v1)
    with pytest.raises(Unsupported, match=r"linux\.resources\.network\.classID needs the "
                                          r"net_cls"):
        R.check({"network": {"classID": 42}}, "v1", host=host)
    with pytest.raises(Unsupported, match=r"linux\.resources\.rdma needs the rdma"):
        R.check({"rdma": {"mlx5_1": {"hcaHandles": 2}}}, "v1", host=host)
    with pytest.raises(Unsupported, match=r"unified.*needs cgroup v2"):
        R.check({"unified": {"memory.high": "1"}}, "v1", host=host)


def test_check_asking_nothing_needs_nothing(tmp_path):
    host = R.Host([Hierarchy(str(tmp_path), "/", ("cpu",), 1)])
    R.check({"memory": {"limit": 0}, "pids": {"limit": 0}, "network": {},
             "hugepageLimits": []}, "v1", host=host)


def test_check_v1_swap_without_accounting(tmp_path):
    files(tmp_path / "memory", memory__limit_in_bytes=UNLIMITED_V1)
    host = R.Host([Hierarchy(str(tmp_path / "memory"), "/", ("memory",), 1)])
    with pytest.raises(Unsupported, match=r"memory\.swap needs swap accounting"):
        R.check({"memory": {"limit": MB, "swap": 2 * MB}}, "v1", host=host)
    R.check({"memory": {"limit": MB, "swap": -1}}, "v1", host=host)


@pytest.mark.parametrize("resources, field", [
    ({"memory": {"swappiness": 10}}, "memory.swappiness"),
    ({"memory": {"disableOOMKiller": True}}, "memory.disableOOMKiller"),
    ({"memory": {"kernel": MB}}, "memory.kernel"),
    ({"memory": {"kernelTCP": MB}}, "memory.kernelTCP"),
    ({"memory": {"useHierarchy": False}}, "memory.useHierarchy"),
    ({"cpu": {"realtimeRuntime": 1000}}, "cpu.realtimeRuntime"),
    ({"blockIO": {"leafWeight": 100}}, "blockIO.leafWeight"),
    ({"network": {"classID": 1}}, "network.classID"),
    ({"network": {"priorities": [{"name": "eth0", "priority": 1}]}}, "network.priorities"),
])
def test_check_v2_refuses_v1_only_settings(v2, resources, field):
    with pytest.raises(Unsupported, match="linux.resources." + field.replace(".", r"\.")):
        R.check(resources, "v2", host=v2host(v2))


def test_check_v2_swap_needs_limit(v2):
    with pytest.raises(ConfigError, match=r"memory\.swap needs linux\.resources\.memory\.limit"):
        R.check({"memory": {"swap": 64 * MB}}, "v2", host=v2host(v2))
    R.check({"memory": {"swap": 64 * MB}}, "v2", update=True, host=v2host(v2))


def test_check_v2_controllers(v2):
    host = v2host(v2, "cpu memory")
    R.check({"memory": {"limit": MB}, "cpu": {"shares": 100},
             "unified": {"memory.high": "1000000", "cgroup.max.depth": "3"}}, "v2", host=host)
    with pytest.raises(Unsupported, match=r"linux\.resources\.pids needs the pids"):
        R.check({"pids": {"limit": 5}}, "v2", host=host)
    with pytest.raises(Unsupported, match=r"unified\['io\.max'\] needs the io controller"):
        R.check({"unified": {"io.max": "8:0 rbps=1"}}, "v2", host=host)


def test_check_hybrid_unified_needs_enabled_controller(v1, tmp_path):
    mount = tmp_path / "unified"
    files(mount, cgroup__controllers="hugetlb memory", cgroup__subtree_control="hugetlb")
    host = R.Host([h for h, _ in v1.dirs] + [Hierarchy(str(mount), "/", (), 2)])
    assert host.mode() == "hybrid"
    R.check({"unified": {"hugetlb.2MB.max": "0"}}, "hybrid", host=host)
    with pytest.raises(ConfigError, match=r"unified\['memory\.high'\]: controller 'memory' "
                                          r"is not enabled in the unified hierarchy"):
        R.check({"unified": {"memory.high": "1"}}, "hybrid", host=host)


def test_check_hugepage_sizes(v1, monkeypatch):
    monkeypatch.setattr(R, "hugepage_sizes", lambda: ["2MB", "1GB"])
    with pytest.raises(Unsupported, match=r"pageSize '3MB' is not a huge page size"):
        R.check({"hugepageLimits": [{"pageSize": "3MB", "limit": 0}]}, "v1",
                host=v1host(v1))
    with pytest.raises(Unsupported, match=r"hugepageLimits needs the hugetlb"):
        R.check({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}, "v1",
                host=v1host(v1))


def test_hugepage_sizes_from_sysfs(tmp_path):
    for n in ("hugepages-2048kB", "hugepages-1048576kB", "other"):
        (tmp_path / n).mkdir()
    assert sorted(R.hugepage_sizes(str(tmp_path))) == ["1GB", "2MB"]


# ------------------------------------------------------------------------------------------
# apply: v1
# ------------------------------------------------------------------------------------------


def test_apply_v1_memory(v1):
    R.apply(v1, {"memory": {"limit": 64 * MB, "swap": 128 * MB, "reservation": 32 * MB,
                            "swappiness": 10, "disableOOMKiller": True, "kernel": 0,
                            "useHierarchy": True}})
    d = v1dir(v1, "memory")
    assert read(d, "memory.limit_in_bytes") == str(64 * MB)
    assert read(d, "memory.memsw.limit_in_bytes") == str(128 * MB)
    assert read(d, "memory.soft_limit_in_bytes") == str(32 * MB)
    assert read(d, "memory.swappiness") == "10"
    assert read(d, "memory.oom_control") == "1"
    assert read(d, "memory.use_hierarchy") == "1"
    assert read(d, "memory.kmem.limit_in_bytes") == UNLIMITED_V1  # kernel 0: untouched


def _record_writes(monkeypatch):
    order = []
    real = R._write

    def spy(path, data):
        order.append((os.path.basename(path), data))
        real(path, data)

    monkeypatch.setattr(R, "_write", spy)
    return order


def test_apply_v1_memory_and_swap_order(v1, monkeypatch):
    d = v1dir(v1, "memory")
    files(d, memory__limit_in_bytes=str(32 * MB), memory__memsw__limit_in_bytes=str(64 * MB))
    order = _record_writes(monkeypatch)
    # raising both: swap first, so memsw >= limit holds at every step
    R.apply(v1, {"memory": {"limit": 128 * MB, "swap": 256 * MB}}, update=True)
    assert [n for n, _ in order] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    order.clear()
    # lowering both: limit first
    R.apply(v1, {"memory": {"limit": 16 * MB, "swap": 32 * MB}}, update=True)
    assert [n for n, _ in order] == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]


def test_apply_v1_unlimited_memory_unlimits_swap(v1):
    d = v1dir(v1, "memory")
    files(d, memory__memsw__limit_in_bytes=str(64 * MB))
    R.apply(v1, {"memory": {"limit": -1}}, update=True)
    assert read(d, "memory.limit_in_bytes") == "-1"
    assert read(d, "memory.memsw.limit_in_bytes") == "-1"


def test_apply_v1_memory_busy_names_field_file_and_usage(v1, monkeypatch):
    real = R._write

    def busy(path, data):
        if path.endswith("memory.limit_in_bytes"):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        real(path, data)

    monkeypatch.setattr(R, "_write", busy)
    with pytest.raises(ConfigError) as ei:
        R.apply(v1, {"memory": {"limit": 4096}})
    msg = str(ei.value)
    assert msg.startswith("linux.resources.memory.limit: cannot write '4096' to ")
    assert msg.endswith("memory.limit_in_bytes: Device or resource busy (current usage "
                        "4096000, peak 8192000 bytes)")


def test_apply_v1_use_hierarchy_false_refused(v1, monkeypatch):
    real = R._write

    def einval(path, data):
        if path.endswith("memory.use_hierarchy") and data == "0":
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        real(path, data)

    monkeypatch.setattr(R, "_write", einval)
    with pytest.raises(Unsupported, match=r"memory\.useHierarchy false is refused"):
        R.apply(v1, {"memory": {"useHierarchy": False}})


def test_apply_v1_swap_without_accounting(v1):
    os.unlink(os.path.join(v1dir(v1, "memory"), "memory.memsw.limit_in_bytes"))
    with pytest.raises(Unsupported, match=r"memory\.swap needs swap accounting"):
        R.apply(v1, {"memory": {"limit": MB, "swap": 2 * MB}})
    R.apply(v1, {"memory": {"limit": -1}})  # no memsw: unlimited swap is implied, skipped


def test_apply_v1_cpu(v1):
    R.apply(v1, {"cpu": {"shares": 512, "quota": 50000, "period": 200000, "burst": 1000,
                         "idle": 1, "realtimePeriod": 500000, "realtimeRuntime": 1000,
                         "cpus": "1", "mems": "0"}})
    d = v1dir(v1, "cpu")
    assert read(d, "cpu.shares") == "512"
    assert read(d, "cpu.cfs_quota_us") == "50000"
    assert read(d, "cpu.cfs_period_us") == "200000"
    assert read(d, "cpu.cfs_burst_us") == "1000"
    assert read(d, "cpu.idle") == "1"
    assert read(d, "cpu.rt_period_us") == "500000"
    assert read(d, "cpu.rt_runtime_us") == "1000"
    assert read(v1dir(v1, "cpuset"), "cpuset.cpus") == "1"
    assert read(v1dir(v1, "cpuset"), "cpuset.mems") == "0"


def test_apply_v1_cpu_shares_clamped_by_kernel(v1, monkeypatch):
    real = R._write

    def clamp(path, data):
        real(path, "262144" if path.endswith("cpu.shares") else data)

    monkeypatch.setattr(R, "_write", clamp)
    with pytest.raises(ConfigError, match=r"cpu\.shares: the kernel set 262144 instead of "
                                          r"300000"):
        R.apply(v1, {"cpu": {"shares": 300000}})


def test_apply_v1_period_retried_after_quota(v1, monkeypatch):
    real = R._write
    calls = []

    def picky(path, data):
        calls.append((os.path.basename(path), data))
        if path.endswith("cpu.cfs_period_us") and not any(
                n == "cpu.cfs_quota_us" for n, _ in calls):
            raise OSError(errno.EINVAL, "Invalid argument")
        real(path, data)

    monkeypatch.setattr(R, "_write", picky)
    R.apply(v1, {"cpu": {"quota": 5000, "period": 10000}})
    assert [n for n, _ in calls] == ["cpu.cfs_period_us", "cpu.cfs_quota_us",
                                     "cpu.cfs_period_us"]
    assert read(v1dir(v1, "cpu"), "cpu.cfs_period_us") == "10000"


def test_apply_v1_pids(v1):
    R.apply(v1, {"pids": {"limit": 42}})
    assert read(v1dir(v1, "pids"), "pids.max") == "42"
    R.apply(v1, {"pids": {"limit": -1}}, update=True)
    assert read(v1dir(v1, "pids"), "pids.max") == "max"


def test_apply_v1_blkio_cfq(v1, monkeypatch):
    order = _record_writes(monkeypatch)
    R.apply(v1, {"blockIO": {"weight": 300, "leafWeight": 200,
                             "weightDevice": [{"major": 8, "minor": 0, "weight": 100,
                                               "leafWeight": 50}],
                             "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                             "throttleWriteIOPSDevice": [{"major": 8, "minor": 16,
                                                          "rate": 50}]}})
    assert order == [("blkio.weight", "300"), ("blkio.leaf_weight", "200"),
                     ("blkio.weight_device", "8:0 100"), ("blkio.leaf_weight_device", "8:0 50"),
                     ("blkio.throttle.read_bps_device", "8:0 1000"),
                     ("blkio.throttle.write_iops_device", "8:16 50")]


def test_apply_v1_blkio_bfq(v1):
    d = v1dir(v1, "blkio")
    os.unlink(os.path.join(d, "blkio.weight"))
    files(d, blkio__bfq__weight="100", blkio__bfq__weight_device="")
    R.apply(v1, {"blockIO": {"weight": 300,
                             "weightDevice": [{"major": 8, "minor": 0, "weight": 100}]}})
    assert read(d, "blkio.bfq.weight") == "300"
    assert read(d, "blkio.bfq.weight_device") == "8:0 100"


def test_apply_v1_missing_controller_and_file(v1):
    with pytest.raises(Unsupported, match=r"linux\.resources\.hugepageLimits needs the "
                                          r"hugetlb"):
        R.apply(v1, {"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]})
    os.unlink(os.path.join(v1dir(v1, "cpu"), "cpu.cfs_burst_us"))
    with pytest.raises(Unsupported, match=r"cpu\.burst needs .*cpu\.cfs_burst_us"):
        R.apply(v1, {"cpu": {"burst": 1000}})
    R.apply(v1, {"cpu": {"burst": 0}})  # asks nothing: a missing file is fine


def test_apply_v1_write_error_names_field_and_file(v1):
    d = v1dir(v1, "pids")
    os.unlink(os.path.join(d, "pids.max"))
    os.mkdir(os.path.join(d, "pids.max"))  # writing a directory: EISDIR
    with pytest.raises(ConfigError, match=r"linux\.resources\.pids\.limit: cannot write '5' "
                                          r"to .*/pids\.max: Is a directory"):
        R.apply(v1, {"pids": {"limit": 5}})


def test_apply_v1_unified_refused(v1):
    with pytest.raises(Unsupported, match=r"unified needs cgroup v2"):
        R.apply(v1, {"unified": {"memory.high": "1"}})


def test_apply_nothing_writes_nothing(v1, monkeypatch):
    order = _record_writes(monkeypatch)
    R.apply(v1, {})
    R.apply(v1, None)
    R.apply(v1, {"memory": {"limit": 0}, "cpu": {}, "pids": {"limit": 0}, "devices": [
        {"allow": False, "access": "rwm"}]})
    assert order == []


# ------------------------------------------------------------------------------------------
# apply: v2
# ------------------------------------------------------------------------------------------


def test_apply_v2_enables_controllers_in_parents_only(v2):
    R.apply(v2, {"memory": {"limit": 64 * MB}})
    mount = v2.dirs[0][0].mountpoint
    want = {"+cpuset", "+cpu", "+io", "+memory", "+hugetlb", "+pids"}
    assert set(read(mount, "cgroup.subtree_control").split()) == want
    assert set(read(os.path.join(mount, "sangja"), "cgroup.subtree_control").split()) == want
    assert read(v2dir(v2), "cgroup.subtree_control") == ""  # never in the leaf


def test_apply_v2_required_controller_missing(v2):
    mount = v2.dirs[0][0].mountpoint
    files(os.path.join(mount, "sangja"), cgroup__controllers="cpu memory")
    with pytest.raises(Unsupported, match=r"linux\.resources\.pids\.limit needs the pids "
                                          r"controller, which .*sangja does not offer"):
        R.apply(v2, {"pids": {"limit": 5}})


def test_apply_v2_enable_failure_of_required_controller(v2, monkeypatch):
    real = R._write

    def busy(path, data):
        if path.endswith("cgroup.subtree_control") and "memory" in data:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        real(path, data)

    monkeypatch.setattr(R, "_write", busy)
    with pytest.raises(ConfigError, match=r"memory: cannot enable the memory controller in "
                                          r".*cgroup\.subtree_control: Device or resource busy"):
        R.apply(v2, {"memory": {"limit": MB}})


def test_apply_v2_optional_controller_failure_is_tolerated(v2, monkeypatch):
    real = R._write

    def no_io(path, data):
        if path.endswith("cgroup.subtree_control") and "+io" in data:
            raise OSError(errno.EINVAL, "Invalid argument")
        real(path, data)

    monkeypatch.setattr(R, "_write", no_io)
    R.apply(v2, {"pids": {"limit": 5}})
    assert read(v2dir(v2), "pids.max") == "5"


def test_apply_v2_memory(v2):
    R.apply(v2, {"memory": {"limit": 64 * MB, "swap": 96 * MB, "reservation": 32 * MB}})
    d = v2dir(v2)
    assert read(d, "memory.max") == str(64 * MB)
    assert read(d, "memory.swap.max") == str(32 * MB)
    assert read(d, "memory.low") == str(32 * MB)


def test_apply_v2_memory_unlimited(v2):
    R.apply(v2, {"memory": {"limit": -1}})
    assert read(v2dir(v2), "memory.max") == "max"
    assert read(v2dir(v2), "memory.swap.max") == "max"


def test_apply_v2_no_swap_file_is_fine_for_max_or_zero(v2):
    os.unlink(os.path.join(v2dir(v2), "memory.swap.max"))
    R.apply(v2, {"memory": {"limit": MB, "swap": MB}})  # swap 0: nothing to enforce
    with pytest.raises(Unsupported, match=r"memory\.swap needs .*memory\.swap\.max"):
        R.apply(v2, {"memory": {"limit": MB, "swap": 2 * MB}})


def test_apply_v2_check_before_update(v2):
    with pytest.raises(ConfigError, match=r"below the current usage 5000000"):
        R.apply(v2, {"memory": {"limit": MB, "checkBeforeUpdate": True}}, update=True)
    R.apply(v2, {"memory": {"limit": 8 * MB, "checkBeforeUpdate": True}}, update=True)


def test_apply_v2_update_swap_alone_uses_current_limit(v2):
    files(v2dir(v2), memory__max=str(64 * MB))
    R.apply(v2, {"memory": {"swap": 80 * MB}}, update=True)
    assert read(v2dir(v2), "memory.swap.max") == str(16 * MB)


def test_apply_v2_refuses_v1_only(v2):
    with pytest.raises(Unsupported, match=r"memory\.swappiness has no cgroup v2"):
        R.apply(v2, {"memory": {"swappiness": 0}})
    with pytest.raises(Unsupported, match=r"cpu\.realtimeRuntime"):
        R.apply(v2, {"cpu": {"realtimeRuntime": 100}})


def test_apply_v2_cpu(v2):
    R.apply(v2, {"cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 500,
                         "idle": 0, "cpus": "0-1", "mems": "0"}})
    d = v2dir(v2)
    assert read(d, "cpu.weight") == "100"
    assert read(d, "cpu.max") == "50000 100000"
    assert read(d, "cpu.max.burst") == "500"
    assert read(d, "cpuset.cpus") == "0-1"
    assert read(d, "cpuset.mems") == "0"


def test_apply_v2_cpu_period_alone_keeps_quota(v2):
    files(v2dir(v2), cpu__max="20000 100000")
    R.apply(v2, {"cpu": {"period": 50000}}, update=True)
    assert read(v2dir(v2), "cpu.max") == "20000 50000"
    R.apply(v2, {"cpu": {"quota": -1}}, update=True)
    assert read(v2dir(v2), "cpu.max") == "max"


def test_apply_v2_pids_and_hugetlb(v2):
    files(v2dir(v2), hugetlb__2MB__rsvd__max="max")
    R.apply(v2, {"pids": {"limit": 7}, "hugepageLimits": [{"pageSize": "2MB",
                                                           "limit": 4 * MB}]})
    assert read(v2dir(v2), "pids.max") == "7"
    assert read(v2dir(v2), "hugetlb.2MB.max") == str(4 * MB)
    assert read(v2dir(v2), "hugetlb.2MB.rsvd.max") == str(4 * MB)


def test_apply_v2_io(v2, monkeypatch):
    order = _record_writes(monkeypatch)
    R.apply(v2, {"blockIO": {"weight": 500,
                             "weightDevice": [{"major": 8, "minor": 0, "weight": 10}],
                             "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                             "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 0}],
                             "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 5}],
                             "throttleWriteIOPSDevice": [{"major": 8, "minor": 0,
                                                          "rate": 6}]}})
    leaf = [(n, v) for n, v in order if n != "cgroup.subtree_control"]
    assert leaf == [("io.weight", "4950"), ("io.weight", "8:0 1"),
                    ("io.max", "8:0 rbps=1000"), ("io.max", "8:0 wbps=max"),
                    ("io.max", "8:0 riops=5"), ("io.max", "8:0 wiops=6")]


def test_apply_v2_io_bfq(v2):
    files(v2dir(v2), io__bfq__weight="default 100")
    R.apply(v2, {"blockIO": {"weight": 500}})
    assert read(v2dir(v2), "io.bfq.weight") == "500"


def test_apply_v2_unified(v2):
    files(v2dir(v2), memory__high="max", cgroup__max__depth="max")
    R.apply(v2, {"memory": {"limit": 64 * MB},
                 "unified": {"memory.max": "33554432", "memory.high": "30000000",
                             "cgroup.max.depth": "2"}})
    # unified comes last and wins over the structured fields
    assert read(v2dir(v2), "memory.max") == "33554432"
    assert read(v2dir(v2), "memory.high") == "30000000"
    assert read(v2dir(v2), "cgroup.max.depth") == "2"
    with pytest.raises(ConfigError, match=r"unified\['memory\.nope'\]: .* does not exist"):
        R.apply(v2, {"unified": {"memory.nope": "1"}})


def test_apply_hybrid_unified_only_if_enabled(v1, tmp_path):
    mount = tmp_path / "unified"
    files(mount / "ctr", cgroup__controllers="hugetlb", hugetlb__2MB__max="max",
          memory__high="max", cgroup__max__depth="max")
    cg = Cgroup("/ctr", v1.dirs + [(Hierarchy(str(mount), "/", (), 2), str(mount / "ctr"))])
    R.apply(cg, {"unified": {"hugetlb.2MB.max": "0", "cgroup.max.depth": "3"}})
    assert read(mount / "ctr", "hugetlb.2MB.max") == "0"
    with pytest.raises(ConfigError, match=r"unified\['memory\.high'\]: controller 'memory' is "
                                          r"not enabled in the unified hierarchy"):
        R.apply(cg, {"unified": {"memory.high": "1"}})
    # hugepageLimits: hugetlb is not a v1 hierarchy here, but enabled in the v2 tree
    R.apply(cg, {"hugepageLimits": [{"pageSize": "2MB", "limit": 2 * MB}]})
    assert read(mount / "ctr", "hugetlb.2MB.max") == str(2 * MB)
    # hybrid never touches the v2 parents' subtree_control
    assert not os.path.exists(mount / "cgroup.subtree_control")


# ------------------------------------------------------------------------------------------
# stats
# ------------------------------------------------------------------------------------------


def test_stats_v1(v1, monkeypatch):
    monkeypatch.setattr(os, "sysconf", lambda name: 100)
    ev = S.stats(v1, "c1")
    assert ev["type"] == "stats" and ev["id"] == "c1"
    data = ev["data"]
    assert list(data) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                          "network_interfaces"]
    cpu = data["cpu"]
    assert cpu["usage"] == {"total": 123456789, "percpu": [100000000, 23456789],
                            "percpu_kernel": [10000000, 3456789],
                            "percpu_user": [90000000, 20000000],
                            "kernel": 20000000, "user": 100000000}
    assert cpu["throttling"] == {"periods": 10, "throttledPeriods": 4, "throttledTime": 5000}
    mem = data["memory"]
    assert mem["cache"] == 1000
    assert mem["usage"] == {"limit": int(UNLIMITED_V1), "usage": 4096000, "max": 8192000,
                            "failcnt": 3}
    assert mem["swap"]["usage"] == 4096000
    assert mem["kernelTCP"] == {"limit": int(UNLIMITED_V1), "failcnt": 0}
    assert mem["raw"]["rss"] == 2000
    assert data["pids"] == {"current": 3}
    assert data["cpuset"]["cpus"] == [0, 1] and data["cpuset"]["mems"] == [0]
    assert data["cpuset"]["sched_relax_domain_level"] == -1
    assert data["blkio"] == {"ioServiceBytesRecursive": [
        {"major": 8, "op": "Read", "value": 4096}, {"major": 8, "op": "Write"}]}
    assert data["hugetlb"] == {} and data["network_interfaces"] is None


def test_stats_v1_pids_limit(v1):
    files(v1dir(v1, "pids"), pids__max="64")
    assert S.stats(v1)["data"]["pids"] == {"current": 3, "limit": 64}


def test_stats_v2(v2, monkeypatch):
    monkeypatch.setattr(R, "hugepage_sizes", lambda: ["2MB"])
    data = S.stats(v2, "c2")["data"]
    assert data["cpu"]["usage"] == {"total": 1500000, "kernel": 500000, "user": 1000000}
    assert data["cpu"]["throttling"] == {"periods": 7, "throttledPeriods": 2,
                                         "throttledTime": 30000}
    mem = data["memory"]
    assert mem["cache"] == 2000
    assert mem["usage"] == {"limit": S.UINT64_MAX, "usage": 5000000, "max": 6000000,
                            "failcnt": 2}
    assert mem["swap"] == {"limit": S.UINT64_MAX, "usage": 5001000, "failcnt": 0}
    assert mem["raw"]["anon"] == 3000
    assert data["pids"] == {"current": 2}
    assert data["blkio"] == {
        "ioServiceBytesRecursive": [{"major": 8, "op": "Read", "value": 4096},
                                    {"major": 8, "op": "Write", "value": 8192}],
        "ioServicedRecursive": [{"major": 8, "op": "Read", "value": 1},
                                {"major": 8, "op": "Write", "value": 2}]}
    assert data["cpuset"]["cpus"] == [0, 1, 2, 3]
    assert data["hugetlb"] == {"2MB": {"failcnt": 0}}


def test_stats_v2_swap_limit_is_memory_plus_swap(v2):
    files(v2dir(v2), memory__max=str(64 * MB), memory__swap__max=str(32 * MB))
    mem = S.stats(v2)["data"]["memory"]
    assert mem["usage"]["limit"] == 64 * MB
    assert mem["swap"]["limit"] == 96 * MB


def test_stats_v2_pids_without_controller(v2):
    d = v2dir(v2)
    os.unlink(os.path.join(d, "pids.current"))
    files(d, cgroup__procs="10\n11\n")
    assert S.stats(v2)["data"]["pids"] == {"current": 2}


# ------------------------------------------------------------------------------------------
# freezer, Cgroup.controllers
# ------------------------------------------------------------------------------------------


def test_freeze_thaw_v1(v1):
    d = v1dir(v1, "freezer")
    assert v1.freezer() == (1, d)
    assert not v1.frozen()
    v1.freeze(timeout=1)
    assert read(d, "freezer.state") == "FROZEN" and v1.frozen()
    v1.thaw()
    assert read(d, "freezer.state") == "THAWED" and not v1.frozen()


def test_freeze_v2_waits_for_frozen_event(v2):
    d = v2dir(v2)
    with pytest.raises(TimeoutError):
        v2.freeze(timeout=0.05)  # cgroup.events never says frozen: thawed again
    assert read(d, "cgroup.freeze") == "0"
    files(d, cgroup__events="populated 1\nfrozen 1\n")
    v2.freeze(timeout=1)
    assert read(d, "cgroup.freeze") == "1" and v2.frozen()
    v2.thaw()
    assert read(d, "cgroup.freeze") == "0"


def test_controllers_property(v1, v2):
    assert {"memory", "cpu", "pids", "freezer"} <= v1.controllers
    assert v2.controllers == set(V2_CTRLS.split())


# ------------------------------------------------------------------------------------------
# update and events helpers
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [
    ("512", 512), ("64k", 64 << 10), ("100m", 100 * MB), ("100M", 100 * MB),
    ("1g", 1 << 30), ("1.5g", 3 << 29), ("2GiB", 2 << 30), ("10mb", 10 * MB), ("-1", -1),
])
def test_parse_size(text, value):
    assert U.parse_size(text) == value


@pytest.mark.parametrize("text", ["", "abc", "100xyz", "-5", "m"])
def test_parse_size_errors(text):
    with pytest.raises(ValueError):
        U.parse_size(text)


def test_resources_from_flags():
    got = U.resources_from_flags({"memory": "64m", "memory-swap": "-1", "cpu-share": "512",
                                  "cpu-quota": "-1", "cpuset-cpus": "0-1", "pids-limit": "0",
                                  "blkio-weight": "300", "cpu-period": None})
    assert got == {"memory": {"limit": 64 * MB, "swap": -1},
                   "cpu": {"shares": 512, "quota": -1, "cpus": "0-1"},
                   "blockIO": {"weight": 300}}
    with pytest.raises(ConfigError, match="invalid value for --cpu-share"):
        U.resources_from_flags({"cpu-share": "-3"})
    with pytest.raises(ConfigError, match="invalid value for --memory"):
        U.resources_from_flags({"memory": "lots"})


def test_load_resources(tmp_path):
    p = tmp_path / "r.json"
    p.write_text('{"memory": {"limit": 1024}}')
    assert U.load_resources(str(p)) == {"memory": {"limit": 1024}}
    p.write_text("[1]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        U.load_resources(str(p))
    p.write_text("{")
    with pytest.raises(ConfigError, match="invalid JSON"):
        U.load_resources(str(p))


@pytest.mark.parametrize("text, seconds", [
    ("5s", 5.0), ("500ms", 0.5), ("1m30s", 90.0), ("1.5s", 1.5), ("2h", 7200.0),
    ("100us", 1e-4),
])
def test_parse_duration(text, seconds):
    assert E.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "5x", "1.5.5s"])
def test_parse_duration_errors(text):
    with pytest.raises(ValueError):
        E.parse_duration(text)


def test_oom_watch_v2_counts_oom_kills(v2):
    d = v2dir(v2)
    w = E.OomWatch(v2)
    try:
        assert w.fd >= 0 and w.poll() == 0
        files(d, memory__events="low 0\nhigh 0\nmax 3\noom 2\noom_kill 3\n")
        assert w.poll() == 2
        assert w.poll() == 0
    finally:
        w.close()


def test_paths_only_lists_pids_from_the_pids_hierarchy_without_the_mount_table(
        tmp_path, monkeypatch):
    """kill/delete rebuild a cgroup from its recorded directories only: no mount table
    read, and pids() still reads the pids hierarchy (it holds every process) first."""
    import sangja.linux.cgroups as cg

    def no_mount_table(*_a):
        raise AssertionError("the mount table was read")

    monkeypatch.setattr(cg, "hierarchies", no_mount_table)
    dirs = []
    for ctrl, procs in (("memory", "1\n"), ("pids", "1\n2\n3\n")):
        d = tmp_path / ctrl / "sangja" / "c1"
        d.mkdir(parents=True)
        (d / "cgroup.procs").write_text(procs)
        dirs.append(str(d))
    cgroup = Cgroup.paths_only("/sangja/c1", dirs)
    assert cgroup.paths == dirs
    assert sorted(cgroup.pids()) == [1, 2, 3]  # not the memory directory's [1]
