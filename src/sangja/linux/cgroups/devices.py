"""Device access rules (linux.resources.devices) on the cgroup v1 devices controller.

Rules apply in order, as runc applies them: a deny-all rule followed by the allows. The
devices a container always gets (/dev/null and friends, its pty) are allowed after the
user's rules so the container can use the nodes the runtime creates for it. The config's
own device nodes (linux.devices) get no implicit rule (runc's semantics): what
linux.resources.devices allows is what the container can do with them.
"""

from __future__ import annotations

import os

from ...errors import ConfigError

# (type, major, minor, access): what runc allows by default. Not c 5:1, the host's
# /dev/console (runc dropped it): with CAP_MKNOD, which podman grants, a container could make
# the node and open the host console. The container's /dev/console is a bind of its pty
# (c 136:*), which stays allowed.
DEFAULT_ALLOW = (
    ("c", None, None, "m"), ("b", None, None, "m"),
    ("c", 1, 3, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 7, "rwm"), ("c", 5, 0, "rwm"),
    ("c", 1, 5, "rwm"), ("c", 1, 9, "rwm"), ("c", 136, None, "rwm"), ("c", 5, 2, "rwm"),
    ("c", 10, 200, "rwm"),
)


def check_rules(rules: list, mode: str | None) -> None:
    for i, r in enumerate(rules):
        where = f"linux.resources.devices[{i}]"
        if not isinstance(r, dict) or not isinstance(r.get("allow"), bool):
            raise ConfigError(f"{where}.allow is required and must be a boolean")
        if r.get("type", "a") not in ("a", "c", "b"):
            raise ConfigError(f"{where}.type must be a, c or b")
        access = r.get("access", "rwm")
        if not isinstance(access, str) or not set(access) <= set("rwm"):
            raise ConfigError(f"{where}.access must be letters from 'rwm'")
        for k in ("major", "minor"):
            v = r.get(k)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise ConfigError(f"{where}.{k} must be an integer")


def _rule_text(kind: str, major, minor, access: str) -> str:
    if kind == "a":
        return "a"
    mj = "*" if major is None or major < 0 else str(major)
    mn = "*" if minor is None or minor < 0 else str(minor)
    return f"{kind} {mj}:{mn} {access or 'rwm'}"


def apply_v1(cgroup_dir: str, rules: list) -> None:
    """Write `rules` then the defaults."""
    seq = [(r.get("allow"), _rule_text(r.get("type", "a"), r.get("major"), r.get("minor"),
                                       r.get("access", "rwm"))) for r in rules]
    seq += [(True, _rule_text(*d)) for d in DEFAULT_ALLOW]
    for allow, text in seq:
        fd = os.open(os.path.join(cgroup_dir, "devices.allow" if allow else "devices.deny"),
                     os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
