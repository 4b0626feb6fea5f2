"""Docker's defaults for a container's OCI config, as plain data.

Each list below was written from Docker's documentation and security advisories (sources
named next to it) and checked against Docker Engine 25-28 behaviour; it is data, not code
taken from Docker. `sangja.engine.spec` assembles them into config.json.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import Any

# The capabilities a non-privileged container keeps (docs.docker.com, "Runtime privilege
# and Linux capabilities": the table of capabilities granted by default). As a mask:
# 0x00000000a80425fb, what `grep CapBnd /proc/self/status` shows in `docker run busybox`.
DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

# Paths covered (an empty read-only tmpfs for a directory, /dev/null for a file) in every
# non-privileged container. The base list is the OCI runtime-spec example's plus Docker's
# additions: /sys/devices/virtual/powercap (advisory GHSA-jq35-85cj-fj4p, RAPL power
# side channel) and /proc/interrupts with /sys/devices/system/cpu/cpuN/thermal_throttle
# (advisory GHSA-6fw5-f8r9-fgfm, thermal interrupt side channel, Docker 28). The
# per-CPU thermal_throttle paths depend on the host: see `masked_paths()`.
MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
)

# Paths remounted read-only (OCI runtime-spec example config; Docker uses the same five).
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The kernel filesystems every container gets, in mount order (runtime-spec "Linux
# default filesystems" plus what `docker inspect` / `mount` show inside a Docker
# container). /dev/shm gets its size from --shm-size at build time.
DEFAULT_MOUNTS: tuple[dict[str, Any], ...] = (  # OCI config.json mounts
    {"destination": "/proc", "type": "proc", "source": "proc",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["ro", "nosuid", "noexec", "nodev"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777"]},
)

# Mounts a read-only root (--read-only) leaves writable (Docker: the kernel filesystems
# a process needs to run at all).
READONLY_ROOT_EXEMPT = ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue")

# The device cgroup: deny everything, then allow mknod of any node (the node is useless
# without read/write) and the runtime-spec "default devices" (/dev/null, zero, full,
# random, urandom, tty) plus the container's own ptys (ptmx 5:2 and /dev/pts 136:*).
# (type, major, minor, access); None is the wildcard.
# Not here, on purpose: c 5:1 (the host's /dev/console: with CAP_MKNOD a container could
# make the node and open the host console; runc dropped it, and sangja's runtime never
# allows it) and c 10:200 (tun/tap: Docker dropped it from its defaults in 2022).
DEFAULT_DEVICE_RULES = (
    ("c", None, None, "m"),
    ("b", None, None, "m"),
    ("c", 1, 3, "rwm"),  # /dev/null
    ("c", 1, 5, "rwm"),  # /dev/zero
    ("c", 1, 7, "rwm"),  # /dev/full
    ("c", 1, 8, "rwm"),  # /dev/random
    ("c", 1, 9, "rwm"),  # /dev/urandom
    ("c", 5, 0, "rwm"),  # /dev/tty
    ("c", 5, 2, "rwm"),  # /dev/ptmx
    ("c", 136, None, "rwm"),  # /dev/pts/*
)

# --privileged passes the host's /dev nodes in, except (as Docker does, through
# containerd's host-device walk) these directories, which are the container's own
# mounts or runtime artefacts, and the host console.
PRIVILEGED_SKIP_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})
PRIVILEGED_SKIP_FILES = frozenset({"console"})

# Sysctls Docker sets in a container with its own network namespace (Docker 20.10+,
# "docker run" reference): ping without CAP_NET_RAW and binding ports < 1024 without
# CAP_NET_BIND_SERVICE, both confined to the container's own network namespace.
PRIVATE_NETNS_SYSCTLS = (
    ("net.ipv4.ping_group_range", "0 2147483647"),
    ("net.ipv4.ip_unprivileged_port_start", "0"),
)

# /etc/hosts of a container with its own network namespace (Docker's, without the
# container's own address: --network none has none).
HOSTS_DEFAULT = (
    ("127.0.0.1", "localhost"),
    ("::1", "localhost ip6-localhost ip6-loopback"),
    ("fe00::0", "ip6-localnet"),
    ("ff00::0", "ip6-mcastprefix"),
    ("ff02::1", "ip6-allnodes"),
    ("ff02::2", "ip6-allrouters"),
)

# Docker's fallback when no usable nameserver is left in the host's resolv.conf.
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")

# Where --init's binary appears in the container (Docker's is /sbin/docker-init).
INIT_PATH_IN_CONTAINER = "/sbin/sangja-init"
DEFAULT_INIT_BINARY = "/usr/bin/tini-static"

# The default seccomp profile: containers-common's (derived from Docker's).
DEFAULT_SECCOMP_PROFILE = "/usr/share/containers/seccomp.json"


def masked_paths() -> list[str]:
    """MASKED_PATHS plus the thermal_throttle directory of every CPU this host has."""
    import os

    out = list(MASKED_PATHS)
    base = "/sys/devices/system/cpu"
    try:
        names = os.listdir(base)
    except OSError:
        return out
    cpus = sorted(int(n[3:]) for n in names if n.startswith("cpu") and n[3:].isdigit())
    for n in cpus:
        path = f"{base}/cpu{n}/thermal_throttle"
        if os.path.exists(path):
            out.append(path)
    return out
