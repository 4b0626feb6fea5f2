"""Docker's views of a container: the `inspect` document and the `ps` row."""

from __future__ import annotations

import time

from ..jsonio import loads
from .status import CREATED, EXITED, PAUSED, REMOVING, RUNNING, finished, live_state


def rfc3339(ts: float | None) -> str:
    if not ts:
        return "0001-01-01T00:00:00Z"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


def container_state(paths, row) -> dict:
    state = live_state(row)
    code, when = (row["exit_code"], row["finished_at"])
    if state == EXITED:
        code, when = finished(paths, row)
    return {
        "Status": state,
        "Running": state in (RUNNING, PAUSED),
        "Paused": state == PAUSED,
        "Restarting": False,
        "OOMKilled": bool(row["oom_killed"]),
        "Dead": False,
        "Pid": row["pid"] if state in (RUNNING, PAUSED) else 0,
        "ExitCode": code if state == EXITED else 0,
        "Error": row["error"],
        "StartedAt": rfc3339(row["started_at"]),
        "FinishedAt": rfc3339(when if state == EXITED else None),
        **_health(paths, row["id"]),
    }


def _health(paths, cid: str) -> dict:
    """State.Health, for a container with a healthcheck (sangja.engine.health)."""
    from .health import read_state

    state = read_state(paths, cid)
    return {"Health": state} if state is not None else {}


def container_document(engine, row) -> dict:
    """What `docker container inspect` shows, for the fields sangja has."""
    from ..network.report import network_settings, port_bindings

    opts = engine.options(row)
    paths = engine.paths
    image_config: dict = {}
    try:
        image_config = engine.images.config(row["image_id"]).get("config") or {}
    except Exception:  # noqa: BLE001 - the image may be gone (rmi -f)
        pass
    env = list(image_config.get("Env") or [])
    keys = {e.partition("=")[0]: i for i, e in enumerate(env)}
    for e in opts.env:
        k = e.partition("=")[0]
        if k in keys:
            env[keys[k]] = e
        else:
            keys[k] = len(env)
            env.append(e)
    mounts = []
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
        mounts.append(entry)
    return {
        "Id": row["id"],
        "Created": rfc3339(row["created"]),
        "Path": row["path"],
        "Args": loads(row["args"]),
        "State": container_state(paths, row),
        "Image": row["image_id"],
        "ResolvConfPath": f"{paths.container_dir(row['id'])}/resolv.conf",
        "HostnamePath": f"{paths.container_dir(row['id'])}/hostname",
        "HostsPath": f"{paths.container_dir(row['id'])}/hosts",
        "LogPath": paths.log_path(row["id"]) if opts.log_driver != "none" else "",
        "Name": "/" + row["name"],
        "RestartCount": row["restart_count"],
        "Driver": "overlay",
        "Platform": "linux",
        "HostConfig": {
            "Binds": [f"{m.source}:{m.target}{':ro' if m.readonly else ''}"
                      for m in opts.mounts if m.type == "bind"],
            "LogConfig": {"Type": opts.log_driver, "Config": {
                k: str(v) for k, v in (("max-size", opts.log_max_size),
                                       ("max-file", opts.log_max_file if opts.log_max_size
                                        else None)) if v}},
            "NetworkMode": "default" if opts.network == "bridge" else opts.network,
            "PortBindings": port_bindings(opts),
            "PublishAllPorts": opts.publish_all,
            "Dns": opts.dns,
            "DnsSearch": opts.dns_search,
            "DnsOptions": opts.dns_options,
            "ExtraHosts": opts.add_hosts or None,
            "RestartPolicy": {"Name": opts.restart.name,
                              "MaximumRetryCount": opts.restart.maximum_retry_count},
            "AutoRemove": opts.rm,
            "CapAdd": opts.cap_add or None,
            "CapDrop": opts.cap_drop or None,
            "Privileged": opts.privileged,
            "ReadonlyRootfs": opts.read_only,
            "SecurityOpt": ([*(["no-new-privileges"] if opts.no_new_privileges else []),
                             *([f"seccomp={opts.seccomp}"] if opts.seccomp else []),
                             *(["label=disable"] if opts.label_disable else [])] or None),
            "Memory": opts.memory or 0,
            "MemorySwap": opts.memory_swap or 0,
            "NanoCpus": int((opts.cpus or 0) * 1e9),
            "CpuShares": opts.cpu_shares or 0,
            "CpusetCpus": opts.cpuset_cpus or "",
            "PidsLimit": opts.pids_limit,
            "Ulimits": [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in opts.ulimits]
            or None,
            "ShmSize": opts.shm_size,
            "Sysctls": opts.sysctls or None,
            "Devices": [{"PathOnHost": d.host_path, "PathInContainer": d.container_path,
                         "CgroupPermissions": d.permissions} for d in opts.devices] or None,
            "Init": opts.init,
            "Runtime": opts.runtime,
            "GroupAdd": opts.group_add or None,
            "ContainerIDFile": opts.cidfile or "",
            "PidMode": opts.pid_mode or "",
            "IpcMode": opts.ipc_mode or "private",
            "UTSMode": opts.uts_mode or "",
            "CgroupnsMode": opts.cgroupns_mode or "",
            "MemoryReservation": opts.memory_reservation or 0,
            "OomScoreAdj": opts.oom_score_adj or 0,
            "BlkioWeight": opts.blkio_weight or 0,
            "VolumesFrom": opts.volumes_from or None,
            "DeviceCgroupRules": opts.device_cgroup_rules or None,
            "DeviceRequests": None,
            "Tmpfs": {m.target: ",".join(m.options) for m in opts.mounts if m.type == "tmpfs"}
            or None,
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": opts.hostname or row["id"][:12],
            "User": opts.user if opts.user is not None else image_config.get("User", ""),
            "AttachStdin": opts.interactive and not opts.detach,
            "AttachStdout": not opts.detach,
            "AttachStderr": not opts.detach,
            "Tty": opts.tty,
            "OpenStdin": opts.interactive,
            "StdinOnce": opts.interactive and not opts.detach,
            "Env": env,
            "Cmd": opts.command or (None if opts.entrypoint is not None
                                    else image_config.get("Cmd")),
            "Image": row["image_name"],
            "WorkingDir": opts.workdir or image_config.get("WorkingDir", ""),
            "Entrypoint": (opts.entrypoint if opts.entrypoint is not None
                           else image_config.get("Entrypoint")) or None,
            "Labels": {**(image_config.get("Labels") or {}), **opts.labels},
            "StopSignal": opts.stop_signal or "SIGTERM",
            "Domainname": opts.domainname or "",
            **({"Healthcheck": opts.healthcheck or image_config.get("Healthcheck")}
               if opts.healthcheck or image_config.get("Healthcheck") else {}),
            **({"StopTimeout": opts.stop_timeout} if opts.stop_timeout is not None else {}),
        },
        "NetworkSettings": network_settings(
            paths.runroot, row["id"], row["name"], opts, container_state(paths, row)["Running"],
            sorted(set(image_config.get("ExposedPorts") or {}) | set(opts.expose))),
    }


def ps_entry(engine, row, now: float) -> dict:
    """One `ps` row, with Docker's --format json field names."""
    from ..humanize import docker_time, since
    from ..network.attach import read_state
    from ..network.report import ps_ports
    from .status import docker_status

    opts = engine.options(row)
    args = [row["path"], *loads(row["args"])]
    state = live_state(row)
    return {
        "ID": row["id"],
        "Image": row["image_name"],
        "ImageID": row["image_id"],
        "Command": " ".join(args),
        "CreatedAt": docker_time(row["created"]),
        "RunningFor": since(row["created"]).removesuffix(" ago"),
        "Status": docker_status(engine.paths, row, now),
        "State": state,
        "Ports": ps_ports(read_state(engine.paths.runroot, row["id"])) if opts.publish or
        opts.publish_all else "",
        "Names": row["name"],
        "Labels": ",".join(f"{k}={v}" for k, v in opts.labels.items()),
        "Mounts": ",".join(m.source or "" for m in opts.mounts if m.type == "volume"),
        "Networks": opts.network,
        "ExitCode": (finished(engine.paths, row)[0] if state == EXITED else 0),
        "_labels": opts.labels,
    }


__all__ = ["CREATED", "EXITED", "PAUSED", "REMOVING", "RUNNING", "container_document",
           "container_state", "ps_entry", "rfc3339"]
