"""Docker's views of a container: the `inspect` document and the `ps` row."""

from __future__ import annotations

import time

from ..jsonio import loads
from .status import (
    CREATED,
    EXITED,
    PAUSED,
    REMOVING,
    RESTARTING,
    RUNNING,
    finished,
    live_state,
    view_state,
)


def rfc3339(ts: float | None) -> str:
    if not ts:
        return "0001-01-01T00:00:00Z"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


def container_state(paths, row) -> dict:
    """Docker's State. (State.Health, when the container has a healthcheck, comes after
    FinishedAt, as in Docker; absent otherwise.)"""
    state = view_state(paths, row)
    code, when = (row["exit_code"], row["finished_at"])
    if state in (EXITED, RESTARTING):
        code, when = finished(paths, row)
    return {
        "Status": state,
        "Running": state in (RUNNING, PAUSED, RESTARTING),
        "Paused": state == PAUSED,
        "Restarting": state == RESTARTING,
        "OOMKilled": bool(row["oom_killed"]),
        "Dead": False,
        "Pid": row["pid"] if state in (RUNNING, PAUSED) else 0,
        "ExitCode": code if state in (EXITED, RESTARTING) else 0,
        "Error": row["error"],
        "StartedAt": rfc3339(row["started_at"]),
        "FinishedAt": rfc3339(when if state in (EXITED, RESTARTING) else None),
        **_health(paths, row["id"]),
    }


def _health(paths, cid: str) -> dict:
    """State.Health, for a container with a healthcheck (sangja.engine.health)."""
    from .health import read_state

    state = read_state(paths, cid)
    return {"Health": state} if state is not None else {}


def container_document(engine, row) -> dict:
    """What `docker container inspect` shows: Docker's keys in Docker's order (the test
    compares the key set with a private dockerd's), with sangja's values where it has them
    and Docker's defaults where the feature does not exist here."""
    from ..network.report import network_settings

    opts = engine.options(row)
    paths = engine.paths
    image: dict = {}
    try:
        image = engine.image_config(row["image_id"])
    except Exception:  # noqa: BLE001 - the image may be gone (rmi -f)
        pass
    image_config = image.get("config") or {}
    env = list(image_config.get("Env") or [])
    keys = {e.partition("=")[0]: i for i, e in enumerate(env)}
    for e in opts.env:
        k = e.partition("=")[0]
        if k in keys:
            env[keys[k]] = e
        else:
            keys[k] = len(env)
            env.append(e)
    state = container_state(paths, row)
    cdir = paths.container_dir(row["id"])
    config: dict = {
        "Hostname": opts.hostname or row["id"][:12],
        "Domainname": opts.domainname or "",
        "User": opts.user if opts.user is not None else image_config.get("User", ""),
        "AttachStdin": opts.interactive and not opts.detach,
        "AttachStdout": not opts.detach,
        "AttachStderr": not opts.detach,
    }
    exposed = sorted(set(image_config.get("ExposedPorts") or {}) | set(opts.expose))
    if exposed:
        config["ExposedPorts"] = {p: {} for p in exposed}
    config.update({
        "Tty": opts.tty,
        "OpenStdin": opts.interactive,
        "StdinOnce": opts.interactive and not opts.detach,
        "Env": env,
        "Cmd": opts.command or (None if opts.entrypoint is not None
                                else image_config.get("Cmd")),
        "Image": row["image_name"],
        "Volumes": image_config.get("Volumes") or None,
        "WorkingDir": opts.workdir or image_config.get("WorkingDir", ""),
        "Entrypoint": (opts.entrypoint if opts.entrypoint is not None
                       else image_config.get("Entrypoint")) or None,
        "OnBuild": image_config.get("OnBuild") or None,
        "Labels": {**(image_config.get("Labels") or {}), **opts.labels},
    })
    healthcheck = opts.healthcheck or image_config.get("Healthcheck")
    if healthcheck:  # Docker's position: after Labels (the image's, or the run flags')
        config["Healthcheck"] = healthcheck
    stop_signal = opts.stop_signal or image_config.get("StopSignal")
    if stop_signal:
        config["StopSignal"] = stop_signal
    if opts.stop_timeout is not None:
        config["StopTimeout"] = opts.stop_timeout
    return {
        "Id": row["id"],
        "Created": rfc3339(row["created"]),
        "Path": row["path"],
        "Args": loads(row["args"]),
        "State": state,
        "Image": row["image_id"],
        "ResolvConfPath": f"{cdir}/resolv.conf",
        "HostnamePath": f"{cdir}/hostname",
        "HostsPath": f"{cdir}/hosts",
        "LogPath": paths.log_path(row["id"]) if opts.log_driver != "none" else "",
        "Name": "/" + row["name"],
        "RestartCount": row["restart_count"],
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": _exec_ids(paths, row["id"], state["Running"]),
        "HostConfig": host_config(opts),
        "GraphDriver": container_graph_driver(engine, row["id"], image),
        "Mounts": mounts(paths, opts),
        "Config": config,
        "NetworkSettings": network_settings(
            paths.runroot, row["id"], row["name"], opts, state["Running"], exposed),
    }


def _exec_ids(paths, cid: str, running: bool) -> list[str] | None:
    """The running exec sessions' ids; Docker's null when there are none."""
    if not running:
        return None
    from .exec import running_exec_ids

    return running_exec_ids(paths, cid) or None


def mounts(paths, opts) -> list[dict]:
    out = []
    for m in opts.mounts:
        entry = {"Type": m.type, "Destination": m.target, "RW": not m.readonly,
                 "Mode": ",".join(o for o in m.options if o in ("z", "Z")),
                 "Propagation": next((o for o in m.options if o.endswith(("private", "shared",
                                                                            "slave"))), "")}
        if m.type == "volume":
            entry.update(Name=m.source, Source=paths.volume_data(m.source), Driver="local")
        elif m.type == "bind":
            entry["Source"] = m.source
        else:
            entry["Source"] = ""
        out.append(entry)
    return out


def memory_swap(opts) -> int:
    """HostConfig.MemorySwap as Docker's daemon records it: twice --memory when only
    --memory is given (the swap it allows), -1 for unlimited, else what was asked."""
    if opts.memory_swap:
        return opts.memory_swap
    return 2 * opts.memory if opts.memory else 0


def host_config(opts) -> dict:
    """Docker's HostConfig: its 65 keys in its order, then the ones it omits when empty
    (Init, Sysctls, Tmpfs)."""
    from ..network.report import port_bindings
    from . import docker_defaults as dd

    get = opts.__dict__.get  # flags other work adds (--pid, --ipc, ...): Docker's default
    binds = [f"{m.source}:{m.target}{':ro' if m.readonly else ''}"
             for m in opts.mounts if m.type == "bind"]
    hc = {
        "Binds": binds or None,
        "ContainerIDFile": get("cidfile") or "",
        "LogConfig": {"Type": opts.log_driver, "Config": {
            k: str(v) for k, v in (("max-size", opts.log_max_size),
                                   ("max-file", opts.log_max_file if opts.log_max_size
                                    else None)) if v}},
        "NetworkMode": "default" if opts.network == "bridge" else opts.network,
        "PortBindings": port_bindings(opts),
        "RestartPolicy": {"Name": opts.restart.name,
                          "MaximumRetryCount": opts.restart.maximum_retry_count},
        "AutoRemove": opts.rm,
        "VolumeDriver": "",
        "VolumesFrom": get("volumes_from") or None,
        "CapAdd": opts.cap_add or None,
        "CapDrop": opts.cap_drop or None,
        "CgroupnsMode": get("cgroupns_mode") or _default_cgroupns(),
        "Dns": opts.dns,
        "DnsOptions": opts.dns_options,
        "DnsSearch": opts.dns_search,
        "ExtraHosts": opts.add_hosts or None,
        "GroupAdd": opts.group_add or None,
        "IpcMode": get("ipc_mode") or "private",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": get("oom_score_adj") or 0,
        "PidMode": get("pid_mode") or "",
        "Privileged": opts.privileged,
        "PublishAllPorts": opts.publish_all,
        "ReadonlyRootfs": opts.read_only,
        "SecurityOpt": ([*(["no-new-privileges"] if opts.no_new_privileges else []),
                         *([f"seccomp={opts.seccomp}"] if opts.seccomp else []),
                         *(["label=disable"] if opts.label_disable else [])] or None),
        "UTSMode": get("uts_mode") or "",
        "UsernsMode": get("userns_mode") or "",
        "ShmSize": opts.shm_size,
        "Runtime": opts.runtime,
        "ConsoleSize": [0, 0],
        "Isolation": "",
        "CpuShares": opts.cpu_shares or 0,
        "Memory": opts.memory or 0,
        "NanoCpus": int((opts.cpus or 0) * 1e9),
        "CgroupParent": "",
        "BlkioWeight": get("blkio_weight") or 0,
        "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [],
        "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [],
        "CpuPeriod": 0,
        "CpuQuota": 0,
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "CpusetCpus": opts.cpuset_cpus or "",
        "CpusetMems": "",
        "Devices": [{"PathOnHost": d.host_path, "PathInContainer": d.container_path,
                     "CgroupPermissions": d.permissions} for d in opts.devices],
        "DeviceCgroupRules": get("device_cgroup_rules") or None,
        "DeviceRequests": None,
        "KernelMemory": 0,
        "KernelMemoryTCP": 0,
        "MemoryReservation": get("memory_reservation") or 0,
        "MemorySwap": memory_swap(opts),
        "MemorySwappiness": None,
        "OomKillDisable": False,
        "PidsLimit": opts.pids_limit,
        "Ulimits": [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in opts.ulimits],
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "MaskedPaths": None if opts.privileged else dd.masked_paths(),
        "ReadonlyPaths": None if opts.privileged else list(dd.READONLY_PATHS),
    }
    if opts.init:
        hc["Init"] = True
    if opts.sysctls:
        hc["Sysctls"] = opts.sysctls
    tmpfs = {m.target: ",".join(m.options) for m in opts.mounts if m.type == "tmpfs"}
    if tmpfs:
        hc["Tmpfs"] = tmpfs
    return hc


def _default_cgroupns() -> str:
    """Docker's default: a private cgroup namespace on cgroup v2, the host's on v1/hybrid
    (as sangja.engine.spec makes it)."""
    import os

    return "private" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "host"


def container_graph_driver(engine, cid: str, image: dict) -> dict:
    """GraphDriver: the image's layer directories (top first) under the container's own
    upper, work and merged directories, as Docker's overlay2 shows them."""
    import os

    from ..image.readonly import layer_path

    root = engine.paths.root
    layers = [layer_path(root, d)
              for d in reversed((image.get("rootfs") or {}).get("diff_ids") or [])]
    base = os.path.join(engine.paths.snapshots, "overlay", cid)  # image.snapshots' layout
    data = {"LowerDir": ":".join(layers), "MergedDir": f"{base}/merged",
            "UpperDir": f"{base}/upper", "WorkDir": f"{base}/work"}
    return {"Data": data, "Name": "overlay"}


def image_document(store, name: str) -> dict:
    """What `docker image inspect` shows: Docker's keys in Docker's order, from the
    store's record of the image and its config blob; then sangja's Digest and History."""
    raw = store.inspect(name)
    config = store.config(raw["Id"])
    image_config = dict(raw.get("Config") or {})
    layers = raw["RootFS"]["Layers"]
    dirs = [store.layer_path(d) for d in reversed(layers)]
    graph_data: dict[str, str] = {"UpperDir": dirs[0]} if dirs else {}
    if len(dirs) > 1:
        graph_data["LowerDir"] = ":".join(dirs[1:])
    graph = {"Data": graph_data, "Name": "overlay"}
    return {
        "Id": raw["Id"],
        "RepoTags": raw["RepoTags"],
        "RepoDigests": raw["RepoDigests"],
        "Parent": config.get("parent") or "",
        "Comment": config.get("comment") or "",
        "Created": raw["Created"],
        "Container": config.get("container") or "",
        "ContainerConfig": _full_config(config.get("container_config") or {}),
        "DockerVersion": config.get("docker_version") or "",
        "Author": config.get("author") or "",
        "Config": _full_config(image_config),
        "Architecture": raw["Architecture"],
        **({"Variant": config["variant"]} if config.get("variant") else {}),
        "Os": raw["Os"],
        "Size": raw["Size"],
        "VirtualSize": raw["Size"],
        "GraphDriver": graph,
        "RootFS": raw["RootFS"],
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        # sangja's own, after docker's: the manifest digest and the config's history
        "Digest": raw.get("Digest"),
        "History": raw.get("History", []),
    }


# Docker's container config keys with their zero values (image Config and ContainerConfig
# show every one of them; the ones Docker omits when empty are kept only when set).
_CONFIG_KEYS = (("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
                ("AttachStdout", False), ("AttachStderr", False), ("ExposedPorts", ...),
                ("Tty", False), ("OpenStdin", False), ("StdinOnce", False), ("Env", None),
                ("Cmd", None), ("Healthcheck", ...), ("ArgsEscaped", ...), ("Image", ""),
                ("Volumes", None), ("WorkingDir", ""), ("Entrypoint", None), ("OnBuild", None),
                ("Labels", None), ("StopSignal", ...), ("Shell", ...))


def _full_config(c: dict) -> dict:
    out = {}
    for key, zero in _CONFIG_KEYS:
        if key in c and c[key] is not None:
            out[key] = c[key]
        elif zero is not ...:
            out[key] = zero
    return out


def _ps_ports(engine, cid: str) -> str:
    from ..network.attach import read_state
    from ..network.report import ps_ports

    return ps_ports(read_state(engine.paths.runroot, cid))


def ps_entry(engine, row, now: float) -> dict:
    """One `ps` row, with Docker's --format json field names."""
    from ..humanize import docker_time, since
    from .status import docker_status

    opts = engine.options(row)
    args = [row["path"], *loads(row["args"])]
    state = live_state(row)
    if state == EXITED and opts.restart.name != "no":
        state = view_state(engine.paths, row)
    return {
        "ID": row["id"],
        "Image": row["image_name"],
        "ImageID": row["image_id"],
        "Command": " ".join(args),
        "CreatedAt": docker_time(row["created"]),
        "RunningFor": since(row["created"]).removesuffix(" ago"),
        "Status": docker_status(engine.paths, row, now),
        "State": state,
        "Ports": _ps_ports(engine, row["id"]) if opts.publish or opts.publish_all else "",
        "Names": row["name"],
        "Labels": ",".join(f"{k}={v}" for k, v in opts.labels.items()),
        "Mounts": ",".join(m.source or "" for m in opts.mounts if m.type == "volume"),
        "Networks": opts.network,
        "ExitCode": (finished(engine.paths, row)[0] if state in (EXITED, RESTARTING) else 0),
        "_labels": opts.labels,
    }


__all__ = ["CREATED", "EXITED", "PAUSED", "REMOVING", "RESTARTING", "RUNNING",
           "container_document", "container_state", "host_config", "image_document", "ps_entry",
           "rfc3339"]
