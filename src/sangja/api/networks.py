"""`/networks`: list, create, inspect, remove, prune, connect, disconnect (compose makes a
network per project). The network store and the engine's connect are the CLI's."""

from __future__ import annotations

from .errors import ApiError, bad_request, conflict, not_found
from .http import Request


def _one(fn, *args, **kw):
    """Network errors as Docker's codes."""
    from ..network.store import NetworkError, NoSuchNetwork

    try:
        return fn(*args, **kw)
    except NoSuchNetwork as e:
        raise not_found(str(e)) from None
    except NetworkError as e:
        low = str(e).lower()
        if "already exists" in low or "in use" in low or "active endpoints" in low:
            raise conflict(str(e)) from None
        raise ApiError(400, str(e)) from None


def _documents(req: Request, nets: list[dict]) -> list[dict]:
    from ..network.config import DEFAULT_NETWORK
    from ..network.manage import document, leases

    names = {r["id"]: r["name"] for r in req.engine.db.all()}
    rows = leases(req.service.root)
    docs = []
    for n in nets:
        doc = document(n, req.service.runroot, names, rows)
        if n["name"] != DEFAULT_NETWORK:
            # dockerd shows a user network's options as given (compose compares them with
            # its file's, and would recreate the network for the bridge's name)
            doc["Options"] = dict(n.get("options") or {})
        docs.append(doc)
    return docs


def list_networks(req: Request):
    from ..network.manage import networks

    nets = _one(networks, req.service.root)
    filters = req.filters()
    for key, vals in filters.items():
        if key == "name":
            nets = [n for n in nets if any(v in n["name"] for v in vals)]
        elif key == "id":
            nets = [n for n in nets if any(n["id"].startswith(v) for v in vals)]
        elif key == "driver":
            nets = [n for n in nets if n["driver"] in vals]
        elif key == "label":
            for v in vals:
                k, eq, val = v.partition("=")
                nets = [n for n in nets if k in n["labels"] and (not eq or n["labels"][k] == val)]
        elif key not in ("scope", "type"):
            raise bad_request(f"invalid filter '{key}'")
    return _documents(req, nets)


def inspect(req: Request, id: str):  # noqa: A002 - Docker's name
    from ..network.manage import get

    return _documents(req, [_one(get, req.service.root, id)])[0]


def create(req: Request):
    from ..network.manage import create as make

    body = req.json()
    if not isinstance(body, dict) or not body.get("Name"):
        raise bad_request("network create needs a JSON body with Name")
    name = body["Name"]
    from ..network.manage import networks

    if body.get("CheckDuplicate", True) is not False and any(
            n["name"] == name for n in _one(networks, req.service.root)):
        raise conflict(f"network with name {name} already exists")
    ipam = body.get("IPAM") or {}
    subnets = [{"subnet": c.get("Subnet") or "", "gateway": c.get("Gateway") or "",
                "ip_range": c.get("IPRange") or ""} for c in ipam.get("Config") or []
               if c.get("Subnet")]
    options = {str(k): str(v) for k, v in (body.get("Options") or {}).items()}
    net = _one(make, req.service.root, req.service.runroot, name,
               driver=body.get("Driver") or "bridge",
               subnets=subnets, internal=bool(body.get("Internal")),
               ipv6=bool(body.get("EnableIPv6")), labels=body.get("Labels") or {},
               options=options)
    req.send_json({"Id": net["id"], "Warning": ""}, 201)


def remove(req: Request, id: str):  # noqa: A002
    from ..engine.networking import network_users
    from ..network.manage import get
    from ..network.manage import remove as rm

    net = _one(get, req.service.root, id)
    _one(rm, req.service.root, req.service.runroot, id, network_users(req.engine, net))
    req.send_empty(204)


def prune(req: Request):
    from ..engine.filters import PruneFilter
    from ..engine.networking import prune_networks

    keep = PruneFilter("network", req.filters())
    return {"NetworksDeleted": prune_networks(req.engine, keep or None)}


def _primary(req: Request, net_ref: str, ref: str):
    """(container id, network name) when `net_ref` is the --network of the stopped
    container `ref`, else None."""
    from ..engine.status import PAUSED, RUNNING, live_state
    from ..network.manage import get

    eng = req.engine
    row = eng.get(ref)
    net = _one(get, req.service.root, net_ref)
    if eng.options(row).network == net["name"] and live_state(row) not in (RUNNING, PAUSED):
        return row["id"], net["name"]
    return None


def connect(req: Request, id: str):  # noqa: A002
    from ..cli.engine.run_flags import _alias
    from ..engine.networking import connect as do_connect
    from ..engine.networking import set_endpoint

    body = req.json({}) or {}
    ep = body.get("EndpointConfig") or {}
    ipam = ep.get("IPAMConfig") or {}
    if not body.get("Container"):
        raise bad_request("connect needs Container")
    aliases = [_alias(a) for a in ep.get("Aliases") or []]
    ip, ip6 = ipam.get("IPv4Address") or None, ipam.get("IPv6Address") or None
    primary = _primary(req, id, body["Container"])
    if primary is not None and req.service.endpoint_detached(primary, clear=True):
        # docker-compose's create: disconnect from the network, connect with aliases
        set_endpoint(req.engine, primary[0], aliases, ip, ip6)
    else:
        _one(do_connect, req.engine, id, body["Container"], aliases, ip, ip6)
    req.send_empty(200)


def disconnect(req: Request, id: str):  # noqa: A002
    from ..engine.networking import disconnect as do_disconnect

    body = req.json({}) or {}
    if not body.get("Container"):
        raise bad_request("disconnect needs Container")
    primary = _primary(req, id, body["Container"])
    if primary is not None:
        # A stopped container leaves its --network only to join it again (compose):
        # kept in mind until that connect; its record keeps the network.
        req.service.endpoint_detached(primary, mark=True)
    else:
        _one(do_disconnect, req.engine, id, body["Container"])
    req.send_empty(200)
