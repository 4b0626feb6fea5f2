"""linux.sysctl: only namespaced keys, and only when the container has that namespace of
its own, new or joined by path (a sysctl set in the host's namespace would change the
host)."""

from __future__ import annotations

from ..errors import ConfigError

_IPC = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
        "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def dotted(key: str) -> str:
    """A key in sysctl(8)'s dotted form: dots between the levels, a slash for a dot within
    a name ("net.ipv4.conf.eth0/100.rp_filter"). A key whose first separator is a slash
    is in the other form ("net/ipv4/conf/eth0.100/rp_filter"); runc takes both."""
    first = min((i for i in (key.find("."), key.find("/")) if i >= 0), default=-1)
    if first < 0 or key[first] == ".":
        return key
    return key.translate(str.maketrans("./", "/."))


def proc_path(key: str) -> str | None:
    """The key's file under /proc/sys; None for a key that is no plain path below it."""
    parts = [p.replace("/", ".") for p in dotted(key).split(".")]
    if any(p in ("", ".", "..") for p in parts):
        return None
    return "/proc/sys/" + "/".join(parts)


def namespace_of(key: str) -> str | None:
    """The namespace type a key (in either form) belongs to; None: not namespaced."""
    key = dotted(key)
    if key in _IPC or key.startswith("fs.mqueue."):
        return "ipc"
    if key.startswith("net."):
        return "network"
    if key in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    return None


def check(sysctl: dict) -> None:
    """Every key a plain path below /proc/sys of a namespaced sysctl, every value a string.
    (That the container owns the namespace is checked with the rest of what it changes:
    runtime.bundle.changed_namespaces.)"""
    for key, val in sysctl.items():
        if not isinstance(val, str):
            raise ConfigError(f"linux.sysctl.{key} must be a string")
        if proc_path(key) is None:
            raise ConfigError(f"linux.sysctl: invalid key {key!r}")
        if namespace_of(key) is None:
            raise ConfigError(f"linux.sysctl.{key} is not namespaced: setting it from a "
                              "container would change the host")


def apply(sysctl: dict) -> None:
    """Write each key under /proc/sys of the container (its /proc must be mounted)."""
    for key, val in sysctl.items():
        path = proc_path(key)
        if path is None:  # check() refused it already; never open an arbitrary path
            raise ConfigError(f"linux.sysctl: invalid key {key!r}")
        try:
            with open(path, "w") as f:
                f.write(val)
        except OSError as e:
            raise OSError(e.errno, f"linux.sysctl.{key}: cannot write {path}: {e.strerror}") \
                from None
