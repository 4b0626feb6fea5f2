"""`sangja run` / `sangja create` flags -> a validated ``ContainerOptions``.

Docker's flags, spellings and semantics; every bad value is an ``InvalidOption`` that
names the flag and the value (one line, exit 125), every bad command line a ``UsageError``.
Kept lean for start-up: no `re`, `argparse`, `signal`, `enum` or `ctypes` at import time;
the few heavier helpers are imported inside the functions that need them."""

from __future__ import annotations

import os

from ...engine import units
from ...engine.options import ContainerOptions, DeviceRequest, MountRequest, RestartPolicy, Ulimit
from ...errors import SangjaError
from .common import DETACH_KEYS_HELP, Command, Flag, UsageError


class InvalidOption(SangjaError):
    """A flag's value is wrong: names the flag and the value."""

    exit_code = 125
    engine_exit_code = 125


RUN_FLAGS: list[Flag] = [
    Flag("-d,--detach", help="Run container in background and print container ID"),
    Flag("-i,--interactive", help="Keep STDIN open even if not attached"),
    Flag("-t,--tty", help="Allocate a pseudo-TTY"),
    Flag("--rm", help="Automatically remove the container and its associated anonymous volumes "
         "when it exits"),
    Flag("--name", "value", "Assign a name to the container"),
    Flag("-e,--env", "multi", "Set environment variables"),
    Flag("--env-file", "multi", "Read in a file of environment variables"),
    Flag("-w,--workdir", "value", "Working directory inside the container"),
    Flag("-u,--user", "value", "Username or UID (format: <name|uid>[:<group|gid>])"),
    Flag("--entrypoint", "value", "Overwrite the default ENTRYPOINT of the image"),
    Flag("-h,--hostname", "value", "Container host name"),
    Flag("-v,--volume", "multi", "Bind mount a volume"),
    Flag("--mount", "multi", "Attach a filesystem mount to the container", meta="mount"),
    Flag("--tmpfs", "multi", "Mount a tmpfs directory"),
    Flag("--read-only", help="Mount the container's root filesystem as read only"),
    Flag("-m,--memory", "value", "Memory limit", meta="bytes"),
    Flag("--memory-swap", "value", 'Swap limit equal to memory plus swap: "-1" to enable '
         "unlimited swap", meta="bytes"),
    Flag("--cpus", "value", "Number of CPUs", meta="decimal"),
    Flag("-c,--cpu-shares", "value", "CPU shares (relative weight)", meta="int"),
    Flag("--cpuset-cpus", "value", "CPUs in which to allow execution (0-3, 0,1)"),
    Flag("--pids-limit", "value", "Tune container pids limit (set -1 for unlimited)", meta="int"),
    Flag("--ulimit", "multi", "Ulimit options", meta="ulimit"),
    Flag("--cap-add", "multi", "Add Linux capabilities"),
    Flag("--cap-drop", "multi", "Drop Linux capabilities"),
    Flag("--privileged", help="Give extended privileges to this container"),
    Flag("--security-opt", "multi", "Security Options"),
    Flag("--group-add", "multi", "Add additional groups to join"),
    Flag("--init", help="Run an init inside the container that forwards signals and reaps "
         "processes"),
    Flag("--restart", "value", "Restart policy to apply when a container exits"),
    Flag("-l,--label", "multi", "Set meta data on a container"),
    Flag("--label-file", "multi", "Read in a line delimited file of labels"),
    Flag("--stop-signal", "value", "Signal to stop the container"),
    Flag("--stop-timeout", "value", "Timeout (in seconds) to stop a container", meta="int"),
    Flag("--pull", "value", 'Pull image before running ("always", "missing", "never")'),
    Flag("--runtime", "value", "Runtime to use for this container"),
    Flag("--network,--net", "value", "Connect a container to a network", meta="network"),
    Flag("--sysctl", "multi", "Sysctl options", meta="map"),
    Flag("--device", "multi", "Add a host device to the container"),
    Flag("--shm-size", "value", "Size of /dev/shm", meta="bytes"),
    Flag("--log-driver", "value", "Logging driver for the container"),
    Flag("--log-opt", "multi", "Log driver options"),
    Flag("--annotation", "multi", "Add an annotation to the container (passed through to the OCI "
         "runtime)", meta="map"),
    Flag("-a,--attach", "multi", "Attach to STDIN, STDOUT or STDERR"),
    Flag("--sig-proxy", help="Proxy received signals to the process", default=True),
    Flag("--detach-keys", "value", DETACH_KEYS_HELP),
    Flag("-p,--publish", "multi", "Publish a container's port(s) to the host"),
    Flag("-P,--publish-all", help="Publish all exposed ports to random ports"),
    Flag("--ip", "value", "IPv4 address (e.g., 172.30.100.104)"),
    Flag("--ip6", "value", "IPv6 address (e.g., 2001:db8::33)"),
    Flag("--mac-address", "value", "Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
    Flag("--network-alias,--net-alias", "multi", "Add network-scoped alias for the container"),
    Flag("--dns", "multi", "Set custom DNS servers"),
    Flag("--dns-search", "multi", "Set custom DNS search domains"),
    Flag("--dns-option,--dns-opt", "multi", "Set DNS options"),
    Flag("--add-host", "multi", "Add a custom host-to-IP mapping (host:ip)"),
    Flag("--expose", "multi", "Expose a port or a range of ports"),
    Flag("--platform", "value", "Set platform if server is multi-platform capable"),
    Flag("--cidfile", "value", "Write the container ID to the file"),
    Flag("--pid", "value", "PID namespace to use"),
    Flag("--ipc", "value", "IPC mode to use"),
    Flag("--uts", "value", "UTS namespace to use"),
    Flag("--cgroupns", "value", 'Cgroup namespace to use (host|private)'),
    Flag("--userns", "value", "User namespace to use"),
    Flag("--domainname", "value", "Container NIS domain name"),
    Flag("--memory-reservation", "value", "Memory soft limit", meta="bytes"),
    Flag("--oom-score-adj", "value", "Tune host's OOM preferences (-1000 to 1000)",
         meta="int"),
    Flag("--blkio-weight", "value", "Block IO (relative weight), between 10 and 1000, or 0 "
         "to disable (default 0)", meta="uint16"),
    Flag("--volumes-from", "multi", "Mount volumes from the specified container(s)"),
    Flag("--device-cgroup-rule", "multi", "Add a rule to the cgroup allowed devices list"),
    Flag("--gpus", "value", "GPU devices to add to the container ('all' to pass all GPUs)",
         meta="gpu-request"),
    Flag("--health-cmd", "value", "Command to run to check health"),
    Flag("--health-interval", "value", "Time between running the check (ms|s|m|h) "
         "(default 0s)", meta="duration"),
    Flag("--health-timeout", "value", "Maximum time to allow one check to run (ms|s|m|h) "
         "(default 0s)", meta="duration"),
    Flag("--health-retries", "value", "Consecutive failures needed to report unhealthy",
         meta="int"),
    Flag("--health-start-period", "value", "Start period for the container to initialize "
         "before starting health-retries countdown (ms|s|m|h) (default 0s)", meta="duration"),
    Flag("--health-start-interval", "value", "Time between running the check during the "
         "start period (ms|s|m|h) (default 0s)", meta="duration"),
    Flag("--no-healthcheck", help="Disable any container-specified HEALTHCHECK"),
]

# `create` takes run's flags but those of the attached foreground: Docker's create has no
# --detach, --sig-proxy or --detach-keys (it never starts).
CREATE_FLAGS: list[Flag] = [f for f in RUN_FLAGS
                            if f.dest not in ("detach", "sig_proxy", "detach_keys")]
RUN = Command("[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create and run a new container from an "
              "image", RUN_FLAGS, interspersed=False)
CREATE = Command("[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container",
                 CREATE_FLAGS, interspersed=False)

_DISPLAY = {f.dest: ", ".join(f.names) for f in RUN_FLAGS}  # "-m, --memory"


def _bad(dest: str, value: str, why: str) -> InvalidOption:
    return InvalidOption(f'invalid argument "{value}" for "{_DISPLAY.get(dest, dest)}" flag: '
                         f"{why}")


# ---------------------------------------------------------------------------- entry point


def parse_run_args(args: list[str], *, command: str = "run",
                   foreground: dict | None = None) -> ContainerOptions:
    """`[OPTIONS] IMAGE [COMMAND] [ARG...]` -> ContainerOptions. Flags end at IMAGE; what
    follows it is the command, verbatim. `foreground`, when given, receives the options of
    the attached `run` that are not the container's: ``sig_proxy``, ``detach_keys``."""
    f, rest = (CREATE if command == "create" else RUN).parse(args)
    if foreground is not None:
        foreground["sig_proxy"] = f.get("sig_proxy", True)
        foreground["detach_keys"] = f.get("detach_keys")
    if not rest:
        raise UsageError(f'"sangja {command}" requires at least 1 argument '
                         f"(usage: sangja {command} [OPTIONS] IMAGE [COMMAND] [ARG...])")
    image, command_args = rest[0], rest[1:]
    if not image.strip():
        raise UsageError(f"sangja {command}: the image name is empty")
    o = ContainerOptions(image=image, command=list(command_args))

    o.detach = bool(f.get("detach", False))
    o.interactive, o.tty, o.rm = f["interactive"], f["tty"], f["rm"]
    o.read_only, o.privileged, o.init = f["read_only"], f["privileged"], f["init"]

    if f["name"] is not None:
        o.name = _name(f["name"])
    o.env = _env(f["env_file"], f["env"])
    if f["workdir"] is not None:
        o.workdir = _workdir(f["workdir"])
    if f["user"]:
        o.user = _user(f["user"])
    if f["entrypoint"] is not None:
        o.entrypoint = [f["entrypoint"]] if f["entrypoint"] else []
    if f["hostname"] is not None:
        o.hostname = _hostname(f["hostname"])
    o.group_add = _group_add(f["group_add"])

    # network first: --sysctl net.* and -p depend on it
    if f["network"] is not None:
        o.network = _network(f["network"])

    mounts = [_volume(v) for v in f["volume"]]
    mounts += [_mount(v) for v in f["mount"]]
    mounts += [_tmpfs(v) for v in f["tmpfs"]]
    _no_duplicate_targets(mounts)
    o.mounts = mounts

    _resources(o, f)
    o.ulimits = _ulimits(f["ulimit"])
    o.cap_add = _caps("cap_add", f["cap_add"])
    o.cap_drop = _caps("cap_drop", f["cap_drop"])
    for opt in f["security_opt"]:
        _security_opt(o, opt)
    if f["restart"] is not None:
        o.restart = _restart(f["restart"])
    o.labels = _labels(f["label_file"], f["label"])
    if f["stop_signal"] is not None:
        o.stop_signal = _stop_signal(f["stop_signal"])
    if f["stop_timeout"] is not None:
        o.stop_timeout = _int("stop_timeout", f["stop_timeout"], minimum=-1)
    if f["pull"] is not None:
        o.pull = _pull(f["pull"])
    if f["runtime"] is not None:
        o.runtime = _runtime(f["runtime"])
    o.sysctls = _sysctls(f["sysctl"], o.network)
    for d in f["device"]:
        if _is_cdi_name(d):
            o.cdi_devices.append(d)
        else:
            o.devices.append(_device(d))
    if f["shm_size"] is not None:
        o.shm_size = _size("shm_size", f["shm_size"]) or (64 << 20)
    _logging(o, f["log_driver"], f["log_opt"])
    o.annotations = _kv_map("annotation", f["annotation"])
    o.attach = _attach(f["attach"])
    o.expose = _expose(f["expose"])
    if f["platform"] is not None:
        _platform(f["platform"])

    _more_flags(o, f)

    # combinations (the engine's rules, checked again by Engine.create)
    from ...engine.rules import InvalidOptions, check_options

    try:
        check_options(o)
    except InvalidOptions as e:
        raise InvalidOption(str(e)) from None
    if o.detach and o.attach:
        raise InvalidOption("Conflicting options: -a and -d")
    _network_flags(o, f)
    return o


# ---------------------------------------------------------------------------- identity


def _is_name(text: str) -> bool:
    """Docker's [a-zA-Z0-9][a-zA-Z0-9_.-]+ (container and volume names)."""
    return (len(text) >= 2 and text.isascii() and text[0].isalnum()
            and all(c.isalnum() or c in "_.-" for c in text[1:]))


def _name(value: str) -> str:
    name = value[1:] if value.startswith("/") else value
    if not _is_name(name):
        raise _bad("name", value, "invalid container name, only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                   "are allowed (at least two characters)")
    return name


def _workdir(value: str) -> str:
    if not value.startswith("/"):
        raise _bad("workdir", value, f"the working directory '{value}' is invalid, it needs "
                   "to be an absolute path")
    return value


def _user(value: str) -> str:
    user, colon, group = value.partition(":")
    if not user or (colon and not group) or ":" in group or any(c.isspace() for c in value):
        raise _bad("user", value, "expected USER[:GROUP] (a name or a numeric id each)")
    return value


def _hostname(value: str) -> str:
    if not value or len(value) > 64:
        raise _bad("hostname", value, "a hostname has 1 to 64 characters")
    if value.startswith(("-", ".")) or ".." in value or not value.isascii() or not all(
            c.isalnum() or c in "-._" for c in value):
        raise _bad("hostname", value, "invalid hostname format (letters, digits, '-', '.')")
    return value


def _group_add(values: list[str]) -> list[str]:
    out = []
    for v in values:
        if not v or ":" in v or any(c.isspace() for c in v):
            raise _bad("group_add", v, "expected a group name or a numeric gid")
        if v not in out:
            out.append(v)
    return out


# ---------------------------------------------------------------------------- env, labels


def _read_kv_file(dest: str, path: str, *, from_env: bool) -> list[str]:
    """Docker's env-file format: KEY=VALUE lines (the value verbatim), `#` comments and
    blank lines skipped, leading blanks ignored. A bare KEY takes the value from the current
    environment when ``from_env`` (dropped if unset), else stays a bare KEY."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise _bad(dest, path, e.strerror or str(e))
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    out = []
    for n, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad(dest, path, f"invalid UTF-8 on line {n}")
        line = line.removesuffix("\r").lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, _ = line.partition("=")
        if not key:
            raise _bad(dest, path, f"no variable name on line {n}: '{line}'")
        if any(c.isspace() for c in key):
            raise _bad(dest, path, f"variable '{key}' on line {n} contains whitespaces")
        if eq:
            out.append(line)
        elif not from_env:
            out.append(key)
        elif key in os.environ:
            out.append(f"{key}={os.environ[key]}")
    return out


def _env(files: list[str], values: list[str]) -> list[str]:
    env = []
    for path in files:
        env += _read_kv_file("env_file", path, from_env=True)
    for v in values:
        key, eq, _ = v.partition("=")
        if not key:
            raise _bad("env", v, "invalid environment variable: empty name")
        if eq:
            env.append(v)
        elif key in os.environ:  # -e KEY: the value of KEY here, as Docker does
            env.append(f"{key}={os.environ[key]}")
    return env


def _kv_map(dest: str, values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, _, val = v.partition("=")
        if not key.strip():
            raise _bad(dest, v, "expected KEY=VALUE with a non-empty KEY")
        out[key] = val
    return out


def _labels(files: list[str], values: list[str]) -> dict[str, str]:
    lines = []
    for path in files:
        lines += _read_kv_file("label_file", path, from_env=False)
    labels = _kv_map("label_file", lines)
    labels.update(_kv_map("label", values))
    return labels


# ---------------------------------------------------------------------------- mounts


_PROPAGATION = ("shared", "slave", "private", "rshared", "rslave", "rprivate")
_VOLUME_MODES = {"rw": "rw", "ro": "rw", "z": "label", "Z": "label", "nocopy": "copy",
                 "consistent": "consistency", "cached": "consistency",
                 "delegated": "consistency", **{p: "propagation" for p in _PROPAGATION}}


def _norm_target(path: str) -> str:
    import posixpath

    p = posixpath.normpath(path)
    return "/" + p.lstrip("/") if p.startswith("//") else p


def _is_volume_mode(text: str) -> bool:
    return all(m in _VOLUME_MODES for m in text.split(","))


def _volume(spec: str) -> MountRequest:
    """-v [SRC:]DST[:OPTS]."""
    parts = spec.split(":")
    if len(parts) == 1:
        src, dst, mode = None, parts[0], ""
    elif len(parts) == 2:
        if parts[0].startswith("/") and not parts[1].startswith("/") and _is_volume_mode(
                parts[1]):
            src, dst, mode = None, parts[0], parts[1]  # "/data:ro": anonymous, read-only
        else:
            src, dst, mode = parts[0], parts[1], ""
    elif len(parts) == 3:
        src, dst, mode = parts
    else:
        raise _bad("volume", spec, f"invalid volume specification: '{spec}'")
    if src == "" or dst == "" or (len(parts) == 3 and not mode):
        raise _bad("volume", spec, f"invalid volume specification: '{spec}'")
    if not dst.startswith("/"):
        raise _bad("volume", spec, f"invalid mount path: '{dst}' mount path must be absolute")
    target = _norm_target(dst)
    if target == "/":
        raise _bad("volume", spec, "invalid volume specification: destination can't be '/'")

    seen: dict[str, str] = {}
    for m in mode.split(",") if mode else []:
        cat = _VOLUME_MODES.get(m)
        if cat is None or cat in seen:
            raise _bad("volume", spec, f"invalid mode: {mode}")
        seen[cat] = m
    readonly = seen.get("rw") == "ro"
    propagation = seen.get("propagation")

    if src is None or not (src.startswith("/") or src == "." or src.startswith(("./", "../"))
                           or src == ".."):
        if propagation:
            raise _bad("volume", spec, f"invalid mode: {mode} (propagation {propagation} "
                       "applies to bind mounts only)")
        if src is not None and not _is_name(src):
            raise _bad("volume", spec, f'"{src}" includes invalid characters for a local '
                       'volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you '
                       "intended to pass a host directory, use absolute path")
        options = ["nocopy"] if "copy" in seen else []
        return MountRequest("volume", target, src or "", readonly, options)

    if "copy" in seen:
        raise _bad("volume", spec, f"invalid mode: {mode} (nocopy applies to volumes only)")
    source = os.path.abspath(src)
    # Docker makes a missing host directory when the container starts
    return MountRequest("bind", target, source, readonly, ["rbind", propagation or "rprivate"],
                        create_source=not os.path.lexists(source))


def _split_csv(text: str) -> list[str]:
    """One record of CSV as Go's encoding/csv reads it: comma-separated fields, a field in
    double quotes may hold commas, `""` inside quotes is one quote."""
    fields: list[str] = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] == '"':
            buf = []
            i += 1
            while True:
                if i >= n:
                    raise ValueError('extraneous or missing " in quoted-field')
                c = text[i]
                if c == '"':
                    if i + 1 < n and text[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(c)
                i += 1
            if i < n and text[i] != ",":
                raise ValueError('extraneous or missing " in quoted-field')
            fields.append("".join(buf))
        else:
            j = text.find(",", i)
            j = n if j < 0 else j
            field = text[i:j]
            if '"' in field:
                raise ValueError('bare " in non-quoted-field')
            fields.append(field)
            i = j
        if i >= n:
            return fields
        i += 1  # the comma


_TRUE = {"1", "t", "true", "yes"}
_FALSE = {"0", "f", "false", "no"}


def _bool(text: str) -> bool | None:
    low = text.lower()
    return True if low in _TRUE else False if low in _FALSE else None


def _mount(spec: str) -> MountRequest:
    """--mount type=bind|volume|tmpfs,source=..,target=..,readonly,..."""

    def bad(why: str) -> InvalidOption:
        return _bad("mount", spec, why)

    try:
        fields = _split_csv(spec)
    except ValueError as e:
        raise bad(str(e))
    kind = source = target = propagation = None
    readonly = nocopy = nonrecursive = False
    size = mode = None
    used: set[str] = set()  # "bind", "volume", "tmpfs": which type-specific keys were given
    for field in fields:
        key, eq, val = field.partition("=")
        key = key.strip().lower()
        if not eq:
            if key in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
                val = "true"
            else:
                raise bad(f"invalid field '{field}' must be a key=value pair")
        if key == "type":
            if val not in ("bind", "volume", "tmpfs"):
                raise bad(f"invalid mount type '{val}' (bind, volume or tmpfs)")
            kind = val
        elif key in ("source", "src"):
            source = val
        elif key in ("target", "destination", "dst"):
            target = val
        elif key in ("readonly", "ro"):
            b = _bool(val)
            if b is None:
                raise bad(f"invalid value for {key}: {val}")
            readonly = b
        elif key == "bind-propagation":
            if val not in _PROPAGATION:
                raise bad(f"invalid value for bind-propagation: {val}")
            propagation = val
            used.add("bind")
        elif key == "bind-nonrecursive":
            b = _bool(val)
            if b is None:
                raise bad(f"invalid value for bind-nonrecursive: {val}")
            nonrecursive = b
            used.add("bind")
        elif key == "bind-recursive":
            if val not in ("enabled", "disabled"):
                raise bad(f"bind-recursive={val} is not supported (enabled or disabled)")
            nonrecursive = val == "disabled"
            used.add("bind")
        elif key == "consistency":
            if val not in ("default", "consistent", "cached", "delegated"):
                raise bad(f"invalid value for consistency: {val}")
        elif key == "volume-nocopy":
            b = _bool(val)
            if b is None:
                raise bad(f"invalid value for volume-nocopy: {val}")
            nocopy = b
            used.add("volume")
        elif key == "volume-driver":
            if val != "local":
                raise bad(f"volume driver '{val}' is not supported (only local)")
            used.add("volume")
        elif key in ("volume-label", "volume-opt", "volume-subpath"):
            raise bad(f"{key} is not supported yet")
        elif key == "tmpfs-size":
            try:
                size = units.ram_in_bytes(val)
            except ValueError as e:
                raise bad(f"invalid value for tmpfs-size: {e}")
            used.add("tmpfs")
        elif key == "tmpfs-mode":
            mode = _octal_mode(val)
            if mode is None:
                raise bad(f"invalid value for tmpfs-mode: {val} (octal, e.g. 1770)")
            used.add("tmpfs")
        else:
            raise bad(f"unexpected key '{key}' in '{field}'")

    if kind is None:
        raise bad("type is required")
    if not target:
        raise bad("target is required")
    mixed = sorted(used - {kind})
    if mixed:
        raise bad(f"cannot mix '{mixed[0]}-*' options with mount type '{kind}'")
    if not target.startswith("/"):
        raise bad(f"invalid mount path: '{target}' mount path must be absolute")
    target = _norm_target(target)
    if target == "/":
        raise bad("invalid mount config: destination can't be '/'")
    where = f'invalid mount config for type "{kind}"'
    if kind == "tmpfs":
        if source:
            raise bad(f"{where}: field Source must not be specified")
        options = ["noexec", "nosuid", "nodev"]
        if size:
            options.append(f"size={size}")
        if mode is not None:
            options.append(f"mode={mode:o}")
        return MountRequest("tmpfs", target, None, readonly, options)
    if kind == "volume":
        if source and not _is_name(source):
            raise bad(f'"{source}" includes invalid characters for a local volume name, only '
                      '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed')
        return MountRequest("volume", target, source or "", readonly,
                            ["nocopy"] if nocopy else [])
    if not source:
        raise bad(f"{where}: field Source must not be empty")
    if not source.startswith("/"):
        raise bad(f"{where}: invalid mount path: '{source}' mount path must be absolute")
    if not os.path.exists(source):
        raise bad(f"{where}: bind source path does not exist: {source}")
    return MountRequest("bind", target, os.path.normpath(source), readonly,
                        ["bind" if nonrecursive else "rbind", propagation or "rprivate"])


def _octal_mode(text: str) -> int | None:
    if not text or not text.isascii() or any(c not in "01234567" for c in text):
        return None
    m = int(text, 8)
    return m if m <= 0o7777 else None


_TMPFS_PAIRS = {"exec": "noexec", "suid": "nosuid", "dev": "nodev", "atime": "noatime",
                "diratime": "nodiratime", "relatime": "norelatime",
                "strictatime": "nostrictatime", "sync": "async", "mand": "nomand"}
_TMPFS_OPPOSITE = {**_TMPFS_PAIRS, **{v: k for k, v in _TMPFS_PAIRS.items()}}
_TMPFS_FLAGS = set(_TMPFS_OPPOSITE) | {"dirsync"}
_TMPFS_HUGE = ("never", "always", "within_size", "advise", "deny", "force")


def _tmpfs(spec: str) -> MountRequest:
    """--tmpfs DST[:OPTS]: Docker's defaults noexec,nosuid,nodev plus the given options
    (a later "exec" replaces the default "noexec"); size= is parsed into bytes."""
    dst, _, opts = spec.partition(":")
    if not dst.startswith("/"):
        raise _bad("tmpfs", spec, f"invalid mount path: '{dst}' mount path must be absolute")
    target = _norm_target(dst)
    if target == "/":
        raise _bad("tmpfs", spec, "destination can't be '/'")
    options = ["noexec", "nosuid", "nodev"]
    readonly = False
    keyed: dict[str, str] = {}
    for opt in opts.split(",") if opts else []:
        key, eq, val = opt.partition("=")
        if not eq:
            if opt in ("ro", "rw"):
                readonly = opt == "ro"
            elif opt in _TMPFS_FLAGS:
                if _TMPFS_OPPOSITE.get(opt) in options:
                    options.remove(_TMPFS_OPPOSITE[opt])
                if opt not in options:
                    options.append(opt)
            else:
                raise _bad("tmpfs", spec, f"invalid tmpfs option '{opt}'")
            continue
        if key == "size":
            if val.endswith("%") and val[:-1].isdigit() and 0 < int(val[:-1]) <= 100:
                keyed[key] = val
                continue
            try:
                keyed[key] = str(units.ram_in_bytes(val))
            except ValueError as e:
                raise _bad("tmpfs", spec, f"invalid size option: {e}")
        elif key == "mode":
            m = _octal_mode(val)
            if m is None:
                raise _bad("tmpfs", spec, f"invalid mode option '{val}' (octal, e.g. 1777)")
            keyed[key] = f"{m:o}"
        elif key in ("uid", "gid"):
            if not val.isdigit() or not val.isascii():
                raise _bad("tmpfs", spec, f"invalid {key} option '{val}' (a number)")
            keyed[key] = val
        elif key in ("nr_inodes", "nr_blocks"):
            body = val[:-1] if val[-1:].lower() in ("k", "m", "g") else val
            if not body.isdigit() or not body.isascii():
                raise _bad("tmpfs", spec, f"invalid {key} option '{val}'")
            keyed[key] = val
        elif key == "huge" and val in _TMPFS_HUGE:
            keyed[key] = val
        elif key == "mpol" and val:
            keyed[key] = val
        else:
            raise _bad("tmpfs", spec, f"invalid tmpfs option '{opt}'")
    options += [f"{k}={v}" for k, v in keyed.items()]
    return MountRequest("tmpfs", target, None, readonly, options)


def _no_duplicate_targets(mounts: list[MountRequest]) -> None:
    from ...engine.rules import InvalidOptions, check_mount_targets

    try:
        check_mount_targets(mounts)
    except InvalidOptions as e:
        raise InvalidOption(str(e)) from None


# ---------------------------------------------------------------------------- resources


from ...engine.rules import MIN_MEMORY as _MIN_MEMORY  # noqa: E402 - beside its use


def _size(dest: str, value: str) -> int:
    try:
        return units.ram_in_bytes(value)
    except ValueError as e:
        raise _bad(dest, value, str(e))


def _int(dest: str, value: str, *, minimum: int | None = None) -> int:
    try:
        n = units.parse_int(value)
    except ValueError:
        raise _bad(dest, value, "not an integer")
    if minimum is not None and n < minimum:
        raise _bad(dest, value, f"must be at least {minimum}")
    return n


def _resources(o: ContainerOptions, f: dict) -> None:
    if f["memory"] is not None:
        mem = _size("memory", f["memory"])
        if mem and mem < _MIN_MEMORY:
            raise _bad("memory", f["memory"], "Minimum memory limit allowed is 6MB")
        o.memory = mem or None
    if f["memory_swap"] is not None:
        value = f["memory_swap"]
        swap = -1 if value.strip() == "-1" else _size("memory_swap", value)
        if swap > 0:  # a limit (-1: unlimited; sizes are never negative)
            if o.memory is None:
                raise _bad("memory_swap", value, "you should always set the memory limit "
                           "(-m, --memory) when using the memoryswap limit")
            if swap < o.memory:
                raise _bad("memory_swap", value, "minimum memoryswap limit should be larger "
                           f"than memory limit ({o.memory} bytes)")
        o.memory_swap = swap or None
    if f["cpus"] is not None:
        o.cpus = _cpus(f["cpus"])
    if f["cpu_shares"] is not None:
        o.cpu_shares = _int("cpu_shares", f["cpu_shares"], minimum=0) or None
    if f["cpuset_cpus"] is not None:
        o.cpuset_cpus = _cpuset(f["cpuset_cpus"])
    if f["pids_limit"] is not None:
        o.pids_limit = _int("pids_limit", f["pids_limit"])


def _cpus(value: str) -> float:
    text = value.strip()
    whole, _, frac = text.partition(".")
    if (not text or not text.isascii() or not (whole or frac)
            or not all(p == "" or p.isdigit() for p in (whole, frac)) or text.count(".") > 1
            or text.startswith("+")):
        raise _bad("cpus", value, f"failed to parse {value} as a rational number")
    if len(frac.rstrip("0")) > 9:
        raise _bad("cpus", value, "value is too precise")
    cpus = float(text)
    n = units.host_cpu_count()
    if cpus < 0.01 or cpus > n:
        raise _bad("cpus", value, f"range of CPUs is from 0.01 to {n}.00, as there are only "
                   f"{n} CPUs available")
    return cpus


def _cpuset(value: str) -> str | None:
    text = value.strip()
    if not text:
        return None
    try:
        wanted = units.parse_cpu_list(text)
    except ValueError:
        raise _bad("cpuset_cpus", value, f"Invalid value {value} for cpuset cpus")
    online = units.online_cpus()
    if not wanted <= online:
        raise _bad("cpuset_cpus", value, f"Requested CPUs are not available - requested "
                   f"{text}, available: {units.format_cpu_list(online)}")
    return text


_ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
            "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")


def _ulimit_value(text: str) -> int | None:
    if text in ("unlimited", "-1"):
        return -1
    return int(text) if text.isdigit() and text.isascii() else None


def _ulimits(values: list[str]) -> list[Ulimit]:
    by_name: dict[str, Ulimit] = {}
    for v in values:
        name, eq, limits = v.partition("=")
        if not eq or not limits:
            raise _bad("ulimit", v, f"invalid ulimit argument: {v} (expected NAME=SOFT[:HARD])")
        if name not in _ULIMITS:
            raise _bad("ulimit", v, f"invalid ulimit type: {name} (one of "
                       f"{', '.join(_ULIMITS)})")
        soft_s, colon, hard_s = limits.partition(":")
        soft = _ulimit_value(soft_s)
        hard = _ulimit_value(hard_s) if colon else soft
        if soft is None or hard is None:
            raise _bad("ulimit", v, "invalid ulimit argument: limits are numbers, -1 or "
                       "unlimited")
        if hard != -1 and (soft == -1 or soft > hard):
            raise _bad("ulimit", v, "ulimit soft limit must be less than or equal to hard "
                       f"limit: {soft_s} > {hard_s}")
        by_name[name] = Ulimit(name, soft, hard)  # the last one of a name wins, as Docker
    return list(by_name.values())


# ---------------------------------------------------------------------------- security


def _caps(dest: str, values: list[str]) -> list[str]:
    from ...linux.capabilities import NUMBERS

    out: list[str] = []
    for v in values:
        name = v.strip().upper()
        if name != "ALL":
            if not name.startswith("CAP_"):
                name = "CAP_" + name
            if name not in NUMBERS:
                raise _bad(dest, v, f"unknown capability: {v!r}")
        if name not in out:
            out.append(name)
    return out


def _security_opt(o: ContainerOptions, opt: str) -> None:
    key, eq, val = opt.partition("=")
    if not eq and key != "no-new-privileges":
        key, colon, val = opt.partition(":")  # Docker's old "seccomp:unconfined" spelling
        if not colon:
            raise _bad("security_opt", opt, "expected KEY=VALUE (no-new-privileges, "
                       "seccomp=unconfined|PATH, label=disable)")
    if key == "no-new-privileges":
        b = _bool(val) if val else True
        if b is None:
            raise _bad("security_opt", opt, f"invalid no-new-privileges value {val!r} "
                       "(true or false)")
        o.no_new_privileges = b
    elif key == "seccomp":
        if val == "unconfined":
            o.seccomp = "unconfined"
        elif val in ("builtin", "default"):
            o.seccomp = None
        else:
            o.seccomp = _seccomp_file(opt, val)
    elif key == "label":
        if val != "disable":
            raise _bad("security_opt", opt, "SELinux labels are not supported (there is no "
                       "SELinux here); only label=disable is accepted")
        o.label_disable = True
    elif key == "apparmor":
        if val != "unconfined":
            raise _bad("security_opt", opt, "AppArmor profiles are not supported; only "
                       "apparmor=unconfined (which is what runs anyway) is accepted")
    elif key == "systempaths":
        raise _bad("security_opt", opt, "systempaths is not supported yet")
    else:
        raise _bad("security_opt", opt, f"unknown security option {key!r}")


def _seccomp_file(opt: str, path: str) -> str:
    """The profile's content (compact JSON), read and checked now: the container keeps it,
    not the path (Docker's CLI does the same)."""
    from ...engine.seccomp_profile import ProfileError, stored

    if not path:
        raise _bad("security_opt", opt, "seccomp needs unconfined or a profile path")
    try:
        return stored(os.path.abspath(path))  # type: ignore[return-value]
    except ProfileError as e:  # names the file
        raise InvalidOption(f'invalid argument for "--security-opt" flag: {e}') from None


# ---------------------------------------------------------------------------- lifecycle


def _restart(value: str) -> RestartPolicy:
    name, colon, count = value.partition(":")
    if name in ("", "no"):
        if colon:
            raise _bad("restart", value, "maximum retry count cannot be used with restart "
                       "policy 'no'")
        return RestartPolicy("no", 0)
    if name not in ("on-failure", "always", "unless-stopped"):
        raise _bad("restart", value, "invalid restart policy: expected no, "
                   "on-failure[:max-retries], always or unless-stopped")
    if not colon:
        return RestartPolicy(name, 0)
    if name != "on-failure":
        raise _bad("restart", value, "maximum retry count cannot be used with restart policy "
                   f"'{name}'")
    if not count.isdigit() or not count.isascii():
        raise _bad("restart", value, "maximum retry count must be a non-negative integer")
    return RestartPolicy(name, int(count))


_ALIASES = ("SIGIOT", "SIGCLD", "SIGPOLL")  # SIGABRT, SIGCHLD, SIGIO are the names shown


def _stop_signal(value: str) -> str:
    from ...linux import signals

    try:
        n = signals.parse(value)
    except ValueError:
        raise _bad("stop_signal", value, f"Invalid signal: {value}")
    lo, hi = signals.SIGRTMIN, signals.SIGRTMAX
    if n == lo:
        return "SIGRTMIN"
    if n == hi:
        return "SIGRTMAX"
    if lo < n < hi:
        return f"SIGRTMIN+{n - lo}"
    return min(k for k, v in signals.NAMES.items() if v == n and k not in _ALIASES)


def _pull(value: str) -> str:
    if value not in ("missing", "always", "never"):
        raise _bad("pull", value, 'invalid pull option: must be one of "always", "missing" '
                   'or "never"')
    return value


def _runtime(value: str) -> str:
    if value in ("sangja-runtime", "runc", "crun"):
        return value
    if not value.startswith("/"):
        raise _bad("runtime", value, "unknown runtime: use sangja-runtime, runc, crun or the "
                   "absolute path of an OCI runtime")
    if not os.path.isfile(value) or not os.access(value, os.X_OK):
        raise _bad("runtime", value, "not an executable file")
    return value


# ---------------------------------------------------------------------------- network


def _network(value: str) -> str:
    """none | host | bridge | container:NAME | ns:PATH | a network's name (whether it
    exists is the engine's check, at create)."""
    if value in ("none", "host", "bridge"):
        return value
    if value == "default":
        return "bridge"
    if value.startswith("container:"):
        if not value[len("container:"):]:
            raise _bad("network", value, "container: needs a container's name or id")
        return value
    if value.startswith("ns:"):
        if not value[3:].startswith("/"):
            raise _bad("network", value, "ns: needs the absolute path of a network "
                       "namespace")
        return value
    if not _is_name(value):
        raise _bad("network", value, "invalid network name, only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                   "are allowed")
    return value


def _ip(dest: str, value: str, version: int | None = None) -> str:
    import ipaddress

    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise _bad(dest, value, "not an IP address")
    if version is not None and ip.version != version:
        raise _bad(dest, value, f"not an IPv{version} address")
    return str(ip)


def _network_flags(o: ContainerOptions, f: dict) -> None:
    """-p, -P, --ip, --ip6, --mac-address, --network-alias, --dns*, --add-host."""
    from ...network import kind

    mode = kind(o.network)
    for p in f["publish"]:
        o.publish += _publish(p, o.network)
    o.publish_all = bool(f["publish_all"])
    if (o.publish or o.publish_all) and mode != "network":
        extra = ": with --network host the container already uses the host's ports" if (
            mode == "host") else ""
        raise InvalidOption(f"port publishing needs a network (--network bridge or a "
                            f"network's name), not --network {o.network}{extra}")
    if f["ip"] is not None:
        o.ip = _ip("ip", f["ip"], 4)
    if f["ip6"] is not None:
        o.ip6 = _ip("ip6", f["ip6"], 6)
    if f["mac_address"] is not None:
        o.mac_address = _mac_address(f["mac_address"])
    o.network_aliases = [_alias(a) for a in f["network_alias"]]
    if mode != "network":
        for dest in ("ip", "ip6", "mac_address"):
            if f[dest] is not None:
                raise InvalidOption(f"Conflicting options: {_DISPLAY[dest]} and the network "
                                    f"mode {o.network} (it needs a network)")
        if o.network_aliases:
            raise InvalidOption("Conflicting options: --network-alias and the network mode "
                                f"{o.network} (it needs a network)")
    o.dns = [_ip("dns", d) for d in f["dns"]]
    o.dns_search = [_dns_search(d) for d in f["dns_search"]]
    o.dns_options = [_dns_option(d) for d in f["dns_option"]]
    if mode in ("host", "container") and (o.dns or o.dns_search or o.dns_options):
        raise InvalidOption(f"Conflicting options: dns and the network mode {o.network}")
    if mode == "container" and (o.hostname or f["add_host"]):
        raise InvalidOption(f"Conflicting options: {'hostname' if o.hostname else 'add-host'}"
                            f" and the network mode {o.network}")
    o.add_hosts = [_add_host(h) for h in f["add_host"]]


def _mac_address(value: str) -> str:
    parts = value.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF"
                                                      for c in p) for p in parts):
        raise _bad("mac_address", value, "invalid MAC address (six hex pairs, "
                   "02:42:ac:11:00:02)")
    if int(parts[0], 16) & 1:
        raise _bad("mac_address", value, "a multicast MAC address cannot be an interface's")
    return value.lower()


def _alias(value: str) -> str:
    if not value or len(value) > 253 or not value.isascii() or not all(
            c.isalnum() or c in "-._" for c in value) or value.startswith(("-", ".")):
        raise _bad("network_alias", value, "invalid alias (letters, digits, '-', '_', '.')")
    return value


def _dns_search(value: str) -> str:
    if value != "." and (not value or not value.isascii() or any(c.isspace() for c in value)):
        raise _bad("dns_search", value, "invalid search domain")
    return value


def _dns_option(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise _bad("dns_option", value, "invalid resolv.conf option")
    return value


def _add_host(value: str) -> str:
    sep = "=" if "=" in value else ":"
    name, _, ip = value.partition(sep)
    if not name or not ip or any(c.isspace() for c in name):
        raise _bad("add_host", value, "invalid argument, expected HOST:IP (or HOST=IP)")
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if ip != "host-gateway":
        ip = _ip("add_host", ip)
    return f"{name}:{ip}"


_IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def _sysctls(values: list[str], network: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, eq, val = v.partition("=")
        key = key.strip()
        if not eq or not key:
            raise _bad("sysctl", v, "expected KEY=VALUE")
        if "/" in key or ".." in key or key.startswith(".") or key.endswith("."):
            raise _bad("sysctl", v, f"invalid sysctl key '{key}'")
        if key.startswith("net."):
            if network.startswith("container:"):
                raise _bad("sysctl", v, f"sysctl '{key}' is not allowed with --network "
                           f"{network}: it would change the other container's network")
            if network == "host":
                raise _bad("sysctl", v, f"sysctl '{key}' is not allowed with --network host: "
                           "it would change the host's network settings")
        elif not (key in _IPC_SYSCTLS or key.startswith("fs.mqueue.")):
            raise _bad("sysctl", v, f"sysctl '{key}' is not allowed: only namespaced ones "
                       "are (kernel.msgmax, kernel.msgmnb, kernel.msgmni, kernel.sem, "
                       "kernel.shmall, kernel.shmmax, kernel.shmmni, kernel.shm_rmid_forced, "
                       "fs.mqueue.*, net.*)")
        out[key] = val
    return out


def _publish(value: str, network: str) -> list:
    from ...engine.options import PortRequest
    from ...network.ports import parse

    try:
        reqs = parse(value)
    except ValueError as e:
        raise _bad("publish", value, str(e))
    return [PortRequest(**r) for r in reqs]


def _port_range(text: str) -> tuple[int, int] | None:
    lo, dash, hi = text.partition("-")
    try:
        a = units.parse_int(lo)
        b = units.parse_int(hi) if dash else a
    except ValueError:
        return None
    if lo.startswith(("+", "-")) or hi.startswith(("+", "-")):
        return None
    return (a, b) if 1 <= a <= b <= 65535 else None


def _expose(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        ports, _, proto = v.partition("/")
        proto = proto.lower() or "tcp"
        if proto not in ("tcp", "udp", "sctp"):
            raise _bad("expose", v, f"invalid proto: {proto}")
        rng = _port_range(ports)
        if rng is None:
            raise _bad("expose", v, "invalid port (1-65535, or a range like 8000-8010)")
        for port in range(rng[0], rng[1] + 1):
            if f"{port}/{proto}" not in out:
                out.append(f"{port}/{proto}")
    return out


def _attach(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        s = v.lower()
        if s not in ("stdin", "stdout", "stderr"):
            raise _bad("attach", v, "valid streams are STDIN, STDOUT and STDERR")
        if s not in out:
            out.append(s)
    return out


# ---------------------------------------------------------------------------- devices, logs


def _device(spec: str) -> DeviceRequest:
    parts = spec.split(":")
    perms = "rwm"
    if len(parts) == 1:
        host, ctr = parts[0], parts[0]
    elif len(parts) == 2:
        host = parts[0]
        if _device_mode(parts[1]):
            ctr, perms = host, parts[1]
        else:
            ctr = parts[1]
    elif len(parts) == 3:
        host, ctr, perms = parts
        if not _device_mode(perms):
            raise _bad("device", spec, f"bad mode specified: {perms} (a subset of rwm)")
    else:
        raise _bad("device", spec, f"invalid device specification: {spec}")
    if not host.startswith("/"):
        raise _bad("device", spec, f"{host} is not an absolute path")
    if not ctr.startswith("/"):
        raise _bad("device", spec, f"{ctr} is not an absolute path")
    import stat

    try:
        st = os.stat(host)
    except OSError as e:
        raise _bad("device", spec, f"error gathering device information while adding custom "
                   f"device {host!r}: {e.strerror or e}")
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise _bad("device", spec, f"{host} is not a device node")
    return DeviceRequest(host, ctr, perms)


def _device_mode(text: str) -> bool:
    return 0 < len(text) <= 3 and all(c in "rwm" for c in text) and len(set(text)) == len(text)


def _logging(o: ContainerOptions, driver: str | None, opts: list[str]) -> None:
    if driver is not None:
        if driver not in ("json-file", "none"):
            raise _bad("log_driver", driver, "unsupported logging driver (json-file or none)")
        o.log_driver = driver
    given: dict[str, str] = {}
    for value in opts:
        for item in value.split(","):
            key, eq, val = item.partition("=")
            if not eq:
                raise _bad("log_opt", value, f"invalid log opt '{item}': expected KEY=VALUE")
            if o.log_driver == "none":
                raise _bad("log_opt", value, "the none logging driver takes no options")
            if key not in ("max-size", "max-file"):
                raise _bad("log_opt", value, f"unknown log opt '{key}' for json-file log "
                           "driver (max-size and max-file are supported)")
            given[key] = val
    if "max-size" in given:
        val = given["max-size"]
        try:
            size = units.from_human_size(val)
        except ValueError as e:
            raise _bad("log_opt", f"max-size={val}", str(e))
        if size <= 0:
            raise _bad("log_opt", f"max-size={val}", "max-size must be a positive number")
        o.log_max_size = size
    if "max-file" in given:
        val = given["max-file"]
        try:
            n = units.parse_int(val)
        except ValueError:
            raise _bad("log_opt", f"max-file={val}", "max-file must be an integer")
        if n < 1:
            raise _bad("log_opt", f"max-file={val}", "max-file cannot be less than 1")
        if n > 1 and o.log_max_size is None:
            raise _bad("log_opt", f"max-file={val}", "max-file needs max-size (there is "
                       "nothing to rotate without it)")
        o.log_max_file = n


# ---------------------------------------------------------------------------- platform


_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "armv7l": "arm", "armv6l": "arm", "i686": "386", "i386": "386", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64", "loongarch64": "loong64"}


def _platform(value: str) -> None:
    """Only the host's own platform: there is no emulation."""
    host = _ARCH.get(os.uname().machine, os.uname().machine)
    parts = value.lower().split("/")
    ok = parts[0] == "linux" and len(parts) <= 3 and (
        len(parts) == 1 or _ARCH.get(parts[1], parts[1]) == host)
    if ok and len(parts) == 3:
        ok = parts[2] in {"amd64": ("v1", "v2", "v3", "v4"), "arm64": ("v8",),
                          "arm": ("v6", "v7")}.get(host, ())
    if not ok:
        raise _bad("platform", value, f"only the host's platform linux/{host} is supported "
                   "(no emulation)")


# ---------------------------------------------------------------------------- namespaces,
# cidfile, health, CDI: the flags of issue 13


def _more_flags(o: ContainerOptions, f: dict) -> None:
    """--cidfile, the namespace modes, --domainname, --memory-reservation, --oom-score-adj,
    --blkio-weight, --volumes-from, --device-cgroup-rule, --gpus, --health-*."""
    if f["cidfile"] is not None:
        if not f["cidfile"]:
            raise _bad("cidfile", f["cidfile"], "the container ID file path is empty")
        o.cidfile = os.path.abspath(f["cidfile"])
    o.pid_mode = _ns_mode("pid", f["pid"], ("host",), joinable=True)
    o.ipc_mode = _ns_mode("ipc", f["ipc"], ("host", "private", "shareable", "none"),
                          joinable=True)
    o.uts_mode = _ns_mode("uts", f["uts"], ("host",))
    o.cgroupns_mode = _ns_mode("cgroupns", f["cgroupns"], ("host", "private"))
    if f["userns"] not in (None, "", "host"):
        raise _bad("userns", f["userns"], "only --userns host is supported (user namespace "
                   "remapping is not)")
    if f["domainname"]:
        o.domainname = _domainname(f["domainname"])
    if o.uts_mode == "host" and (o.hostname or o.domainname):
        raise InvalidOption("Conflicting options: hostname and the UTS mode" if o.hostname
                            else "Conflicting options: domainname and the UTS mode")
    if f["memory_reservation"] is not None:
        res = _size("memory_reservation", f["memory_reservation"]) or None
        if res is not None and res < _MIN_MEMORY:
            raise _bad("memory_reservation", f["memory_reservation"],
                       "Minimum memory reservation allowed is 6MB")
        if res is not None and o.memory and res > o.memory:
            raise InvalidOption("Minimum memory limit can not be less than memory reservation "
                                "limit, see usage")
        o.memory_reservation = res
    if f["oom_score_adj"] is not None:
        n = _int("oom_score_adj", f["oom_score_adj"])
        if not -1000 <= n <= 1000:
            raise _bad("oom_score_adj", f["oom_score_adj"], f"Invalid value {n}, range for "
                       "oom score adj is [-1000, 1000]")
        o.oom_score_adj = n
    if f["blkio_weight"] is not None:
        o.blkio_weight = blkio_weight(f["blkio_weight"])
    o.volumes_from = [_volumes_from(v) for v in f["volumes_from"]]
    for rule in f["device_cgroup_rule"]:
        from ...engine.device_rules import DeviceRuleError, parse_rule

        try:
            parse_rule(rule)
        except DeviceRuleError as e:
            raise _bad("device_cgroup_rule", rule, str(e))
        o.device_cgroup_rules.append(rule)
    if f["gpus"] is not None:
        o.cdi_devices += _gpus(f["gpus"])
    o.healthcheck = _healthcheck(f)


def _domainname(value: str) -> str:
    if len(value) > 255 or value.startswith(("-", ".")) or not value.isascii() or not all(
            c.isalnum() or c in "-._" for c in value):
        raise _bad("domainname", value, "invalid domain name (letters, digits, '-', '.')")
    return value


def _ns_mode(dest: str, value: str | None, words: tuple[str, ...], *,
             joinable: bool = False) -> str | None:
    if value is None or value == "":
        return None
    if value in words:
        return value
    if joinable and value.startswith("container:") and value[len("container:"):]:
        return value
    allowed = ", ".join(words + (("container:NAME",) if joinable else ()))
    raise _bad(dest, value, f"invalid {dest} mode (one of {allowed})")


def blkio_weight(value: str) -> int:
    """--blkio-weight: 10 to 1000 (0: unset), where the kernel has the weight at all."""
    n = _int("blkio_weight", value)
    if n != 0 and not 10 <= n <= 1000:
        raise _bad("blkio_weight", value, "Range of blkio weight is from 10 to 1000")
    return n


def _volumes_from(value: str) -> str:
    name, colon, mode = value.partition(":")
    if not name or (colon and mode not in ("ro", "rw")):
        raise _bad("volumes_from", value, "expected CONTAINER[:ro|rw]")
    return value


def _is_cdi_name(text: str) -> bool:
    """vendor.com/class=name (a CDI device's fully qualified name), not a path."""
    kind, eq, name = text.partition("=")
    return bool(eq and name) and not text.startswith("/") and "/" in kind


def _gpus(value: str) -> list[str]:
    """--gpus all | N | "device=0,1": NVIDIA's CDI names (nvidia.com/gpu=...), as Docker
    maps --gpus onto CDI; the spec must exist on the host (checked at create)."""
    text = value.strip().strip('"')
    if text.startswith("device="):
        ids = [d for d in text[len("device="):].split(",") if d]
        if not ids:
            raise _bad("gpus", value, "device= needs ids")
        return [f"nvidia.com/gpu={d}" for d in ids]
    if text == "all" or text == "-1":
        return ["nvidia.com/gpu=all"]
    if text.isdigit() and int(text) > 0:
        return [f"nvidia.com/gpu={i}" for i in range(int(text))]
    raise _bad("gpus", value, "expected all, a count or device=IDS")


def _duration(dest: str, value: str) -> int:
    from ...engine.health import parse_duration

    try:
        ns = parse_duration(value)
    except ValueError as e:
        raise _bad(dest, value, str(e))
    if ns < 0:
        raise _bad(dest, value, "a duration cannot be negative")
    return ns


_HEALTH_FIELDS = (("health_interval", "Interval", "Interval"),
                  ("health_timeout", "Timeout", "Timeout"),
                  ("health_start_period", "StartPeriod", "StartPeriod"),
                  ("health_start_interval", "StartInterval", "StartInterval"))


def _healthcheck(f: dict) -> dict | None:
    given = [d for d in ("health_cmd", "health_interval", "health_timeout", "health_retries",
                         "health_start_period", "health_start_interval") if f[d] is not None]
    if f["no_healthcheck"]:
        if given:
            raise InvalidOption("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    check: dict = {}
    if f["health_cmd"]:
        check["Test"] = ["CMD-SHELL", f["health_cmd"]]
    for dest, key, what in _HEALTH_FIELDS:
        if f[dest] is not None:
            ns = _duration(dest, f[dest])
            if 0 < ns < 1_000_000:
                raise _bad(dest, f[dest], f"{what} in Healthcheck cannot be less than 1ms")
            check[key] = ns
    if f["health_retries"] is not None:
        n = _int("health_retries", f["health_retries"])
        if n < 0:
            raise _bad("health_retries", f["health_retries"], "--health-retries cannot be "
                       "negative")
        check["Retries"] = n
    return check
