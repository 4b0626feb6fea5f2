"""`pause` and `resume`: freeze and thaw every process of a container through its cgroup
(v1 freezer.state, or v2 cgroup.freeze). `state` then reports "paused" (see store.py)."""

from __future__ import annotations

from ..errors import InvalidState, SangjaError
from .store import Container, Store


def _cgroup(c: Container):
    from ..linux.cgroups import Cgroup

    dirs = c.record.get("cgroup_dirs")
    if not dirs:
        raise SangjaError(f"container {c.id} has no cgroup: cannot freeze it")
    cg = Cgroup.from_dirs(c.record.get("cgroup", ""), dirs)
    if cg.freezer() is None:
        raise SangjaError(f"container {c.id}: this host has no cgroup freezer "
                          "(no v1 freezer hierarchy, no cgroup v2 cgroup.freeze)")
    return cg


def pause(store: Store, cid: str) -> None:
    c = store.open(cid)
    try:
        status = c.status()
        if status not in ("running", "created", "paused"):
            raise InvalidState(f"container {cid} is not running ({status})")
        cg = _cgroup(c)
        if status == "paused" or cg.frozen():
            raise InvalidState(f"container {cid} is already paused")
        try:
            cg.freeze()
        except TimeoutError as e:
            raise SangjaError(f"cannot pause container {cid}: {e}") from None
        except OSError as e:
            raise SangjaError(f"cannot pause container {cid}: {e.strerror or e}"
                              f"{': ' + str(e.filename) if e.filename else ''}") from None
    finally:
        c.unlock()


def resume(store: Store, cid: str) -> None:
    c = store.open(cid)
    try:
        status = c.status()
        # a created container can be frozen too; the store reports it as "created"
        if status not in ("paused", "created") or (
                status == "created" and not _cgroup(c).frozen()):
            raise InvalidState(f"container {cid} is not paused ({status})")
        try:
            _cgroup(c).thaw()
        except OSError as e:
            raise SangjaError(f"cannot resume container {cid}: {e.strerror or e}"
                              f"{': ' + str(e.filename) if e.filename else ''}") from None
    finally:
        c.unlock()
