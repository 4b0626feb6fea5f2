"""Reading the event log (sangja.engine.events writes it): `sangja events`' filters,
--since/--until bounds and following."""

from __future__ import annotations

import os
import time

from .events import familiar_image, log_path

FILTER_KEYS = ("container", "event", "image", "label", "network", "type", "volume")


class FilterError(ValueError):
    pass


def parse_filters(values: list[str]) -> dict[str, list[str]]:
    """`--filter KEY=VALUE`s: values of one key are alternatives, keys all must match."""
    out: dict[str, list[str]] = {}
    for v in values:
        key, eq, val = v.partition("=")
        key = key.strip().lower()
        if not eq:
            raise FilterError(f"bad format of filter (expected name=value): {v}")
        if key not in FILTER_KEYS:
            raise FilterError(f"Invalid filter '{key}'")
        out.setdefault(key, []).append(val)
    return out


def _image_forms(name: str) -> set[str]:
    """What an image filter value or event name matches as: its familiar form (events
    give names so), with and without its tag (Docker's stripTag; no tag means latest)."""
    n = familiar_image(name)
    if "@" in n:
        return {n, n.partition("@")[0]}
    if ":" in n.rsplit("/", 1)[-1]:
        return {n, n.rpartition(":")[0]}
    return {n, n + ":latest"}


def _image_matches(wanted: str, names: list[str]) -> bool:
    """Docker's image filter: the value is the image (id, reference or repository) an
    event names; an image id also by a prefix (`sha256:` optional)."""
    forms = _image_forms(wanted)
    for n in names:
        if not n:
            continue
        if n.startswith("sha256:"):
            if wanted and (n.startswith(wanted) or n[7:].startswith(wanted)):
                return True
        elif familiar_image(wanted) in _image_forms(n) or familiar_image(n) in forms:
            return True
    return False


def _fuzzy(wanted: list[str], *values: str) -> bool:
    """Docker's FuzzyMatch: a value that is one of `values` or a prefix of one."""
    return any(w and any(v and v.startswith(w) for v in values) for w in wanted)


def matches(msg: dict, filters: dict[str, list[str]]) -> bool:
    actor = msg.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    aid = actor.get("ID") or ""
    kind = msg.get("Type")
    action = msg.get("Action") or ""
    for key, wanted in filters.items():
        if key == "type":
            ok = kind in wanted
        elif key == "event":
            ok = action in wanted or action.split(":", 1)[0] in wanted
        elif key == "container":
            ok = kind == "container" and any(
                w and (aid.startswith(w) or str(attrs.get("name", "")).startswith(w))
                for w in wanted)
        elif key == "image":
            names = ([aid, attrs.get("name", "")] if kind == "image" else
                     [attrs.get("image", ""), msg.get("from", "")])
            ok = any(_image_matches(w, names) for w in wanted)
        elif key == "label":
            ok = any(attrs.get(w.partition("=")[0]) == w.partition("=")[2] if "=" in w
                     else w in attrs for w in wanted)
        elif key in ("network", "volume"):  # the network or volume by id or name, or
            ok = kind == key and _fuzzy(wanted, aid, str(attrs.get("name", "")))  # prefix
        else:
            ok = False
        if not ok:
            return False
    return True


def _lines(path: str, start: int = 0) -> tuple[list[bytes], int]:
    """Complete lines of `path` from offset `start`; the offset after them."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return [], start
    try:
        os.lseek(fd, start, os.SEEK_SET)
        chunks = []
        while data := os.read(fd, 1 << 16):
            chunks.append(data)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(), start + end


def _decode(line: bytes) -> dict | None:
    from ..jsonio import JSONError, loads

    try:
        msg = loads(line)
    except (JSONError, ValueError):
        return None
    return msg if isinstance(msg, dict) else None


def read_events(runroot: str, *, since_ns: int | None = None, until_ns: int | None = None,
                filters: dict[str, list[str]] | None = None, follow: bool = False,
                poll: float = 0.1, stop=None):
    """Events in time order with since <= timeNano <= until that match `filters`; with
    `follow`, then the new ones as they come (until `until_ns`, if given, has passed, or
    `stop()`, asked at every poll, is true: the API's client went away)."""
    filters = filters or {}
    path = log_path(runroot)

    def keep(msg: dict | None) -> bool:
        if msg is None:
            return False
        t = msg.get("timeNano") or 0
        if since_ns is not None and t < since_ns:
            return False
        if until_ns is not None and t > until_ns:
            return False
        return matches(msg, filters)

    old, _ = _lines(path + ".1")
    try:
        st = os.stat(path)
        ident = (st.st_dev, st.st_ino)
    except FileNotFoundError:
        ident = None
    new, offset = _lines(path)
    for line in old + new:
        msg = _decode(line)
        if keep(msg):
            yield msg
    while follow:
        if until_ns is not None and time.time_ns() > until_ns:
            return
        if stop is not None and stop():
            return
        time.sleep(poll)
        try:
            st = os.stat(path)
            now_ident = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            continue
        if now_ident != ident:  # rotated: the rest of the old file, then the new one
            if ident is not None:
                rest, _ = _lines(path + ".1", offset)
                for line in rest:
                    msg = _decode(line)
                    if keep(msg):
                        yield msg
            ident, offset = now_ident, 0
        lines, offset = _lines(path, offset)
        for line in lines:
            msg = _decode(line)
            if keep(msg):
                yield msg
