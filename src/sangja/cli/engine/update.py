"""`sangja update [OPTIONS] CONTAINER...`: parsing and printing only (sangja.engine.update)."""

from __future__ import annotations

from .common import PROG, Command, Flag, Globals, UsageError

UPDATE = Command("[OPTIONS] CONTAINER [CONTAINER...]",
                 "Update configuration of one or more containers", [
    Flag("--cpus", "value", "Number of CPUs", meta="decimal"),
    Flag("-c,--cpu-shares", "value", "CPU shares (relative weight)", meta="int"),
    Flag("--cpuset-cpus", "value", "CPUs in which to allow execution (0-3, 0,1)"),
    Flag("-m,--memory", "value", "Memory limit", meta="bytes"),
    Flag("--memory-swap", "value", 'Swap limit equal to memory plus swap: "-1" to enable '
         "unlimited swap", meta="bytes"),
    Flag("--memory-reservation", "value", "Memory soft limit", meta="bytes"),
    Flag("--pids-limit", "value", "Tune container pids limit (set -1 for unlimited)",
         meta="int"),
    Flag("--blkio-weight", "value", "Block IO (relative weight), between 10 and 1000, or 0 "
         "to disable (default 0)", meta="uint16"),
    Flag("--restart", "value", "Restart policy to apply when a container exits"),
])


def cmd_update(opts: Globals, args: list[str]) -> int:
    from ...engine.update import Changes, update_container
    from . import run_flags as rf
    from .containers import _each

    f, refs = UPDATE.parse(args)
    if not refs:
        raise UsageError(f'"{PROG} update" requires at least 1 argument (usage: {PROG} update '
                         "[OPTIONS] CONTAINER [CONTAINER...])")
    ch = Changes()
    if f["cpus"] is not None:
        ch.cpus = 0.0 if f["cpus"].strip() == "0" else rf._cpus(f["cpus"])
    if f["cpu_shares"] is not None:
        ch.cpu_shares = rf._int("cpu_shares", f["cpu_shares"], minimum=0)
    if f["cpuset_cpus"] is not None:
        ch.cpuset_cpus = rf._cpuset(f["cpuset_cpus"]) or ""
    if f["memory"] is not None:
        ch.memory = rf._size("memory", f["memory"])
    if f["memory_swap"] is not None:
        v = f["memory_swap"]
        ch.memory_swap = -1 if v.strip() == "-1" else rf._size("memory_swap", v)
    if f["memory_reservation"] is not None:
        ch.memory_reservation = rf._size("memory_reservation", f["memory_reservation"])
    if f["pids_limit"] is not None:
        ch.pids_limit = rf._int("pids_limit", f["pids_limit"])
    if f["blkio_weight"] is not None:
        ch.blkio_weight = rf.blkio_weight(f["blkio_weight"])
    if f["restart"] is not None:
        ch.restart = rf._restart(f["restart"])
    if ch.empty():
        raise UsageError("you must provide one or more flags when using this command")
    return _each(opts, refs, lambda eng, ref: (update_container(eng, ref, ch), ref)[1])
