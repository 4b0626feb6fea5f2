"""The rules every container's options obey, whoever filled them (the CLI's flags, the
Docker API's create body, a library user): checked by `Engine.create`, and by the CLI's
parser for its early, flag-named messages."""

from __future__ import annotations

from ..errors import SangjaError
from .options import ContainerOptions, MountRequest

MIN_MEMORY = 6 << 20  # Docker's minimum memory limit


class InvalidOptions(SangjaError):
    engine_exit_code = 125


def check_mount_targets(mounts: list[MountRequest]) -> None:
    seen = set()
    for m in mounts:
        if m.target in seen:
            raise InvalidOptions(f"Duplicate mount point: {m.target}")
        seen.add(m.target)


def check_options(opts: ContainerOptions) -> None:
    """Raise InvalidOptions for options no container may have together."""
    if opts.rm and opts.restart.name != "no":
        raise InvalidOptions("Conflicting options: --restart and --rm")
    if opts.memory is not None and 0 < opts.memory < MIN_MEMORY:
        raise InvalidOptions("Minimum memory limit allowed is 6MB")
    if opts.memory_swap not in (None, -1) and opts.memory_swap > 0:
        if opts.memory is None:
            raise InvalidOptions("you should always set the memory limit when using the "
                                 "memoryswap limit")
        if opts.memory_swap < opts.memory:
            raise InvalidOptions("minimum memoryswap limit should be larger than memory "
                                 "limit")
    check_mount_targets(opts.mounts)
