"""Docker's container create body (Config, HostConfig, NetworkingConfig) -> the engine's
ContainerOptions.

The body is spelled as the `sangja create` flags it stands for and parsed by the same
parser (sangja.cli.engine.run_flags): the API and the CLI accept, refuse and default
exactly alike, with one set of rules. What has no flag (a list entrypoint, more than one
network) is set afterwards. A field sangja cannot honour is refused (400), never ignored."""

from __future__ import annotations

from ..engine.options import ContainerOptions, NetworkAttachment
from .errors import bad_request

# Values Docker's clients send for what sangja does not do: accepted when left at these.
_DEFAULTS_ONLY = {
    "IpcMode": ("", "private", "shareable", None),
    "PidMode": ("", None),
    "UTSMode": ("", None),
    "UsernsMode": ("", None),
    "CgroupnsMode": ("", "private", None),
    "Cgroup": ("", None),
    "CgroupParent": ("", None),
    "VolumeDriver": ("", "local", None),
    "Isolation": ("", "default", None),
    "ContainerIDFile": ("", None),
    "OomScoreAdj": (0, None),
    "OomKillDisable": (False, None),
    "BlkioWeight": (0, None),
    "CpuPeriod": (0, None),
    "CpuQuota": (0, None),
    "CpuRealtimePeriod": (0, None),
    "CpuRealtimeRuntime": (0, None),
    "KernelMemory": (0, None),
    "MemoryReservation": (0, None),
    "MemorySwappiness": (-1, None),
    "CpusetMems": ("", None),
    "CpuCount": (0, None),
    "CpuPercent": (0, None),
}
_EMPTY_ONLY = ("Links", "VolumesFrom", "DeviceCgroupRules", "DeviceRequests",
               "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
               "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "StorageOpt")


def _list(value, what: str) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise bad_request(f"invalid {what}: expected a list")
    return value


def _dict(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"invalid {what}: expected an object")
    return value


def _port_flag(port: str, binding: dict) -> str:
    ip = binding.get("HostIp") or ""
    host = str(binding.get("HostPort") or "")
    if ip and ":" in ip:
        ip = f"[{ip}]"
    if ip:
        return f"{ip}:{host}:{port}"
    return f"{host}:{port}" if host else port


def _mount_flag(m: dict) -> str:
    kind = m.get("Type") or "volume"
    parts = [f"type={kind}"]
    if m.get("Source"):
        parts.append(f"source={m['Source']}")
    if not m.get("Target"):
        raise bad_request("invalid mount config: Target is required")
    parts.append(f"target={m['Target']}")
    if m.get("ReadOnly"):
        parts.append("readonly")
    if kind == "bind" and (m.get("BindOptions") or {}).get("Propagation"):
        parts.append(f"bind-propagation={m['BindOptions']['Propagation']}")
    if kind == "volume" and (m.get("VolumeOptions") or {}).get("NoCopy"):
        parts.append("volume-nocopy")
    tmpfs = m.get("TmpfsOptions") or {}
    if kind == "tmpfs" and tmpfs.get("SizeBytes"):
        parts.append(f"tmpfs-size={tmpfs['SizeBytes']}")
    if kind == "tmpfs" and tmpfs.get("Mode"):
        parts.append(f"tmpfs-mode={tmpfs['Mode']:o}")
    return ",".join(parts)


def _bind_target(spec) -> str:
    parts = str(spec).split(":")
    return (parts[1] if len(parts) > 1 else parts[0]).rstrip("/")


def create_args(body: dict, name: str | None) -> tuple[list[str], list[str], dict]:
    """(flags, [IMAGE, CMD...], what is set after parsing)."""
    if not isinstance(body, dict):
        raise bad_request("invalid JSON: the create body must be an object")
    cfg = body
    host = _dict(body.get("HostConfig"), "HostConfig")
    net = _dict(body.get("NetworkingConfig"), "NetworkingConfig")
    image = cfg.get("Image")
    if not image or not isinstance(image, str):
        raise bad_request("Config.Image is required")
    a: list[str] = []
    after: dict = {}

    for key, allowed in _DEFAULTS_ONLY.items():
        if host.get(key) not in allowed:
            raise bad_request(f"HostConfig.{key}={host.get(key)!r} is not supported by sangja")
    for key in _EMPTY_ONLY:
        if host.get(key):
            raise bad_request(f"HostConfig.{key} is not supported by sangja")
    if cfg.get("Domainname"):
        raise bad_request("Config.Domainname is not supported by sangja")
    if cfg.get("NetworkDisabled"):
        a.append("--network=none")

    if name:
        a.append(f"--name={name}")
    if cfg.get("Hostname"):
        a.append(f"--hostname={cfg['Hostname']}")
    if cfg.get("User"):
        a.append(f"--user={cfg['User']}")
    if cfg.get("WorkingDir"):
        a.append(f"--workdir={cfg['WorkingDir']}")
    if cfg.get("Tty"):
        a.append("--tty")
    if cfg.get("OpenStdin"):
        a.append("--interactive")
    # "KEY" without a value would take the service's own variable: Docker's daemon does not
    for e in _list(cfg.get("Env"), "Env"):
        if isinstance(e, str) and "=" in e:
            a.append(f"--env={e}")
    for k, v in _dict(cfg.get("Labels"), "Labels").items():
        a.append(f"--label={k}={v}")
    for port in _dict(cfg.get("ExposedPorts"), "ExposedPorts"):
        a.append(f"--expose={port}")
    # Config.Volumes: anonymous volumes, except where a bind or mount covers the target
    # (compose sends both for a named volume, as dockerd takes them)
    covered = {_bind_target(b) for b in _list(host.get("Binds"), "Binds")}
    covered |= {(m or {}).get("Target", "").rstrip("/") for m in _list(host.get("Mounts"),
                                                                         "Mounts")}
    for target in _dict(cfg.get("Volumes"), "Volumes"):
        if target.rstrip("/") not in covered:
            a.append(f"--volume={target}")
    if cfg.get("StopSignal"):
        a.append(f"--stop-signal={cfg['StopSignal']}")
    if cfg.get("StopTimeout") is not None:
        a.append(f"--stop-timeout={cfg['StopTimeout']}")
    if cfg.get("MacAddress"):
        a.append(f"--mac-address={cfg['MacAddress']}")
    _healthcheck(cfg.get("Healthcheck"), a, after)

    for b in _list(host.get("Binds"), "Binds"):
        a.append(f"--volume={b}")
    for m in _list(host.get("Mounts"), "Mounts"):
        a.append(f"--mount={_mount_flag(_dict(m, 'Mounts'))}")
    for target, opts in _dict(host.get("Tmpfs"), "Tmpfs").items():
        a.append(f"--tmpfs={target}:{opts}" if opts else f"--tmpfs={target}")
    mode = host.get("NetworkMode") or "default"
    network = "bridge" if mode == "default" else mode
    if mode != "default":
        a.append(f"--network={mode}")
    for port, bindings in _dict(host.get("PortBindings"), "PortBindings").items():
        for binding in _list(bindings, "PortBindings") or [{}]:
            a.append(f"--publish={_port_flag(port, _dict(binding, 'PortBindings'))}")
    if host.get("PublishAllPorts"):
        a.append("--publish-all")
    policy = _dict(host.get("RestartPolicy"), "RestartPolicy")
    if policy.get("Name") not in (None, "", "no"):
        count = policy.get("MaximumRetryCount") or 0
        a.append(f"--restart={policy['Name']}" + (f":{count}" if count else ""))
    if host.get("AutoRemove"):
        a.append("--rm")
    for flag, key in (("--cap-add", "CapAdd"), ("--cap-drop", "CapDrop"),
                      ("--security-opt", "SecurityOpt"), ("--dns", "Dns"),
                      ("--dns-option", "DnsOptions"), ("--dns-search", "DnsSearch"),
                      ("--add-host", "ExtraHosts"), ("--group-add", "GroupAdd")):
        for v in _list(host.get(key), key):
            a.append(f"{flag}={v}")
    for k, v in _dict(host.get("Sysctls"), "Sysctls").items():
        a.append(f"--sysctl={k}={v}")
    for u in _list(host.get("Ulimits"), "Ulimits"):
        u = _dict(u, "Ulimits")
        a.append(f"--ulimit={u.get('Name')}={u.get('Soft')}:{u.get('Hard')}")
    for d in _list(host.get("Devices"), "Devices"):
        d = _dict(d, "Devices")
        a.append(f"--device={d.get('PathOnHost')}:{d.get('PathInContainer') or d.get('PathOnHost')}"
                 f":{d.get('CgroupPermissions') or 'rwm'}")
    for flag, key in (("--privileged", "Privileged"), ("--read-only", "ReadonlyRootfs"),
                      ("--init", "Init")):
        if host.get(key):
            a.append(flag)
    for flag, key in (("--memory", "Memory"), ("--cpu-shares", "CpuShares"),
                      ("--shm-size", "ShmSize")):
        if host.get(key):
            a.append(f"{flag}={int(host[key])}")
    if host.get("MemorySwap"):
        a.append(f"--memory-swap={int(host['MemorySwap'])}")
    if host.get("NanoCpus"):
        a.append(f"--cpus={int(host['NanoCpus']) / 1e9:.9f}".rstrip("0").rstrip("."))
    if host.get("CpusetCpus"):
        a.append(f"--cpuset-cpus={host['CpusetCpus']}")
    if host.get("PidsLimit"):
        a.append(f"--pids-limit={int(host['PidsLimit'])}")
    if host.get("Runtime"):
        runtime = "sangja-runtime" if host["Runtime"] == "sangja" else host["Runtime"]
        a.append(f"--runtime={runtime}")
    log = _dict(host.get("LogConfig"), "LogConfig")
    if log.get("Type"):
        a.append(f"--log-driver={log['Type']}")
    for k, v in _dict(log.get("Config"), "LogConfig.Config").items():
        a.append(f"--log-opt={k}={v}")

    endpoints = _dict(net.get("EndpointsConfig"), "EndpointsConfig")
    extra = []
    for net_name, ep in endpoints.items():
        ep = _dict(ep, "EndpointsConfig")
        ipam = _dict(ep.get("IPAMConfig"), "IPAMConfig")
        aliases = [x for x in _list(ep.get("Aliases"), "Aliases") if x]
        if net_name in (network, mode) or (net_name == "bridge" and mode == "default"):
            if network not in ("bridge", "host", "none") and not network.startswith(
                    "container:"):
                a += [f"--network-alias={x}" for x in aliases]
            if ipam.get("IPv4Address"):
                a.append(f"--ip={ipam['IPv4Address']}")
            if ipam.get("IPv6Address"):
                a.append(f"--ip6={ipam['IPv6Address']}")
            if ep.get("MacAddress") and not cfg.get("MacAddress"):
                a.append(f"--mac-address={ep['MacAddress']}")
        else:
            extra.append(NetworkAttachment(name=net_name, aliases=aliases,
                                           ip=ipam.get("IPv4Address") or None,
                                           ip6=ipam.get("IPv6Address") or None))
    if extra:
        after["extra_networks"] = extra

    entrypoint = cfg.get("Entrypoint")
    if entrypoint is not None:
        ep = _list(entrypoint, "Entrypoint")
        after["entrypoint"] = [] if ep in ([], [""]) else [str(x) for x in ep]
    cmd = [str(x) for x in _list(cfg.get("Cmd"), "Cmd")]
    return a, [image, *cmd], after


def _healthcheck(hc, a: list[str], after: dict) -> None:
    """Config.Healthcheck: the same document the run flags make (Test, durations in ns,
    Retries), checked here and set after parsing, so that CMD's exec form stays one
    (--health-cmd only has the shell form)."""
    if not hc:
        return
    hc = _dict(hc, "Healthcheck")
    test = [str(x) for x in _list(hc.get("Test"), "Healthcheck.Test")]
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise bad_request(f"Healthcheck.Test: unknown kind {test[0]!r} "
                          "(want NONE, CMD or CMD-SHELL)")
    if test[:1] == ["NONE"]:
        a.append("--no-healthcheck")
        return
    check: dict = {}
    if test:
        if len(test) < 2:
            raise bad_request("Healthcheck.Test: a command is required")
        check["Test"] = test
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        value = hc.get(key)
        if value:
            if not isinstance(value, int) or value < 0:
                raise bad_request(f"Healthcheck.{key}: a duration in nanoseconds is required")
            if value < 1_000_000:
                raise bad_request(f"{key} in Healthcheck cannot be less than 1ms")
            check[key] = value
    retries = hc.get("Retries")
    if retries:
        if not isinstance(retries, int) or retries < 0:
            raise bad_request("Healthcheck.Retries cannot be negative")
        check["Retries"] = retries
    if check:
        after["healthcheck"] = check


def container_options(body: dict, name: str | None) -> ContainerOptions:
    """The create body as validated options (400 with the parser's message if bad)."""
    from ..cli.engine.common import UsageError
    from ..cli.engine.run_flags import parse_run_args
    from ..errors import SangjaError

    flags, rest, after = create_args(body, name)
    try:
        opts = parse_run_args([*flags, *rest], command="create")
    except (UsageError, SangjaError) as e:  # a bad value: the parser's own message
        raise bad_request(str(e)) from None
    for k, v in after.items():
        setattr(opts, k, v)
    return opts
