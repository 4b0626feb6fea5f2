"""`update`: change a live container's resource limits, from a linux.resources JSON
document (--resources FILE, or `-r -` for stdin) or from runc's individual flags."""

from __future__ import annotations

import sys

from ..errors import ConfigError, InvalidState, SangjaError
from .store import Store

# runc's flags: option name -> (resources section, key, kind)
FLAG_FIELDS = {
    "memory": ("memory", "limit", "size"),
    "memory-swap": ("memory", "swap", "size"),
    "memory-reservation": ("memory", "reservation", "size"),
    "kernel-memory": ("memory", "kernel", "size"),
    "kernel-memory-tcp": ("memory", "kernelTCP", "size"),
    "cpu-share": ("cpu", "shares", "uint"),
    "cpu-quota": ("cpu", "quota", "int"),
    "cpu-period": ("cpu", "period", "uint"),
    "cpu-rt-runtime": ("cpu", "realtimeRuntime", "int"),
    "cpu-rt-period": ("cpu", "realtimePeriod", "uint"),
    "cpuset-cpus": ("cpu", "cpus", "str"),
    "cpuset-mems": ("cpu", "mems", "str"),
    "pids-limit": ("pids", "limit", "int"),
    "blkio-weight": ("blockIO", "weight", "uint"),
}

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str) -> int:
    """A byte count as runc takes it (docker's RAMInBytes: 512, 64k, 100m, 1.5g, 2GiB;
    binary units), or -1 for unlimited."""
    s = text.strip()
    if s == "-1":
        return -1
    low = s.lower()
    for suffix in ("ib", "b"):
        if low.endswith(suffix) and len(low) > len(suffix):
            low = low[: -len(suffix)]
            break
    low = low.rstrip()
    unit = low[-1:] if low[-1:] in _UNITS and low[-1:] else ""
    num = low[: -1].rstrip() if unit else low
    try:
        if not num or num.startswith(("-", "+")):
            raise ValueError
        value = float(num) if "." in num else int(num)
    except ValueError:
        raise ValueError(f"invalid size: {text!r}") from None
    return int(value * _UNITS[unit])


def resources_from_flags(values: dict[str, str | None]) -> dict:
    """{flag name: text or None} -> a linux.resources dict with just the given fields.
    Zero values (runc's defaults for --pids-limit and --blkio-weight) change nothing."""
    out: dict = {}
    for flag, (section, key, kind) in FLAG_FIELDS.items():
        text = values.get(flag)
        if text is None or text == "":
            continue
        v: int | str
        try:
            if kind == "size":
                v = parse_size(text)
            elif kind == "str":
                v = text
            else:
                v = int(text, 10)
                if kind == "uint" and v < 0:
                    raise ValueError(f"{text!r} is negative")
        except ValueError as e:
            raise ConfigError(f"invalid value for --{flag}: {e}") from None
        if kind != "str" and v == 0 and flag in ("pids-limit", "blkio-weight"):
            continue
        out.setdefault(section, {})[key] = v
    return out


def load_resources(path: str) -> dict:
    """--resources FILE ("-" is stdin): a linux.resources JSON object."""
    from ..jsonio import loads

    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path) as f:
                text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read --resources {path}: {e.strerror}") from None
    try:
        doc = loads(text, source=f"--resources {path}")
    except ValueError as e:  # jsonio.JSONError: names the file and the position
        raise ConfigError(str(e)) from None
    if not isinstance(doc, dict):
        raise ConfigError(f"--resources {path}: expected a JSON object "
                          "(linux.resources format)")
    return doc


def update(store: Store, cid: str, resources: dict) -> None:
    from ..linux.cgroups import Cgroup
    from ..linux.cgroups.resources import apply, check

    c = store.open(cid)
    try:
        status = c.status()
        if status in ("stopped", "creating"):
            raise InvalidState(f"cannot update container {cid}: it is {status}")
        dirs = c.record.get("cgroup_dirs")
        if not dirs:
            raise SangjaError(f"container {cid} has no cgroup to update")
        if resources.get("devices"):
            from ..errors import Unsupported

            raise Unsupported("linux.resources.devices", "cannot be changed by update")
        cg = Cgroup.from_dirs(c.record.get("cgroup", ""), dirs)
        check(resources, None, update=True)
        apply(cg, resources, update=True)
    finally:
        c.unlock()
