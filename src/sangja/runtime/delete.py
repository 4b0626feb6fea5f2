"""`delete`: undo everything `create` made once the container has stopped (or, with
--force, after killing it): processes, cgroup, state; then the poststop hooks."""

from __future__ import annotations

import os

from ..errors import ContainerNotFound, InvalidState
from ..linux import process as lp
from ..linux import signals as signal
from .hooks import run_warn
from .kill import container_pids
from .store import Container, Store


def delete(store: Store, cid: str, force: bool = False, warn=None) -> None:
    try:
        c = store.open(cid)
    except ContainerNotFound:
        if force:
            return
        raise
    try:
        status = c.status()
        if status in ("running", "paused") and not force:
            raise InvalidState(f"cannot delete container {cid} that is not stopped: {status}")
        destroy(c, warn)
    finally:
        c.unlock()


def destroy(c: Container, warn=None) -> None:
    state = c.oci_state()
    stop_all(c, paused=state["status"] == "paused")
    dirs = c.record.get("cgroup_dirs")
    if dirs:
        from ..linux.cgroups import Cgroup

        Cgroup.paths_only(c.record.get("cgroup", ""), dirs).destroy()
    hooks = c.record.get("hooks", {}).get("poststop")
    c.remove()
    if hooks:
        run_warn(hooks, "poststop", state | {"status": "stopped"}, warn or (lambda m: None))


def stop_all(c: Container, paused: bool = False) -> None:
    """SIGKILL the init and anything left in the cgroup; wait until they are gone."""
    started = c.record.get("init_start")
    if paused:
        _thaw(c.record)
    for _ in range(3):
        pids = container_pids(c.record)
        if c.pid and lp.is_alive(c.pid, started):
            pids.append(c.pid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if c.pid:
            lp.wait_gone(c.pid, started, 5.0)
        for pid in pids:
            lp.wait_gone(pid, None, 1.0)


def _thaw(record: dict) -> None:
    """A frozen cgroup cannot die: thaw it before the SIGKILL."""
    for d in record.get("cgroup_dirs", ()):
        for name, value in (("freezer.state", b"THAWED"), ("cgroup.freeze", b"0")):
            path = os.path.join(d, name)
            if os.path.exists(path):
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                    try:
                        os.write(fd, value)
                    finally:
                        os.close(fd)
                except OSError:
                    pass
