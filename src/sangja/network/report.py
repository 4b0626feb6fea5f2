"""A container's networking as Docker shows it: `inspect`'s NetworkSettings and
HostConfig port bindings, `port`, `ps`'s PORTS column, `stats`' NET I/O."""

from __future__ import annotations

from . import kind


def port_bindings(opts) -> dict:
    """HostConfig.PortBindings: what -p asked for ("" for a port to choose)."""
    out: dict = {}
    for p in opts.publish:
        for i in range(p.container_end - p.container_port + 1):
            hp = "" if not p.host_port else (
                str(p.host_port + i) if p.host_end != p.host_port or p.container_end !=
                p.container_port else str(p.host_port))
            if p.host_end != p.host_port and p.container_end == p.container_port:
                hp = f"{p.host_port}-{p.host_end}"
            out.setdefault(f"{p.container_port + i}/{p.protocol}", []).append(
                {"HostIp": p.host_ip, "HostPort": hp})
    return out


def published(state: dict | None) -> dict[str, list[dict]]:
    """"PORT/PROTO" -> [{"HostIp", "HostPort"}] of a running container (the chosen ports)."""
    out: dict[str, list[dict]] = {}
    for m in (state or {}).get("ports") or []:
        for i in range(m.get("range", 1)):
            ips = [m["host_ip"] or "0.0.0.0"]
            for ip in ips:
                out.setdefault(f"{m['container_port'] + i}/{m['protocol']}", []).append(
                    {"HostIp": ip, "HostPort": str(m["host_port"] + i)})
    return out


def network_settings(runroot: str, cid: str, name: str, opts, running: bool,
                     exposed: list[str]) -> dict:
    from .attach import read_state

    state = read_state(runroot, cid) if running else None
    state = state if state and not state.get("damaged") else None
    ports: dict = {e: None for e in exposed} if kind(opts.network) == "network" else {}
    ports.update(published(state))
    top = {"Bridge": "", "SandboxID": cid if state else "", "HairpinMode": False,
           "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": ports,
           "SandboxKey": state["netns"] if state else "", "SecondaryIPAddresses": None,
           "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "",
           "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
           "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": ""}
    networks: dict = {}
    mode = kind(opts.network)
    names = ([opts.network] + [n.name for n in opts.extra_networks]) if mode == "network" \
        else [opts.network if mode in ("none", "host") else ""]
    live = {n["name"]: n for n in (state or {}).get("networks", [])}
    for name in names:
        if not name:
            continue
        n = live.get(name)
        ep: dict[str, object] = {
            "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
            "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "DriverOpts": None, "DNSNames": None}
        if n:
            ep.update(NetworkID=n["id"], EndpointID=cid, MacAddress=n.get("mac", ""),
                      Aliases=n.get("aliases") or None,
                      DNSNames=[name, *n.get("aliases", [])] if n["dns"] else None)
            for s in n["subnets"]:
                prefix = int(s["subnet"].partition("/")[2])
                ip = next((a for a in n["ips"] if (":" in a) == (":" in s["subnet"])), "")
                if ":" in s["subnet"]:
                    ep.update(GlobalIPv6Address=ip, GlobalIPv6PrefixLen=prefix,
                              IPv6Gateway=s.get("gateway") or "")
                else:
                    ep.update(IPAddress=ip, IPPrefixLen=prefix, Gateway=s.get("gateway") or "")
            if name == "bridge":
                for k in ("EndpointID", "Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen",
                          "IPAddress", "IPPrefixLen", "IPv6Gateway", "MacAddress"):
                    top[k] = ep[k]
        networks[name] = ep
    top["Networks"] = networks
    return top


def port_lines(state: dict | None, which: str | None = None) -> list[str]:
    """`docker port` lines: "80/tcp -> 0.0.0.0:8080" (only HOST:PORT with `which`)."""
    out = []
    for key, binds in published(state).items():
        if which and key != which:
            continue
        for b in binds:
            host = f"[{b['HostIp']}]" if ":" in b["HostIp"] else b["HostIp"]
            out.append(f"{host}:{b['HostPort']}" if which else
                       f"{key} -> {host}:{b['HostPort']}")
    return out


def ps_ports(state: dict | None) -> str:
    parts = []
    for key, binds in published(state).items():
        for b in binds:
            host = f"[{b['HostIp']}]" if ":" in b["HostIp"] else b["HostIp"]
            parts.append(f"{host}:{b['HostPort']}->{key}")
    return ", ".join(parts)


def net_io(pid: int) -> tuple[int, int]:
    """Received and sent bytes of the container's interfaces but lo (its init's
    /proc/PID/net/dev: the namespace it is in)."""
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return 0, 0
    for line in lines:
        name, _, data = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = data.split()
        if len(fields) >= 9:
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx
