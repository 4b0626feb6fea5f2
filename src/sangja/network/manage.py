"""`network create/ls/inspect/rm/prune`: the store's networks, and their documents in the
shape of Docker's `network inspect`."""

from __future__ import annotations

import os

from .store import NetworkError, NoSuchNetwork, open_networks


def create(root: str, runroot: str, name: str, *, driver: str = "bridge",
           subnets: list[dict] | None = None, internal: bool = False, ipv6: bool = False,
           labels: dict | None = None, options: dict | None = None) -> dict:
    """A new network (Docker's `create` event logged in `runroot`'s event log)."""
    from .config import DEFAULT_NETWORK, new_network
    from .netavark import HostLock

    if name in (DEFAULT_NETWORK, "host", "none", "default") or name.startswith(
            ("container:", "ns:")):
        raise NetworkError(f"network name {name} is reserved (a network mode)")
    lock = HostLock()  # no other store picks a subnet meanwhile
    try:
        with open_networks(root) as db:
            try:
                db.get(name)
                raise NetworkError(f"network with name {name} already exists")
            except NoSuchNetwork:
                pass
            net = new_network(root, name, db.all(), driver=driver, subnets=subnets,
                              internal=internal, ipv6=ipv6, labels=labels, options=options)
            db.insert(net)
    finally:
        lock.release()
    from ..engine.events import network_event

    network_event(runroot, "create", net)
    return net


def networks(root: str) -> list[dict]:
    """Every network, the default one made if it is not there yet (as Docker lists
    `bridge` from the start)."""
    from .attach import ensure_network
    from .config import DEFAULT_NETWORK

    with open_networks(root) as db:
        ensure_network(db, root, DEFAULT_NETWORK)
        return db.all()


def get(root: str, ref: str) -> dict:
    from .attach import ensure_network

    with open_networks(root) as db:
        return ensure_network(db, root, ref)


def leases(root: str, net_id: str | None = None) -> list:
    if not os.path.exists(os.path.join(root, "networks.db")):
        return []
    with open_networks(root) as db:
        return db.leases(net_id)


def remove(root: str, runroot: str, ref: str, users: list[str]) -> str:
    """Remove a network no container uses (`users`: names of containers that name it).
    Its bridge and rules went with its last container; a keeper is torn down here.
    Logs Docker's `destroy` event (`network rm`, `network prune`, the API's)."""
    from .config import DEFAULT_NETWORK

    with open_networks(root) as db:
        net = db.get(ref)
        if net["name"] == DEFAULT_NETWORK:
            raise NetworkError(f"{DEFAULT_NETWORK} is a pre-defined network and cannot be "
                               "removed")
        if busy(db, net) or users:
            who = ", ".join(users) if users else "a container"
            raise NetworkError(f"error while removing network: network {net['name']} id "
                               f"{net['id']} has active endpoints ({who})")
        others = [n for n in db.all() if n["id"] != net["id"]]
    idle(root, runroot, net, others)
    with open_networks(root) as db:
        db.delete(net["id"])
    from ..engine.events import network_event

    network_event(runroot, "destroy", net)
    return net["name"]


def busy(db, net: dict) -> bool:
    """Does a container (not the network's keeper) hold an address on it?"""
    from .attach import keeper_id

    return any(r["container_id"] != keeper_id(net) for r in db.leases(net["id"]))


def idle(root: str, runroot: str, net: dict, others: list[dict]) -> None:
    """Take down what keeps an unused network's bridge up (`network prune` does this for
    the default network, which stays defined)."""
    from .attach import drop_keeper

    drop_keeper(root, runroot, net, others)


def document(net: dict, runroot: str, containers: dict[str, str], lease_rows: list) -> dict:
    """Docker's network inspect document. `containers`: id -> name of this store's;
    `lease_rows`: the store's leases (`leases`)."""
    from ..engine.inspect import rfc3339
    from .attach import read_state

    ends: dict[str, dict[str, str]] = {}
    for lease in (r for r in lease_rows if r["network"] == net["id"]):
        cid = lease["container_id"]
        if cid not in containers:
            continue
        st = read_state(runroot, cid) or {}
        mine: dict = next((n for n in st.get("networks", []) if n["id"] == net["id"]), {})
        prefix = {":" in s["subnet"]: s["subnet"].partition("/")[2] for s in net["subnets"]}
        e = ends.setdefault(cid, {"Name": containers[cid], "EndpointID": "",
                                  "MacAddress": mine.get("mac", ""), "IPv4Address": "",
                                  "IPv6Address": ""})
        a = lease["address"]
        if ":" in a:
            e["IPv6Address"] = f"{a}/{prefix.get(True, '64')}"
        else:
            e["IPv4Address"] = f"{a}/{prefix.get(False, '24')}"
    opts = dict(net.get("options", {}))
    if net["driver"] == "bridge":
        opts.setdefault("com.docker.network.bridge.name", net["interface"])
    return {
        "Name": net["name"], "Id": net["id"], "Created": rfc3339(net["created"]),
        "Scope": "local", "Driver": net["driver"], "EnableIPv6": bool(net.get("ipv6")),
        "IPAM": {"Driver": "default", "Options": {}, "Config": [
            {k: v for k, v in (("Subnet", s["subnet"]), ("Gateway", s.get("gateway")),
                               ("IPRange", s.get("ip_range"))) if v}
            for s in net["subnets"]]},
        "Internal": bool(net.get("internal")), "Attachable": False, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": ends,
        "Options": opts, "Labels": dict(net.get("labels", {})),
        "DNSEnabled": bool(net.get("dns_enabled")),
    }
