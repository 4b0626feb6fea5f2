"""`sangja system service [--time N] [URI]`: the Docker Engine API on a unix socket
(sangja.api, docs/api.md). Parsing only: the service is sangja.api.server."""

from __future__ import annotations

from .common import PROG, Command, Flag, Globals, UsageError

SERVICE = Command("[OPTIONS] [URI]", "Serve the Docker Engine API on a unix socket", [
    Flag("-t,--time,--timeout", "value", "Seconds without a request before the service "
         "exits (0: never)", default="0", meta="int"),
])

USAGE = (f"usage: {PROG} system service [--time SECONDS] [unix:///PATH] (default "
         "unix:///run/sangja/docker.sock, or docker.sock in --runroot; 0 seconds: never "
         "exit when idle)")


def cmd_service(opts: Globals, args: list[str]) -> int:
    flags, rest = SERVICE.parse(args)
    if len(rest) > 1:
        raise UsageError(USAGE)
    idle = 0.0
    if flags["time"] is not None:
        try:
            idle = float(flags["time"])
        except ValueError:
            raise UsageError(f"invalid --time {flags['time']!r}: a number of seconds") from None
        if idle < 0:
            raise UsageError("--time must be 0 (never) or more seconds")
    from ...api.server import serve

    return serve(opts.storage_root, opts.run_root, rest[0] if rest else None, idle=idle,
                 debug=opts.debug)
