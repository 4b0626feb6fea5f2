"""`system check`'s network part: what a killed command left of a container's networking
(its namespace file, backend state, IP leases, and through the backend's teardown its
veth, port-forwarding rules and aardvark-dns entry) while the container is not running
or is gone. `--repair` tears it down, as the container's own clean-up would have."""

from __future__ import annotations

import os
import re

from .attach import read_state, teardown
from .netns import directory

_HEX64 = re.compile(r"[0-9a-f]{64}")


def candidates(root: str, runroot: str) -> dict[str, list[str]]:
    """Container id -> what networking it holds in this store."""
    out: dict[str, list[str]] = {}
    try:
        names = os.listdir(directory(runroot))
    except FileNotFoundError:
        names = []
    for n in names:
        cid = n.removesuffix(".json")
        if not _HEX64.fullmatch(cid):
            continue
        if n.endswith(".json"):
            st = read_state(runroot, cid) or {}
            if st.get("root", root) != root:
                continue  # another store sharing this run root
            out.setdefault(cid, []).append("network state")
        else:
            out.setdefault(cid, []).append("network namespace")
    if os.path.exists(os.path.join(root, "networks.db")):
        from .store import open_networks

        with open_networks(root) as db:
            for row in db.leases():
                if row["container_id"].startswith("keeper-"):
                    continue  # the network's own, while it exists
                out.setdefault(row["container_id"], []).append(f"lease {row['address']}")
    return out


def check_temp_files(runroot: str, checker) -> None:
    """A state file's temp copy whose writer is gone (attach.stale_temp_states), of an id
    no teardown will come for. Removed by --repair."""
    from .attach import stale_temp_states

    for path in stale_temp_states(runroot):
        def remove(path: str = path) -> None:
            if os.path.exists(path):
                os.unlink(path)

        checker.add("network left", os.path.basename(path), "a network state file's temp "
                    "copy of a killed command", "remove it", remove)


def check_networks(engine, checker) -> None:
    """Add a finding (with its repair) per container whose networking is left over."""
    from ..engine.check import _try_lock
    from ..engine.records import NoSuchContainer
    from ..engine.status import PAUSED, RUNNING, live_state

    paths = engine.paths
    check_temp_files(paths.runroot, checker)
    for cid, parts in sorted(candidates(paths.root, paths.runroot).items()):
        try:
            row = engine.db.get(cid)
        except NoSuchContainer:
            row = None
        if row is None and parts == ["network namespace"] and not os.path.isdir(
                paths.container_dir(cid)):
            continue  # a namespace file alone: ours only if this store knows the id
        with _try_lock(paths.lock_path(cid)) as free:
            if not free:
                continue  # a command is starting or stopping it right now
            if row is not None:
                row = engine.db.get(cid)
                if live_state(row) in (RUNNING, PAUSED):
                    continue
            who = f"{cid[:12]} ({row['name']})" if row is not None else cid[:12]
            state = "gone" if row is None else live_state(row)
            checker.add("network left", who,
                        f"{', '.join(parts)} of a container that is {state}",
                        "tear it down (veth, rules, namespace, leases)",
                        lambda cid=cid: teardown(paths.root, paths.runroot, cid))
