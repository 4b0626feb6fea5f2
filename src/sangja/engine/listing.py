"""Which containers `ps` (and the API's `containers/json`) show: the engine's ps rows
(sangja.engine.inspect.ps_entry) through Docker's filters (sangja.engine.filters), one set
of rules for both."""

from __future__ import annotations

import time


def check_filters(filters: dict[str, list[str]]) -> dict[str, list[str]]:
    """A filter document (the API's `filters` JSON, or the CLI's parsed --filter flags):
    every key must be one `ps` knows (Docker's `Invalid filter 'KEY'` otherwise)."""
    from .filters import PS_KEYS, FilterError

    for key in filters:
        if key not in PS_KEYS:
            raise FilterError(f"Invalid filter '{key}'")
    return filters


def list_containers(engine, *, all_states: bool = False,
                    filters: dict[str, list[str]] | None = None,
                    last: int | None = None) -> list[tuple[object, dict]]:
    """(row, ps entry) of the containers `ps` shows, newest first: running and paused
    ones (all with ``all_states``, or when a status/exited filter asks), filtered, the
    first ``last`` (which implies all; 0: no limit)."""
    from .filters import ContainerFilter
    from .inspect import ps_entry

    keep = ContainerFilter(engine, check_filters(filters)) if filters else None
    show_all = all_states or last is not None or (keep is not None and keep.shows_stopped)
    now = time.time()
    out = []
    for r in engine.db.all():
        e = ps_entry(engine, r, now)
        if (show_all or e["State"] in ("running", "paused")) and (
                keep is None or keep(engine, r, e)):
            out.append((r, e))
    if last:  # Docker: -n 0 is no limit (but every state, as any -n)
        out = out[:last]
    return out
