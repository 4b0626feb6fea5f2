"""Published ports (-p, -P): parsing Docker's syntax, and choosing host ports.

A host port is taken when a socket of the host is bound to it (a bind test, as
docker-proxy's own bind would find) or another container of this run root publishes it;
a port left out (`-p 80`, `-P`) gets a free one from the kernel's ephemeral range."""

from __future__ import annotations

import os
import socket

from .store import NetworkError

PROTOCOLS = ("tcp", "udp", "sctp")


def parse(value: str) -> list[dict]:
    """-p [IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO] -> port requests
    {"host_ip", "host_port", "host_end", "container_port", "container_end", "protocol"}
    (0 for a host port to choose). ValueError with the reason."""
    ports, slash, proto = value.rpartition("/") if "/" in value else (value, "", "tcp")
    proto = proto.lower()
    if slash and proto not in PROTOCOLS:
        raise ValueError(f"invalid proto: {proto}")
    ip = ""
    if ports.startswith("["):
        end = ports.find("]")
        if end < 0 or ports[end + 1:end + 2] != ":":
            raise ValueError("invalid IP address in port specification")
        ip, ports = ports[1:end], ports[end + 2:]
        parts = ports.split(":")
        if len(parts) != 2:
            raise ValueError("expected [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]")
        host, ctr = parts
    else:
        parts = ports.split(":")
        if len(parts) == 1:
            host, ctr = "", parts[0]
        elif len(parts) == 2:
            host, ctr = parts
        elif len(parts) == 3:
            ip, host, ctr = parts
        else:
            raise ValueError("expected [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]")
    if ip:
        import ipaddress

        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise ValueError(f"invalid IP address: {ip}") from None
    c = port_range(ctr)
    h = port_range(host) if host else (0, 0)
    if c is None or h is None:
        raise ValueError("invalid port (1-65535, or a range like 8000-8010)")
    if host and c[1] != c[0] and (h[1] - h[0]) != (c[1] - c[0]):
        raise ValueError("invalid ranges specified for container and host Ports")
    return [{"host_ip": ip, "host_port": h[0], "host_end": h[1], "container_port": c[0],
             "container_end": c[1], "protocol": proto}]


def port_range(text: str) -> tuple[int, int] | None:
    lo, dash, hi = text.partition("-")
    if not lo.isdigit() or (dash and not hi.isdigit()) or not lo.isascii():
        return None
    a = int(lo)
    b = int(hi) if dash else a
    return (a, b) if 1 <= a <= b <= 65535 else None


def _bindable(ip: str, port: int, proto: str) -> bool:
    if proto == "sctp":
        return True
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(fam, kind)
    try:
        s.bind((ip or ("::" if fam == socket.AF_INET6 else "0.0.0.0"), port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _ephemeral(ip: str, proto: str, avoid: set) -> int:
    for _ in range(100):
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
        s = socket.socket(fam, kind)
        try:
            s.bind((ip or "0.0.0.0", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if (proto, port) not in avoid:
            return port
    raise NetworkError("no free host port found")


def _published_elsewhere(runroot: str, cid: str) -> set[tuple[str, int]]:
    """(protocol, host port) published by the other containers of this run root."""
    from .attach import read_state
    from .netns import directory

    out: set[tuple[str, int]] = set()
    try:
        names = os.listdir(directory(runroot))
    except FileNotFoundError:
        return out
    for n in names:
        if not n.endswith(".json") or n.startswith(cid):
            continue
        st = read_state(runroot, n[:-5]) or {}
        for p in st.get("ports") or []:
            for i in range(p.get("range", 1)):
                out.add((p["protocol"], p["host_port"] + i))
    return out


def resolve(requests: list, exposed: list[str], cid: str, runroot: str) -> list[dict]:
    """netavark's port mappings (host_ip, host_port, container_port, protocol, range)."""
    reqs = [r if isinstance(r, dict) else r.to_dict() for r in requests]
    for e in exposed:
        port, _, proto = e.partition("/")
        if not any(r["container_port"] <= int(port) <= r["container_end"] and
                   r["protocol"] == (proto or "tcp") for r in reqs):
            reqs.append({"host_ip": "", "host_port": 0, "host_end": 0,
                         "container_port": int(port), "container_end": int(port),
                         "protocol": proto or "tcp"})
    if not reqs:
        return []
    avoid = _published_elsewhere(runroot, cid)
    out: list[dict] = []
    for r in reqs:
        n = r["container_end"] - r["container_port"] + 1
        ip, proto = r["host_ip"], r["protocol"]
        if r["host_port"] == 0:
            for i in range(n):
                hp = _ephemeral(ip, proto, avoid)
                avoid.add((proto, hp))
                out.append(_mapping(ip, hp, r["container_port"] + i, proto, 1))
            continue
        if n == 1 and r["host_end"] > r["host_port"]:
            for hp in range(r["host_port"], r["host_end"] + 1):
                if (proto, hp) not in avoid and _bindable(ip, hp, proto):
                    break
            else:
                raise NetworkError(f"Bind for {ip or '0.0.0.0'}:{r['host_port']}-"
                                   f"{r['host_end']} failed: no port of the range is free")
            avoid.add((proto, hp))
            out.append(_mapping(ip, hp, r["container_port"], proto, 1))
            continue
        for i in range(n):
            hp = r["host_port"] + i
            if (proto, hp) in avoid or not _bindable(ip, hp, proto):
                raise NetworkError(f"Bind for {ip or '0.0.0.0'}:{hp} failed: port is "
                                   "already allocated")
            avoid.add((proto, hp))
        out.append(_mapping(ip, r["host_port"], r["container_port"], proto, n))
    return out


def _mapping(ip: str, host: int, ctr: int, proto: str, n: int) -> dict:
    return {"host_ip": ip, "host_port": host, "container_port": ctr, "protocol": proto,
            "range": n}
