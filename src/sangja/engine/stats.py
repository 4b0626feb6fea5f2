"""`stats`: Docker's per-container figures (CPU %, memory usage/limit, block I/O, pids)
from the container's cgroup, sampled twice to get a CPU rate."""

from __future__ import annotations

import os
import time

SAMPLE_INTERVAL = 0.5


def _cgroup(cid: str):
    from ..linux.cgroups import Cgroup

    return Cgroup.for_path(f"/sangja/{cid}", f"/sangja/{cid}")


def _read(cid: str) -> dict:
    from ..linux.cgroups.stats import data

    return data(_cgroup(cid))


def _cpu_total(d: dict) -> int:
    return int(((d.get("cpu") or {}).get("usage") or {}).get("total") or 0)


def sample_all(engine, refs: list[str], include_stopped: bool = False) -> list[dict]:
    """One row per container (running ones, or `refs`), Docker's `stats --format json`
    field names; "ID" is the full id (the CLI cuts it unless --no-trunc)."""
    from ..humanize import human_size
    from ..network.report import net_io
    from .status import PAUSED, RUNNING, live_state

    rows = [engine.get(r) for r in refs] if refs else engine.db.all()
    live = [r for r in rows if include_stopped or refs or live_state(r) in (RUNNING, PAUSED)]
    first = {r["id"]: (_cpu_total(_read(r["id"])), time.monotonic()) for r in live}
    if live:
        time.sleep(SAMPLE_INTERVAL)
    ncpu = os.cpu_count() or 1
    out = []
    for r in live:
        d = _read(r["id"]) if live_state(r) in (RUNNING, PAUSED) else {}
        c0, t0 = first[r["id"]]
        dt = max(time.monotonic() - t0, 1e-6)
        cpu = max(0, _cpu_total(d) - c0) / 1e9 / dt * 100 if d else 0.0
        mem = ((d.get("memory") or {}).get("usage") or {}) if d else {}
        usage = int(mem.get("usage") or 0) - int((d.get("memory") or {}).get("cache", 0) or 0
                                                 if d else 0)
        usage = max(usage, 0)
        limit = int(mem.get("limit") or 0)
        host_mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if not limit or limit >= host_mem:
            limit = host_mem
        read = written = 0
        for e in ((d.get("blkio") or {}).get("ioServiceBytesRecursive") or []) if d else []:
            op = (e.get("op") or "").lower()
            if op == "read":
                read += int(e.get("value") or 0)
            elif op == "write":
                written += int(e.get("value") or 0)
        pids = int((d.get("pids") or {}).get("current") or 0) if d else 0
        out.append({
            "ID": r["id"], "Container": r["id"][:12], "Name": r["name"],
            "CPUPerc": f"{min(cpu, 100.0 * ncpu):.2f}%",
            "MemUsage": f"{_bin(usage)} / {_bin(limit)}",
            "MemPerc": f"{usage / limit * 100 if limit else 0:.2f}%",
            "NetIO": "{} / {}".format(*map(human_size, net_io(r["pid"])))
            if d and r["pid"] else "0B / 0B",
            "BlockIO": f"{human_size(read)} / {human_size(written)}",
            "PIDs": str(pids),
        })
    return out


def _bin(n: float) -> str:
    """Docker's BytesSize: binary units, two decimals ("1.5MiB")."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.4g}{units[i]}"
