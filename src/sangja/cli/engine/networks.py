"""Network commands: network create, ls, inspect, rm, prune, connect, disconnect."""

from __future__ import annotations

from .common import (
    FORMAT_HELP,
    INSPECT_FORMAT_HELP,
    PROG,
    Command,
    Flag,
    Globals,
    UsageError,
    error,
)


def _engine(opts: Globals):
    from ...engine.containers import Engine

    return Engine(opts.storage_root, opts.run_root)


def _kv(values: list[str], what: str) -> dict[str, str]:
    out = {}
    for v in values:
        k, _, val = v.partition("=")
        if not k:
            raise UsageError(f"invalid {what} {v!r}: expected KEY=VALUE")
        out[k] = val
    return out


def _one_line(fn, *args, **kw):
    from ...network.store import NetworkError

    try:
        return fn(*args, **kw)
    except NetworkError as e:
        from ...engine.containers import EngineError

        raise EngineError(str(e)) from None


NETWORK_CREATE = Command("[OPTIONS] NETWORK", "Create a network", [
    Flag("--attachable", help="Enable manual container attachment (always, here)"),
    Flag("--disable-dns", help="Do not run a DNS server for the network's names"),
    Flag("-d,--driver", "value", "Driver to manage the Network (bridge or macvlan)",
         default="bridge"),
    Flag("--gateway", "multi", "IPv4 or IPv6 Gateway for the master subnet", meta="strings"),
    Flag("--internal", help="Restrict external access to the network"),
    Flag("--ip-range", "multi", "Allocate container ip from a sub-range", meta="strings"),
    Flag("--ipv6", help="Enable or disable IPv6 address assignment"),
    Flag("-l,--label", "multi", "Set metadata on a network"),
    Flag("-o,--opt", "multi", "Set driver specific options", meta="map"),
    Flag("--subnet", "multi", "Subnet in CIDR format that represents a network segment",
         meta="strings"),
])


def cmd_network_create(opts: Globals, args: list[str]) -> int:
    flags, rest = NETWORK_CREATE.parse(args)
    if len(rest) != 1:
        raise UsageError(f"usage: {PROG} network create [--subnet CIDR [--gateway IP] "
                         "[--ip-range CIDR]]... [--internal] [--ipv6] [-d bridge|macvlan] "
                         "[--label K=V] [-o K=V] NAME")
    name = rest[0]
    from .run_flags import _is_name

    if not _is_name(name):
        raise UsageError(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                         "are allowed")
    if len(flags["gateway"]) > len(flags["subnet"]) or len(flags["ip_range"]) > len(
            flags["subnet"]):
        raise UsageError("every --gateway and --ip-range needs its own --subnet")
    subnets = []
    for i, sub in enumerate(flags["subnet"]):
        gw = flags["gateway"][i] if i < len(flags["gateway"]) else ""
        rng = flags["ip_range"][i] if i < len(flags["ip_range"]) else ""
        subnets.append({"subnet": sub, "gateway": gw, "ip_range": rng})
    from ...network.manage import create

    options = _kv(flags["opt"], "option")
    if options.get("mtu") and not options["mtu"].isdigit():
        raise UsageError(f"invalid mtu {options['mtu']!r}")
    net = _one_line(create, opts.storage_root, opts.run_root, name,
                    driver=flags["driver"] or "bridge",
                    subnets=subnets, internal=flags["internal"], ipv6=flags["ipv6"],
                    labels=_kv(flags["label"], "label"), options=options)
    if flags["disable_dns"]:
        from ...network.store import open_networks

        with open_networks(opts.storage_root) as db:
            net["dns_enabled"] = False
            db.save(net)
    print(net["id"])
    return 0


def _documents(opts: Globals, nets: list[dict]) -> list[dict]:
    from ...network.manage import document, leases

    with _engine(opts) as eng:
        names = {r["id"]: r["name"] for r in eng.db.all()}
    rows = leases(opts.storage_root)
    return [document(n, opts.run_root, names, rows) for n in nets]


NETWORK_LS = Command("[OPTIONS]", "List networks", [
    Flag("-f,--filter", "multi", 'Provide filter values (e.g. "driver=bridge")', meta="filter"),
    Flag("--format", "value", FORMAT_HELP),
    Flag("--no-trunc", help="Do not truncate the output"),
    Flag("-q,--quiet", help="Only display network IDs"),
])


def cmd_network_ls(opts: Globals, args: list[str]) -> int:
    flags, rest = NETWORK_LS.parse(args)
    if rest:
        raise UsageError(f"usage: {PROG} network ls [-q] [--no-trunc] [--filter K=V] "
                         "[--format json]")
    from ...network.manage import networks

    nets = _one_line(networks, opts.storage_root)
    for f in flags["filter"]:
        key, _, val = f.partition("=")
        if key == "name":
            nets = [n for n in nets if val in n["name"]]
        elif key == "id":
            nets = [n for n in nets if n["id"].startswith(val)]
        elif key == "driver":
            nets = [n for n in nets if n["driver"] == val]
        elif key == "label":
            k, eq, v = val.partition("=")
            nets = [n for n in nets if k in n["labels"] and (not eq or n["labels"][k] == v)]
        else:
            raise UsageError(f"invalid filter {f!r} (name, id, driver, label)")
    ids = [n["id"] if flags["no_trunc"] else n["id"][:12] for n in nets]
    if flags["quiet"]:
        for i in ids:
            print(i)
        return 0
    from .common import print_listing

    rows = []
    for n, i in zip(nets, ids, strict=True):
        labels = n["labels"] or {}
        rows.append({"CreatedAt": "", "Driver": n["driver"], "ID": i,
                     "IPv4": "true", "IPv6": str(bool(n["ipv6"])).lower(),
                     "Internal": str(bool(n["internal"])).lower(),
                     "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
                     "Name": n["name"], "Scope": "local",
                     "Label": lambda key, labels=labels: labels.get(key, "")})
    print_listing(flags["format"], rows,
                  "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", NETWORK_HEADERS)
    return 0


NETWORK_INSPECT = Command("[OPTIONS] NETWORK [NETWORK...]",
                          "Display detailed information on one or more networks", [
    Flag("-f,--format", "value", INSPECT_FORMAT_HELP),
])


NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                   "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
                   "CreatedAt": "CREATED AT"}


def cmd_network_inspect(opts: Globals, args: list[str]) -> int:
    flags, refs = NETWORK_INSPECT.parse(args)
    if not refs:
        raise UsageError(f"usage: {PROG} network inspect [-f TEMPLATE] NETWORK...")
    from ...network.manage import get
    from ...network.store import NetworkError

    nets, rc = [], 0
    for r in refs:
        try:
            nets.append(get(opts.storage_root, r))
        except NetworkError as e:
            error(str(e))
            rc = 1
    docs = _documents(opts, nets)
    from .common import print_inspect

    return print_inspect(docs, flags["format"]) or rc


NETWORK_RM = Command("NETWORK [NETWORK...]", "Remove one or more networks", [
    Flag("-f,--force", help="Do not error if the network does not exist"),
])


def cmd_network_rm(opts: Globals, args: list[str]) -> int:
    flags, refs = NETWORK_RM.parse(args)
    if not refs:
        raise UsageError(f"usage: {PROG} network rm NETWORK...")
    from ...engine.networking import network_users
    from ...network.manage import get, remove
    from ...network.store import NetworkError, NoSuchNetwork

    rc = 0
    with _engine(opts) as eng:
        for r in refs:
            try:
                net = get(opts.storage_root, r)
                remove(opts.storage_root, opts.run_root, r, network_users(eng, net))
                print(r)
            except NoSuchNetwork as e:
                if not flags["force"]:
                    error(str(e))
                    rc = 1
            except NetworkError as e:
                error(str(e))
                rc = 1
    return rc


NETWORK_PRUNE = Command("[OPTIONS]", "Remove all unused networks", [
    Flag("--filter", "multi", 'Provide filter values (e.g. "until=<timestamp>")',
         meta="filter"),
    Flag("-f,--force", help="Do not prompt for confirmation"),
])


def cmd_network_prune(opts: Globals, args: list[str]) -> int:
    flags, rest = NETWORK_PRUNE.parse(args)
    if rest:
        raise UsageError(f"usage: {PROG} network prune [-f] [--filter until=T|label=K[=V]]")
    from ...engine.filters import PruneFilter, prune_filters
    from ...engine.networking import prune_networks
    from .image_tools import confirm, print_deleted

    keep = PruneFilter("network", prune_filters(flags["filter"]))
    if not flags["force"] and not confirm("WARNING! This will remove all custom networks not "
                                          "used by at least one container."):
        return 0
    with _engine(opts) as eng:
        gone = prune_networks(eng, keep or None)
    print_deleted("Deleted Networks:", [("", n) for n in gone])
    return 0


NETWORK_CONNECT = Command("[OPTIONS] NETWORK CONTAINER", "Connect a container to a network", [
    Flag("--alias", "multi", "Add network-scoped alias for the container", meta="strings"),
    Flag("--ip", "value", 'IPv4 address (e.g., "172.30.100.104")'),
    Flag("--ip6", "value", 'IPv6 address (e.g., "2001:db8::33")'),
])


def cmd_network_connect(opts: Globals, args: list[str]) -> int:
    flags, rest = NETWORK_CONNECT.parse(args)
    if len(rest) != 2:
        raise UsageError(f"usage: {PROG} network connect [--alias A] [--ip IP] NETWORK "
                         "CONTAINER")
    from ...engine.networking import connect
    from .run_flags import _alias, _ip

    aliases = [_alias(a) for a in flags["alias"]]
    ip = _ip("ip", flags["ip"], 4) if flags["ip"] else None
    ip6 = _ip("ip6", flags["ip6"], 6) if flags["ip6"] else None
    with _engine(opts) as eng:
        connect(eng, rest[0], rest[1], aliases, ip, ip6)
    return 0


NETWORK_DISCONNECT = Command("[OPTIONS] NETWORK CONTAINER",
                             "Disconnect a container from a network", [
    Flag("-f,--force", help="Force the container to disconnect from a network"),
])


def cmd_network_disconnect(opts: Globals, args: list[str]) -> int:
    flags, rest = NETWORK_DISCONNECT.parse(args)
    if len(rest) != 2:
        raise UsageError(f"usage: {PROG} network disconnect NETWORK CONTAINER")
    from ...engine.networking import disconnect

    with _engine(opts) as eng:
        disconnect(eng, rest[0], rest[1])
    return 0
