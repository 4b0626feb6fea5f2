"""`sangja update [OPTIONS] CONTAINER...`: parsing and printing only (sangja.engine.update)."""

from __future__ import annotations

from .common import PROG, Flag, Globals, UsageError, parse_flags

UPDATE_FLAGS = [
    Flag("--cpus", "value"),
    Flag("-c,--cpu-shares", "value"),
    Flag("--cpuset-cpus", "value"),
    Flag("-m,--memory", "value"),
    Flag("--memory-swap", "value"),
    Flag("--memory-reservation", "value"),
    Flag("--pids-limit", "value"),
    Flag("--blkio-weight", "value"),
    Flag("--restart", "value"),
]


def cmd_update(opts: Globals, args: list[str]) -> int:
    from ...engine.update import Changes, update_container
    from . import run_flags as rf
    from .containers import _each

    f, refs = parse_flags(args, UPDATE_FLAGS)
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
