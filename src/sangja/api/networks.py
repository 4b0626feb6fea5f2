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
    from ..network.manage import document, leases

    names = {r["id"]: r["name"] for r in req.engine.db.all()}
    rows = leases(req.service.root)
    return [document(n, req.service.runroot, names, rows) for n in nets]


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
    net = _one(make, req.service.root, name, driver=body.get("Driver") or "bridge",
               subnets=subnets, internal=bool(body.get("Internal")),
               ipv6=bool(body.get("EnableIPv6")), labels=body.get("Labels") or {},
               options=options)
    req.service.events.publish("network", "create", net["id"], {"name": name})
    req.send_json({"Id": net["id"], "Warning": ""}, 201)


def remove(req: Request, id: str):  # noqa: A002
    from ..engine.networking import network_users
    from ..network.manage import get
    from ..network.manage import remove as rm

    net = _one(get, req.service.root, id)
    _one(rm, req.service.root, req.service.runroot, id, network_users(req.engine, net))
    req.service.events.publish("network", "destroy", net["id"], {"name": net["name"]})
    req.send_empty(204)


def prune(req: Request):
    from ..engine.networking import prune_networks

    return {"NetworksDeleted": prune_networks(req.engine)}


def connect(req: Request, id: str):  # noqa: A002
    from ..engine.networking import connect as do_connect

    body = req.json({}) or {}
    ep = body.get("EndpointConfig") or {}
    ipam = ep.get("IPAMConfig") or {}
    if not body.get("Container"):
        raise bad_request("connect needs Container")
    _one(do_connect, req.engine, id, body["Container"], list(ep.get("Aliases") or []),
         ipam.get("IPv4Address") or None, ipam.get("IPv6Address") or None)
    req.send_empty(200)


def disconnect(req: Request, id: str):  # noqa: A002
    from ..engine.networking import disconnect as do_disconnect

    body = req.json({}) or {}
    if not body.get("Container"):
        raise bad_request("disconnect needs Container")
    _one(do_disconnect, req.engine, id, body["Container"])
    req.send_empty(200)
