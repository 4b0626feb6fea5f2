"""The event log: what `sangja events` shows. Without a daemon to broadcast them, the
engine's functions that change a container, an image, a network or a volume append one
JSON line each to `RR/events/events.log` in the run root (the CLI and the API emit none:
whatever path does the work logs it) (so, like Docker's, the log ends with a reboot);
`events` reads it (sangja.engine.event_query) and, without --until, follows it as it grows.

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


def log_path(runroot: str) -> str:
    return os.path.join(runroot, "events", "events.log")


def emit(runroot: str, kind: str, action: str, actor_id: str,
         attributes: dict[str, str] | None = None, *, image: str | None = None) -> None:
    """Append one event. `image`: the container's image (Docker's "from")."""
    try:
        _append(runroot, _message(kind, action, actor_id, attributes or {}, image))
    except OSError:
        pass


def container_event(engine, row, action: str, extra: dict[str, str] | None = None, *,
                    opts=None) -> None:
    """A container event with Docker's attributes: image, name, the labels, `extra`
    (`opts`: the container's options, when the caller has them parsed already)."""
    try:
        labels = (opts or engine.options(row)).labels
    except Exception:  # noqa: BLE001 - an event never fails the command
        labels = {}
    attrs = {**labels, "image": row["image_name"], "name": row["name"], **(extra or {})}
    emit(engine.paths.runroot, "container", action, row["id"], attrs, image=row["image_name"])


def familiar_image(name: str) -> str:
    """An image name as the user typed it, as Docker's events give it (its reference's
    "familiar" form): sangja's local domain and Docker Hub's prefixes dropped
    (`localhost/foo:1` -> `foo:1`, `docker.io/library/busybox:latest` -> `busybox:latest`)."""
    for prefix in ("localhost/", "docker.io/library/", "docker.io/"):
        if name.startswith(prefix) and name[len(prefix):]:
            return name[len(prefix):]
    return name


def image_event(store, action: str, image_id: str, name: str | None = None, *,
                actor: str | None = None, labels: dict | None = None) -> None:
    """pull, push, tag, untag, delete, load, import, save: Docker's image events, from the
    image store that did the work (`store.runroot`: where its events go; None for a store
    opened only to read or repair). The actor is the image id, or `actor` (pull and push
    name the reference). Attributes: the image's labels (while it exists, as Docker's)
    and `name` (`labels`: read before the image went, for its untag)."""
    runroot = getattr(store, "runroot", None)
    if runroot is None:
        return
    if labels is None and action != "delete":
        labels = image_labels(store, image_id)
    attrs = {str(k): str(v) for k, v in (labels or {}).items()}
    if name:
        attrs["name"] = name
    emit(runroot, "image", action, actor or image_id, attrs)


def image_labels(store, image_id: str) -> dict:
    """The image's labels (its events carry them); none when it cannot be read."""
    try:
        return (store.config(image_id).get("config") or {}).get("Labels") or {}
    except Exception:  # noqa: BLE001 - an event never fails the command
        return {}


def network_event(runroot: str, action: str, net: dict, container: str | None = None,
                  extra: dict[str, str] | None = None) -> None:
    """create, destroy, connect, disconnect (Actor: the network; `container`: the one
    connected or disconnected), prune (`extra`: its `reclaimed`)."""
    attrs = {**(extra or {})}
    if container is not None:
        attrs["container"] = container
    if net:
        attrs.update(name=net.get("name", ""), type=net.get("driver") or "bridge")
    emit(runroot, "network", action, net.get("id", "") if net else "", attrs)


def volume_event(runroot: str, action: str, name: str,
                 extra: dict[str, str] | None = None) -> None:
    """create, destroy, mount, unmount (`extra`: the container, and for mount where and
    how), prune (no volume: `extra` says `reclaimed`). The driver is always local."""
    attrs = {**(extra or {})}
    if action != "prune":
        attrs["driver"] = "local"
    emit(runroot, "volume", action, name, attrs)


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
