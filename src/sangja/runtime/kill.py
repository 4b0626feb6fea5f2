"""`kill`: a signal to the container's init, or with --all to every process in its cgroup."""

from __future__ import annotations

import os

from ..errors import InvalidState
from .store import Store


def kill(store: Store, cid: str, sig: int, all_processes: bool = False) -> None:
    c = store.peek(cid)
    status = c.status()
    if all_processes:
        pids = container_pids(c.record)
        if status not in ("stopped", "creating") and c.pid not in pids:
            pids.append(c.pid)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return
    if status in ("stopped", "creating"):
        raise InvalidState(f"container {cid} is not running ({status})")
    try:
        os.kill(c.pid, sig)
    except ProcessLookupError:
        raise InvalidState(f"container {cid} is not running") from None


def container_pids(record: dict) -> list[int]:
    """Every process of the container, from its cgroup."""
    from ..linux.cgroups import Cgroup

    dirs = record.get("cgroup_dirs") or []
    return Cgroup.paths_only(record.get("cgroup", ""), dirs).pids()
