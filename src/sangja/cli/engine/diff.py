"""`sangja diff CONTAINER`: Docker's `A`/`C`/`D` lines (sangja.engine.diff)."""

from __future__ import annotations

import sys

from .common import PROG, Command, Globals, UsageError

DIFF = Command("CONTAINER", "Inspect changes to files or directories on a container's "
               "filesystem")


def cmd_diff(opts: Globals, args: list[str]) -> int:
    from ...engine.diff import container_diff
    from .containers import _engine

    _, refs = DIFF.parse(args)
    if len(refs) != 1:
        raise UsageError(f'"{PROG} diff" requires exactly 1 argument (usage: {PROG} diff '
                         "CONTAINER)")
    with _engine(opts) as eng:
        lines = [f"{kind} {path}\n" for kind, path in container_diff(eng, refs[0])]
    sys.stdout.write("".join(lines))
    return 0
