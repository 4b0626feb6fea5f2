"""The event log: what `sangja events` shows. Without a daemon to broadcast them, every
command that changes a container (or an image, a network) appends one JSON line to
`RR/events/events.log` in the run root (so, like Docker's, the log ends with a reboot);
`events` reads it and, without --until, follows it as it grows.

One line is Docker's event message (`docker events --format '{{json .}}'`):

    {"status": "start", "id": ID, "from": IMAGE, "Type": "container", "Action": "start",
     "Actor": {"ID": ID, "Attributes": {"image": IMAGE, "name": NAME, ...}},
     "scope": "local", "time": 1764760000, "timeNano": 1764760000123456789}

Appends are single O_APPEND writes (lines from concurrent commands never interleave).
Past 1 MiB the file is renamed to events.log.1 (one older file kept) under an flock.
Emitting never fails the command that emits: a full disk loses events, not containers."""

from __future__ import annotations

import os
import time

MAX_SIZE = 1 << 20
CONTAINER_ACTIONS = ("attach", "commit", "copy", "create", "destroy", "detach", "die",
                     "exec_create", "exec_detach", "exec_die", "exec_start", "export",
                     "health_status", "kill", "oom", "pause", "rename", "resize", "restart",
                     "start", "stop", "top", "unpause", "update", "prune")
FILTER_KEYS = ("container", "event", "image", "label", "network", "type", "volume")


def log_path(runroot: str) -> str:
    return os.path.join(runroot, "events", "events.log")


def emit(runroot: str, kind: str, action: str, actor_id: str,
         attributes: dict[str, str] | None = None, *, image: str | None = None) -> None:
    """Append one event. `image`: the container's image (Docker's "from")."""
    try:
        _append(runroot, _message(kind, action, actor_id, attributes or {}, image))
    except OSError:
        pass


def container_event(engine, row, action: str, extra: dict[str, str] | None = None) -> None:
    """A container event with Docker's attributes: image, name, the labels, `extra`."""
    try:
        labels = engine.options(row).labels
    except Exception:  # noqa: BLE001 - an event never fails the command
        labels = {}
    attrs = {**labels, "image": row["image_name"], "name": row["name"], **(extra or {})}
    emit(engine.paths.runroot, "container", action, row["id"], attrs, image=row["image_name"])


def _message(kind: str, action: str, actor_id: str, attrs: dict, image: str | None) -> dict:
    now = time.time_ns()
    msg: dict = {}
    if kind in ("container", "image"):
        msg["status"] = action
        msg["id"] = actor_id
        if image is not None:
            msg["from"] = image
    msg.update({"Type": kind, "Action": action,
                "Actor": {"ID": actor_id, "Attributes": {k: str(v) for k, v in attrs.items()}},
                "scope": "local", "time": now // 1_000_000_000, "timeNano": now})
    return msg


def _append(runroot: str, msg: dict) -> None:
    from ..jsonio import dumps

    path = log_path(runroot)
    line = (dumps(msg) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                     0o600)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                     0o600)
    try:
        os.write(fd, line)
        if os.fstat(fd).st_size > MAX_SIZE:
            _rotate(path, fd)
    finally:
        os.close(fd)


def _rotate(path: str, fd: int) -> None:
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        st, mine = os.stat(path), os.fstat(fd)
        if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino) and st.st_size > MAX_SIZE:
            os.replace(path, path + ".1")
    except OSError:
        pass


# ---------------------------------------------------------------------------- reading


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


def _image_matches(wanted: str, names: list[str]) -> bool:
    def norm(n: str) -> str:
        last = n.rsplit("/", 1)[-1]
        return n if ":" in last or "@" in n else n + ":latest"

    w = norm(wanted)
    return any(n and (n == wanted or norm(n) == w or n.startswith(wanted)) for n in names)


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
            names = [attrs.get("image", ""), msg.get("from", "")]
            if kind == "image":
                names += [aid, attrs.get("name", "")]
            ok = any(_image_matches(w, names) for w in wanted)
        elif key == "label":
            ok = any(attrs.get(w.partition("=")[0]) == w.partition("=")[2] if "=" in w
                     else w in attrs for w in wanted)
        elif key == "network":
            ok = kind == "network" and any(w in (aid, attrs.get("name")) for w in wanted)
        elif key == "volume":
            ok = kind == "volume" and aid in wanted
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
                poll: float = 0.1):
    """Events in time order with since <= timeNano <= until that match `filters`; with
    `follow`, then the new ones as they come (until `until_ns`, if given, has passed)."""
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
