"""Scheduling knobs of runtime-spec: process.scheduler (sched_setattr), process.ioPriority
(ioprio_set) and linux.personality (personality)."""

from __future__ import annotations

import ctypes

from ..errors import ConfigError
from .syscall import check, libc

POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
            "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
_NR = {"x86_64": {"sched_setattr": 314, "ioprio_set": 251},
       "aarch64": {"sched_setattr": 274, "ioprio_set": 30}}


def _int(d: dict, key: str, where: str, lo: int, hi: int, default=None):
    v = d.get(key, default)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ConfigError(f"{where}.{key} must be an integer from {lo} to {hi}")
    return v


def _one_of(v, names: dict) -> bool:
    return isinstance(v, str) and v in names


def check_scheduler(s: dict) -> None:
    where = "process.scheduler"
    if not isinstance(s, dict):
        raise ConfigError(f"{where} must be an object")
    if not _one_of(s.get("policy"), POLICIES):
        raise ConfigError(f"{where}.policy must be one of {', '.join(POLICIES)}")
    _int(s, "nice", where, -20, 19)
    _int(s, "priority", where, 0, 99)
    for k in ("runtime", "deadline", "period"):
        _int(s, k, where, 0, (1 << 64) - 1)
    flags = s.get("flags") or []
    if not isinstance(flags, list):
        raise ConfigError(f"{where}.flags must be an array")
    for f in flags:
        if not _one_of(f, SCHED_FLAGS):
            raise ConfigError(f"{where}.flags: unknown flag {f!r}")
    if s["policy"] in ("SCHED_FIFO", "SCHED_RR") and not s.get("priority"):
        raise ConfigError(f"{where}.priority must be 1-99 for {s['policy']}")
    if s["policy"] != "SCHED_DEADLINE" and any(s.get(k) for k in ("runtime", "deadline",
                                                                      "period")):
        raise ConfigError(f"{where}: runtime, deadline and period need SCHED_DEADLINE")


def check_io_priority(p: dict) -> None:
    where = "process.ioPriority"
    if not isinstance(p, dict) or not _one_of(p.get("class"), IOPRIO_CLASSES):
        raise ConfigError(f"{where}.class must be one of {', '.join(IOPRIO_CLASSES)}")
    _int(p, "priority", where, 0, 7, 0)


def check_personality(p: dict) -> None:
    where = "linux.personality"
    if not isinstance(p, dict) or not _one_of(p.get("domain"), PERSONALITY_DOMAINS):
        raise ConfigError(f"{where}.domain must be LINUX or LINUX32")
    if p.get("flags"):
        raise ConfigError(f"{where}.flags are not supported (no kernel personality flags "
                          "are defined by the spec)")


class _SchedAttr(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("policy", ctypes.c_uint32),
                ("flags", ctypes.c_uint64), ("nice", ctypes.c_int32),
                ("priority", ctypes.c_uint32), ("runtime", ctypes.c_uint64),
                ("deadline", ctypes.c_uint64), ("period", ctypes.c_uint64)]


def _nr(name: str) -> int:
    from .syscall import _MACHINE  # read at start-up: personality() may change uname later

    return _NR[_MACHINE][name]


def set_scheduler(s: dict) -> None:
    flags = 0
    for f in s.get("flags") or []:
        flags |= SCHED_FLAGS[f]
    attr = _SchedAttr(ctypes.sizeof(_SchedAttr), POLICIES[s["policy"]], flags,
                      s.get("nice") or 0, s.get("priority") or 0, s.get("runtime") or 0,
                      s.get("deadline") or 0, s.get("period") or 0)
    check(libc.syscall(_nr("sched_setattr"), 0, ctypes.byref(attr), 0),
          f"process.scheduler ({s['policy']})")


def set_io_priority(p: dict) -> None:
    value = IOPRIO_CLASSES[p["class"]] << 13 | (p.get("priority") or 0)
    check(libc.syscall(_nr("ioprio_set"), 1, 0, value), "process.ioPriority")


def set_personality(p: dict) -> None:
    check(libc.personality(ctypes.c_ulong(PERSONALITY_DOMAINS[p["domain"]])),
          "linux.personality")


