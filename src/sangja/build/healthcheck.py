"""HEALTHCHECK: ``NONE``, or ``[--interval=D] [--timeout=D] [--start-period=D]
[--start-interval=D] [--retries=N] CMD command`` into the image config's Healthcheck
(durations in nanoseconds, as Docker stores them)."""

from __future__ import annotations

import re

from .errors import BuildError
from .parser import Instruction

__all__ = ["parse_duration", "parse_healthcheck"]

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str, flag: str) -> int:
    """Go's time.ParseDuration ("1m30s", "500ms"), in nanoseconds."""
    pos, total = 0, 0.0
    if text in ("0", ""):
        return 0
    while pos < len(text):
        m = _PART.match(text, pos)
        if not m:
            raise BuildError(f"HEALTHCHECK --{flag}: invalid duration {text!r}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return int(total)


def parse_healthcheck(ins: Instruction, shell: list[str]) -> dict:
    words = ins.rest.split(None, 1)
    if not words:
        raise BuildError("HEALTHCHECK requires an argument (NONE or CMD ...)")
    kind = words[0].upper()
    if kind == "NONE":
        if len(words) > 1 or ins.flags:
            raise BuildError("HEALTHCHECK NONE takes no other arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD" or len(words) < 2:
        raise BuildError("HEALTHCHECK: expected NONE or CMD followed by a command")
    from .parser import _json_form

    argv = _json_form(words[1])
    check: dict = {"Test": ["CMD", *argv] if argv is not None else ["CMD-SHELL", words[1]]}
    del shell  # Docker keeps the shell form as CMD-SHELL, run with the image's shell
    for name, value in ins.flags:
        if value is None:
            raise BuildError(f"HEALTHCHECK --{name} needs a value")
        if name == "retries":
            if not value.isdigit():
                raise BuildError(f"HEALTHCHECK --retries: invalid number {value!r}")
            check["Retries"] = int(value)
        elif name in ("interval", "timeout", "start-period", "start-interval"):
            field = "".join(p.capitalize() for p in name.split("-"))
            ns = parse_duration(value, name)
            if 0 < ns < 1_000_000:
                raise BuildError(f"HEALTHCHECK --{name} cannot be less than 1ms")
            check[field] = ns
        else:
            raise BuildError(f"HEALTHCHECK: unknown flag --{name}")
    return check
