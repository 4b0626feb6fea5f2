"""`/_ping`, `/version`, `/info`, `/system/df`, `/auth`, `/events`."""

from __future__ import annotations

import os
import platform

from .http import API_MAX, API_MIN, Request


def ping(req: Request):
    req.send_bytes(b"OK" if req.method == "GET" else b"", 200, "text/plain; charset=utf-8",
                   {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
                    "Builder-Version": "1"})


def _arch() -> str:
    from ..image.store import goarch

    return goarch()


def version(req: Request):
    from .. import __version__

    kernel = os.uname().release
    component = {"Name": "Engine", "Version": __version__,
                 "Details": {"ApiVersion": API_MAX, "MinAPIVersion": API_MIN, "Os": "linux",
                             "Arch": _arch(), "KernelVersion": kernel,
                             "GitCommit": "sangja", "GoVersion": platform.python_version(),
                             "Experimental": "false"}}
    return {"Platform": {"Name": "sangja"}, "Components": [component],
            "Version": __version__, "ApiVersion": API_MAX, "MinAPIVersion": API_MIN,
            "GitCommit": "sangja", "GoVersion": "python" + platform.python_version(),
            "Os": "linux", "Arch": _arch(), "KernelVersion": kernel,
            "BuildTime": "", "Experimental": False}


def info(req: Request):
    from .. import __version__
    from ..engine.status import PAUSED, RUNNING, live_state
    from ..linux.cgroups import mode

    eng = req.engine
    rows = eng.db.all()
    states = [live_state(r) for r in rows]
    running = sum(s == RUNNING for s in states)
    paused = sum(s == PAUSED for s in states)
    images = len(eng.images.images())
    cg = mode()
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    u = os.uname()
    return {
        "ID": "sangja", "Containers": len(rows), "ContainersRunning": running,
        "ContainersPaused": paused, "ContainersStopped": len(rows) - running - paused,
        "Images": images, "Driver": "overlay2", "DriverStatus": [],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none", "macvlan"],
                    "Authorization": None, "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "CPUShares": True, "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": True,
        "Debug": req.service.debug, "NFd": len(os.listdir("/proc/self/fd")),
        "NGoroutines": 0, "SystemTime": _now(), "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs", "CgroupVersion": "2" if cg == "unified" else "1",
        "NEventsListener": 0, "KernelVersion": u.release, "OperatingSystem": _os_name(),
        "OSVersion": "", "OSType": "linux", "Architecture": u.machine,
        "IndexServerAddress": "https://index.docker.io/v1/", "RegistryConfig": None,
        "NCPU": os.cpu_count() or 1, "MemTotal": mem, "DockerRootDir": req.service.root,
        "Name": u.nodename, "Labels": [], "ExperimentalBuild": False,
        "ServerVersion": __version__, "Runtimes": {"sangja-runtime": {"path": "sangja-runtime"},
                                                   "runc": {"path": "runc"}},
        "DefaultRuntime": "sangja-runtime", "LiveRestoreEnabled": False, "Isolation": "",
        "InitBinary": "tini", "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": None,
    }


def _now() -> str:
    import time

    from ..engine.inspect import rfc3339

    return rfc3339(time.time())


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.partition("=")[2].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def df(req: Request):
    from ..engine.usage import containers_usage, images_in_use, volumes_usage
    from ..image.gc import disk_usage
    from .images import _epoch

    root = req.service.root
    containers = containers_usage(root, req.service.runroot)
    volumes = volumes_usage(root)
    counts: dict[str, int] = {}
    for c in containers:
        if c.get("image_id"):
            counts[c["image_id"]] = counts.get(c["image_id"], 0) + 1
    store = req.engine.images
    in_use = images_in_use(root) | set(counts)
    images = disk_usage(store, in_use, counts)
    return {
        "LayersSize": images["size"],
        "Images": [{"Id": i["id"], "ParentId": "", "RepoTags": i["tags"], "RepoDigests": [],
                    "Created": _epoch(i["created"]), "Size": i["size"],
                    "SharedSize": i["shared_size"], "VirtualSize": i["size"], "Labels": {},
                    "Containers": i["containers"]} for i in images["images"]],
        "Containers": [{"Id": c.get("id"), "Names": ["/" + n for n in c.get("names") or []],
                        "Image": c.get("image"), "ImageID": c.get("image_id"),
                        "Command": c.get("command"), "Created": int(c.get("created") or 0),
                        "SizeRw": int(c.get("size") or 0), "State": c.get("state", ""),
                        "Status": c.get("status", ""), "Labels": {}, "Mounts": []}
                       for c in containers],
        "Volumes": [{"Name": v.get("name"), "Driver": "local", "Mountpoint": v.get("mountpoint",
                     ""), "Labels": {}, "Scope": "local", "Options": None,
                     "UsageData": {"Size": int(v.get("size") or 0),
                                   "RefCount": int(v.get("links") or 0)}} for v in volumes],
        "BuildCache": [],
    }


def auth(req: Request):
    """Check credentials against the registry's API (as dockerd does) without keeping
    them: the docker CLI keeps them and sends them with each pull or push
    (X-Registry-Auth)."""
    import tempfile

    from ..registry.auth import Credentials
    from ..registry.logins import login
    from ..registry.options import Options
    from .errors import ApiError, bad_request

    body = req.json({}) or {}
    if not isinstance(body, dict) or not body.get("username") or not body.get("password"):
        raise bad_request("auth needs username and password")
    server = body.get("serveraddress") or "docker.io"
    server = server.removeprefix("https://").removeprefix("http://").rstrip("/")
    if server in ("index.docker.io/v1", "index.docker.io"):
        server = "docker.io"
    with tempfile.TemporaryDirectory(prefix="sangja-auth-") as d:
        options = Options(auth_file=os.path.join(d, "auth.json"))
        try:
            login(server, Credentials(body["username"], body["password"]), options=options)
        except Exception as e:  # noqa: BLE001 - the registry's answer, as Docker's 401
            raise ApiError(401, str(e)) from None
        finally:
            options.close()
    return {"Status": "Login Succeeded", "IdentityToken": ""}


_NOT_HERE = ("config", "daemon", "node", "plugin", "secret", "service")


def events(req: Request):
    """The engine's event log (sangja.engine.events: what the CLI and this service did),
    Docker's query: from `since` (default: now) until `until` (default: until the client
    goes), `filters` by type, container, event, image, label, network, volume."""
    import time

    from ..engine.event_query import FILTER_KEYS, read_events
    from ..engine.logs import parse_timestamp
    from .errors import bad_request
    from .streams import peer_gone

    filters = req.filters()
    if "local" not in filters.pop("scope", ["local"]):
        filters["type"] = []  # every event is local (no swarm): scope=swarm matches none
    for key in [k for k in filters if k in _NOT_HERE]:
        # Docker's keys for objects sangja has not (swarm, plugins): nothing matches
        del filters[key]
        filters["type"] = []
    for key in filters:
        if key not in FILTER_KEYS:
            raise bad_request(f"invalid filter '{key}'")
    bounds: dict[str, int] = {}
    for key in ("since", "until"):
        text = req.arg(key)
        if text:
            try:
                bounds[key] = int(parse_timestamp(text) * 1_000_000_000)
            except ValueError as e:
                raise bad_request(f"{key}: {e}") from None
    now = time.time_ns()
    out = req.stream("application/json")
    sock = req.handler.connection
    closed = req.service.changes
    for msg in read_events(req.service.runroot, since_ns=bounds.get("since", now),
                           until_ns=bounds.get("until"), filters=filters,
                           follow=bounds.get("until", now + 1) > now,
                           stop=lambda: closed.closed or peer_gone(sock)):
        out.write_json(msg)
    out.close()
