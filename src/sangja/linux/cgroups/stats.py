"""A container's resource usage in the JSON shape of runc's `events --stats`
({"type": "stats", "id": ID, "data": {"cpu", "cpuset", "memory", "pids", "blkio",
"hugetlb", "intel_rdt", "network_interfaces"}}), read from cgroup v1, v2 or both (hybrid:
each controller from the hierarchy that has it).

Go's `omitempty` is imitated: zero numbers and empty lists are left out where runc leaves
them out, so consumers that parse runc's output parse ours.
"""

from __future__ import annotations

import os

from . import read_file

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from . import Cgroup

UINT64_MAX = (1 << 64) - 1


def stats(cgroup, cid: str = "") -> dict:
    return {"type": "stats", "id": cid, "data": data(cgroup)}


def data(cgroup) -> dict:
    loc = _Locator(cgroup)
    return {
        "cpu": _cpu(loc),
        "cpuset": _cpuset(loc),
        "memory": _memory(loc),
        "pids": _pids(loc, cgroup),
        "blkio": _blkio(loc),
        "hugetlb": _hugetlb(loc),
        "intel_rdt": {},
        "network_interfaces": None,
    }


class _Locator:
    def __init__(self, cgroup: Cgroup) -> None:
        self.v1: dict[str, str] = {}
        self.v2: str | None = None
        for h, d in cgroup.dirs:
            if h.version == 1:
                for c in h.controllers:
                    self.v1.setdefault(c, d)
            elif self.v2 is None:
                self.v2 = d
        self.v2_ctrls = set(read_file(self.v2, "cgroup.controllers").split()) if self.v2 else set()

    def find(self, v1name: str, v2name: str) -> tuple[int, str] | None:
        if v1name in self.v1:
            return 1, self.v1[v1name]
        if self.v2 and v2name in self.v2_ctrls:
            return 2, self.v2
        return None




def _uint(text: str) -> int:
    text = text.strip()
    if text == "max":
        return UINT64_MAX
    try:
        v = int(text)
    except ValueError:
        return 0
    return max(v, 0)


def _kv(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = _uint(parts[1])
    return out


def _nonzero(d: dict) -> dict:
    return {k: v for k, v in d.items() if v}


# ---------------------------------------------------------------------------------------


def _cpu(loc: _Locator) -> dict:
    usage: dict = {}
    thr: dict = {}
    acct = loc.v1.get("cpuacct")
    if acct:
        usage["total"] = _uint(read_file(acct, "cpuacct.usage"))
        usage["percpu"] = [_uint(x) for x in read_file(acct, "cpuacct.usage_percpu").split()]
        rows = [line.split() for line in read_file(acct, "cpuacct.usage_all").splitlines()[1:]]
        rows = [r for r in rows if len(r) == 3]
        usage["percpu_kernel"] = [_uint(r[2]) for r in rows]
        usage["percpu_user"] = [_uint(r[1]) for r in rows]
        st = _kv(read_file(acct, "cpuacct.stat"))
        tick = os.sysconf("SC_CLK_TCK") or 100
        usage["kernel"] = st.get("system", 0) * 1_000_000_000 // tick
        usage["user"] = st.get("user", 0) * 1_000_000_000 // tick
    t = loc.find("cpu", "cpu")
    cpu_stat_dir = t[1] if t else (loc.v2 if loc.v2 else None)
    st = _kv(read_file(cpu_stat_dir, "cpu.stat"))
    if (t is None or t[0] == 2) and not acct and "usage_usec" in st:
        usage["total"] = st.get("usage_usec", 0) * 1000
        usage["kernel"] = st.get("system_usec", 0) * 1000
        usage["user"] = st.get("user_usec", 0) * 1000
    thr["periods"] = st.get("nr_periods", 0)
    thr["throttledPeriods"] = st.get("nr_throttled", 0)
    thr["throttledTime"] = st.get("throttled_time", 0) or st.get("throttled_usec", 0) * 1000
    out = _nonzero({k: v for k, v in usage.items() if k not in ("kernel", "user")})
    out["kernel"] = usage.get("kernel", 0)
    out["user"] = usage.get("user", 0)
    return {"usage": out, "throttling": _nonzero(thr)}


def _cpulist(text: str) -> list[int]:
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            pass
    return out


def _cpuset(loc: _Locator) -> dict:
    out: dict = {}
    t = loc.find("cpuset", "cpuset")
    if t and t[0] == 1:
        d = t[1]
        cpus, mems = _cpulist(read_file(d, "cpuset.cpus")), _cpulist(read_file(d, "cpuset.mems"))
        if cpus:
            out["cpus"] = cpus
        out["cpu_exclusive"] = _uint(read_file(d, "cpuset.cpu_exclusive"))
        if mems:
            out["mems"] = mems
        for key, name in (("mem_hardwall", "mem_hardwall"), ("mem_exclusive", "mem_exclusive"),
                          ("memory_migrate", "memory_migrate"),
                          ("memory_spread_page", "memory_spread_page"),
                          ("memory_spread_slab", "memory_spread_slab"),
                          ("memory_pressure", "memory_pressure"),
                          ("sched_load_balance", "sched_load_balance")):
            out[key] = _uint(read_file(d, f"cpuset.{name}"))
        try:
            out["sched_relax_domain_level"] = int(
                read_file(d, "cpuset.sched_relax_domain_level").strip() or 0)
        except ValueError:
            out["sched_relax_domain_level"] = 0
        return out
    if t:
        cpus = _cpulist(read_file(t[1], "cpuset.cpus.effective"))
        mems = _cpulist(read_file(t[1], "cpuset.mems.effective"))
        if cpus:
            out["cpus"] = cpus
        out["cpu_exclusive"] = 0
        if mems:
            out["mems"] = mems
    else:
        out["cpu_exclusive"] = 0
    for key in ("mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                "memory_spread_slab", "memory_pressure", "sched_load_balance",
                "sched_relax_domain_level"):
        out[key] = 0
    return out


def _entry(limit: int, usage: int, peak: int, failcnt: int) -> dict:
    e = {"limit": limit}
    if usage:
        e["usage"] = usage
    if peak:
        e["max"] = peak
    e["failcnt"] = failcnt
    return e


def _memory(loc: _Locator) -> dict:
    t = loc.find("memory", "memory")
    empty = _entry(0, 0, 0, 0)
    if t is None:
        return {"usage": empty, "swap": dict(empty), "kernel": dict(empty),
                "kernelTCP": dict(empty)}
    ver, d = t
    raw = _kv(read_file(d, "memory.stat"))
    out: dict = {}
    if ver == 1:
        if raw.get("cache"):
            out["cache"] = raw["cache"]
        for key, prefix in (("usage", "memory"), ("swap", "memory.memsw"),
                            ("kernel", "memory.kmem"), ("kernelTCP", "memory.kmem.tcp")):
            out[key] = _entry(_uint(read_file(d, f"{prefix}.limit_in_bytes")),
                              _uint(read_file(d, f"{prefix}.usage_in_bytes")),
                              _uint(read_file(d, f"{prefix}.max_usage_in_bytes")),
                              _uint(read_file(d, f"{prefix}.failcnt")))
    else:
        if raw.get("file"):
            out["cache"] = raw["file"]
        events = _kv(read_file(d, "memory.events"))
        usage = _uint(read_file(d, "memory.current"))
        limit = _uint(read_file(d, "memory.max")) if read_file(d, "memory.max") else UINT64_MAX
        out["usage"] = _entry(limit, usage, _uint(read_file(d, "memory.peak")),
                              events.get("max", 0))
        # v1 reports swap as memory+swap: do the same for compatibility (as runc does)
        swap_text = read_file(d, "memory.swap.max")
        swap_limit = _uint(swap_text) if swap_text else UINT64_MAX
        if swap_limit != UINT64_MAX:
            swap_limit = min(swap_limit + limit, UINT64_MAX)
        swap_events = _kv(read_file(d, "memory.swap.events"))
        out["swap"] = _entry(swap_limit, _uint(read_file(d, "memory.swap.current")) + usage, 0,
                             swap_events.get("max", 0))
        out["kernel"] = _entry(0, raw.get("kernel", 0) or raw.get("slab", 0), 0, 0)
        out["kernelTCP"] = _entry(0, raw.get("sock", 0), 0, 0)
    if raw:
        out["raw"] = raw
    return out


def _pids(loc: _Locator, cgroup) -> dict:
    t = loc.find("pids", "pids")
    cur = lim = 0
    if t is not None and read_file(t[1], "pids.current"):
        cur = _uint(read_file(t[1], "pids.current"))
        lim = _uint(read_file(t[1], "pids.max"))
        if lim == UINT64_MAX:
            lim = 0
    else:
        try:
            cur = len(cgroup.pids())
        except OSError:
            cur = 0
    return _nonzero({"current": cur, "limit": lim})


_V1_BLKIO = {
    "io_service_bytes_recursive": "ioServiceBytesRecursive",
    "io_serviced_recursive": "ioServicedRecursive",
    "io_queued_recursive": "ioQueueRecursive",
    "io_service_time_recursive": "ioServiceTimeRecursive",
    "io_wait_time_recursive": "ioWaitTimeRecursive",
    "io_merged_recursive": "ioMergedRecursive",
    "time_recursive": "ioTimeRecursive",
    "sectors_recursive": "sectorsRecursive",
}
_V1_GROUPS = (
    ("blkio.bfq.", ("io_service_bytes_recursive", "io_serviced_recursive")),
    ("blkio.", tuple(_V1_BLKIO)),
    ("blkio.throttle.", ("io_service_bytes_recursive", "io_serviced_recursive")),
    ("blkio.throttle.", ("io_service_bytes", "io_serviced")),
)


def _blkio_entries(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            mj, _, mn = parts[0].partition(":")
            e = {"major": _uint(mj), "minor": _uint(mn), "op": parts[1],
                 "value": _uint(parts[2])}
        elif len(parts) == 2 and ":" in parts[0]:  # time/sectors files: "MAJ:MIN VALUE"
            mj, _, mn = parts[0].partition(":")
            e = {"major": _uint(mj), "minor": _uint(mn), "value": _uint(parts[1])}
        else:
            continue
        out.append(_nonzero(e))
    return out


def _blkio(loc: _Locator) -> dict:
    t = loc.find("blkio", "io")
    if t is None:
        return {}
    ver, d = t
    if ver == 1:
        for prefix, names in _V1_GROUPS:
            found = {}
            for n in names:
                entries = _blkio_entries(read_file(d, prefix + n))
                if entries:
                    key = _V1_BLKIO.get(n) or _V1_BLKIO[n + "_recursive"]
                    found[key] = entries
            if found:
                return found
        return {}
    out: dict = {}
    for line in read_file(d, "io.stat").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        mj, _, mn = parts[0].partition(":")
        for kv in parts[1:]:
            k, _, v = kv.partition("=")
            group, op = {"rbytes": ("ioServiceBytesRecursive", "Read"),
                         "wbytes": ("ioServiceBytesRecursive", "Write"),
                         "rios": ("ioServicedRecursive", "Read"),
                         "wios": ("ioServicedRecursive", "Write")}.get(k, (None, None))
            if group:
                out.setdefault(group, []).append(_nonzero(
                    {"major": _uint(mj), "minor": _uint(mn), "op": op, "value": _uint(v)}))
    return out


def _hugetlb(loc: _Locator) -> dict:
    t = loc.find("hugetlb", "hugetlb")
    if t is None:
        return {}
    from .resources import hugepage_sizes

    ver, d = t
    out = {}
    for size in hugepage_sizes():
        if ver == 1:
            e = {"usage": _uint(read_file(d, f"hugetlb.{size}.usage_in_bytes")),
                 "max": _uint(read_file(d, f"hugetlb.{size}.max_usage_in_bytes"))}
            fail = _uint(read_file(d, f"hugetlb.{size}.failcnt"))
        else:
            e = {"usage": _uint(read_file(d, f"hugetlb.{size}.current"))}
            fail = _kv(read_file(d, f"hugetlb.{size}.events")).get("max", 0)
        out[size] = _nonzero(e) | {"failcnt": fail}
    return out
