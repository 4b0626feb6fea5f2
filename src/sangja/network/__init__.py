"""Container networking: networks (bridge, macvlan), their IP leases, and the one hook the
engine calls around a container's life.

The engine never writes netlink messages or firewall rules itself. It calls this package:

- `attach.NetworkHook.prepare()` before the runtime's create: leases an address on each
  network (`ipam`), makes the container's network namespace (`netns`, a bind-mounted nsfs
  file under the run root that the OCI config joins by path) and starts the backend on it;
  `wait()` before the runtime's start waits for the backend.
- `attach.teardown()` at clean-up (the monitor's exit command, `rm -f`, an aborted start,
  `system check --repair`): the backend undoes what it did, the namespace goes, the leases
  are released. Every step is idempotent, so a killed CLI is finished by the next one.

A backend (`netavark.Netavark`: bridge interfaces, veths, NAT and port forwarding rules,
aardvark-dns for names) is what fills the hook; a rootless backend (pasta, slirp4netns)
would be another class with the same `setup`/`teardown`, chosen in `attach.backend_for`.
Networks and leases live in `R/networks.db` (`store`); what one container was given lives
beside its namespace in `RR/netns/<id>.json` (`attach.State`).
"""

from __future__ import annotations


def kind(mode: str) -> str:
    """What a --network value is: none | host | container | ns | network (a bridge or
    macvlan network, by name; `bridge` is the default one)."""
    if mode in ("none", "host"):
        return mode
    if mode.startswith("container:"):
        return "container"
    if mode.startswith("ns:"):
        return "ns"
    return "network"
