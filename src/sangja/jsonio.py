"""JSON in and out: one place, so the runtime's start-up cost of `json` is paid once and
can be tuned here alone."""

from __future__ import annotations

import os


def loads(text: str | bytes):
    import json

    return json.loads(text)


def dumps(obj, *, indent: int | None = None) -> str:
    import json

    return json.dumps(obj, indent=indent, separators=None if indent else (",", ":"))


def load_file(path: str):
    with open(path, "rb") as f:
        return loads(f.read())


def write_atomic(path: str, data: str | bytes, mode: int = 0o600) -> None:
    """Write to a temp name, fsync, rename: readers see the old or the new file, never half."""
    if isinstance(data, str):
        data = data.encode()
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
