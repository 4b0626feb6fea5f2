"""`sangja healthcheck run [--monitor] CONTAINER`: one probe (sangja.engine.health). The
monitor runs it with --monitor on the container's interval; by hand it prints
"unhealthy" and exits 1 when the probe failed, as podman's does."""

from __future__ import annotations

from .common import PROG, Command, Flag, Globals, UsageError

HEALTHCHECK_RUN = Command("CONTAINER", "Run the container's healthcheck once and record its "
                          "result", [
    Flag("--monitor", help="Called by the container's monitor at each interval (internal)"),
])


def cmd_healthcheck_run(opts: Globals, args: list[str]) -> int:
    from ...engine.health import run_probe
    from .containers import _engine

    f, refs = HEALTHCHECK_RUN.parse(args)
    if len(refs) != 1:
        raise UsageError(f"usage: {PROG} healthcheck run CONTAINER")
    with _engine(opts) as eng:
        state = run_probe(eng, refs[0])
    last = (state.get("Log") or [{}])[-1]
    if last.get("ExitCode") == 0:
        return 0
    if not f["monitor"]:
        print("unhealthy")
    return 1
