"""The `info` and `version` documents, with Docker's field names (what `docker info
--format '{{json .}}'` and `docker version --format json` show), for what a daemonless
engine has: there is no server process, so the "server" is this engine and its store."""

from __future__ import annotations

import os
import time


def build_commit() -> str:
    """The commit this sangja runs from, as Docker's "build": the first 7 hex digits of the
    HEAD of the git checkout it is installed from (editable, src layout), read from git's
    files (no `git` process); "" for an installed copy or a checkout that cannot be read."""
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../src/sangja
    top = os.path.dirname(os.path.dirname(pkg))
    if os.path.basename(os.path.dirname(pkg)) != "src" or not os.path.isfile(
            os.path.join(top, "pyproject.toml")):
        return ""
    try:
        gitdir = os.path.join(top, ".git")
        if os.path.isfile(gitdir):  # a worktree: "gitdir: PATH"
            with open(gitdir) as f:
                gitdir = os.path.join(top, f.read().strip().removeprefix("gitdir: "))
        common = gitdir
        if os.path.isfile(os.path.join(gitdir, "commondir")):
            with open(os.path.join(gitdir, "commondir")) as f:
                common = os.path.join(gitdir, f.read().strip())
        with open(os.path.join(gitdir, "HEAD")) as f:
            head = f.read().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            head = ""
            for d in (gitdir, common):
                if os.path.isfile(os.path.join(d, ref)):
                    with open(os.path.join(d, ref)) as f:
                        head = f.read().strip()
                    break
            else:
                with open(os.path.join(common, "packed-refs")) as f:
                    for line in f:
                        sha, _, name = line.strip().partition(" ")
                        if name == ref:
                            head = sha
    except OSError:
        return ""
    return head[:7] if len(head) >= 40 and all(c in "0123456789abcdef" for c in head) else ""


def version_document() -> dict:
    """`docker version`'s {Client, Server}: both are this sangja."""
    from .. import OCI_VERSION, __version__

    u = os.uname()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(u.machine, u.machine)
    commit = build_commit()
    client = {"Version": __version__, "ApiVersion": "", "DefaultAPIVersion": "",
              "GitCommit": commit, "GoVersion": "", "Os": "linux", "Arch": arch, "BuildTime": "",
              "Context": "default"}
    engine = {"Name": "Engine", "Version": __version__,
              "Details": {"ApiVersion": "", "Arch": arch, "BuildTime": "",
                          "Experimental": "false", "GitCommit": commit, "GoVersion": "",
                          "KernelVersion": u.release, "MinAPIVersion": "", "Os": "linux"}}
    runtime = {"Name": "sangja-runtime", "Version": __version__,
               "Details": {"GitCommit": "", "RuntimeSpec": OCI_VERSION}}
    server = {"Platform": {"Name": "sangja"}, "Components": [engine, runtime],
              "Version": __version__, "ApiVersion": "", "MinAPIVersion": "", "GitCommit": commit,
              "GoVersion": "", "Os": "linux", "Arch": arch, "KernelVersion": u.release,
              "BuildTime": ""}
    return {"Client": client, "Server": server}


def _os_release() -> dict[str, str]:
    out = {}
    try:
        with open("/etc/os-release") as f:
            for line in f:
                k, eq, v = line.strip().partition("=")
                if eq:
                    out[k] = v.strip().strip('"')
    except OSError:
        pass
    return out


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _counts(root: str, runroot: str) -> tuple[dict[str, int], int, list[str]]:
    """(container states, image count, warnings), from the store when it can be read: info
    works for any user, and on a store not made yet."""
    states = {"running": 0, "paused": 0, "stopped": 0}
    images = 0
    warnings = []
    try:
        if os.path.exists(os.path.join(root, "containers.db")):
            from .containers import Engine
            from .status import PAUSED, RUNNING, live_state

            with Engine(root, runroot) as eng:
                for row in eng.db.all():
                    s = live_state(row)
                    key = ("running" if s == RUNNING else "paused" if s == PAUSED
                           else "stopped")
                    states[key] += 1
        if os.path.exists(os.path.join(root, "images.db")):
            from ..image.store import ImageStore

            with ImageStore(root) as store:
                images = len(store.db.images())
    except PermissionError:  # not root: what any user may know, without the counts
        pass
    except Exception as e:  # noqa: BLE001 - unreadable (damaged): say so
        warnings.append(f"WARNING: the store at {root} could not be read: {e}")
    return states, images, warnings


def info_document(root: str, runroot: str) -> dict:
    """`docker info`'s fields, sangja's values."""
    from .. import __version__
    from ..linux.cgroups import mode
    from .spec import swap_limit_supported

    states, images, warnings = _counts(root, runroot)
    release = _os_release()
    u = os.uname()
    cgroup_version = "2" if mode() == "v2" else "1"
    try:
        swap = swap_limit_supported()
    except OSError:
        swap = False
    from .runtimes import installed_command

    runtimes = {}
    for name in ("sangja-runtime", "runc", "crun"):
        try:
            runtimes[name] = {"path": installed_command(name)}
        except Exception:  # noqa: BLE001 - not installed
            continue
    now = time.time()
    return {
        "ID": "",
        "Containers": sum(states.values()),
        "ContainersRunning": states["running"],
        "ContainersPaused": states["paused"],
        "ContainersStopped": states["stopped"],
        "Images": images,
        "Driver": "overlay",
        "DriverStatus": [],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "macvlan", "null"],
                    "Authorization": None, "Log": ["json-file"]},
        "MemoryLimit": True,
        "SwapLimit": swap,
        "KernelMemory": False,
        "KernelMemoryTCP": False,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "IPv4Forwarding": _read("/proc/sys/net/ipv4/ip_forward") == "1",
        # Docker leaves these out when false (br_netfilter not loaded)
        **{k: True for k, f in (("BridgeNfIptables", "iptables"),
                                ("BridgeNfIp6tables", "ip6tables"))
           if _read(f"/proc/sys/net/bridge/bridge-nf-call-{f}") == "1"},
        "Debug": False,
        "NFd": 0,
        "OomKillDisable": False,
        "NGoroutines": 0,
        "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        + f".{int(now % 1 * 1e9):09d}Z",
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "NEventsListener": 0,
        "KernelVersion": u.release,
        "OperatingSystem": release.get("PRETTY_NAME", "Linux"),
        "OSVersion": release.get("VERSION_ID", ""),
        "OSType": "linux",
        "Architecture": u.machine,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                           "Mirrors": []},
        "NCPU": os.cpu_count() or 1,
        "MemTotal": _mem_total(),
        "GenericResources": None,
        "DockerRootDir": root,
        "RunRootDir": runroot,
        "HttpProxy": os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", "")),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", "")),
        "NoProxy": os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")),
        "Name": u.nodename,
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": __version__,
        "Runtimes": runtimes,
        "DefaultRuntime": "sangja-runtime",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        # no daemon: containers never depend on one being up
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "",
        # no containerd, runc or docker-init build behind this engine
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": ["name=seccomp,profile=default"]
        + (["name=cgroupns"] if cgroup_version == "2" else []),
        "CDISpecDirs": ["/etc/cdi", "/var/run/cdi"],
        "Warnings": warnings or None,
    }


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""
