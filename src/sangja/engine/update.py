"""`update`: change a container's resource limits and restart policy (Docker's `docker
update`). A running (or paused) container gets the new limits in its live cgroup through
the runtime's `update` first; only when that worked are they recorded in the container's
options, which every later start builds its config from (and `inspect` shows). A stopped
or created container's are only recorded."""

from __future__ import annotations

from sangja.records import dataclass

from ..errors import SangjaError
from .options import RestartPolicy


class UpdateError(SangjaError):
    exit_code = 125
    engine_exit_code = 125


@dataclass
class Changes:
    """What to change; None: keep."""

    cpus: float | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    memory: int | None = None
    memory_swap: int | None = None  # -1: unlimited
    memory_reservation: int | None = None
    pids_limit: int | None = None  # <= 0: unlimited
    blkio_weight: int | None = None
    restart: RestartPolicy | None = None

    def empty(self) -> bool:
        return all(getattr(self, k) is None for k in (
            "cpus", "cpu_shares", "cpuset_cpus", "memory", "memory_swap",
            "memory_reservation", "pids_limit", "blkio_weight", "restart"))


def update_container(engine, ref: str, ch: Changes) -> str:
    """Apply `ch` to the container `ref`; its id. Docker's rules and messages."""
    from ..jsonio import dumps
    from .spec import CPU_PERIOD, swap_limit_supported
    from .status import PAUSED, RUNNING, live_state

    with engine.locked(ref) as row:
        opts = engine.options(row)
        if ch.restart is not None and ch.restart.name != "no" and opts.rm:
            raise UpdateError("Restart policy cannot be updated because AutoRemove is enabled "
                              "for the container")
        if ch.blkio_weight:
            from .create_checks import blkio_weight_supported

            if not blkio_weight_supported():
                raise UpdateError("--blkio-weight: your kernel does not support Block I/O "
                                  "weight")
        res: dict = {}
        mem: dict = {}
        memory = opts.memory if ch.memory is None else ch.memory
        swap = opts.memory_swap
        if ch.memory is not None:
            if ch.memory < 6 << 20:
                raise UpdateError("Minimum memory limit allowed is 6MB")
            mem["limit"] = ch.memory
        if ch.memory_swap is not None:
            if ch.memory_swap not in (-1, 0) and not memory:
                raise UpdateError("You should always set the Memory limit when using "
                                  "Memoryswap limit, see usage")
            swap = ch.memory_swap or None
        elif ch.memory is not None and swap and swap > 0 and ch.memory > swap:
            raise UpdateError("Memory limit should be smaller than already set memoryswap "
                              "limit, update the memoryswap at the same time")
        if swap and swap != -1 and memory and swap < memory:
            raise UpdateError("Minimum memoryswap limit should be larger than memory limit, "
                              "see usage")
        if (ch.memory is not None or ch.memory_swap is not None) and swap_limit_supported():
            if swap:
                mem["swap"] = swap
            elif memory:
                mem["swap"] = 2 * memory  # Docker's default: as much swap as memory
        elif ch.memory_swap not in (None, 0, -1):
            raise UpdateError("--memory-swap: this kernel does not account swap in cgroups")
        if ch.memory_reservation is not None:
            if ch.memory_reservation and ch.memory_reservation < 6 << 20:
                raise UpdateError("Minimum memory reservation allowed is 6MB")
            if memory and ch.memory_reservation > memory:
                raise UpdateError("Minimum memory limit can not be less than memory "
                                  "reservation limit, see usage")
            mem["reservation"] = ch.memory_reservation
        elif ch.memory is not None and opts.memory_reservation and \
                opts.memory_reservation > ch.memory:
            raise UpdateError("Minimum memory limit can not be less than memory reservation "
                              "limit, see usage")
        if mem:
            res["memory"] = mem
        cpu: dict = {}
        if ch.cpus is not None:
            cpu["quota"] = round(ch.cpus * 1e9) * CPU_PERIOD // 10**9 if ch.cpus else -1
            cpu["period"] = CPU_PERIOD
        if ch.cpu_shares is not None:
            cpu["shares"] = ch.cpu_shares or 1024
        if ch.cpuset_cpus is not None:
            cpu["cpus"] = ch.cpuset_cpus
        if cpu:
            res["cpu"] = cpu
        if ch.pids_limit is not None:
            res["pids"] = {"limit": ch.pids_limit if ch.pids_limit > 0 else -1}
        if ch.blkio_weight:
            res["blockIO"] = {"weight": ch.blkio_weight}

        if res and live_state(row) in (RUNNING, PAUSED):
            try:
                engine.runtime(row).update(row["id"], res)
            except SangjaError as e:
                raise UpdateError(f"Cannot update container {row['id'][:12]}: {e}") from None

        if ch.memory is not None:
            opts.memory = ch.memory
        if ch.memory_swap is not None:
            opts.memory_swap = ch.memory_swap or None
        if ch.memory_reservation is not None:
            opts.memory_reservation = ch.memory_reservation or None
        if ch.cpus is not None:
            opts.cpus = ch.cpus or None
        if ch.cpu_shares is not None:
            opts.cpu_shares = ch.cpu_shares or None
        if ch.cpuset_cpus is not None:
            opts.cpuset_cpus = ch.cpuset_cpus or None
        if ch.pids_limit is not None:
            opts.pids_limit = ch.pids_limit
        if ch.blkio_weight is not None:
            opts.blkio_weight = ch.blkio_weight or None
        if ch.restart is not None:
            opts.restart = ch.restart
        engine.db.update(row["id"], options=dumps(opts.to_dict()))
    from .events import container_event

    container_event(engine, row, "update")
    return row["id"]
