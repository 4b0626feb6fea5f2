"""`sangja events [--filter K=V]... [--since T] [--until T] [--format F]`: the event log
(sangja.engine.events); without --until it follows new events until interrupted."""

from __future__ import annotations

import sys
import time

from .common import FORMAT_HELP, Command, Flag, Globals, UsageError, render_template

EVENTS = Command("[OPTIONS]", "Get real time events from the server", [
    Flag("-f,--filter", "multi", "Filter output based on conditions provided", meta="filter"),
    Flag("--format", "value", FORMAT_HELP),
    Flag("--since", "value", "Show all events created since timestamp"),
    Flag("--until", "value", "Stream events until this timestamp"),
])


def _line(msg: dict) -> str:
    """Docker's default: `TIME TYPE ACTION ID (k=v, ...)`, local time, nine digits."""
    ns = int(msg.get("timeNano") or 0)
    t = time.localtime(ns // 1_000_000_000)
    off = time.strftime("%z", t)
    zone = "Z" if off in ("+0000", "-0000") else f"{off[:3]}:{off[3:]}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ns % 1_000_000_000:09d}{zone}"
    actor = msg.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    text = f"{stamp} {msg.get('Type')} {msg.get('Action')} {actor.get('ID')}"
    if attrs:
        text += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return text


def cmd_events(opts: Globals, args: list[str]) -> int:
    from ...engine.event_query import FilterError, parse_filters, read_events
    from ...engine.logs import parse_timestamp

    f, rest = EVENTS.parse(args)
    if rest:
        raise UsageError(f'"sangja events" accepts no arguments (got {rest[0]!r})')
    try:
        filters = parse_filters(f["filter"])
    except FilterError as e:
        raise UsageError(str(e)) from None
    bounds = {}
    for key in ("since", "until"):
        if f[key] is not None:
            try:
                bounds[key] = int(parse_timestamp(f[key]) * 1_000_000_000)
            except ValueError as e:
                raise UsageError(f"--{key}: {e}") from None
    fmt = f["format"]
    if fmt is not None and fmt.strip() == "json":
        fmt = "{{json .}}"
    out = sys.stdout
    for msg in read_events(opts.run_root, since_ns=bounds.get("since"),
                           until_ns=bounds.get("until"), filters=filters,
                           follow="until" not in bounds):
        out.write((render_template(fmt, msg) if fmt else _line(msg)) + "\n")
        out.flush()
    return 0
