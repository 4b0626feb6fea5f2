"""An engine container's OCI runtime config (config.json) from its image config and the
user's flags (`ContainerOptions`), with Docker's defaults and Docker's rules.

    spec = build_spec(opts, image_config, container_id=cid, rootfs=merged_dir,
                      container_dir=R/containers/<id>, mounts=[ResolvedMount...],
                      init_path="/usr/bin/tini-static" or None)

What it decides (each as `docker run` does; see docker_defaults.py for the lists):

- process.args: ENTRYPOINT + CMD. `--entrypoint X` replaces the image's entrypoint and
  drops the image's CMD (the command after the image, if any, is used instead);
  `--entrypoint ""` leaves no entrypoint. Nothing to run -> "no command specified".
- env: PATH (default), HOSTNAME, TERM=xterm with -t, then the image's and the user's (a
  user's KEY=VALUE replaces the image's KEY; a bare KEY removes it).
- cwd: --workdir, else the image's WorkingDir, else "/".
- user: `users.resolve()` against the container's own /etc/passwd and /etc/group.
- capabilities: Docker's 14, --cap-add/--cap-drop (ALL as Docker), every capability with
  --privileged. A non-root user keeps them only in the bounding set (Docker since 18.04):
  its effective and permitted sets are empty, --cap-add or not.
- namespaces: mount, uts, pid, ipc, and network unless --network host; a cgroup
  namespace on cgroup v2 hosts only (Docker's default: private on v2, host on v1/hybrid;
  --cgroupns says otherwise). --pid/--ipc/--uts host share the host's, --pid/--ipc
  container:X join X's by path (the engine finds them: sharing.py); --ipc none has no
  /dev/shm, --ipc host and container:X bind a shared one.
- mounts: Docker's kernel filesystems, /etc/{resolv.conf,hostname,hosts} from the
  container directory, --init's binary, then the user's; a user mount replaces a default
  at the same place (and a user /dev replaces every default under /dev). The non-default
  mounts are sorted so a parent is mounted before what lies under it.
- masked and read-only /proc and /sys paths, the default seccomp profile, the device
  cgroup allow-list; --privileged drops all of them, makes /sys writable and passes the
  host's devices.
- resources (with --memory-reservation, --blkio-weight, --device-cgroup-rule), rlimits,
  oomScoreAdj, sysctls (plus Docker's two network-namespace defaults), noNewPrivileges,
  cgroupsPath /sangja/<id>, domainname, annotations; CDI devices' edits last (cdi.py).

Errors a user can cause are `SpecError` (exit code 125), with Docker's messages.
"""

from __future__ import annotations

import os
import stat

from sangja.records import dataclass, field

from ..errors import SangjaError
from . import docker_defaults as dd
from .options import ContainerOptions

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

CGROUP_PARENT = "/sangja"
# The spec version the bundles are written against: nothing of 1.2 is used, and older
# runtimes refuse a newer version (crun 1.8: "unknown version specified").
BUNDLE_OCI_VERSION = "1.1.0"
CPU_PERIOD = 100_000
RLIM_INFINITY = (1 << 64) - 1
PROPAGATIONS = ("shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate",
                "runbindable")
# --volume/--mount words that mean nothing to the kernel (SELinux relabel, Docker Desktop
# consistency, volume population) and are not passed on
_DROP_WORDS = frozenset({"z", "Z", "nocopy", "consistent", "cached", "delegated"})
_OPPOSITES = {"exec": "noexec", "suid": "nosuid", "dev": "nodev", "atime": "noatime",
              "diratime": "nodiratime", "relatime": "norelatime", "sync": "async",
              "strictatime": "nostrictatime", "mand": "nomand", "ro": "rw"}
_OPPOSITES.update({v: k for k, v in list(_OPPOSITES.items())})
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


class SpecError(SangjaError):
    """A flag or image setting that cannot become a config: Docker's exit code 125."""

    exit_code = 125
    engine_exit_code = 125


@dataclass
class ResolvedMount:
    """A user mount with its host side known. type: "bind" (also a named or anonymous
    volume, resolved by the engine to its directory), "volume" (same as bind) or "tmpfs"
    (source None). options: mount(8) words ("ro", "rprivate", "size=65536k", ...)."""

    type: str
    source: str | None
    destination: str
    options: list[str] = field(default_factory=list)
    readonly: bool = False


# ------------------------------------------------------------------------------ process


def command_args(opts: ContainerOptions, image_config: dict) -> list[str]:
    """ENTRYPOINT + CMD with Docker's override rules."""
    if opts.entrypoint is not None:
        entrypoint = [a for a in opts.entrypoint]
        if entrypoint == [""]:
            entrypoint = []
        cmd = list(opts.command)
    else:
        entrypoint = list(image_config.get("Entrypoint") or [])
        cmd = list(opts.command) or list(image_config.get("Cmd") or [])
    args = entrypoint + cmd
    if not args:
        raise SpecError("no command specified")
    return args


def _env_key(entry: str) -> str:
    return entry.partition("=")[0]


def environment(opts: ContainerOptions, image_config: dict, hostname: str) -> list[str]:
    """Docker's order: PATH, HOSTNAME, TERM (with -t), then the user's and the image's."""
    for e in opts.env:
        if not e or e.startswith("="):
            raise SpecError(f"invalid environment variable: {e}")
    user_keys = {_env_key(e) for e in opts.env}
    config_env = list(opts.env) + [e for e in image_config.get("Env") or []
                                   if isinstance(e, str) and "=" in e
                                   and _env_key(e) not in user_keys]
    out: dict[str, str] = {}
    for e in [dd.DEFAULT_PATH_ENV, f"HOSTNAME={hostname}", *(["TERM=xterm"] if opts.tty
                                                              else [])]:
        out[_env_key(e)] = e
    for e in config_env:
        key, eq, _ = e.partition("=")
        if eq:
            out[key] = e
        else:
            out.pop(key, None)  # a bare KEY unsets it
    return list(out.values())


def working_dir(opts: ContainerOptions, image_config: dict) -> str:
    if opts.workdir:
        if not opts.workdir.startswith("/"):
            raise SpecError(f"the working directory '{opts.workdir}' is invalid, it needs to "
                            "be an absolute path")
        wd = opts.workdir
    else:
        wd = image_config.get("WorkingDir") or "/"
        if not wd.startswith("/"):
            wd = "/" + wd
    wd = os.path.normpath(wd)
    return "/" + wd.lstrip("/")


def _norm_cap(name: str) -> str:
    from ..linux.capabilities import NUMBERS

    c = name.strip().upper()
    if c == "ALL":
        return c
    if not c.startswith("CAP_"):
        c = "CAP_" + c
    if c not in NUMBERS:
        raise SpecError(f'unknown capability: "{c}"')
    if c not in all_capabilities():
        raise SpecError(f'capability not supported by your kernel or not available in the '
                        f'current environment: "{c}"')
    return c


def all_capabilities() -> list[str]:
    """Every capability this kernel has that this process holds (Docker's "ALL": in a
    restricted environment a container cannot be given what the engine lacks)."""
    from ..linux.capabilities import NAMES, last_cap

    known = list(NAMES[: last_cap() + 1])
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    mask = int(line.split()[1], 16)
                    return [c for i, c in enumerate(known) if mask >> i & 1] or known
    except (OSError, ValueError):
        pass
    return known


def capability_list(opts: ContainerOptions) -> list[str]:
    """The container's bounding set, Docker's way: defaults - drops + adds; "ALL" in the
    adds means every capability but the drops, "ALL" in the drops means only the adds."""
    if opts.privileged:
        return all_capabilities()
    if not opts.cap_add and not opts.cap_drop:
        return list(dd.DEFAULT_CAPS)
    add = [_norm_cap(c) for c in opts.cap_add]
    drop = [_norm_cap(c) for c in opts.cap_drop]
    if "ALL" in add:
        caps = [c for c in all_capabilities() if c not in drop]
    elif "ALL" in drop:
        caps = [c for c in add if c != "ALL"]
    else:
        caps = [c for c in dd.DEFAULT_CAPS if c not in drop] + add
    out: list[str] = []
    for c in caps:
        if c not in out:
            out.append(c)
    return out


def rlimits(opts: ContainerOptions) -> list[dict]:
    from ..linux.process import RLIMITS

    out = []
    for u in opts.ulimits:
        name = "RLIMIT_" + u.name.upper()
        if name not in RLIMITS:
            raise SpecError(f"invalid ulimit type: {u.name}")
        soft = RLIM_INFINITY if u.soft < 0 else u.soft
        hard = RLIM_INFINITY if u.hard < 0 else u.hard
        if soft > hard:
            raise SpecError(f"ulimit soft limit must be less than or equal to hard limit: "
                            f"{u.soft} > {u.hard}")
        out.append({"type": name, "hard": hard, "soft": soft})
    return out


# ------------------------------------------------------------------------------- mounts


def merge_options(words: list[str]) -> list[str]:
    """Later words win: "exec" removes an earlier "noexec", "size=1m" an earlier size."""
    out: list[str] = []
    for w in words:
        key, eq, _ = w.partition("=")
        if eq:
            out = [o for o in out if o.partition("=")[0] != key or "=" not in o]
        else:
            out = [o for o in out if o != w and o != _OPPOSITES.get(w)]
        out.append(w)
    return out


def _norm_dest(dest: str) -> str:
    if not dest.startswith("/"):
        raise SpecError(f"invalid mount path: '{dest}' mount path must be absolute")
    d = "/" + os.path.normpath(dest).lstrip("/")
    if d == "/":
        raise SpecError("invalid mount config: destination can't be '/'")
    return d


def user_mount(m: ResolvedMount) -> dict:
    dest = _norm_dest(m.destination)
    words = [w for w in m.options if w not in _DROP_WORDS]
    readonly = m.readonly or "ro" in words
    words = [w for w in words if w not in ("ro", "rw")]
    if m.type == "tmpfs":
        opts = merge_options(["noexec", "nosuid", "nodev", "rprivate", *words])
        if readonly:
            opts.append("ro")
        return {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": opts}
    if m.type not in ("bind", "volume"):
        raise SpecError(f"mount type {m.type!r} is not supported (bind, volume or tmpfs)")
    if not m.source or not m.source.startswith("/"):
        raise SpecError(f"mount {dest}: the source must be an absolute host path, not "
                        f"{m.source!r}")
    if not any(w in ("bind", "rbind") for w in words):
        words.insert(0, "rbind")
    if not any(w in PROPAGATIONS for w in words):
        words.append("rprivate")
    if readonly:
        words.append("ro")
    return {"destination": dest, "type": "bind", "source": m.source, "options": words}


def _depth(dest: str) -> int:
    return dest.rstrip("/").count("/")


def build_mounts(opts: ContainerOptions, user_mounts: list[ResolvedMount],
                 etc_files: dict[str, str], init_path: str | None,
                 shared_shm: str | None = None) -> list[dict]:
    """`shared_shm`: the /dev/shm of --ipc host or container:X, bound instead of a tmpfs
    of the container's own (--ipc none: no /dev/shm at all)."""
    users = [user_mount(m) for m in user_mounts]
    taken = {m["destination"] for m in users}
    dev_taken = "/dev" in taken

    defaults: list[dict[str, Any]] = []  # OCI mounts, as extra below
    for m in dd.DEFAULT_MOUNTS:
        d = m["destination"]
        if d in taken or (dev_taken and d.startswith("/dev/")):
            continue
        m = {**m, "options": list(m["options"])}
        if d == "/dev/shm":
            if opts.ipc_mode == "none":
                continue
            if shared_shm:
                m = {"destination": d, "type": "bind", "source": shared_shm,
                     "options": ["rbind", "rprivate", "nosuid", "nodev", "noexec"]}
            else:
                m["options"].append(f"size={opts.shm_size}")
        if opts.read_only and d not in dd.READONLY_ROOT_EXEMPT and "ro" not in m["options"]:
            m["options"].append("ro")
        if opts.privileged and m["type"] in ("sysfs", "cgroup"):
            m["options"] = [o for o in m["options"] if o != "ro"]
        defaults.append(m)

    extra: list[dict[str, Any]] = []
    for ctr, host in etc_files.items():
        if ctr not in taken:
            extra.append({"destination": ctr, "type": "bind", "source": host,
                          "options": ["rbind", "rprivate", *(["ro"] if opts.read_only
                                                             else [])]})
    if init_path and dd.INIT_PATH_IN_CONTAINER not in taken:
        extra.append({"destination": dd.INIT_PATH_IN_CONTAINER, "type": "bind",
                      "source": init_path, "options": ["bind", "ro"]})
    extra += users
    extra.sort(key=lambda m: _depth(m["destination"]))  # stable: parents first
    return defaults + extra


def rootfs_propagation(mounts: list[dict]) -> str | None:
    """Docker's rule: a shared bind needs a shared root mount to propagate through, a
    slave bind at least a slave one; otherwise the runtime's default (rprivate/rslave)."""
    words = {w for m in mounts if m["type"] == "bind" for w in m["options"]}
    if words & {"shared", "rshared"}:
        return "shared"
    if words & {"slave", "rslave"}:
        return "rslave"
    return None


# ------------------------------------------------------------------------------ devices


def device_entry(host_path: str, container_path: str, st: os.stat_result) -> dict:
    return {"path": container_path, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
            "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}


def _is_dev(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)


def _resolve_device_path(path: str) -> str:
    """Follow symlinks only when they end under /dev (/dev/disk/by-id/... -> /dev/sda):
    a link elsewhere (to /etc/passwd, say) is not a device and stays unresolved."""
    real = os.path.realpath(path)
    return real if real == "/dev" or real.startswith("/dev/") else path


def devices_from_path(host_path: str, container_path: str) -> list[dict]:
    """--device HOST:CTR: one node, or every node below a directory."""
    path = _resolve_device_path(host_path)
    try:
        st = os.lstat(path)
    except OSError as e:
        raise SpecError(f"error gathering device information while adding custom device "
                        f"{host_path!r}: {e.strerror}") from None
    if _is_dev(st):
        return [device_entry(path, container_path, st)]
    if not stat.S_ISDIR(st.st_mode):
        raise SpecError(f"error gathering device information while adding custom device "
                        f"{host_path!r}: not a device node")
    out = []
    for d, _dirs, files in os.walk(path):
        for name in sorted(files):
            p = os.path.join(d, name)
            try:
                s = os.lstat(p)
            except OSError:
                continue
            if _is_dev(s):
                out.append(device_entry(p, container_path + p[len(path):], s))
    if not out:
        raise SpecError(f"error gathering device information while adding custom device "
                        f"{host_path!r}: no device nodes in it")
    return out


def host_devices(root: str = "/dev") -> list[dict]:
    """Every character and block device node of the host's /dev, for --privileged."""
    out = []

    def walk(d: str) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            return
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    if e.name not in dd.PRIVILEGED_SKIP_DIRS:
                        walk(e.path)
                    continue
                if e.name in dd.PRIVILEGED_SKIP_FILES:
                    continue
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if _is_dev(st):
                out.append(device_entry(e.path, e.path, st))

    walk(root)
    return out


def _rule(kind: str | None, major, minor, access: str, allow: bool = True) -> dict:
    r: dict = {"allow": allow}
    if kind:
        r["type"] = kind
    if major is not None:
        r["major"] = major
    if minor is not None:
        r["minor"] = minor
    r["access"] = access
    return r


def devices(opts: ContainerOptions) -> tuple[list[dict], list[dict]]:
    """(linux.devices, linux.resources.devices)."""
    nodes: list[dict] = []
    if opts.privileged:
        nodes = host_devices()
        for d in opts.devices:
            if d.host_path != d.container_path:
                nodes += devices_from_path(d.host_path, d.container_path)
        return nodes, [_rule(None, None, None, "rwm")]
    rules = [_rule(None, None, None, "rwm", allow=False)]
    rules += [_rule(*r) for r in dd.DEFAULT_DEVICE_RULES]
    if opts.device_cgroup_rules:
        from .device_rules import parse_rule

        rules += [parse_rule(r) for r in opts.device_cgroup_rules]
    for d in opts.devices:
        perms = d.permissions or "rwm"
        if not set(perms) <= set("rwm"):
            raise SpecError(f"invalid device mode: {perms}")
        for n in devices_from_path(d.host_path, d.container_path):
            nodes.append(n)
            rules.append(_rule(n["type"], n["major"], n["minor"], perms))
    return nodes, rules


# ---------------------------------------------------------------------------- resources


def swap_limit_supported() -> bool:
    from ..linux import cgroups

    hs = cgroups.hierarchies()
    for h in hs:
        if h.version == 1 and "memory" in h.controllers:
            return os.path.exists(os.path.join(h.mountpoint, "memory.memsw.limit_in_bytes"))
    return any(h.version == 2 for h in hs)


def resources(opts: ContainerOptions, device_rules: list[dict]) -> dict:
    res: dict = {"devices": device_rules}
    mem: dict = {}
    if opts.memory is not None and opts.memory > 0:
        if opts.memory < 6 << 20:
            raise SpecError("Minimum memory limit allowed is 6MB")
        mem["limit"] = opts.memory
    swap = opts.memory_swap
    if swap not in (None, 0):
        if "limit" not in mem:
            raise SpecError("You should always set the Memory limit when using Memoryswap "
                            "limit, see usage")
        if swap != -1 and swap < mem["limit"]:
            raise SpecError("Minimum memoryswap limit should be larger than memory limit, "
                            "see usage")
        if not swap_limit_supported():
            raise SpecError("--memory-swap: this kernel does not account swap in cgroups "
                            "(boot with swapaccount=1)")
        mem["swap"] = swap
    elif "limit" in mem and swap_limit_supported():
        mem["swap"] = 2 * mem["limit"]  # Docker: as much swap as memory
    if opts.memory_reservation:
        if "limit" in mem and opts.memory_reservation > mem["limit"]:
            raise SpecError("Minimum memory limit can not be less than memory reservation "
                            "limit, see usage")
        mem["reservation"] = opts.memory_reservation
    if mem:
        res["memory"] = mem
    cpu: dict = {}
    if opts.cpu_shares:
        if opts.cpu_shares < 0:
            raise SpecError(f"invalid CPU shares: {opts.cpu_shares}")
        cpu["shares"] = opts.cpu_shares
    if opts.cpus:
        ncpu = os.cpu_count() or 1
        nano = round(opts.cpus * 1e9)
        if nano < 10_000_000 or nano > ncpu * 10**9:
            raise SpecError(f"range of CPUs is from 0.01 to {ncpu}.00, as there are only "
                            f"{ncpu} CPUs available")
        cpu["quota"] = nano * CPU_PERIOD // 10**9
        cpu["period"] = CPU_PERIOD
    if opts.cpuset_cpus:
        cpu["cpus"] = opts.cpuset_cpus
    if cpu:
        res["cpu"] = cpu
    if opts.pids_limit is not None:
        res["pids"] = {"limit": opts.pids_limit if opts.pids_limit > 0 else -1}
    if opts.blkio_weight:
        res["blockIO"] = {"weight": opts.blkio_weight}
    return res


def sysctls(opts: ContainerOptions, own_netns: bool, defaults: bool | None = None
            ) -> dict[str, str]:
    """`defaults`: Docker's two network-namespace sysctls too (a namespace of the
    container's own; not one it joins with ns:PATH)."""
    out: dict[str, str] = {}
    if own_netns if defaults is None else defaults:
        for key, val in dd.PRIVATE_NETNS_SYSCTLS:
            if os.path.exists("/proc/sys/" + key.replace(".", "/")):
                out[key] = val
    for key, val in opts.sysctls.items():
        if key.startswith("net.") and not own_netns:
            raise SpecError(f"sysctl '{key}' is not allowed in host network namespace")
        out[key] = str(val)
    return out


# --------------------------------------------------------------------------------- spec


def container_hostname(opts: ContainerOptions, container_id: str) -> str:
    if opts.hostname:
        return opts.hostname
    if opts.network == "host" or opts.uts_mode == "host":
        return os.uname().nodename
    return container_id[:12]


def namespaces(opts: ContainerOptions, netns: str | None = None,
               joined: dict[str, str] | None = None) -> list[dict]:
    """`netns`: the network namespace to join by path (a network's, another container's,
    ns:PATH); None: the host's for host, else a new empty one (--network none, or a spec
    built without the network hook, as the unit tests do). `joined`: {"pid"/"ipc": the
    namespace file of the container named by --pid/--ipc container:X}. --pid, --ipc,
    --uts host share the host's; --cgroupns private or host, else Docker's default."""
    from ..linux import cgroups
    from ..network import kind

    joined = joined or {}
    ns = [{"type": "mount"}]
    mode = kind(opts.network)
    if netns:
        ns.append({"type": "network", "path": netns})
    elif mode in ("container", "ns"):
        raise SpecError(f"network mode {opts.network!r} needs its network namespace")
    elif mode != "host":
        ns.append({"type": "network"})
    if opts.uts_mode != "host":
        ns.append({"type": "uts"})
    for t, m in (("pid", opts.pid_mode), ("ipc", opts.ipc_mode)):
        if m == "host":
            continue
        if m and m.startswith("container:"):
            if t not in joined:
                raise SpecError(f"{t} mode {m!r} needs the other container's namespace")
            ns.append({"type": t, "path": joined[t]})
        else:
            ns.append({"type": t})
    cgroupns = opts.cgroupns_mode or ("private" if cgroups.mode() == "v2" else "host")
    if cgroupns == "private":
        ns.append({"type": "cgroup"})
    return ns


def build_spec(opts: ContainerOptions, image_config: dict | None, *, container_id: str,
               rootfs: str, container_dir: str, mounts: list[ResolvedMount] | None = None,
               init_path: str | None = None, net: dict | None = None,
               joined: dict[str, str] | None = None) -> dict:
    """config.json for the container; writes its /etc files into `container_dir` (only
    once everything else is known to be valid). `net`: what the network gives: "netns"
    (the namespace to join by path) and the /etc files' entries (etc_files). `joined`:
    the namespaces of --pid/--ipc container:X, and its "shm" (/dev/shm to share)."""
    from . import etc_files, seccomp_profile, users

    if not container_id or not set(container_id) <= _ID_CHARS or container_id in (".", ".."):
        raise SpecError(f"invalid container id {container_id!r}")
    image_config = image_config or {}
    args = command_args(opts, image_config)
    if init_path is None and opts.init:
        if not os.access(dd.DEFAULT_INIT_BINARY, os.X_OK):
            raise SpecError("--init needs a static init binary: apt-get install tini")
        init_path = dd.DEFAULT_INIT_BINARY
    if init_path:
        args = [dd.INIT_PATH_IN_CONTAINER, "--", *args]

    if mounts is None:
        mounts = [_from_request(m) for m in opts.mounts]
    hostname = container_hostname(opts, container_id)
    user = users.resolve(rootfs, opts.user or image_config.get("User") or "", opts.group_add)
    caps = capability_list(opts)
    net = net or {}
    own_netns = opts.network != "host" and not opts.network.startswith(("container:", "ns:"))
    ns = namespaces(opts, net.get("netns"), joined)
    nodes, device_rules = devices(opts)

    process: dict = {
        "terminal": bool(opts.tty),
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
        "args": args,
        "env": environment(opts, image_config, hostname),
        "cwd": working_dir(opts, image_config),
        "capabilities": {
            "bounding": caps,
            "effective": caps if user.uid == 0 else [],
            "permitted": caps if user.uid == 0 else [],
        },
        "noNewPrivileges": bool(opts.no_new_privileges),
    }
    rl = rlimits(opts)
    if rl:
        process["rlimits"] = rl
    if opts.oom_score_adj is not None:
        process["oomScoreAdj"] = opts.oom_score_adj

    linux: dict = {
        "namespaces": ns,
        "cgroupsPath": f"{CGROUP_PARENT}/{container_id}",
        "resources": resources(opts, device_rules),
    }
    if nodes:
        linux["devices"] = nodes
    sc = sysctls(opts, own_netns or opts.network.startswith("ns:"), own_netns)
    if sc:
        linux["sysctl"] = sc
    if not opts.privileged:
        linux["maskedPaths"] = dd.masked_paths()
        linux["readonlyPaths"] = list(dd.READONLY_PATHS)
    seccomp = seccomp_profile.for_container(opts.seccomp, caps, privileged=opts.privileged)
    if seccomp is not None:
        linux["seccomp"] = seccomp

    mount_list = build_mounts(opts, mounts, etc_files.paths(container_dir), init_path,
                              (joined or {}).get("shm"))
    prop = rootfs_propagation(mount_list)
    if prop:
        linux["rootfsPropagation"] = prop
    spec = {
        "ociVersion": BUNDLE_OCI_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": bool(opts.read_only)},
        "hostname": hostname,
        "mounts": mount_list,
        "linux": linux,
    }
    if opts.uts_mode == "host":
        del spec["hostname"]  # the host's own: a runtime must not set it
    elif opts.domainname:
        spec["domainname"] = opts.domainname
    if opts.annotations:
        spec["annotations"] = dict(opts.annotations)
    if opts.cdi_devices:
        from . import cdi

        try:
            cdi.apply(spec, opts.cdi_devices)
        except cdi.CDIError as e:
            raise SpecError(str(e)) from None
    # last, so that a refused flag leaves no files behind
    etc_files.write_etc_files(container_dir, hostname=hostname, network=opts.network, net=net)
    return spec


def _from_request(m) -> ResolvedMount:
    if m.type == "volume":
        raise SpecError(f"volume mount at {m.target}: the engine must resolve volumes to "
                        "host directories before building the spec")
    return ResolvedMount(type=m.type, source=m.source, destination=m.target,
                         options=list(m.options), readonly=m.readonly)
