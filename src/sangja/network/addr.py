"""IP addresses and subnets as integers, without the `ipaddress` module on the start path
(it costs milliseconds to import). Validation of user input uses `ipaddress` (`parse_*`);
the arithmetic of leases uses these."""

from __future__ import annotations

import socket


def to_int(ip: str) -> tuple[int, int]:
    """(version, integer) of an address in text form; ValueError when it is none."""
    try:
        if ":" in ip:
            return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, ip), "big")
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")
    except (OSError, ValueError):
        raise ValueError(f"invalid IP address: {ip}") from None


def to_text(version: int, value: int) -> str:
    if version == 6:
        return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))
    return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))


class Subnet:
    """A network in CIDR form ("10.87.0.0/24"): its first and last address."""

    __slots__ = ("version", "first", "prefix", "bits")

    def __init__(self, cidr: str):
        ip, slash, prefix = cidr.partition("/")
        self.version, value = to_int(ip)
        self.bits = 32 if self.version == 4 else 128
        if not slash or not prefix.isdigit() or not 0 <= int(prefix) <= self.bits:
            raise ValueError(f"invalid subnet: {cidr}")
        self.prefix = int(prefix)
        host = (1 << (self.bits - self.prefix)) - 1
        if value & host:
            raise ValueError(f"invalid subnet {cidr}: host bits set (the network is "
                             f"{to_text(self.version, value & ~host)}/{self.prefix})")
        self.first = value

    @property
    def last(self) -> int:
        return self.first | ((1 << (self.bits - self.prefix)) - 1)

    def __contains__(self, ip: str) -> bool:
        try:
            v, n = to_int(ip)
        except ValueError:
            return False
        return v == self.version and self.first <= n <= self.last

    def overlaps(self, other: Subnet) -> bool:
        return (self.version == other.version and self.first <= other.last
                and other.first <= self.last)

    def __str__(self) -> str:
        return f"{to_text(self.version, self.first)}/{self.prefix}"


def mac_for(ip: str) -> str:
    """Docker's MAC for an IPv4 address (02:42 and the address's four bytes): the same
    address always gets the same MAC, so the host's neighbour cache stays right when an
    address is leased again to the next container."""
    v, n = to_int(ip)
    tail = n.to_bytes(16 if v == 6 else 4, "big")[-4:]
    return "02:42:" + ":".join(f"{b:02x}" for b in tail)
