"""The hook between a container's life and its networks.

    hook = NetworkHook(root, runroot)
    plan = hook.prepare(cid, name, opts, exposed)   # leases, netns, backend started
    ... snapshot, config.json (joins plan.netns), runtime create ...
    hook.wait()                                     # before the runtime's start
    ...
    teardown(root, runroot, cid)                    # at clean-up; idempotent

`prepare` writes `RR/netns/<id>.json` (the `State`) before it makes anything, so that
whatever a killed command left can be undone by the next `start`, `rm` or
`system check --repair`: the backend's input (its teardown takes the same), the
namespace's path, the backend's pid while it runs, and what it reported.
"""

from __future__ import annotations

import os

from . import kind
from . import netns as netns_mod
from .store import NetworkError

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    import subprocess

    from .netavark import HostLock


def state_path(runroot: str, cid: str) -> str:
    return netns_mod.path_for(runroot, cid) + ".json"


def read_state(runroot: str, cid: str) -> dict | None:
    from ..jsonio import loads

    try:
        with open(state_path(runroot, cid), "rb") as f:
            return loads(f.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"damaged": True}


def stale_temp_states(runroot: str, cid: str | None = None) -> list[str]:
    """Temp copies of state files (fs.write_atomic's `NAME.json.tmpPID`) whose writer is
    gone, a command killed while it wrote; those of `cid` only, if given."""
    d = netns_mod.directory(runroot)
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        base, sep, pid = n.rpartition(".json.tmp")
        if not sep or not pid.isdigit() or (cid is not None and base != cid):
            continue
        if not os.path.exists(f"/proc/{pid}"):
            out.append(os.path.join(d, n))
    return out


def write_state(runroot: str, cid: str, state: dict) -> None:
    from ..fs import write_atomic
    from ..jsonio import dumps

    os.makedirs(netns_mod.directory(runroot), mode=0o700, exist_ok=True)
    write_atomic(state_path(runroot, cid), dumps(state), durable=False)


def backend_for(state_or_none: dict | None, runroot: str):
    """The backend: netavark for root. A rootless backend (pasta) would be chosen here."""
    from .netavark import Netavark

    return Netavark(runroot)


def ensure_network(db, root: str, name: str) -> dict:
    """The network `name`; the default `bridge` is made on first use."""
    from .config import DEFAULT_NETWORK, default_network
    from .store import NoSuchNetwork

    try:
        return db.get(name)
    except NoSuchNetwork:
        if name != DEFAULT_NETWORK:
            raise
    try:
        db.insert(default_network(root, db.all()))
    except NetworkError:
        pass  # made by a concurrent command meanwhile
    return db.get(name)


def attachments(opts) -> list[dict]:
    """[{"name", "aliases", "ip", "ip6", "mac"}] for the container's networks, primary
    first; [] when it has no network of ours (none, host, container:, ns:)."""
    if kind(opts.network) != "network":
        return []
    out = [{"name": opts.network, "aliases": list(opts.network_aliases), "ip": opts.ip,
            "ip6": opts.ip6, "mac": opts.mac_address}]
    for extra in opts.extra_networks:
        out.append({"name": extra.name, "aliases": list(extra.aliases), "ip": extra.ip,
                    "ip6": extra.ip6, "mac": None})
    return out


class NetworkHook:
    def __init__(self, root: str, runroot: str):
        self.root, self.runroot = root, runroot
        self._lock: HostLock | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._cid = ""
        self.state: dict | None = None

    def prepare(self, cid: str, name: str, opts, exposed: list[str] | None = None,
                hostname: str = "") -> dict:
        """Lease, make the namespace, start the backend; the state (see module doc)."""
        from .netavark import HostLock
        from .store import open_networks

        self._cid = cid
        teardown(self.root, self.runroot, cid)  # what an interrupted start left
        wanted = attachments(opts)
        db = open_networks(self.root)
        try:
            nets = [ensure_network(db, self.root, a["name"]) for a in wanted]
            self._lock = HostLock()
            try:
                # under the lock: another start's ports are in its state file by now
                ports = resolve_ports(opts, exposed or [], cid, self.runroot)
                atts = []
                for a, net in zip(wanted, nets, strict=True):
                    _bring_up_check(db, net)
                    ensure_keeper(db, self.root, self.runroot, net)
                    want = {}
                    if a["ip"]:
                        want[4] = a["ip"]
                    if a["ip6"]:
                        want[6] = a["ip6"]
                    ips = db.lease(net, cid, want)
                    aliases = _dns_names(a["aliases"], cid, hostname, name)
                    atts.append({"network": net, "ips": ips, "aliases": aliases,
                                 "mac": a["mac"] or _mac(ips)})
                backend = backend_for(None, self.runroot)
                path = netns_mod.path_for(self.runroot, cid)
                dns = list(opts.dns) if any(n.get("dns_enabled") for n in nets) else []
                request = backend.request(cid, name, atts, ports, dns)
                self.state = {"root": self.root, "netns": path, "backend": backend.name,
                              "requests": [request], "ports": ports,
                              "networks": [_summary(a) for a in atts]}
                write_state(self.runroot, cid, self.state)
                netns_mod.create(path)
                self._proc = backend.start_setup(path, request)
                self.state["backend_pid"] = self._proc.pid
                write_state(self.runroot, cid, self.state)
            except BaseException:
                self.abort()
                raise
        finally:
            db.close()
        return self.state

    def wait(self) -> dict:
        """The backend's result; on failure everything is undone and NetworkError raised."""
        try:
            from .netavark import Netavark

            assert self._proc is not None, "wait() without prepare()"
            status = Netavark.finish(self._proc)
        except BaseException:
            self.abort()
            raise
        self._proc = None
        assert self.state is not None
        self.state.pop("backend_pid", None)
        self.state["status"] = [status]
        _apply_status(self.state, status)
        write_state(self.runroot, self._cid, self.state)
        self._release()
        return self.state

    def abort(self) -> None:
        """Undo what prepare did (waiting for a backend that is still at work)."""
        if self._proc is not None:
            from .netavark import drain

            try:
                self._proc.wait()
            finally:
                drain(self._proc)
                self._proc = None
        try:
            teardown(self.root, self.runroot, self._cid, locked=self._lock is not None)
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def teardown(root: str, runroot: str, cid: str, *, locked: bool = False,
             only: str | None = None) -> None:
    """Undo a container's networking (all of it, or the network with id `only`):
    backend teardown, namespace, leases, state. Safe to repeat, and after any crash."""
    from .store import open_networks

    for temp in stale_temp_states(runroot, cid):  # a killed writer's
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
    state = read_state(runroot, cid)
    if only is not None and (not state or state.get("damaged")):
        if os.path.exists(os.path.join(root, "networks.db")):
            with open_networks(root) as db:
                db.release(cid, only)
        return
    path = netns_mod.path_for(runroot, cid)
    has_ns = os.path.exists(path)
    if state is None and not has_ns and not _has_leases(root, cid):
        return
    lock = None
    if not locked:
        from .netavark import HostLock

        lock = HostLock()
    try:
        if state and not state.get("damaged"):
            _wait_backend(state.get("backend_pid"))
            backend = backend_for(state, runroot)
            keep: list[dict] = []
            for req in reversed(state.get("requests", [])):
                ids = {i["id"] for i in req["network_info"].values()}
                if only is not None and only not in ids:
                    keep.insert(0, req)
                    continue
                if netns_mod.is_netns(state["netns"]):
                    try:
                        backend.teardown(state["netns"], req)
                    except NetworkError:
                        pass  # partly set up: what exists is gone now (netavark goes on)
            if only is not None:
                state["requests"] = keep
                state["networks"] = [n for n in state.get("networks", []) if n["id"] != only]
                write_state(runroot, cid, state)
                db = open_networks(root)
                with db:
                    db.release(cid, only)
                return
        _forget(root, runroot, cid)
    finally:
        if lock is not None:
            lock.release()


def _forget(root: str, runroot: str, cid: str) -> None:
    """The end of a teardown, once the backend is done: namespace, leases, state."""
    from .store import open_networks

    netns_mod.remove(netns_mod.path_for(runroot, cid))
    if os.path.exists(os.path.join(root, "networks.db")):
        with open_networks(root) as db:
            db.release(cid)
    try:
        os.unlink(state_path(runroot, cid))
    except FileNotFoundError:
        pass


def start_teardown(root: str, runroot: str, cid: str):
    """`teardown` in two halves: the backend starts now, and the returned function waits
    for it and finishes, so that a clean-up does its other work meanwhile."""
    state = read_state(runroot, cid)
    if not state or state.get("damaged") or state.get("backend_pid") or \
            len(state.get("requests", [])) != 1 or not netns_mod.is_netns(state["netns"]):
        return lambda: teardown(root, runroot, cid)
    from .netavark import HostLock

    lock = HostLock()
    try:
        backend = backend_for(state, runroot)
        proc = backend._run("teardown", state["netns"], state["requests"][0])
    except BaseException:
        lock.release()
        raise

    def finish() -> None:
        try:
            try:
                backend.finish(proc, "teardown")
            except NetworkError:
                pass  # partly set up: what exists is gone now
            _forget(root, runroot, cid)
        finally:
            lock.release()

    return finish


# ------------------------------------------------------------------------------ keepers
#
# netavark deletes a bridge, and its network's NAT and isolation rules, when the last
# interface on it goes; making them again costs ~30 ms at the next start and deleting them
# ~150 ms (a netfilter commit per rule), and netavark 1.4 drops the FORWARD jump to the
# isolation chains that every isolated network shares when one of them is deleted. So a
# bridge network keeps one interface of its own while it exists: a *keeper*, a namespace
# with no process (`RR/netns/keeper-<network id>`), set up with the network's first
# container and torn down by `network rm` and `network prune` (which then restores the
# shared jump for the store's other networks). Containers then join and leave an existing
# bridge. Docker keeps docker0 and its rules the same way.

KEEPER = "keeper-"


def keeper_id(net: dict) -> str:
    return KEEPER + net["id"][:12]


def ensure_keeper(db, root: str, runroot: str, net: dict) -> None:
    """The network's keeper, set up now if it is not (called under the host lock)."""
    if net["driver"] != "bridge":
        return
    kid = keeper_id(net)
    state = read_state(runroot, kid)
    if state and not state.get("damaged") and netns_mod.is_netns(state["netns"]) and \
            os.path.exists(f"/sys/class/net/{net['interface']}") and "status" in state:
        return
    teardown(root, runroot, kid, locked=True)
    backend = backend_for(None, runroot)
    ips = db.lease(net, kid, {})
    att = {"network": net, "ips": ips, "mac": _mac(ips), "aliases": []}
    path = netns_mod.path_for(runroot, kid)
    request = backend.request(kid, kid, [att], [], [])
    state = {"root": root, "netns": path, "backend": backend.name, "requests": [request],
             "ports": [], "networks": [_summary(att)], "keeper": True}
    write_state(runroot, kid, state)
    try:
        netns_mod.create(path)
        status = backend.finish(backend.start_setup(path, request))
    except BaseException:
        teardown(root, runroot, kid, locked=True)
        raise
    state["status"] = [status]
    write_state(runroot, kid, state)


def drop_keeper(root: str, runroot: str, net: dict, others: list[dict]) -> None:
    """Tear the network's keeper down (its bridge and rules go with it), then make sure
    the isolation jump netavark 1.4 removed with them is back for `others`, the store's
    networks that are still up: their keeper is set up again, which adds it."""
    from .netavark import HostLock
    from .store import open_networks

    lock = HostLock()
    try:
        kid = keeper_id(net)
        had = read_state(runroot, kid) is not None
        teardown(root, runroot, kid, locked=True)
        if not had or net["driver"] != "bridge":
            return
        with open_networks(root) as db:
            for other in others:
                if other["driver"] == "bridge" and read_state(runroot, keeper_id(other)):
                    teardown(root, runroot, keeper_id(other), locked=True)
                    ensure_keeper(db, root, runroot, other)
                    break
    finally:
        lock.release()


def connect(root: str, runroot: str, cid: str, name: str, opts, net: dict,
            aliases: list[str], ip: str | None, ip6: str | None, hostname: str) -> None:
    """Attach a running container to one more network."""
    from .netavark import HostLock
    from .store import open_networks

    state = read_state(runroot, cid)
    if not state or state.get("damaged") or not netns_mod.is_netns(state["netns"]):
        raise NetworkError("the container has no network namespace of sangja's to connect "
                           "(its network mode is not a network, or it is not running)")
    lock = HostLock()
    db = open_networks(root)
    try:
        _bring_up_check(db, net)
        ensure_keeper(db, root, runroot, net)
        want = {k: v for k, v in ((4, ip), (6, ip6)) if v}
        ips = db.lease(net, cid, want)
        att = {"network": net, "ips": ips, "mac": _mac(ips),
               "aliases": _dns_names(aliases, cid, hostname, name),
               "interface": f"eth{len(state['networks'])}"}
        backend = backend_for(state, runroot)
        req = backend.request(cid, name, [att], [], [])
        state["requests"].append(req)
        state["networks"].append(_summary(att))
        write_state(runroot, cid, state)
        try:
            status = backend.finish(backend.start_setup(state["netns"], req))
        except BaseException:
            state["requests"].pop()
            state["networks"].pop()
            write_state(runroot, cid, state)
            db.release(cid, net["id"])
            raise
        state.setdefault("status", []).append(status)
        _apply_status(state, status)
        write_state(runroot, cid, state)
    finally:
        db.close()
        lock.release()


# ----------------------------------------------------------------------------- helpers


def _has_leases(root: str, cid: str) -> bool:
    if not os.path.exists(os.path.join(root, "networks.db")):
        return False
    from .store import open_networks

    db = open_networks(root)
    with db:
        return bool(db.container_leases(cid))


def _wait_backend(pid: int | None) -> None:
    """A backend a killed command started may still be at work: let it finish first."""
    if not pid:
        return
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"netavark" not in f.read():
                    return
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    return
        except OSError:
            return
        time.sleep(0.02)


def _bring_up_check(db, net: dict) -> None:
    """Before a network's first container: is its subnet routed elsewhere on the host?
    A floating subnet moves to a free one; a given one is an error."""
    if net["driver"] != "bridge" or os.path.exists(f"/sys/class/net/{net['interface']}"):
        return
    if db.leases(net["id"]):
        return
    from .config import conflict, free_subnet, gateway_of, host_routes

    routes = host_routes()
    for i, s in enumerate(net["subnets"]):
        where = conflict(s["subnet"], net["interface"], routes)
        if not where:
            continue
        if not net.get("auto_subnet"):
            raise NetworkError(f"network {net['name']}: subnet {s['subnet']} is in use on "
                               f"the host (routed through {where})")
        taken = [t["subnet"] for n in db.all() if n["id"] != net["id"] for t in n["subnets"]]
        version = 6 if ":" in s["subnet"] else 4
        new = free_subnet(taken, version, routes)
        net["subnets"][i] = {"subnet": new, "gateway": gateway_of(new), "ip_range": ""}
        db.save(net)


def _dns_names(aliases: list[str], cid: str, hostname: str, name: str) -> list[str]:
    out = []
    for n in [*aliases, hostname, cid[:12]]:
        if n and n != name and n not in out:
            out.append(n)
    return out


def _mac(ips: list[str]) -> str:
    from .addr import mac_for

    v4 = [a for a in ips if ":" not in a]
    return mac_for(v4[0]) if v4 else "02:42:" + ":".join(f"{b:02x}" for b in os.urandom(4))


def _summary(att: dict) -> dict:
    net = att["network"]
    return {"name": net["name"], "id": net["id"], "ips": att["ips"], "mac": att["mac"],
            "aliases": att["aliases"], "driver": net["driver"],
            "subnets": [dict(s) for s in net["subnets"]], "dns": bool(net.get("dns_enabled")),
            "internal": bool(net.get("internal"))}


def _apply_status(state: dict, status: dict) -> None:
    """netavark's report: the MAC it used (and the interface) per network."""
    from .netavark import wire_name

    for n in state["networks"]:
        block = status.get(wire_name({"id": n["id"]}))
        if not block:
            continue
        for iface, info in (block.get("interfaces") or {}).items():
            n["interface"] = iface
            n["mac"] = info.get("mac_address") or n["mac"]
        if block.get("dns_server_ips"):
            n["dns_servers"] = block["dns_server_ips"]


def resolve_ports(opts, exposed: list[str], cid: str, runroot: str) -> list[dict]:
    """-p and -P as netavark's port mappings, host ports chosen where none was given."""
    from .ports import resolve

    return resolve(opts.publish, exposed if opts.publish_all else [], cid, runroot)
