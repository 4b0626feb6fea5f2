"""--device-cgroup-rule: Docker's `TYPE MAJOR:MINOR ACCESS` ("c 1:3 rwm", "b *:* r",
"a *:* rwm") as an OCI linux.resources.devices entry."""

from __future__ import annotations

from ..errors import SangjaError


class DeviceRuleError(SangjaError, ValueError):
    exit_code = 125
    engine_exit_code = 125


def _number(text: str, what: str, rule: str) -> int | None:
    if text == "*":
        return None
    if not text.isdigit() or not text.isascii() or len(text) > 10:
        raise DeviceRuleError(f"invalid device cgroup rule {rule!r}: {what} must be a "
                              "number or *")
    return int(text)


def parse_rule(rule: str) -> dict:
    """The OCI allow entry for one rule; DeviceRuleError names what is wrong."""
    parts = rule.split()
    if len(parts) != 3:
        raise DeviceRuleError(f"invalid device cgroup rule {rule!r}: expected "
                              "'TYPE MAJOR:MINOR ACCESS', e.g. 'c 1:3 rwm'")
    kind, numbers, access = parts
    if kind not in ("a", "b", "c"):
        raise DeviceRuleError(f"invalid device cgroup rule {rule!r}: the type is a, b or c")
    major_s, colon, minor_s = numbers.partition(":")
    if not colon:
        raise DeviceRuleError(f"invalid device cgroup rule {rule!r}: expected MAJOR:MINOR")
    major = _number(major_s, "the major number", rule)
    minor = _number(minor_s, "the minor number", rule)
    if not access or len(set(access)) != len(access) or not set(access) <= set("rwm"):
        raise DeviceRuleError(f"invalid device cgroup rule {rule!r}: the access is a "
                              "subset of rwm")
    entry: dict = {"allow": True, "type": kind}
    if major is not None:
        entry["major"] = major
    if minor is not None:
        entry["minor"] = minor
    entry["access"] = access
    return entry
