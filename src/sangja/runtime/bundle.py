"""Load a bundle and decide, before anything is created, whether this runtime can honour
every field of its config.json. Fail closed: a field asking for something not implemented
is an error naming the field."""

from __future__ import annotations

import os

from ..errors import ConfigError, Unsupported
from ..oci.runtime_spec import Spec, load

PROPAGATIONS = ("shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate",
                "runbindable")

# Fields accepted only when they ask for nothing; a later issue implements them.
_NOT_YET = {
    ("linux", "intelRdt"): "Intel RDT",
    ("linux", "timeOffsets"): "time namespace offsets",
    ("linux", "memoryPolicy"): "NUMA memory policy",
    ("linux", "mountLabel"): "SELinux mount labels",
    ("process", "execCPUAffinity"): "exec CPU affinity",
}
def asks_nothing(value) -> bool:
    """None, empty containers and containers of such ask for nothing."""
    if value is None or value == "" or value == [] or value == {}:
        return True
    if isinstance(value, dict):
        return all(asks_nothing(v) for v in value.values())
    return False


class Bundle:
    """A validated bundle: its directory, spec and absolute rootfs path."""

    def __init__(self, path: str, seccomp_cache: str | None = None):
        self.path = os.path.abspath(path)
        if not os.path.isdir(self.path):
            raise ConfigError(f"bundle {self.path} is not a directory")
        self.spec: Spec = load(os.path.join(self.path, "config.json"))
        root = self.spec.root_path
        self.rootfs = os.path.normpath(root if root.startswith("/") else
                                       os.path.join(self.path, root))
        if not os.path.isdir(self.rootfs):
            raise ConfigError(f"root.path {self.rootfs} does not exist or is not a directory")
        check_supported(self.spec, seccomp_cache=seccomp_cache)


def check_supported(spec: Spec, cgroup_mode: str | None = None,
                    seccomp_cache: str | None = None) -> None:
    raw = spec.raw
    if spec.process is None:
        raise ConfigError("process is required to create a container")
    if not spec.process.args:
        raise ConfigError("process.args must not be empty")
    for (section, key), what in _NOT_YET.items():
        val = (raw.get(section) or {}).get(key)
        if not asks_nothing(val):
            raise Unsupported(f"{section}.{key}", f"({what}) is not supported by this runtime yet")
    seccomp_cfg = (raw.get("linux") or {}).get("seccomp")
    if seccomp_cfg is not None:
        from ..linux import seccomp

        spec.seccomp_filter = seccomp.prepare(seccomp_cfg, seccomp_cache)
    from ..linux import sched

    personality = (raw.get("linux") or {}).get("personality")
    if personality is not None:
        sched.check_personality(personality)
    check_process(spec.process)
    types = {n.type: n for n in spec.linux.namespaces}
    _check_id_mappings(spec.linux.raw, types.get("user"))
    if "mount" not in types:
        raise ConfigError("linux.namespaces has no mount namespace: the root filesystem "
                          "would be set up in the host's, changing the host (runc chroots "
                          "then and leaves the container's mounts on the host)")
    from ..linux.sysctl import check as check_sysctl

    check_sysctl(spec.linux.sysctl)
    hosts = _joined_host_namespaces(spec.linux.namespaces)
    for ns_type, what in changed_namespaces(spec).items():
        if ns_type not in types or ns_type in hosts:
            has = f"{types[ns_type].path} is the host's" if ns_type in hosts else \
                "linux.namespaces has none"
            raise ConfigError(f"{what} needs a {ns_type} namespace of the container's own "
                              f"(new, or joined by a path that is not the host's): {has}")
    prop = spec.linux.rootfs_propagation
    if prop and prop not in PROPAGATIONS:
        raise ConfigError(f"linux.rootfsPropagation {prop!r} is not one of "
                          f"{', '.join(PROPAGATIONS)}")
    from ..linux.mounts import MountOptions

    user = types.get("user")
    for i, m in enumerate(spec.mounts):
        rawm = raw["mounts"][i]
        try:
            opts = MountOptions(m.options)
        except ValueError as e:
            raise Unsupported(f"mounts[{i}].options", f"({e})") from None
        own_maps = not asks_nothing(rawm.get("uidMappings")) or \
            not asks_nothing(rawm.get("gidMappings"))
        if not (opts.idmap or own_maps):
            continue
        if not opts.is_bind:
            raise ConfigError(f"mounts[{i}]: idmapped mounts must be bind mounts")
        if user is None or user.path:
            raise ConfigError(f"mounts[{i}]: an idmapped mount needs a new user namespace "
                              "in linux.namespaces")
        for key in ("uidMappings", "gidMappings"):
            if rawm.get(key) and rawm[key] != spec.linux.raw.get(key):
                raise Unsupported(f"mounts[{i}].{key}", "(idmapped with mappings other than "
                                  "the container's user namespace) is not supported yet")
    if spec.linux.resources:
        from ..linux.cgroups.resources import check as check_resources

        check_resources(spec.linux.resources, cgroup_mode)


def check_process(process) -> None:
    """What the runtime must be able to honour in a process (the init's, or one given to
    `exec`): scheduling, LSM labels, capabilities, rlimits."""
    from ..linux import sched

    raw = process.raw
    if raw.get("scheduler") is not None:
        sched.check_scheduler(raw["scheduler"])
    if raw.get("ioPriority") is not None:
        sched.check_io_priority(raw["ioPriority"])
    if process.apparmor_profile:
        raise Unsupported("process.apparmorProfile", _lsm_reason("apparmor"))
    if process.selinux_label:
        raise Unsupported("process.selinuxLabel", _lsm_reason("selinux"))
    from ..linux.capabilities import CapabilitySets

    try:
        CapabilitySets(process.capabilities)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    from ..linux.process import RLIMITS

    for i, r in enumerate(process.rlimits):
        if r.type not in RLIMITS:
            raise ConfigError(f"process.rlimits[{i}].type {r.type!r} is not a known rlimit")
        if r.soft > r.hard:
            raise ConfigError(f"process.rlimits[{i}] ({r.type}): soft limit above hard limit")


def changed_namespaces(spec: Spec) -> dict[str, str]:
    """The namespaces the container changes, each with what changes it: they must be its
    own, new or joined by path (as runc takes a pod's), never the host's."""
    from ..linux.sysctl import namespace_of

    changed = {"mount": "the root filesystem"}
    for field in ("hostname", "domainname"):
        if getattr(spec, field):
            changed.setdefault("uts", field)
    for key in spec.linux.sysctl:
        ns_type = namespace_of(key)
        if ns_type is not None:
            changed.setdefault(ns_type, f"linux.sysctl.{key}")
    return changed


def _joined_host_namespaces(namespaces: list) -> set[str]:
    """Check every namespace given by path; return the types whose path is the runtime's
    own namespace (the host's, for whatever the container would change in it)."""
    from ..linux.namespaces import check_ns_file

    hosts = set()
    for n in namespaces:
        if n.path:
            try:
                if check_ns_file(n.path, n.type):
                    hosts.add(n.type)
            except OSError as e:
                raise ConfigError(f"linux.namespaces[{n.type}].path: {e.strerror}") from None
    return hosts


def _check_id_mappings(linux: dict, user) -> None:
    """uid/gid mappings: required by a new user namespace, meaningless without one."""
    for key in ("uidMappings", "gidMappings"):
        maps = linux.get(key)
        if maps is None:
            maps = []
        if not isinstance(maps, list):
            raise ConfigError(f"linux.{key} must be an array")
        if maps and (user is None or user.path):
            raise ConfigError(f"linux.{key} is set but linux.namespaces has no new user "
                              "namespace")
        if user is not None and not user.path and not maps:
            raise ConfigError(f"a new user namespace needs linux.{key}")
        if len(maps) > 340:
            raise ConfigError(f"linux.{key} has more than 340 ranges (the kernel's limit)")
        for i, m in enumerate(maps):
            where = f"linux.{key}[{i}]"
            if not isinstance(m, dict):
                raise ConfigError(f"{where} must be an object")
            for f in ("containerID", "hostID", "size"):
                v = m.get(f)
                if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 32:
                    raise ConfigError(f"{where}.{f} must be an integer from 0 to 4294967295")
            if m["size"] == 0:
                raise ConfigError(f"{where}.size must be greater than zero")


def _lsm_reason(lsm: str) -> str:
    present = os.path.exists(f"/sys/kernel/security/{lsm}") or (
        lsm == "selinux" and os.path.exists("/sys/fs/selinux"))
    if not present:
        return f"is set but this host has no {lsm} security module"
    return f"({lsm}) is not supported by this runtime yet"
