"""The container's /etc/hosts, /etc/hostname and /etc/resolv.conf, written into its
directory (R/containers/<id>/) and bind-mounted by config.json, as Docker does:

- own network namespace (--network none): hosts = the localhost and ip6 entries only
  (Docker adds no entry for the hostname when there is no address); resolv.conf = the
  host's, without localhost nameservers (unreachable from the container), falling back to
  8.8.8.8 and 8.8.4.4 when none is left.
- --network host: hosts and resolv.conf are copies of the host's.
- on a network (the default `bridge` or a user network): hosts adds the container's
  address with its hostname (and --network-alias names), as Docker does; resolv.conf is
  the host's, or, on a network with DNS (user networks), names the network's DNS server
  (aardvark-dns on the gateway, which answers the containers' names and forwards the rest
  to the host's servers, or to --dns).
- --dns, --dns-search, --dns-option replace the host's nameserver, search and options
  lines (with DNS on the network, --dns goes to aardvark-dns instead); --add-host lines
  are added to hosts (`host-gateway`: the network's gateway, the host seen from there).
- --network container:ID: the other container's hosts and resolv.conf.
- The host's resolv.conf is /etc/resolv.conf, or /run/systemd/resolve/resolv.conf when
  /etc/resolv.conf only points at systemd-resolved's stub (127.0.0.53), which is what
  Docker reads in that case.

Each file is written to a temporary name and renamed (mode 0644): no fsync, they are
written again at every start.
"""

from __future__ import annotations

import os

from .docker_defaults import FALLBACK_NAMESERVERS, HOSTS_DEFAULT

HOST_RESOLV_CONF = "/etc/resolv.conf"
RESOLVED_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"
HOST_HOSTS = "/etc/hosts"
STUB_RESOLVER = "127.0.0.53"

HOSTS, HOSTNAME, RESOLV_CONF = "hosts", "hostname", "resolv.conf"
# container path -> file name in the container directory
MOUNTS = (("/etc/resolv.conf", RESOLV_CONF), ("/etc/hostname", HOSTNAME), ("/etc/hosts", HOSTS))


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _nameservers(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0] == "nameserver":
            out.append(f[1])
    return out


def host_resolv_conf_path(etc: str = HOST_RESOLV_CONF,
                          resolved: str = RESOLVED_RESOLV_CONF) -> str:
    ns = _nameservers(_read(etc))
    if ns and all(n == STUB_RESOLVER for n in ns) and os.path.exists(resolved):
        return resolved
    return etc


def _is_local(addr: str) -> bool:
    a = addr.split("%", 1)[0]
    return a.startswith("127.") or a in ("::1", "0:0:0:0:0:0:0:1")


def resolv_conf(network: str, source: str | None = None, net: dict | None = None) -> str:
    """`net` (see write_etc_files): nameservers, search, options to put instead of the
    host's (each only when given)."""
    net = net or {}
    text = _read(source or host_resolv_conf_path())
    if network == "host":
        return text
    servers = net.get("nameservers") or []
    lines = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0] == "nameserver" and (_is_local(f[1]) or ":" in f[1]
                                                      or servers):
            continue  # localhost: unreachable; IPv6: a container without IPv6 cannot use it
        if f and f[0] in ("search", "domain") and net.get("search"):
            continue
        if f and f[0] == "options" and net.get("options"):
            continue
        lines.append(line)
    lines += [f"nameserver {ns}" for ns in servers]
    if net.get("search"):
        lines.append("search " + " ".join(d for d in net["search"] if d != "."))
    if net.get("options"):
        lines.append("options " + " ".join(net["options"]))
    if not _nameservers("\n".join(lines)):
        lines += [f"nameserver {ns}" for ns in FALLBACK_NAMESERVERS]
    return "\n".join(line for line in lines if line.strip() != "search") + "\n"


def hosts(network: str, hostname: str, source: str = HOST_HOSTS,
          hostname_entry: bool = False, net: dict | None = None) -> str:
    """`net`: "add_hosts" (NAME:IP lines, added), "addresses" (the container's own, named
    with the hostname and "aliases")."""
    net = net or {}
    extra = [f"{ip}\t{name}" for name, _, ip in
             (h.partition(":") for h in net.get("add_hosts") or [])]
    if network == "host":
        text = _read(source)
        return text + ("" if text.endswith("\n") or not text else "\n") + "".join(
            e + "\n" for e in extra)
    out = [f"{addr}\t{names}" for addr, names in HOSTS_DEFAULT] + extra
    names = " ".join(n for n in [hostname, *(net.get("aliases") or [])] if n)
    for addr in net.get("addresses") or []:
        if names:
            out.append(f"{addr}\t{names}")
    if hostname_entry and hostname and not net.get("addresses"):
        out.append(f"127.0.0.1\t{hostname}")
    return "\n".join(out) + "\n"


def paths(container_dir: str) -> dict[str, str]:
    """{container path: host file} of the three files (written or not)."""
    return {ctr: os.path.join(container_dir, name) for ctr, name in MOUNTS}


def write_etc_files(container_dir: str, *, hostname: str, network: str,
                    hostname_entry: bool = False, net: dict | None = None) -> dict[str, str]:
    """Write the three files; {container path: host file} for the bind mounts. `net`:
    what the network gives (see hosts and resolv_conf), or "hosts_from"/"resolv_from" (the
    files of the container whose network this one joins)."""
    from ..fs import write_atomic

    net = net or {}
    os.makedirs(container_dir, mode=0o700, exist_ok=True)
    contents = {
        HOSTS: _read(net["hosts_from"]) if net.get("hosts_from") else
        hosts(network, hostname, hostname_entry=hostname_entry, net=net),
        HOSTNAME: hostname + "\n",
        RESOLV_CONF: _read(net["resolv_from"]) if net.get("resolv_from") else
        resolv_conf(network, net=net),
    }
    for name, text in contents.items():
        path = os.path.join(container_dir, name)
        write_atomic(path, text, mode=0o644, durable=False)
        os.chmod(path, 0o644)  # the umask must not make it unreadable for a non-root user
    return paths(container_dir)
