"""What a user asked for with `sangja run/create` flags, parsed and validated.

``ContainerOptions`` is the contract between the command line (which fills it), the spec
builder (which turns it plus the image config into an OCI config.json) and the container
records (which keep it, as JSON, for `inspect`, `start` and `restart`). Sizes are bytes,
signals are names ("SIGTERM"), capabilities are "CAP_X" (or "ALL")."""

from __future__ import annotations

from sangja.records import asdict, dataclass, field, fields


@dataclass
class MountRequest:
    """-v, --mount and --tmpfs, resolved: type "bind", "volume" or "tmpfs".

    source: an absolute host path (bind), a volume name ("" for an anonymous volume), or
    None (tmpfs). options: mount(8) options beyond ro ("nosuid", "size=64m", "rprivate",
    "noexec", ...). create_source: a -v bind whose missing host directory is made when
    the container starts (Docker's -v; --mount refuses a missing source)."""

    type: str
    target: str
    source: str | None = None
    readonly: bool = False
    options: list[str] = field(default_factory=list)
    create_source: bool = False


@dataclass
class DeviceRequest:
    """--device HOST[:CONTAINER[:PERMS]]."""

    host_path: str
    container_path: str
    permissions: str = "rwm"


@dataclass
class Ulimit:
    name: str  # "nofile" (Docker's spelling); the spec builder maps it to RLIMIT_NOFILE
    soft: int  # -1 = unlimited (RLIM_INFINITY)
    hard: int  # -1 = unlimited


@dataclass
class RestartPolicy:
    name: str = "no"  # no | on-failure | always | unless-stopped
    maximum_retry_count: int = 0


@dataclass
class PortRequest:
    """-p [IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO]; host_port 0: chosen at start."""

    container_port: int
    container_end: int
    protocol: str = "tcp"  # tcp | udp | sctp
    host_ip: str = ""
    host_port: int = 0
    host_end: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class NetworkAttachment:
    """A network the container joins besides its --network (`network connect`)."""

    name: str
    aliases: list[str] = field(default_factory=list)
    ip: str | None = None
    ip6: str | None = None


@dataclass
class ContainerOptions:
    image: str = ""
    command: list[str] = field(default_factory=list)  # after IMAGE; [] = the image's Cmd
    name: str | None = None
    entrypoint: list[str] | None = None  # None = the image's; [] = cleared (--entrypoint "")
    detach: bool = False
    interactive: bool = False
    tty: bool = False
    rm: bool = False
    env: list[str] = field(default_factory=list)  # KEY=VALUE: --env-file first, then -e
    workdir: str | None = None
    user: str | None = None  # "uid[:gid]" or "name[:group]"
    group_add: list[str] = field(default_factory=list)
    hostname: str | None = None
    mounts: list[MountRequest] = field(default_factory=list)
    read_only: bool = False
    memory: int | None = None
    memory_swap: int | None = None  # -1 = unlimited swap
    cpus: float | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    pids_limit: int | None = None  # <= 0 = unlimited
    ulimits: list[Ulimit] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    no_new_privileges: bool = False
    # None = the default profile, "unconfined", or the profile itself as JSON text (a file
    # given at create is read then: seccomp_profile.stored); a file path in old records
    seccomp: str | None = None
    label_disable: bool = False
    init: bool = False
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str | None = None  # None = the image's StopSignal, else SIGTERM
    stop_timeout: int | None = None  # None = 10 s
    pull: str = "missing"  # missing | always | never
    runtime: str = "sangja-runtime"  # sangja-runtime | runc | crun | an absolute path
    # bridge (the default network) | NAME | none | host | container:ID | ns:PATH
    network: str = "bridge"
    publish: list[PortRequest] = field(default_factory=list)  # -p
    publish_all: bool = False  # -P: every exposed port to a free host port
    ip: str | None = None  # --ip, on the --network
    ip6: str | None = None  # --ip6
    mac_address: str | None = None
    network_aliases: list[str] = field(default_factory=list)
    extra_networks: list[NetworkAttachment] = field(default_factory=list)  # network connect
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    add_hosts: list[str] = field(default_factory=list)  # "NAME:IP" (IP may be host-gateway)
    sysctls: dict[str, str] = field(default_factory=dict)
    devices: list[DeviceRequest] = field(default_factory=list)
    shm_size: int = 64 << 20
    log_driver: str = "json-file"  # json-file | none
    log_max_size: int | None = None  # --log-opt max-size, bytes
    log_max_file: int = 1  # --log-opt max-file
    annotations: dict[str, str] = field(default_factory=dict)
    attach: list[str] = field(default_factory=list)  # -a: "stdin"/"stdout"/"stderr"; [] = default
    expose: list[str] = field(default_factory=list)  # --expose, one "PORT/PROTO" per port
    # namespaces: None = Docker's default; "host"; "container:ID" (resolved to an id at
    # create); ipc also "private", "shareable", "none"; cgroupns "host" or "private"
    cidfile: str | None = None  # --cidfile: written by the command line, shown by inspect
    pid_mode: str | None = None
    ipc_mode: str | None = None
    uts_mode: str | None = None
    cgroupns_mode: str | None = None
    domainname: str | None = None
    memory_reservation: int | None = None
    oom_score_adj: int | None = None
    blkio_weight: int | None = None  # 10-1000; set by `update` or --blkio-weight
    volumes_from: list[str] = field(default_factory=list)  # "ID[:ro|rw]", as given
    device_cgroup_rules: list[str] = field(default_factory=list)  # "c 1:3 rwm"
    cdi_devices: list[str] = field(default_factory=list)  # "vendor/class=name"
    # --health-*: Docker's Healthcheck (Test, Interval, Timeout, StartPeriod, Retries in
    # ns); None = the image's; {"Test": ["NONE"]} = --no-healthcheck
    healthcheck: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ContainerOptions:
        d = dict(d)
        d["mounts"] = [MountRequest(**m) for m in d.get("mounts", [])]
        d["devices"] = [DeviceRequest(**x) for x in d.get("devices", [])]
        d["ulimits"] = [Ulimit(**u) for u in d.get("ulimits", [])]
        d["restart"] = RestartPolicy(**d.get("restart", {}))
        d["publish"] = [PortRequest(**p) for p in d.get("publish", [])]
        d["extra_networks"] = [NetworkAttachment(**n) for n in d.get("extra_networks", [])]
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
