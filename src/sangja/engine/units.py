"""Sizes and CPU lists as users write them (Docker's go-units conventions).

Lean on purpose (no `re`): the command line imports this on every `run`. Every parser
raises ``ValueError`` with a short reason; callers add the flag and the value."""

from __future__ import annotations

import os

_BINARY = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DECIMAL = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


def _size(text: str, table: dict[str, int]) -> int:
    """NUMBER[ ][k|m|g|t|p][i][b], case-insensitive: "512", "64m", "1.5GiB", "10 kb"."""
    s = text.strip()
    i = 0
    while i < len(s) and (s[i].isdigit() or s[i] == "."):
        i += 1
    number, unit = s[:i], s[i:]
    if unit.startswith(" "):
        unit = unit[1:]
    unit = unit.lower()
    if unit.endswith("b"):
        unit = unit[:-1]
    if unit.endswith("i"):
        unit = unit[:-1]
        if not unit:  # "1i", "1ib": no multiple to qualify
            unit = "?"
    if (not number or not number[0].isdigit() or number.count(".") > 1
            or number.endswith(".") or not number.isascii() or unit not in table):
        raise ValueError(f"invalid size: '{text}'")
    if "." in number:
        return int(float(number) * table[unit])
    return int(number) * table[unit]


def ram_in_bytes(text: str) -> int:
    """Docker's RAMInBytes: binary multiples ("1k" = 1024, "64m" = 64 MiB)."""
    return _size(text, _BINARY)


def from_human_size(text: str) -> int:
    """Docker's FromHumanSize: decimal multiples ("10m" = 10,000,000), as json-file's
    max-size uses them."""
    return _size(text, _DECIMAL)


def parse_int(text: str) -> int:
    """A plain decimal integer, sign allowed ("-1"); no "1_000", no spaces inside."""
    s = text.strip()
    body = s[1:] if s[:1] in "+-" else s
    if not body or not body.isdigit() or not body.isascii():
        raise ValueError(f"invalid integer: '{text}'")
    return int(s)


def parse_cpu_list(text: str) -> set[int]:
    """The kernel's list format: "0-2,4,7-8" -> {0, 1, 2, 4, 7, 8}."""
    cpus: set[int] = set()
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or not lo.isascii() or (dash and (not hi.isdigit()
                                                              or not hi.isascii())):
            raise ValueError(f"invalid format: {text}")
        a, b = int(lo), int(hi) if dash else int(lo)
        if b < a:
            raise ValueError(f"invalid format: {text}")
        cpus.update(range(a, b + 1))
    return cpus


def format_cpu_list(cpus: set[int]) -> str:
    """{0, 1, 2, 4} -> "0-2,4"."""
    out: list[str] = []
    run: list[int] = []
    for c in sorted(cpus):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [c]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)


def host_cpu_count() -> int:
    """CPUs this process may run on (what Docker's NumCPU counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def online_cpus() -> set[int]:
    """The host's online CPUs (/sys/devices/system/cpu/online)."""
    try:
        with open("/sys/devices/system/cpu/online") as f:
            return parse_cpu_list(f.read().strip())
    except (OSError, ValueError):
        return set(range(os.cpu_count() or 1))
