"""The netavark backend (podman's network stack, Debian's `netavark` and `aardvark-dns`).

`netavark setup NETNS` reads a JSON description of the container's networks on stdin
(networks with their subnets and bridge, the container's addresses, MAC, aliases and
published ports), makes the bridge, the veth pair, the addresses and routes, the NAT,
isolation and port-forwarding rules (iptables), and writes what it made as JSON;
`teardown NETNS` with the same input undoes it (the bridge and the network's rules go
with its last container). With DNS on, it runs one aardvark-dns per run root, which
answers the containers' names and aliases on each network's gateway and forwards other
names to the host's resolvers; netavark stops it when its last entry goes.

netavark does no IPAM (the addresses come from `store.NetworkDB.lease`) and takes no
lock: every call here holds `HOST_LOCK`, so two stores (or two containers of one) never
make and delete one bridge at the same time.
"""

from __future__ import annotations

import fcntl
import os
import subprocess

from .store import NetworkError

HOST_LOCK = "/run/lock/sangja-netavark.lock"
_SEARCH = ("/usr/libexec/podman", "/usr/lib/podman", "/usr/local/libexec/podman",
           "/usr/local/lib/podman")


def _binary(name: str, env: str) -> str | None:
    given = os.environ.get(env)
    if given:
        return given
    for d in _SEARCH:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    import shutil

    return shutil.which(name)


def netavark_binary() -> str:
    p = _binary("netavark", "SANGJA_NETAVARK")
    if not p:
        raise NetworkError("bridge networking needs netavark (apt-get install netavark "
                           "aardvark-dns), or use --network none or host")
    return p


def wire_name(net: dict) -> str:
    """The name netavark knows a network by: unique on the host (its firewall chains and
    aardvark's files are named after it), whatever the store calls it."""
    return "sangja-" + net["id"][:12]


class HostLock:
    """An flock on HOST_LOCK, held from before a setup's input is decided until the
    backend is done."""

    def __init__(self) -> None:
        os.makedirs(os.path.dirname(HOST_LOCK), exist_ok=True)
        self.fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Netavark:
    name = "netavark"

    def __init__(self, runroot: str):
        self.config_dir = os.path.join(runroot, "network")

    def request(self, cid: str, name: str, attachments: list[dict], ports: list[dict],
                dns_servers: list[str]) -> dict:
        """netavark's input. attachments: [{"network": net, "ips", "mac", "aliases"}]."""
        networks, info = {}, {}
        for i, a in enumerate(attachments):
            net = a["network"]
            wn = wire_name(net)
            networks[wn] = {"interface_name": a.get("interface") or f"eth{i}",
                            "static_ips": a["ips"], "aliases": a["aliases"],
                            "static_mac": a["mac"]}
            subs = []
            for s in net["subnets"]:
                sub = {"subnet": s["subnet"]}
                if s.get("gateway"):
                    sub["gateway"] = s["gateway"]
                subs.append(sub)
            options = {k: str(v) for k, v in net.get("options", {}).items()
                       if k in ("mtu", "mode", "metric")}
            if net["driver"] == "bridge":
                options["isolate"] = "true"  # Docker's: networks do not reach each other
            info[wn] = {"name": wn, "id": net["id"], "driver": net["driver"],
                        "network_interface": net["interface"], "subnets": subs,
                        "ipv6_enabled": bool(net.get("ipv6")),
                        "internal": bool(net.get("internal")),
                        "dns_enabled": bool(net.get("dns_enabled")) and
                        net["driver"] == "bridge",
                        "options": options, "ipam_options": {"driver": "host-local"}}
        out = {"container_id": cid, "container_name": name, "networks": networks,
               "network_info": info, "port_mappings": ports}
        if dns_servers:
            out["dns_servers"] = dns_servers
        return out

    def _run(self, verb: str, netns: str, request: dict) -> subprocess.Popen:
        from ..jsonio import dumps

        os.makedirs(os.path.join(self.config_dir, "aardvark-dns"), mode=0o700, exist_ok=True)
        argv = [netavark_binary(), "--config", self.config_dir]
        aardvark = _binary("aardvark-dns", "SANGJA_AARDVARK_DNS")
        if aardvark:
            argv += ["--aardvark-binary", aardvark]
        env = dict(os.environ)
        path = env.get("PATH", "")
        if "/usr/sbin" not in path.split(":"):
            env["PATH"] = (path + ":" if path else "") + "/usr/sbin:/sbin:/usr/bin:/bin"
        r, w = os.pipe()
        try:
            proc = subprocess.Popen(argv + [verb, netns], stdin=subprocess.PIPE,
                                    stdout=w, stderr=w, env=env, close_fds=True,
                                    start_new_session=True)
        except OSError as e:
            os.close(r)
            raise NetworkError(f"cannot run netavark: {e.strerror or e}") from None
        finally:
            os.close(w)
        proc._sangja_out = r  # type: ignore[attr-defined]
        try:
            proc.stdin.write(dumps(request).encode())  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass
        return proc

    def start_setup(self, netns: str, request: dict) -> subprocess.Popen:
        return self._run("setup", netns, request)

    @staticmethod
    def finish(proc: subprocess.Popen, verb: str = "setup") -> dict:
        """Wait for a setup (or teardown); its result, or NetworkError with its message.
        The output is read once netavark has exited: aardvark-dns, which it may start,
        inherits the pipe, so waiting for EOF could wait for aardvark-dns."""
        code = proc.wait()
        text = drain(proc)
        from ..jsonio import loads

        doc = None
        for line in reversed(text.splitlines()):
            if line.startswith("{"):
                try:
                    doc = loads(line)
                except Exception:  # noqa: BLE001 - a log line that looks like JSON
                    continue
                break
        if code != 0 or not isinstance(doc, dict) or "error" in doc:
            msg = doc.get("error") if isinstance(doc, dict) and doc.get("error") else (
                text.strip().splitlines()[-1] if text.strip() else f"exit status {code}")
            raise NetworkError(f"netavark {verb}: {msg}")
        return doc

    def teardown(self, netns: str, request: dict) -> None:
        self.finish(self._run("teardown", netns, request), "teardown")


def drain(proc: subprocess.Popen) -> str:
    """What the process wrote (once it has exited); closes our end of its pipe."""
    fd = getattr(proc, "_sangja_out", -1)
    if fd < 0:
        return ""
    proc._sangja_out = -1  # type: ignore[attr-defined]
    os.set_blocking(fd, False)
    chunks = []
    try:
        while True:
            try:
                b = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")
