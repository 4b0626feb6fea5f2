"""Resource limits (runtime-spec `linux.resources`) on cgroup v1, v2 and hybrid hosts.

`check(resources, mode)` validates types and ranges and refuses what the host cannot do
(before anything is made); `apply(cgroup, resources)` writes the limits into a container's
cgroup, after `Cgroup.create()` and before the container's first process joins it. `update`
calls `apply(..., update=True)` on a live container.

v1 semantics map to v2 files the way runc and crun map them: memory.max/low and
memory.swap.max (= swap total - limit), cpu.weight from shares (crun's quadratic formula),
cpu.max "QUOTA PERIOD", io.weight/io.bfq.weight and io.max, pids.max,
hugetlb.<size>.max. Device rules (`devices`) are done by devices.py and ignored here.
On pure v2 the controllers the container needs are enabled in each parent's
cgroup.subtree_control; on a hybrid host the v2 tree is used only for controllers already
enabled there (the v1 hierarchies own the rest).
"""

from __future__ import annotations

import errno
import math
import os

from ...errors import ConfigError, Unsupported
from . import read_file

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from . import Cgroup, Hierarchy

P = "linux.resources"
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
UINT32_MAX = (1 << 32) - 1
UINT16_MAX = (1 << 16) - 1

# Controllers enabled on v2 (best effort, as runc does) so that stats work even when the
# config sets no limit for them; the ones a config needs must succeed.
V2_DEFAULT = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")

_KNOWN = {
    "devices": None,
    "memory": ("limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness",
               "disableOOMKiller", "useHierarchy", "checkBeforeUpdate"),
    "cpu": ("shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod", "cpus",
            "mems", "idle"),
    "pids": ("limit",),
    "blockIO": ("weight", "leafWeight", "weightDevice", "throttleReadBpsDevice",
                "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"),
    "hugepageLimits": None,
    "network": ("classID", "priorities"),
    "rdma": None,
    "unified": None,
}
_THROTTLE = {
    "throttleReadBpsDevice": ("blkio.throttle.read_bps_device", "rbps"),
    "throttleWriteBpsDevice": ("blkio.throttle.write_bps_device", "wbps"),
    "throttleReadIOPSDevice": ("blkio.throttle.read_iops_device", "riops"),
    "throttleWriteIOPSDevice": ("blkio.throttle.write_iops_device", "wiops"),
}


# ------------------------------------------------------------------------------------------
# conversions (v1 values -> v2 values)
# ------------------------------------------------------------------------------------------


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000], 1024 -> 100 (crun's quadratic fit;
    also opencontainers/cgroups'). 0 means unset and stays 0."""
    if shares == 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    lg = math.log2(shares)
    exponent = (lg * lg + 125 * lg) / 612.0 - 7.0 / 34.0
    return math.ceil(10 ** exponent)


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000] (runc's linear mapping)."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def swap_to_v2(swap: int, limit: int) -> int | None:
    """runtime-spec memory.swap is memory+swap (v1 memsw); v2 memory.swap.max is swap
    alone. Returns -1 for "max", None for "leave alone"; raises ConfigError when the
    pair makes no sense (runc's ConvertMemorySwapToCgroupV2Value)."""
    if limit == -1 and swap == 0:
        return -1  # unlimited memory asks for unlimited swap too (v1 compatibility)
    if swap == -1:
        return -1
    if swap == 0:
        return None
    if limit == 0:
        raise ConfigError(f"{P}.memory.swap needs {P}.memory.limit on cgroup v2 "
                          "(swap is memory+swap)")
    if limit < 0:
        raise ConfigError(f"{P}.memory.swap cannot be set with an unlimited "
                          f"{P}.memory.limit on cgroup v2")
    if swap < limit:
        raise ConfigError(f"{P}.memory.swap ({swap}) must be >= {P}.memory.limit ({limit}): "
                          "it is the memory+swap total")
    return swap - limit


def cpu_max(quota: int, period: int, current: str = "max 100000") -> str | None:
    """The cpu.max line for quota/period (0 = not given); `current` is the file now."""
    if not quota and not period:
        return None
    if quota and period:
        return f"{quota if quota > 0 else 'max'} {period}"
    if quota:
        return str(quota) if quota > 0 else "max"
    return f"{(current.split() or ['max'])[0]} {period}"


def _v2num(v: int) -> str:
    return "max" if v < 0 else str(v)


# ------------------------------------------------------------------------------------------
# the host
# ------------------------------------------------------------------------------------------


class Host:
    """Which controllers this host offers: v1 {controller: mountpoint} and the v2 tree."""

    def __init__(self, hs: list[Hierarchy] | None = None) -> None:
        if hs is None:
            from . import hierarchies

            hs = hierarchies()
        self.v1: dict[str, str] = {}
        self.v2_mount: str | None = None
        for h in hs:
            if h.version == 1:
                for c in h.controllers:
                    self.v1.setdefault(c, h.mountpoint)
            elif self.v2_mount is None:
                self.v2_mount = h.mountpoint
        self.v2_available = set(read_file(self.v2_mount, "cgroup.controllers").split()) \
            if self.v2_mount else set()
        self.v2_top = set(read_file(self.v2_mount, "cgroup.subtree_control").split()) \
            if self.v2_mount else set()

    def mode(self) -> str:
        v1 = any(not c.startswith("name=") for c in self.v1)
        return "hybrid" if v1 and self.v2_mount else "v1" if v1 else "v2"

    def has(self, v1name: str | None, v2name: str | None, mode: str) -> bool:
        if mode == "v2":
            return bool(v2name) and v2name in self.v2_available
        if v1name and v1name in self.v1:
            return True
        # hybrid: a controller not bound to v1 may serve from the v2 tree, if enabled there
        return mode == "hybrid" and bool(v2name) and v2name in self.v2_top




def hugepage_sizes(base: str = "/sys/kernel/mm/hugepages") -> list[str]:
    """The huge page sizes of this host as runtime-spec names them ("2MB", "1GB")."""
    out: list[str] = []
    try:
        names = os.listdir(base)
    except OSError:
        return out
    for n in names:
        if n.startswith("hugepages-") and n.endswith("kB"):
            try:
                out.append(_size_name(int(n[len("hugepages-"):-2]) * 1024))
            except ValueError:
                pass
    return out


def _size_name(size: int) -> str:
    units = ["B", "KB", "MB", "GB", "TB", "PB"]
    i = 0
    v = float(size)
    while v >= 1024 and i < len(units) - 1:
        v /= 1024
        i += 1
    return f"{v:g}{units[i]}"


# ------------------------------------------------------------------------------------------
# check
# ------------------------------------------------------------------------------------------


def _isint(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(obj: dict, key: str, where: str, lo: int, hi: int, *, required: bool = False,
         what: str = "") -> int | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise ConfigError(f"{where}.{key} is required")
        return None
    if not _isint(v):
        raise ConfigError(f"{where}.{key} must be an integer")
    if not lo <= v <= hi:
        raise ConfigError(f"{where}.{key} must be {what or f'between {lo} and {hi}'} "
                          f"(got {v})")
    return v


def _bool(obj: dict, key: str, where: str) -> bool | None:
    v = obj.get(key)
    if v is not None and not isinstance(v, bool):
        raise ConfigError(f"{where}.{key} must be a boolean")
    return v


def _str(obj: dict, key: str, where: str, *, required: bool = False) -> str | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise ConfigError(f"{where}.{key} is required")
        return None
    if not isinstance(v, str):
        raise ConfigError(f"{where}.{key} must be a string")
    return v


def _obj(v, where: str) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(f"{where} must be an object")
    return v


def _list(v, where: str) -> list:
    if v is None:
        return []
    if not isinstance(v, list):
        raise ConfigError(f"{where} must be an array")
    return v


def _unknown(obj: dict, known, where: str) -> None:
    for k in obj:
        if k not in known:
            raise Unsupported(f"{where}.{k}", "is not a known field of this runtime "
                                              "(refused rather than ignored)")


def _cpulist(v: str, field: str) -> None:
    if v == "":
        return
    for part in v.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()) or (dash and int(hi) < int(lo)):
            raise ConfigError(f"{field} {v!r} is not a CPU/node list like 0-3,5")


def check(resources: dict | None, mode: str | None = None, *, update: bool = False,
          host: Host | None = None) -> None:
    """Validate `linux.resources` (ConfigError naming the field) and refuse what this host
    cannot do (Unsupported). `mode` is "v1", "v2" or "hybrid" (None: this host's)."""
    r = _obj(resources, P)
    if all(k == "devices" or v is None or v == {} for k, v in r.items()) \
            and _KNOWN.keys() >= r.keys():
        if r.get("devices"):
            from .devices import check_rules

            check_rules(_list(r["devices"], f"{P}.devices"), mode)
        return  # nothing but device rules: no need to look at the host
    host = host or Host()
    mode = mode or host.mode()
    _unknown(r, _KNOWN, P)
    wants: list[tuple[str, str | None, str | None]] = []  # (field, v1 ctrl, v2 ctrl)

    def v2_refuses(field: str, why: str) -> None:
        if mode == "v2":
            raise Unsupported(field, f"{why} (no cgroup v2 equivalent)")

    if r.get("devices"):
        from .devices import check_rules

        check_rules(_list(r["devices"], f"{P}.devices"), mode)

    # memory
    m = _obj(r.get("memory"), f"{P}.memory")
    w = f"{P}.memory"
    _unknown(m, _KNOWN["memory"], w)
    mem = {}
    for k in ("limit", "reservation", "swap", "kernel", "kernelTCP"):
        mem[k] = _int(m, k, w, -1, INT64_MAX, what="-1 (unlimited) or a byte count")
    swappiness = _int(m, "swappiness", w, 0, 100)
    oom = _bool(m, "disableOOMKiller", w)
    hier = _bool(m, "useHierarchy", w)
    _bool(m, "checkBeforeUpdate", w)
    if any(mem[k] for k in ("limit", "reservation", "swap")) or swappiness is not None \
            or oom or hier is not None or mem["kernel"] or mem["kernelTCP"]:
        wants.append((w, "memory", "memory"))
    limit, swap = mem["limit"] or 0, mem["swap"] or 0
    if limit > 0 and swap > 0 and swap < limit:
        raise ConfigError(f"{w}.swap ({swap}) must be >= {w}.limit ({limit}): "
                          "it is the memory+swap total")
    if mode == "v2" and not update:
        swap_to_v2(swap, limit)
    if mem["kernel"]:
        v2_refuses(f"{w}.kernel", "is deprecated")
    if mem["kernelTCP"]:
        v2_refuses(f"{w}.kernelTCP", "limits TCP buffer memory")
    if swappiness is not None:
        v2_refuses(f"{w}.swappiness", "is a cgroup v1 setting")
    if oom:
        v2_refuses(f"{w}.disableOOMKiller", "is a cgroup v1 setting")
    if hier is False:
        v2_refuses(f"{w}.useHierarchy", "false asks for non-hierarchical accounting")
    if swap and swap != -1 and mode != "v2" and "memory" in host.v1 and not os.path.exists(
            os.path.join(host.v1["memory"], "memory.memsw.limit_in_bytes")):
        raise Unsupported(f"{w}.swap", "needs swap accounting, which this kernel has off "
                                       "(no memory.memsw.limit_in_bytes; boot with "
                                       "swapaccount=1)")

    # cpu
    c = _obj(r.get("cpu"), f"{P}.cpu")
    w = f"{P}.cpu"
    _unknown(c, _KNOWN["cpu"], w)
    shares = _int(c, "shares", w, 0, UINT64_MAX)
    if shares and not 2 <= shares <= 262144:
        raise ConfigError(f"{w}.shares must be between 2 and 262144 (got {shares})")
    quota = _int(c, "quota", w, -1, INT64_MAX)
    if quota is not None and 0 < quota < 1000:
        raise ConfigError(f"{w}.quota must be -1, 0 or at least 1000 microseconds "
                          f"(got {quota})")
    period = _int(c, "period", w, 0, UINT64_MAX)
    if period and not 1000 <= period <= 1000000:
        raise ConfigError(f"{w}.period must be between 1000 and 1000000 microseconds "
                          f"(got {period})")
    burst = _int(c, "burst", w, 0, UINT64_MAX)
    rt_rt = _int(c, "realtimeRuntime", w, -1, INT64_MAX)
    rt_p = _int(c, "realtimePeriod", w, 0, UINT64_MAX)
    idle = _int(c, "idle", w, 0, 1)
    for k in ("cpus", "mems"):
        v = _str(c, k, w)
        if v:
            _cpulist(v, f"{w}.{k}")
            wants.append((f"{w}.{k}", "cpuset", "cpuset"))
    if shares or quota or period or burst or idle:
        wants.append((w, "cpu", "cpu"))
    if rt_rt or rt_p:
        v2_refuses(f"{w}.realtimeRuntime", "(realtime scheduling groups)")
        wants.append((f"{w}.realtimeRuntime", "cpu", None))

    # pids
    p = _obj(r.get("pids"), f"{P}.pids")
    _unknown(p, _KNOWN["pids"], f"{P}.pids")
    if _int(p, "limit", f"{P}.pids", -1, INT64_MAX, what="-1 (unlimited) or a count"):
        wants.append((f"{P}.pids", "pids", "pids"))

    # blockIO
    b = _obj(r.get("blockIO"), f"{P}.blockIO")
    w = f"{P}.blockIO"
    _unknown(b, _KNOWN["blockIO"], w)
    asks_io = False
    for k in ("weight", "leafWeight"):
        weight = _int(b, k, w, 0, 1000)
        if weight:
            if weight < 10:
                raise ConfigError(f"{w}.{k} must be between 10 and 1000 (got {weight})")
            asks_io = True
    if b.get("leafWeight"):
        v2_refuses(f"{w}.leafWeight", "is a CFQ setting")
    for i, d in enumerate(_list(b.get("weightDevice"), f"{w}.weightDevice")):
        where = f"{w}.weightDevice[{i}]"
        d = _obj(d, where)
        _unknown(d, ("major", "minor", "weight", "leafWeight"), where)
        _int(d, "major", where, 0, INT64_MAX, required=True)
        _int(d, "minor", where, 0, INT64_MAX, required=True)
        for k in ("weight", "leafWeight"):
            weight = _int(d, k, where, 0, 1000)
            if weight and weight < 10:
                raise ConfigError(f"{where}.{k} must be between 10 and 1000 (got {weight})")
        if d.get("leafWeight"):
            v2_refuses(f"{where}.leafWeight", "is a CFQ setting")
        asks_io = True
    for key in _THROTTLE:
        for i, d in enumerate(_list(b.get(key), f"{w}.{key}")):
            where = f"{w}.{key}[{i}]"
            d = _obj(d, where)
            _unknown(d, ("major", "minor", "rate"), where)
            _int(d, "major", where, 0, INT64_MAX, required=True)
            _int(d, "minor", where, 0, INT64_MAX, required=True)
            _int(d, "rate", where, 0, UINT64_MAX, required=True)
            asks_io = True
    if asks_io:
        wants.append((w, "blkio", "io"))

    # hugepageLimits
    hl = _list(r.get("hugepageLimits"), f"{P}.hugepageLimits")
    sizes = None
    for i, h in enumerate(hl):
        where = f"{P}.hugepageLimits[{i}]"
        h = _obj(h, where)
        _unknown(h, ("pageSize", "limit"), where)
        size = _str(h, "pageSize", where, required=True)
        _int(h, "limit", where, 0, UINT64_MAX, required=True)
        sizes = hugepage_sizes() if sizes is None else sizes
        if size not in sizes:
            have = ", ".join(sorted(sizes)) or "none"
            raise Unsupported(f"{where}.pageSize",
                              f"{size!r} is not a huge page size of this host (it has {have})")
    if hl:
        wants.append((f"{P}.hugepageLimits", "hugetlb", "hugetlb"))

    # network
    n = _obj(r.get("network"), f"{P}.network")
    w = f"{P}.network"
    _unknown(n, _KNOWN["network"], w)
    if _int(n, "classID", w, 0, UINT32_MAX) is not None:
        v2_refuses(f"{w}.classID", "needs the v1 net_cls controller")
        wants.append((f"{w}.classID", "net_cls", None))
    prios = _list(n.get("priorities"), f"{w}.priorities")
    for i, pr in enumerate(prios):
        where = f"{w}.priorities[{i}]"
        pr = _obj(pr, where)
        _str(pr, "name", where, required=True)
        _int(pr, "priority", where, 0, UINT32_MAX, required=True)
    if prios:
        v2_refuses(f"{w}.priorities", "needs the v1 net_prio controller")
        wants.append((f"{w}.priorities", "net_prio", None))

    # rdma
    rd = _obj(r.get("rdma"), f"{P}.rdma")
    for dev, lim in rd.items():
        where = f"{P}.rdma[{dev!r}]"
        lim = _obj(lim, where)
        _unknown(lim, ("hcaHandles", "hcaObjects"), where)
        _int(lim, "hcaHandles", where, 0, UINT32_MAX)
        _int(lim, "hcaObjects", where, 0, UINT32_MAX)
        if not dev or any(ch.isspace() for ch in dev):
            raise ConfigError(f"{where}: invalid device name")
    if rd:
        wants.append((f"{P}.rdma", "rdma", "rdma"))

    # unified
    u = _obj(r.get("unified"), f"{P}.unified")
    for k, v in u.items():
        where = f"{P}.unified[{k!r}]"
        if not isinstance(v, str):
            raise ConfigError(f"{where} must be a string")
        ctrl, dot, param = k.partition(".")
        if "/" in k or not dot or not ctrl or not param or k in (
                "cgroup.procs", "cgroup.threads", "cgroup.subtree_control"):
            raise ConfigError(f"{where}: key must name a file as CONTROLLER.PARAMETER "
                              "(no '/', not cgroup.procs/threads/subtree_control)")
        if mode == "v1":
            raise Unsupported(where, "needs cgroup v2 (this host has v1 only)")
        if not host.v2_mount:
            raise Unsupported(where, "needs a cgroup v2 mount")
        if ctrl != "cgroup" and ctrl not in (host.v2_available if mode == "v2"
                                             else host.v2_top):
            if mode == "hybrid":
                raise ConfigError(f"{where}: controller {ctrl!r} is not enabled in the "
                                  f"unified hierarchy {host.v2_mount} of this hybrid host")
            raise Unsupported(where, f"needs the {ctrl} controller, which this host's "
                                     "cgroup v2 does not offer")

    for field, v1name, v2name in wants:
        if not host.has(v1name, v2name, mode):
            name = (v1name if mode != "v2" else v2name) or v1name
            if mode == "hybrid" and v2name and v2name in host.v2_available:
                why = (f"needs the {name} cgroup controller: not mounted as cgroup v1, and "
                       f"not enabled in {host.v2_mount}/cgroup.subtree_control")
            else:
                why = f"needs the {name} cgroup controller, which this host does not have"
            raise Unsupported(field, why)


# ------------------------------------------------------------------------------------------
# apply
# ------------------------------------------------------------------------------------------


class _Target:
    """A container cgroup's directories by controller."""

    def __init__(self, cgroup: Cgroup) -> None:
        self.v1: dict[str, str] = {}
        self.v2: str | None = None
        self.v2_mount: str | None = None
        for h, d in cgroup.dirs:
            if h.version == 1:
                for c in h.controllers:
                    self.v1.setdefault(c, d)
            elif self.v2 is None:
                self.v2, self.v2_mount = d, h.mountpoint
        real_v1 = any(not c.startswith("name=") for c in self.v1)
        self.mode = "hybrid" if real_v1 and self.v2 else "v1" if real_v1 else "v2"
        self.v2_ctrls: set[str] = set()
        if self.v2 and self.mode == "hybrid":
            self.v2_ctrls = set(read_file(self.v2, "cgroup.controllers").split())

    def find(self, v1name: str | None, v2name: str | None) -> tuple[int, str] | None:
        if self.mode != "v2" and v1name and v1name in self.v1:
            return 1, self.v1[v1name]
        if self.v2 and v2name and v2name in self.v2_ctrls:
            return 2, self.v2
        return None

    def need(self, field: str, v1name: str | None, v2name: str | None) -> tuple[int, str]:
        t = self.find(v1name, v2name)
        if t is None:
            if self.mode == "hybrid" and v2name:
                why = (f"needs the {v1name or v2name} controller: not mounted as cgroup v1 "
                       f"and not enabled in the unified hierarchy at {self.v2}")
            else:
                name = (v2name if self.mode == "v2" else v1name) or v1name
                why = f"needs the {name} cgroup controller, which is not available to " \
                      "this container's cgroup"
            raise Unsupported(field, why)
        return t

    def enable_v2(self, required: dict[str, str]) -> None:
        """Pure v2: enable controllers in every parent's cgroup.subtree_control, from the
        mount down to the container's parent. `required` must succeed; the V2_DEFAULT
        rest is best effort (for stats)."""
        if self.mode != "v2" or not self.v2:
            return
        assert self.v2_mount is not None  # set with self.v2
        mount = self.v2_mount.rstrip("/") or "/"
        rel = os.path.relpath(self.v2, mount)
        levels = [mount]
        if rel != ".":
            for part in rel.split("/")[:-1]:
                levels.append(os.path.join(levels[-1], part))
        else:
            levels = []
        usable = set(required) | set(V2_DEFAULT)
        for lvl in levels:
            avail = set(read_file(lvl, "cgroup.controllers").split())
            enabled = set(read_file(lvl, "cgroup.subtree_control").split())
            for c in sorted(required):
                if c not in avail and c not in enabled:
                    raise Unsupported(required[c], f"needs the {c} controller, which {lvl} "
                                                   "does not offer (see its cgroup.controllers)")
            usable &= avail | enabled
            todo = [c for c in V2_DEFAULT + tuple(sorted(set(required) - set(V2_DEFAULT)))
                    if c in usable and c not in enabled]
            if not todo:
                continue
            path = os.path.join(lvl, "cgroup.subtree_control")
            try:
                _write(path, " ".join("+" + c for c in todo))
                continue
            except OSError:
                pass
            for ctl in todo:  # one at a time: the optional ones may fail alone
                try:
                    _write(path, "+" + ctl)
                except OSError as e:
                    if ctl in required:
                        hint = " (processes in a non-root parent: the no-internal-" \
                               "process rule)" if e.errno == errno.EBUSY else ""
                        raise ConfigError(f"{required[ctl]}: cannot enable the {ctl} "
                                          f"controller in {path}: {e.strerror}{hint}") from None
                    usable.discard(ctl)
        self.v2_ctrls = usable if levels else set(read_file(self.v2, "cgroup.controllers").split())


def _write(path: str, data: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def _set(field: str, d: str, name: str, value, *, ignore_missing: bool = False,
         note=None) -> bool:
    """Write `value` to d/name; errors name the field and the file. False when the
    file is missing and that is acceptable."""
    path = os.path.join(d, name)
    text = str(value)
    try:
        _write(path, text)
        return True
    except FileNotFoundError:
        if ignore_missing:
            return False
        raise Unsupported(field, f"needs {path}, which this host's cgroup does not "
                                 "have") from None
    except OSError as e:
        extra = note(e) if note else ""
        raise ConfigError(f"{field}: cannot write {text!r} to {path}: "
                          f"{e.strerror or e}{extra}") from None


def _usage_note(d: str, cur: str, peak: str):
    def note(e: OSError) -> str:
        if e.errno != errno.EBUSY:
            return ""
        u, p = read_file(d, cur).strip(), read_file(d, peak).strip()
        return f" (current usage {u or '?'}, peak {p or '?'} bytes)" if u else ""

    return note


def _readint(d: str, name: str) -> int | None:
    v = read_file(d, name).split()
    if not v:
        return None
    if v[0] == "max":
        return -1
    try:
        return int(v[0])
    except ValueError:
        return None


def _required_v2(r: dict) -> dict[str, str]:
    """{v2 controller: the field that needs it}."""
    need: dict[str, str] = {}
    m, c = r.get("memory") or {}, r.get("cpu") or {}
    if any(m.get(k) for k in ("limit", "reservation", "swap")):
        need["memory"] = f"{P}.memory"
    if any(c.get(k) for k in ("shares", "quota", "period", "burst", "idle")):
        need["cpu"] = f"{P}.cpu"
    if c.get("cpus") or c.get("mems"):
        need["cpuset"] = f"{P}.cpu.{'cpus' if c.get('cpus') else 'mems'}"
    if (r.get("pids") or {}).get("limit"):
        need["pids"] = f"{P}.pids.limit"
    b = r.get("blockIO") or {}
    if b.get("weight") or b.get("weightDevice") or any(b.get(k) for k in _THROTTLE):
        need["io"] = f"{P}.blockIO"
    if r.get("hugepageLimits"):
        need["hugetlb"] = f"{P}.hugepageLimits"
    if r.get("rdma"):
        need["rdma"] = f"{P}.rdma"
    for k in (r.get("unified") or {}):
        ctrl = k.partition(".")[0]
        if ctrl != "cgroup":
            need.setdefault(ctrl, f"{P}.unified[{k!r}]")
    return need


def apply(cgroup, resources: dict | None, *, update: bool = False) -> None:
    """Write `linux.resources` into `cgroup` (a sangja.linux.cgroups.Cgroup whose
    directories exist). Call with the resources even when empty: on v2 it enables the
    controllers stats need. `update` marks a change to a live container."""
    r = resources or {}
    t = _Target(cgroup)
    t.enable_v2(_required_v2(r))
    cpu = r.get("cpu") or {}
    if cpu.get("cpus") or cpu.get("mems"):
        _cpuset(t, cpu)
    if cpu:
        _cpu(t, cpu)
    if r.get("memory"):
        _memory(t, r["memory"], update)
    if (r.get("pids") or {}).get("limit"):
        lim = r["pids"]["limit"]
        _, d = t.need(f"{P}.pids.limit", "pids", "pids")
        _set(f"{P}.pids.limit", d, "pids.max", lim if lim > 0 else "max")
    if r.get("blockIO"):
        _blkio(t, r["blockIO"])
    if r.get("hugepageLimits"):
        _hugetlb(t, r["hugepageLimits"])
    if r.get("network"):
        _network(t, r["network"])
    if r.get("rdma"):
        _rdma(t, r["rdma"])
    if r.get("unified"):
        _unified(t, r["unified"])


def _cpuset(t: _Target, c: dict) -> None:
    for k in ("cpus", "mems"):
        if c.get(k):
            _, d = t.need(f"{P}.cpu.{k}", "cpuset", "cpuset")
            _set(f"{P}.cpu.{k}", d, f"cpuset.{k}", c[k])


def _cpu(t: _Target, c: dict) -> None:
    w = f"{P}.cpu"
    shares, quota, period = c.get("shares") or 0, c.get("quota") or 0, c.get("period") or 0
    burst, idle = c.get("burst"), c.get("idle")
    rt_p, rt_rt = c.get("realtimePeriod") or 0, c.get("realtimeRuntime") or 0
    if not (shares or quota or period or burst is not None or idle is not None
            or rt_p or rt_rt):
        return
    ver, d = t.need(w, "cpu", "cpu")
    if ver == 1:
        if rt_p:
            _set(f"{w}.realtimePeriod", d, "cpu.rt_period_us", rt_p)
        if rt_rt:
            _set(f"{w}.realtimeRuntime", d, "cpu.rt_runtime_us", rt_rt)
        if shares:
            _set(f"{w}.shares", d, "cpu.shares", shares)
            got = _readint(d, "cpu.shares")
            if got is not None and got != shares:
                raise ConfigError(f"{w}.shares: the kernel set {got} instead of {shares} "
                                  f"({d}/cpu.shares)")
        retry_period = False
        if period:
            try:
                _write(os.path.join(d, "cpu.cfs_period_us"), str(period))
            except OSError as e:
                # a shorter period can exceed the parent's quota until the quota is set
                if e.errno != errno.EINVAL or not quota:
                    _set(f"{w}.period", d, "cpu.cfs_period_us", period)
                retry_period = True
        if quota:
            _set(f"{w}.quota", d, "cpu.cfs_quota_us", quota)
            if retry_period:
                _set(f"{w}.period", d, "cpu.cfs_period_us", period)
        if burst is not None:
            _set(f"{w}.burst", d, "cpu.cfs_burst_us", burst, ignore_missing=burst == 0)
        if idle is not None:
            _set(f"{w}.idle", d, "cpu.idle", idle, ignore_missing=idle == 0)
        return
    if rt_p or rt_rt:
        raise Unsupported(f"{w}.realtimeRuntime", "(realtime scheduling groups) has no "
                                                  "cgroup v2 equivalent")
    if idle is not None:
        _set(f"{w}.idle", d, "cpu.idle", idle, ignore_missing=idle == 0)
    if shares:
        _set(f"{w}.shares", d, "cpu.weight", shares_to_weight(shares))
    line = cpu_max(quota, period, read_file(d, "cpu.max").strip() or "max 100000")
    if line:
        _set(f"{w}.quota" if quota else f"{w}.period", d, "cpu.max", line)
    if burst is not None:
        _set(f"{w}.burst", d, "cpu.max.burst", burst, ignore_missing=burst == 0)


def _memory(t: _Target, m: dict, update: bool) -> None:
    w = f"{P}.memory"
    limit, swap = m.get("limit") or 0, m.get("swap") or 0
    res = m.get("reservation") or 0
    kernel, ktcp = m.get("kernel") or 0, m.get("kernelTCP") or 0
    swappiness, oom, hier = m.get("swappiness"), m.get("disableOOMKiller"), m.get("useHierarchy")
    if not (limit or swap or res or kernel or ktcp or swappiness is not None or oom
            or hier is not None):
        return
    ver, d = t.need(w, "memory", "memory")
    if ver == 1:
        if hier is not None:
            try:
                _write(os.path.join(d, "memory.use_hierarchy"), "1" if hier else "0")
            except OSError as e:
                if hier is False and e.errno == errno.EINVAL:
                    raise Unsupported(f"{w}.useHierarchy", "false is refused by this kernel "
                                                           "(accounting is always "
                                                           "hierarchical)") from None
                _set(f"{w}.useHierarchy", d, "memory.use_hierarchy", "1" if hier else "0")
        _memory_v1_limits(d, limit, swap)
        if res:
            _set(f"{w}.reservation", d, "memory.soft_limit_in_bytes", res)
        if kernel:
            _set(f"{w}.kernel", d, "memory.kmem.limit_in_bytes", kernel)
        if ktcp:
            _set(f"{w}.kernelTCP", d, "memory.kmem.tcp.limit_in_bytes", ktcp)
        if swappiness is not None:
            _set(f"{w}.swappiness", d, "memory.swappiness", swappiness)
        if oom or (oom is False and update):
            _set(f"{w}.disableOOMKiller", d, "memory.oom_control", "1" if oom else "0")
        return
    for k, _v, bad in (("kernel", kernel, kernel), ("kernelTCP", ktcp, ktcp),
                       ("swappiness", swappiness, swappiness is not None),
                       ("disableOOMKiller", oom, oom), ("useHierarchy", hier, hier is False)):
        if bad:
            raise Unsupported(f"{w}.{k}", "has no cgroup v2 equivalent")
    if update and swap and not limit:
        limit = _readint(d, "memory.max") or 0
    v2swap = swap_to_v2(swap, limit)
    if limit > 0 and m.get("checkBeforeUpdate") and update:
        cur = _readint(d, "memory.current")
        if cur is not None and cur > limit:
            raise ConfigError(f"{w}.limit: {limit} is below the current usage {cur} "
                              f"({d}/memory.current)")
    if v2swap is not None:
        text = _v2num(v2swap)
        _set(f"{w}.swap", d, "memory.swap.max", text, ignore_missing=text in ("max", "0"))
    note = _usage_note(d, "memory.current", "memory.peak")
    if limit:
        _set(f"{w}.limit", d, "memory.max", _v2num(limit), note=note)
    if res:
        _set(f"{w}.reservation", d, "memory.low", _v2num(res))


def _memory_v1_limits(d: str, limit: int, swap: int) -> None:
    """memory.limit_in_bytes and memory.memsw.limit_in_bytes, in the order the kernel
    accepts (memsw must stay >= limit at every step), as runc does."""
    w = f"{P}.memory"
    memsw = os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes"))
    if limit == -1 and swap == 0 and memsw:
        swap = -1
    if swap == -1 and not memsw:
        swap = 0  # unlimited swap without swap accounting: nothing to enforce
    note = _usage_note(d, "memory.usage_in_bytes", "memory.max_usage_in_bytes")

    def limit_note(e: OSError) -> str:
        if e.errno == errno.EINVAL and memsw:
            return (" (it must stay <= the memory+swap limit "
                    f"{read_file(d, 'memory.memsw.limit_in_bytes').strip()}: set "
                    f"{w}.swap too)")
        return note(e)

    def set_limit():
        _set(f"{w}.limit", d, "memory.limit_in_bytes", limit, note=limit_note)

    def set_swap():
        if not memsw:
            raise Unsupported(f"{w}.swap", "needs swap accounting, which this kernel has off "
                                           f"(no {d}/memory.memsw.limit_in_bytes)")
        _set(f"{w}.swap", d, "memory.memsw.limit_in_bytes", swap,
             note=lambda e: " (memory+swap must be >= the memory limit "
                            f"{read_file(d, 'memory.limit_in_bytes').strip()})"
             if e.errno == errno.EINVAL else note(e))

    if limit and swap:
        cur = _readint(d, "memory.limit_in_bytes")
        if swap == -1 or (cur is not None and cur < swap):
            set_swap()
            set_limit()
            return
    if limit:
        set_limit()
    if swap:
        set_swap()


def _blkio(t: _Target, b: dict) -> None:
    w = f"{P}.blockIO"
    weight, leaf = b.get("weight") or 0, b.get("leafWeight") or 0
    devs = b.get("weightDevice") or []
    if not (weight or leaf or devs or any(b.get(k) for k in _THROTTLE)):
        return
    ver, d = t.need(w, "blkio", "io")
    if ver == 1:
        if os.path.exists(os.path.join(d, "blkio.weight")):
            wf, wdf = "blkio.weight", "blkio.weight_device"
        else:
            wf, wdf = "blkio.bfq.weight", "blkio.bfq.weight_device"
        if weight:
            _set(f"{w}.weight", d, wf, weight)
        if leaf:
            _set(f"{w}.leafWeight", d, "blkio.leaf_weight", leaf)
        for i, wd in enumerate(devs):
            dev = f"{wd['major']}:{wd['minor']}"
            if wd.get("weight"):
                _set(f"{w}.weightDevice[{i}]", d, wdf, f"{dev} {wd['weight']}")
            if wd.get("leafWeight"):
                _set(f"{w}.weightDevice[{i}].leafWeight", d, "blkio.leaf_weight_device",
                     f"{dev} {wd['leafWeight']}")
        for key, (fname, _) in _THROTTLE.items():
            for i, td in enumerate(b.get(key) or []):
                _set(f"{w}.{key}[{i}]", d, fname, f"{td['major']}:{td['minor']} {td['rate']}")
        return
    if leaf or any(wd.get("leafWeight") for wd in devs):
        raise Unsupported(f"{w}.leafWeight", "has no cgroup v2 equivalent")
    bfq = os.path.exists(os.path.join(d, "io.bfq.weight"))
    if weight:
        if bfq:
            _set(f"{w}.weight", d, "io.bfq.weight", weight)
        else:
            _set(f"{w}.weight", d, "io.weight", blkio_weight_to_io_weight(weight))
    for i, wd in enumerate(devs):
        if wd.get("weight"):
            dev = f"{wd['major']}:{wd['minor']}"
            if bfq:
                _set(f"{w}.weightDevice[{i}]", d, "io.bfq.weight", f"{dev} {wd['weight']}")
            else:
                _set(f"{w}.weightDevice[{i}]", d, "io.weight",
                     f"{dev} {blkio_weight_to_io_weight(wd['weight'])}")
    for key, (_, kw) in _THROTTLE.items():
        for i, td in enumerate(b.get(key) or []):
            rate = td["rate"]
            _set(f"{w}.{key}[{i}]", d, "io.max",
                 f"{td['major']}:{td['minor']} {kw}={rate if rate else 'max'}")


def _hugetlb(t: _Target, limits: list) -> None:
    w = f"{P}.hugepageLimits"
    ver, d = t.need(w, "hugetlb", "hugetlb")
    for i, h in enumerate(limits):
        size, lim = h["pageSize"], h["limit"]
        if ver == 1:
            names = (f"hugetlb.{size}.limit_in_bytes", f"hugetlb.{size}.rsvd.limit_in_bytes")
        else:
            names = (f"hugetlb.{size}.max", f"hugetlb.{size}.rsvd.max")
        _set(f"{w}[{i}]", d, names[0], lim)
        _set(f"{w}[{i}]", d, names[1], lim, ignore_missing=True)


def _network(t: _Target, n: dict) -> None:
    w = f"{P}.network"
    if n.get("classID") is not None:
        _, d = t.need(f"{w}.classID", "net_cls", None)
        _set(f"{w}.classID", d, "net_cls.classid", n["classID"])
    for i, pr in enumerate(n.get("priorities") or []):
        _, d = t.need(f"{w}.priorities", "net_prio", None)
        _set(f"{w}.priorities[{i}]", d, "net_prio.ifpriomap", f"{pr['name']} {pr['priority']}")


def _rdma(t: _Target, rd: dict) -> None:
    w = f"{P}.rdma"
    _, d = t.need(w, "rdma", "rdma")
    for dev, lim in rd.items():
        parts = [dev]
        if lim.get("hcaHandles") is not None:
            parts.append(f"hca_handle={lim['hcaHandles']}")
        if lim.get("hcaObjects") is not None:
            parts.append(f"hca_object={lim['hcaObjects']}")
        if len(parts) > 1:
            _set(f"{w}[{dev!r}]", d, "rdma.max", " ".join(parts))


def _unified(t: _Target, u: dict) -> None:
    if not t.v2:
        raise Unsupported(f"{P}.unified", "needs cgroup v2 (this host has v1 only)")
    for k, v in u.items():
        field = f"{P}.unified[{k!r}]"
        ctrl = k.partition(".")[0]
        if "/" in k:
            raise ConfigError(f"{field}: key must not contain '/'")
        if ctrl != "cgroup" and ctrl not in t.v2_ctrls:
            if t.mode == "hybrid":
                raise ConfigError(f"{field}: controller {ctrl!r} is not enabled in the unified "
                                  f"hierarchy ({t.v2}/cgroup.controllers) of this hybrid host")
            raise Unsupported(field, f"needs the {ctrl} controller, which is not available "
                                     f"in {t.v2}")
        path = os.path.join(t.v2, k)
        if not os.path.exists(path):
            raise ConfigError(f"{field}: {path} does not exist")
        _set(field, t.v2, k, v)
