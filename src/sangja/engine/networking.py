"""The engine's side of the network hook (sangja.network.attach): what a starting
container's network mode needs before config.json is written, and the clean-up after it.

    start = NetworkStart(engine, row, opts)   # leases, netns, backend at work
    ... config.json with start.spec_net, runtime create ...
    start.wait()                              # before the runtime's start
    network_down(engine.paths, cid)           # at clean-up, idempotent
"""

from __future__ import annotations

import os

from ..network import kind
from .containers import EngineError

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    import sqlite3
    from typing import Any

    from ..network.attach import NetworkHook
    from .containers import Engine
    from .options import ContainerOptions


class NetworkStart:
    def __init__(self, engine: Engine, row: sqlite3.Row, opts: ContainerOptions) -> None:
        self.hook: NetworkHook | None = None
        self.spec_net: dict[str, Any] = {}
        mode = kind(opts.network)
        cid = row["id"]
        paths = engine.paths
        if mode == "network":
            from ..network.attach import NetworkHook
            from ..network.store import NetworkError
            from .spec import container_hostname

            exposed = []
            if opts.publish_all:
                cfg = engine.images.run_config(row["image_id"])
                exposed = sorted(set(cfg.get("ExposedPorts") or {}) | set(opts.expose))
            self.hook = NetworkHook(paths.root, paths.runroot)
            hostname = opts.hostname or ""
            try:
                state = self.hook.prepare(cid, row["name"], opts, exposed, hostname)
            except NetworkError as e:
                raise EngineError(str(e)) from None
            self.spec_net = _etc_entries(opts, state, container_hostname(opts, cid))
        elif mode == "container":
            self.spec_net = _joined(engine, opts.network[len("container:"):], cid)
            self.spec_net["add_hosts"] = []
        elif mode == "ns":
            path = opts.network[3:]
            from ..linux.namespaces import check_ns_file

            try:
                if check_ns_file(path, "network"):
                    raise EngineError(f"--network {opts.network}: that is the host's network "
                                      "namespace: use --network host")
            except OSError as e:
                raise EngineError(f"--network {opts.network}: {e.strerror or e}") from None
            self.spec_net = {"netns": path, "nameservers": opts.dns, "search": opts.dns_search,
                             "options": opts.dns_options}
            self.spec_net["add_hosts"] = _add_hosts(opts.add_hosts, None)
        else:
            self.spec_net = {"nameservers": opts.dns, "search": opts.dns_search,
                             "options": opts.dns_options,
                             "add_hosts": _add_hosts(opts.add_hosts, None)}

    def wait(self) -> None:
        if self.hook is not None:
            from ..network.store import NetworkError

            try:
                self.hook.wait()
            except NetworkError as e:
                raise EngineError(str(e)) from None
            self.hook = None

    def abort(self) -> None:
        if self.hook is not None:
            hook, self.hook = self.hook, None
            hook.abort()


def _etc_entries(opts, state: dict, hostname: str) -> dict:
    primary = state["networks"][0]
    gateway = next((s["gateway"] for s in primary["subnets"]
                    if s.get("gateway") and ":" not in s["gateway"]), None)
    dns_net = next((n for n in state["networks"] if n["dns"]), None)
    if dns_net is not None:  # aardvark-dns on the gateway; --dns goes to aardvark
        servers = [s["gateway"] for s in dns_net["subnets"]
                   if s.get("gateway") and ":" not in s["gateway"]]
    else:
        servers = list(opts.dns)
    return {"netns": state["netns"],
            "addresses": [a for a in primary["ips"] if ":" not in a] or primary["ips"][:1],
            "aliases": [a for a in opts.network_aliases if a != hostname],
            "nameservers": servers, "search": opts.dns_search, "options": opts.dns_options,
            "add_hosts": _add_hosts(opts.add_hosts, gateway)}


def _add_hosts(entries: list[str], gateway: str | None) -> list[str]:
    out = []
    for e in entries:
        name, _, ip = e.partition(":")
        if ip == "host-gateway":
            if gateway is None:
                raise EngineError(f"--add-host {e}: host-gateway needs a network (the "
                                  "host's address on it); this container has none")
            ip = gateway
        out.append(f"{name}:{ip}")
    return out


def _joined(engine, ref: str, cid: str) -> dict:
    """--network container:REF: the other container's namespace and /etc files."""
    from ..network.netns import is_netns, path_for
    from .status import PAUSED, RUNNING, live_state

    try:
        other = engine.get(ref)
    except LookupError:
        raise EngineError(f"--network container:{ref}: no such container") from None
    if other["id"] == cid:
        raise EngineError("--network container: a container cannot join its own network")
    if live_state(other) not in (RUNNING, PAUSED):
        raise EngineError(f"cannot join network of a non running container: {ref}")
    path = path_for(engine.paths.runroot, other["id"])
    if not is_netns(path):
        path = f"/proc/{other['pid']}/ns/net"
    oopts = engine.options(other)
    if oopts.network == "host":
        raise EngineError(f"--network container:{ref}: that container uses the host's "
                          "network: use --network host")
    cdir = engine.paths.container_dir(other["id"])
    return {"netns": path, "hosts_from": os.path.join(cdir, "hosts"),
            "resolv_from": os.path.join(cdir, "resolv.conf")}


def network_down(paths, cid: str) -> None:
    """Undo the container's networking, if it has any (a stat when it has none)."""
    start_network_down(paths, cid)()


def start_network_down(paths, cid: str):
    """network_down in two halves: the backend's teardown starts now; call the result to
    wait for it and finish (the clean-up releases the root filesystem meanwhile)."""
    from ..network.netns import path_for

    base = path_for(paths.runroot, cid)
    if not os.path.exists(base + ".json") and not os.path.exists(base) and \
            not _temp_state_copies(base):
        return _nothing
    from ..network.attach import start_teardown

    return start_teardown(paths.root, paths.runroot, cid)


def _nothing() -> None:
    pass


def _temp_state_copies(base: str) -> bool:
    """A temp copy of the state file (`ID.json.tmpPID`) only: a command killed while it
    wrote the first state of a container that never started; the teardown removes it."""
    d, name = os.path.split(base)
    try:
        return any(n.startswith(name + ".json.tmp") for n in os.listdir(d))
    except OSError:
        return False


def check_network_mode(engine, opts) -> None:
    """At create: the network named must exist (the default one is made on first use),
    the container joined must exist."""
    mode = kind(opts.network)
    if mode == "network" and opts.network != "bridge":
        from ..network.store import NoSuchNetwork, open_networks

        if not os.path.exists(os.path.join(engine.paths.root, "networks.db")):
            raise EngineError(f"network {opts.network} not found")
        with open_networks(engine.paths.root) as db:
            try:
                net = db.get(opts.network)
            except NoSuchNetwork as e:
                raise EngineError(str(e)) from None
        opts.network = net["name"]  # an id given: the name, as Docker records it
    elif mode == "container":
        try:
            engine.get(opts.network[len("container:"):])
        except LookupError:
            raise EngineError(f"--network {opts.network}: no such container") from None
    if mode != "network" and any(h.endswith(":host-gateway") for h in opts.add_hosts):
        raise EngineError("--add-host NAME:host-gateway needs a network (the host's "
                          f"address on it); --network {opts.network} has none")
    if mode == "network" and opts.network == "bridge" and opts.network_aliases:
        raise EngineError("network-scoped aliases are only supported for user-defined "
                          "networks")


def network_users(engine, net: dict) -> list[str]:
    """Names of the containers whose options name the network."""
    out = []
    for row in engine.db.all():
        o = engine.options(row)
        names = [o.network] + [n.name for n in o.extra_networks]
        if net["name"] in names or net["id"] in names:
            out.append(row["name"])
    return out


def connect(engine, net_ref: str, ref: str, aliases: list[str], ip: str | None,
            ip6: str | None) -> None:
    """`network connect`: recorded in the container's options (it joins at every start)
    and, while it runs, attached now."""
    from ..jsonio import dumps
    from ..network.attach import connect as attach_now
    from ..network.manage import get
    from ..network.store import NetworkError
    from .options import NetworkAttachment
    from .status import PAUSED, RUNNING, live_state

    try:
        net = get(engine.paths.root, net_ref)
    except NetworkError as e:
        raise EngineError(str(e)) from None
    with engine.locked(ref) as row:
        opts = engine.options(row)
        if kind(opts.network) != "network":
            raise EngineError(f"container {row['name']} uses --network {opts.network}: it "
                              "cannot be connected to a network")
        if net["name"] in [opts.network] + [n.name for n in opts.extra_networks]:
            raise EngineError(f"endpoint with name {row['name']} already exists in network "
                              f"{net['name']}")
        if live_state(row) in (RUNNING, PAUSED):
            try:
                attach_now(engine.paths.root, engine.paths.runroot, row["id"], row["name"],
                           opts, net, aliases, ip, ip6, opts.hostname or "")
            except NetworkError as e:
                raise EngineError(str(e)) from None
        opts.extra_networks.append(NetworkAttachment(net["name"], list(aliases), ip, ip6))
        engine.db.update(row["id"], options=dumps(opts.to_dict()))
    from .events import network_event

    network_event(engine.paths.runroot, "connect", net, row["id"])


def disconnect(engine, net_ref: str, ref: str) -> None:
    from ..jsonio import dumps
    from ..network.attach import teardown
    from ..network.manage import get
    from ..network.store import NetworkError

    try:
        net = get(engine.paths.root, net_ref)
    except NetworkError as e:
        raise EngineError(str(e)) from None
    with engine.locked(ref) as row:
        opts = engine.options(row)
        extra = [n for n in opts.extra_networks if n.name == net["name"]]
        if not extra:
            if opts.network == net["name"]:
                raise EngineError(f"container {row['name']} joined {net['name']} with "
                                  "--network: it can only be disconnected from networks "
                                  "it was connected to")
            raise EngineError(f"container {row['name']} is not connected to network "
                              f"{net['name']}")
        teardown(engine.paths.root, engine.paths.runroot, row["id"], only=net["id"])
        opts.extra_networks = [n for n in opts.extra_networks if n.name != net["name"]]
        engine.db.update(row["id"], options=dumps(opts.to_dict()))
    from .events import network_event

    network_event(engine.paths.runroot, "disconnect", net, row["id"])


def prune_networks(engine, select=None) -> list[str]:
    """`network prune` (and `system prune`): remove the user networks no container names
    or holds an address on (those `select(created, labels)` accepts: the prune filters,
    sangja.engine.filters.PruneFilter), and take down the default network's bridge while
    no container is on it (it stays defined). Returns the names removed."""
    if not os.path.exists(os.path.join(engine.paths.root, "networks.db")):
        return []
    from ..network.config import DEFAULT_NETWORK
    from ..network.manage import idle, leases, networks, remove
    from ..network.store import NetworkError

    root, runroot = engine.paths.root, engine.paths.runroot
    nets = networks(root)
    held = {r["network"] for r in leases(root) if not r["container_id"].startswith("keeper-")}
    gone = []
    for net in nets:
        if net["id"] in held:
            continue
        others = [n for n in nets if n["id"] != net["id"] and n["name"] not in gone]
        if net["name"] == DEFAULT_NETWORK:
            idle(root, runroot, net, others)
            continue
        if select is not None and not select(net["created"], net.get("labels") or {}):
            continue
        if network_users(engine, net):
            continue
        try:
            gone.append(remove(root, runroot, net["id"], []))
        except NetworkError:
            continue
    from .events import network_event

    network_event(runroot, "prune", {}, extra={"reclaimed": "0"})  # as Docker's
    return gone


def set_endpoint(engine, ref: str, aliases: list[str], ip: str | None,
                 ip6: str | None) -> None:
    """The aliases and addresses a stopped container gets on its --network at its next
    start (what Docker's clients set by disconnecting a created container from its network
    and connecting it again, as docker-compose does)."""
    from ..jsonio import dumps
    from .status import PAUSED, RUNNING, live_state

    with engine.locked(ref) as row:
        if live_state(row) in (RUNNING, PAUSED):
            raise EngineError(f"container {row['name']} is running: its --network endpoint "
                              "cannot be changed")
        opts = engine.options(row)
        opts.network_aliases = list(dict.fromkeys(aliases))
        opts.ip, opts.ip6 = ip, ip6
        engine.db.update(row["id"], options=dumps(opts.to_dict()))
