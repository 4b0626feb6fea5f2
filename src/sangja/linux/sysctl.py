"""linux.sysctl: only namespaced keys, and only when the container has that namespace of
its own (a sysctl set from a shared namespace would change the host)."""

from __future__ import annotations

from ..errors import ConfigError

_IPC = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
        "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def namespace_of(key: str) -> str | None:
    if key in _IPC or key.startswith("fs.mqueue."):
        return "ipc"
    if key.startswith("net."):
        return "network"
    if key in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    return None


def check(sysctl: dict, namespaces: dict) -> None:
    for key, val in sysctl.items():
        if not isinstance(val, str):
            raise ConfigError(f"linux.sysctl.{key} must be a string")
        if "/" in key or ".." in key or not key:
            raise ConfigError(f"linux.sysctl: invalid key {key!r}")
        ns = namespace_of(key)
        if ns is None:
            raise ConfigError(f"linux.sysctl.{key} is not namespaced: setting it from a "
                              "container would change the host")
        n = namespaces.get(ns)
        if n is None or n.path:
            raise ConfigError(f"linux.sysctl.{key} needs a new {ns} namespace")


def apply(sysctl: dict) -> None:
    """Write each key under /proc/sys of the container (its /proc must be mounted)."""
    for key, val in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(val)
        except OSError as e:
            raise OSError(e.errno, f"linux.sysctl.{key}: cannot write {path}: {e.strerror}") \
                from None
