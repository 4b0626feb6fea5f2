"""Which containers `ps` (and the API's `containers/json`) show: Docker's filters over
the engine's ps rows (sangja.engine.inspect.ps_entry), one set of rules for both."""

from __future__ import annotations

import time

from .containers import EngineError

FILTER_KEYS = ("id", "name", "label", "status", "exited", "ancestor", "network", "volume",
               "before", "since")
STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


class InvalidFilter(EngineError):
    pass


def parse_filters(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """[(key, value)] -> {key: [values]}, each key and status checked."""
    out: dict[str, list[str]] = {}
    for key, val in pairs:
        if key not in FILTER_KEYS:
            raise InvalidFilter(f"invalid filter '{key}={val}' ({', '.join(FILTER_KEYS)})")
        if key == "status" and val not in STATES:
            raise InvalidFilter(f"invalid filter 'status={val}'")
        out.setdefault(key, []).append(val)
    return out


def matches(entry: dict, filters: dict[str, list[str]]) -> bool:
    for key, vals in filters.items():
        if key == "label":
            labels = entry["_labels"]
            ok = all((labels.get(v.partition("=")[0]) == v.partition("=")[2]) if "=" in v
                     else v in labels for v in vals)
        elif key == "id":
            ok = any(entry["ID"].startswith(v) for v in vals)
        elif key == "name":
            ok = any(v.lstrip("/") in entry["Names"] for v in vals)
        elif key == "status":
            ok = entry["State"] in vals
        elif key == "exited":
            ok = entry["State"] == "exited" and str(entry["ExitCode"]) in vals
        elif key == "network":
            ok = entry["Networks"] in vals
        elif key == "volume":
            ok = any(v in entry["Mounts"].split(",") for v in vals)
        elif key in ("before", "since"):
            ok = True  # applied over the whole list (list_containers)
        else:  # ancestor
            ok = any(v in (entry["Image"], entry["ImageID"]) or entry["ImageID"].startswith(
                "sha256:" + v) for v in vals)
        if not ok:
            return False
    return True


def list_containers(engine, *, all_states: bool = False,
                    filters: dict[str, list[str]] | None = None,
                    last: int | None = None) -> list[tuple[object, dict]]:
    """(row, ps entry) of the containers `ps` shows, newest first: running and paused
    ones (all with ``all_states``, or when a status/exited filter asks), filtered, the
    first ``last`` (which implies all; 0: no limit)."""
    from .inspect import ps_entry

    filters = filters or {}
    now = time.time()
    rows = engine.db.all()
    pairs = [(r, ps_entry(engine, r, now)) for r in rows]
    show_all = all_states or last is not None or "status" in filters or "exited" in filters
    out = [(r, e) for r, e in pairs if (show_all or e["State"] in ("running", "paused"))
           and matches(e, filters)]
    for key in ("before", "since"):
        for ref in filters.get(key, []):
            pivot = engine.get(ref)["created"]
            out = [(r, e) for r, e in out if (r["created"] < pivot if key == "before"
                                              else r["created"] > pivot)]
    if last:  # Docker: -n 0 is no limit (but every state, as any -n)
        out = out[:last]
    return out
