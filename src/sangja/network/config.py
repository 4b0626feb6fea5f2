"""Network definitions: the default `bridge` network, `network create`'s, and the choice of
a subnet and bridge name that nothing on the host uses.

Subnets come from 10.87.0.0/16 (/24 each; IPv6: fd87:<4 random hex>:<n>::/64): podman uses
10.88.0.0/16 and 10.89.x.0/24, docker 172.17-31.x and 192.168.x, so a store of each can
run side by side. A network made without --subnet keeps a *floating* subnet: when its
first container starts (no lease, no bridge yet) and the host routes that subnet through
another interface meanwhile (another store's network, a VPN), it takes the next free one.
Bridge names are per store: `sangja0`, `sangja1`... for the default store
(/var/lib/sangja), `sj<6 hex of the root path>n<N>` for any other, so stores never share a
bridge.
"""

from __future__ import annotations

import hashlib
import os
import time

from .addr import Subnet, to_text
from .store import NetworkError

DEFAULT_NETWORK = "bridge"
POOL_V4 = "10.87.0.0/16"
POOL_PREFIX_V4 = 24
DEFAULT_STORE = "/var/lib/sangja"
DRIVERS = ("bridge", "macvlan")


def bridge_prefix(root: str) -> str:
    if os.path.abspath(root) == DEFAULT_STORE:
        return "sangja"
    return "sj" + hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:6] + "n"


def host_routes() -> list[tuple[Subnet, str]]:
    """The host's routes (IPv4 and IPv6) other than default routes and link-local ones:
    (destination, interface)."""
    out: list[tuple[Subnet, str]] = []
    try:
        with open("/proc/net/route") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest = int.from_bytes(bytes.fromhex(fields[1]), "little")
        mask = int.from_bytes(bytes.fromhex(fields[7]), "little")
        if mask == 0:
            continue
        prefix = bin(mask).count("1")
        try:
            out.append((Subnet(f"{to_text(4, dest & mask)}/{prefix}"), fields[0]))
        except ValueError:
            continue
    try:
        with open("/proc/net/ipv6_route") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or fields[1] == "00":
            continue
        dest, prefix = int(fields[0], 16), int(fields[1], 16)
        if fields[9] == "lo" or (dest >> 118) == 0x3FA or prefix == 128:  # fe80::/10, hosts
            continue
        out.append((Subnet(f"{to_text(6, dest)}/{prefix}"), fields[9]))
    return out


def conflict(subnet: str, own_interface: str | None, routes=None) -> str | None:
    """The interface through which the host already routes an overlapping subnet (one
    that is not this network's own bridge), or None."""
    sub = Subnet(subnet)
    for dest, iface in routes if routes is not None else host_routes():
        if iface != own_interface and dest.overlaps(sub):
            return iface
    return None


def free_subnet(taken: list[str], version: int = 4, routes=None) -> str:
    """The first /24 of the pool (a /64 of a random ULA prefix for IPv6) that overlaps
    neither `taken` nor a host route."""
    routes = host_routes() if routes is None else routes
    used = [Subnet(t) for t in taken] + [r for r, _ in routes]
    if version == 6:
        for _ in range(64):
            cand = Subnet(f"fd87:{os.urandom(2).hex()}:{os.urandom(2).hex()}::/64")
            if not any(u.overlaps(cand) for u in used):
                return str(cand)
        raise NetworkError("could not find a free IPv6 subnet: give one with --subnet")
    pool = Subnet(POOL_V4)
    step = 1 << (32 - POOL_PREFIX_V4)
    n = pool.first
    while n + step - 1 <= pool.last:
        cand = Subnet(f"{to_text(4, n)}/{POOL_PREFIX_V4}")
        if not any(u.overlaps(cand) for u in used):
            return str(cand)
        n += step
    raise NetworkError(f"the pool {POOL_V4} has no free /{POOL_PREFIX_V4} subnet left: "
                       "give one with --subnet")


def gateway_of(subnet: str) -> str:
    s = Subnet(subnet)
    return to_text(s.version, s.first + 1)


def next_interface(root: str, networks: list[dict]) -> str:
    prefix = bridge_prefix(root)
    used = {n.get("interface") for n in networks}
    i = 0
    while f"{prefix}{i}" in used or os.path.exists(f"/sys/class/net/{prefix}{i}"):
        i += 1
    return f"{prefix}{i}"


def new_network(root: str, name: str, existing: list[dict], *, driver: str = "bridge",
                subnets: list[dict] | None = None, internal: bool = False,
                ipv6: bool = False, labels: dict | None = None,
                options: dict | None = None, dns: bool = True) -> dict:
    """A network definition. `subnets`: [{"subnet", "gateway", "ip_range"}] as given
    (checked here); none given: one from the pool (and an IPv6 one with `ipv6`)."""
    if driver not in DRIVERS:
        raise NetworkError(f"network driver {driver!r} is not supported (bridge or macvlan)")
    taken = [s["subnet"] for n in existing for s in n["subnets"]]
    auto = not subnets
    subs: list[dict] = []
    for s in subnets or []:
        subs.append(check_subnet(s, taken))
        taken.append(s["subnet"])
    if auto:
        subs.append({"subnet": free_subnet(taken), "gateway": "", "ip_range": ""})
        taken.append(subs[-1]["subnet"])
    if ipv6 and not any(":" in s["subnet"] for s in subs):
        subs.append({"subnet": free_subnet(taken, 6), "gateway": "", "ip_range": ""})
    for s in subs:
        if not s["gateway"] and driver == "bridge":
            s["gateway"] = gateway_of(s["subnet"])
    opts = dict(options or {})
    if driver == "macvlan":
        parent = opts.get("parent")
        if not parent or not os.path.exists(f"/sys/class/net/{parent}"):
            raise NetworkError("a macvlan network needs -o parent=INTERFACE, an interface "
                               "of the host")
    return {
        "name": name, "id": os.urandom(32).hex(), "driver": driver, "created": time.time(),
        "interface": next_interface(root, existing) if driver == "bridge" else
        opts.get("parent", ""),
        "subnets": subs, "auto_subnet": auto, "internal": bool(internal),
        "ipv6": any(":" in s["subnet"] for s in subs), "dns_enabled": bool(dns),
        "labels": dict(labels or {}), "options": opts,
    }


def check_subnet(s: dict, taken: list[str]) -> dict:
    try:
        sub = Subnet(s["subnet"])
    except ValueError as e:
        raise NetworkError(str(e)) from None
    if sub.version == 4 and sub.prefix > 30 or sub.version == 6 and sub.prefix > 126:
        raise NetworkError(f"subnet {s['subnet']} is too small for containers")
    for t in taken:
        if Subnet(t).overlaps(sub):
            raise NetworkError(f"subnet {s['subnet']} overlaps {t} of another network")
    where = conflict(str(sub), None)
    if where:
        raise NetworkError(f"subnet {s['subnet']} is already in use on the host "
                           f"(routed through {where})")
    out = {"subnet": str(sub), "gateway": s.get("gateway") or "",
           "ip_range": s.get("ip_range") or ""}
    if out["gateway"] and out["gateway"] not in sub:
        raise NetworkError(f"gateway {out['gateway']} is not in subnet {sub}")
    if out["ip_range"]:
        try:
            r = Subnet(out["ip_range"])
        except ValueError as e:
            raise NetworkError(f"--ip-range: {e}") from None
        if not (sub.first <= r.first and r.last <= sub.last):
            raise NetworkError(f"ip range {r} is not inside subnet {sub}")
        out["ip_range"] = str(r)
    return out


def default_network(root: str, existing: list[dict]) -> dict:
    """Docker's `bridge`: NAT to the outside, no names between containers (Docker's
    default network has none either: user networks do)."""
    net = new_network(root, DEFAULT_NETWORK, existing, dns=False)
    return net
