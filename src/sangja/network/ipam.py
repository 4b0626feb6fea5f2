"""Which address a container gets in a subnet: the one asked for (`--ip`), or the lowest
free one in the subnet's range, never the network's or broadcast address or the gateway.
The lease itself is taken in `store.NetworkDB.lease`, in the same transaction."""

from __future__ import annotations

from .addr import Subnet, to_int, to_text
from .store import NetworkError


def contains(sub: dict, address: str) -> bool:
    return address in Subnet(sub["subnet"])


def bounds(sub: dict) -> tuple[Subnet, int, int]:
    """The subnet and the first and last address containers may get in it."""
    net = Subnet(sub["subnet"])
    first, last = net.first + 1, net.last - (1 if net.version == 4 else 0)
    if sub.get("ip_range"):
        r = Subnet(sub["ip_range"])
        first, last = max(first, r.first), min(last, r.last)
    return net, first, last


def address(sub: dict, used: set[str], wanted: dict[int, str]) -> str:
    net, first, last = bounds(sub)
    gateway = to_int(sub["gateway"])[1] if sub.get("gateway") else None
    want = wanted.get(net.version)
    if want:
        v, n = to_int(want)
        if want not in net or n in (net.first, net.last) and net.version == 4:
            raise NetworkError(f"requested IP {want} is not in the network's subnet "
                               f"{sub['subnet']}")
        if n == gateway or to_text(v, n) in used:
            raise NetworkError(f"requested IP {want} is already in use on this network")
        return to_text(v, n)
    taken = {to_int(a)[1] for a in used if a in net}
    n = first
    while n <= last:
        if n != gateway and n not in taken:
            return to_text(net.version, n)
        n += 1
    raise NetworkError(f"no free IP address left in subnet {sub['subnet']}")
