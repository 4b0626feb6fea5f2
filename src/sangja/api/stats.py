"""`GET /containers/{id}/stats`: Docker's raw stats document from the container's cgroup
(the figures `docker stats` computes its columns from)."""

from __future__ import annotations

import os
import time


def stats_document(eng, row, prev: dict | None) -> dict:
    from ..engine.inspect import rfc3339
    from ..engine.stats import _read
    from ..engine.status import PAUSED, RUNNING, live_state

    running = live_state(row) in (RUNNING, PAUSED)
    d = {}
    if running:
        try:
            d = _read(row["id"])
        except (OSError, ValueError):
            d = {}
    cpu_total = int(((d.get("cpu") or {}).get("usage") or {}).get("total") or 0)
    system = _system_cpu()
    mem = (d.get("memory") or {}).get("usage") or {}
    limit = int(mem.get("limit") or 0)
    host_mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if not limit or limit >= host_mem:
        limit = host_mem
    blkio = [{"major": int(e.get("major") or 0), "minor": int(e.get("minor") or 0),
              "op": e.get("op") or "", "value": int(e.get("value") or 0)}
             for e in ((d.get("blkio") or {}).get("ioServiceBytesRecursive") or [])]
    ncpu = os.cpu_count() or 1
    cpu = {"cpu_usage": {"total_usage": cpu_total, "usage_in_kernelmode": 0,
                         "usage_in_usermode": 0},
           "system_cpu_usage": system, "online_cpus": ncpu, "throttling_data": {}}
    networks = {}
    if running and row["pid"]:
        try:
            from ..network.report import net_io

            rx, tx = net_io(row["pid"])
            networks["eth0"] = {"rx_bytes": rx, "tx_bytes": tx}
        except Exception:  # noqa: BLE001 - no network namespace of its own
            pass
    return {
        "read": rfc3339(time.time()) if running else "0001-01-01T00:00:00Z",
        "preread": prev["read"] if prev else "0001-01-01T00:00:00Z",
        "id": row["id"], "name": "/" + row["name"],
        "pids_stats": {"current": int((d.get("pids") or {}).get("current") or 0)},
        "blkio_stats": {"io_service_bytes_recursive": blkio},
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": cpu,
        "precpu_stats": prev["cpu_stats"] if prev else {"cpu_usage": {"total_usage": 0},
                                                        "throttling_data": {}},
        "memory_stats": {"usage": int(mem.get("usage") or 0), "limit": limit,
                         "stats": {"cache": int((d.get("memory") or {}).get("cache") or 0)}}
        if running else {},
        "networks": networks,
    }


def _system_cpu() -> int:
    """The host's CPU time in nanoseconds, as Docker's system_cpu_usage."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:8]
        return sum(int(x) for x in fields) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return 0
