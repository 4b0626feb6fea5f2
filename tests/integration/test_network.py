"""Container networking from the outside (issue 12): the host fetches a page through a
published port and gets a udp echo back; containers on a user network reach each other
by name and alias, not across networks, and an --internal network has no way out; after
rm, network rm and prune nothing is left on the host (links, veths, firewall rules,
namespaces, aardvark-dns, leases); 50 parallel starts never share an address; a CLI
killed in the middle of the set-up leaves only what `system check --repair` removes.

All traffic stays on this machine: the host's loopback, the containers' bridges, and
the host's own address on a bridge."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from engine_cli import isolation_guard, wait_until

pytestmark = pytest.mark.root

IMG = "localhost/busybox:latest"


# ------------------------------------------------------------------------------ helpers


def networks_of(cli) -> list[dict]:
    return json.loads(cli.ok("network", "inspect", *[
        n for n in cli.ok("network", "ls", "-q", "--no-trunc").split()]))


def host_state(cli, known: dict) -> dict:
    """What of this store's networking the host holds: bridges named with the store's
    prefix, the veths seen on them, iptables lines naming our networks (chains, subnets,
    bridges, container ids), netns files, aardvark-dns processes of this run root, leases.
    `known` collects names seen while containers ran (veths, subnets, ids)."""
    from sangja.network.config import bridge_prefix

    prefix = bridge_prefix(str(cli.root))
    links = sorted(n for n in os.listdir("/sys/class/net") if n.startswith(prefix))
    for br in links:  # a veth by name and index: another one may get its name later
        try:
            known.setdefault("veths", set()).update(
                (v, _ifindex(v)) for v in os.listdir(f"/sys/class/net/{br}/brif"))
        except OSError:
            pass
    for net in networks_of(cli):
        wire = "sangja-" + net["Id"][:12]
        known.setdefault("words", set()).add(
            hashlib.sha512(wire.encode()).hexdigest().upper()[:13])
        known["words"].update(c["Subnet"] for c in net["IPAM"]["Config"])
        known["words"].update(net["Containers"])
    known.setdefault("words", set()).update(links)
    words = known["words"] - _subnets_of_other_stores(prefix)
    rules = []
    for cmd in (["iptables-save"], ["ip6tables-save"]):
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith(":"):  # a chain: its name (not its counters)
                line = line.split()[0]
            if line.startswith("#") or not any(w in line for w in words):
                continue
            chains = set(_NETWORK_CHAIN.findall(line))
            if chains and not chains & known["words"]:
                continue  # another store's network chain that names a subnet like ours
            rules.append(line)
    veths = sorted(v for v, i in known.get("veths", ()) if _ifindex(v) == i)
    aardvark = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"aardvark-dns" in cmd and str(cli.runroot).encode() in cmd:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                aardvark.append(pid)
    netns = sorted(os.listdir(cli.runroot / "netns")) if (cli.runroot / "netns").is_dir() \
        else []
    leases = []
    if (cli.root / "networks.db").exists():
        conn = sqlite3.connect(f"file:{cli.root / 'networks.db'}?mode=ro", uri=True)
        leases = sorted(map(tuple, conn.execute("SELECT address, container_id FROM leases")))
        conn.close()
    return {"bridges": links, "veths": veths, "rules": sorted(rules), "netns": netns,
            "aardvark": aardvark, "leases": leases}


_NETWORK_CHAIN = re.compile(r"NETAVARK-(?:DN-)?([0-9A-F]{13})\b")


def _subnets_of_other_stores(prefix: str) -> set[str]:
    """Subnets the host routes through an interface that is not one of this store's
    bridges right now: a store in another test (run in parallel) may hold the subnet that
    one of ours keeps while it is down (a floating subnet), and its rules name it too."""
    from sangja.network.config import host_routes

    return {str(dest) for dest, iface in host_routes() if not iface.startswith(prefix)}


def nothing_left(after: dict, before: dict) -> bool:
    """The host holds nothing of ours that it did not hold before: the same bridges, veths,
    namespaces, aardvark-dns processes and leases, and no firewall rule more. A rule may be
    gone: netavark's teardown of a network in another store (other tests run in parallel)
    can rewrite the shared isolation chains, which is not a leak of this test's."""
    if set(after["rules"]) - set(before["rules"]):
        return False
    return all(after[k] == before[k] for k in after if k != "rules")


def _ifindex(name: str) -> int | None:
    try:
        return int(Path(f"/sys/class/net/{name}/ifindex").read_text())
    except (OSError, ValueError):
        return None


def fetch(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wget(url: str, seconds: int = 5) -> list[str]:
    """A fetch bounded in time. Not as the container's pid 1: busybox `timeout` signals
    its program, and pid 1 of a pid namespace ignores signals it has no handler for."""
    return ["sh", "-c", f"timeout {seconds} wget -qO- {url}; exit $?"]


def nc(host: str, port: int, seconds: int = 5) -> list[str]:
    return ["sh", "-c", f"timeout {seconds} nc {host} {port} </dev/null; exit $?"]


def container_ip(cli, ref: str, network: str | None = None) -> str:
    nets = cli.inspect(ref)["NetworkSettings"]["Networks"]
    return nets[network or next(iter(nets))]["IPAddress"]


@pytest.fixture(scope="module")
def udp_echo(tmp_path_factory) -> Path:
    """A static udp echo server (musl): `udpecho PORT` answers 20 datagrams, then exits."""
    src = tmp_path_factory.mktemp("udpecho") / "udpecho.c"
    src.write_text(textwrap.dedent("""\
        #include <arpa/inet.h>
        #include <stdlib.h>
        #include <sys/socket.h>
        #include <unistd.h>
        int main(int argc, char **argv) {
            int s = socket(AF_INET, SOCK_DGRAM, 0);
            struct sockaddr_in a = {0};
            a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[1]));
            if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0) return 1;
            alarm(60);
            for (int i = 0; i < 20; i++) {
                char buf[512]; struct sockaddr_in p; socklen_t l = sizeof p;
                ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&p, &l);
                if (n > 0) sendto(s, buf, n, 0, (struct sockaddr *)&p, l);
            }
            return 0;
        }
        """))
    out = src.with_suffix("")
    cc = "musl-gcc" if subprocess.run(["which", "musl-gcc"], capture_output=True).returncode \
        == 0 else "gcc"
    r = subprocess.run([cc, "-static", "-O2", "-o", str(out), str(src)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build the udp echo server: {r.stderr.decode()[-200:]}")
    out.chmod(0o755)
    return out


@pytest.fixture
def net(cli):
    """A user network for one test, removed after it (the cli fixture removes the
    containers first)."""
    made = []

    def make(*flags: str) -> str:
        name = f"t{os.urandom(4).hex()}"
        cli.ok("network", "create", *flags, name)
        made.append(name)
        return name

    yield make
    for c in cli.ok("ps", "-aq", "--no-trunc").split():
        cli("rm", "-f", c)
    with isolation_guard():
        for name in made:
            cli("network", "rm", name)


# ------------------------------------------------------------------------------ ports


def test_host_fetches_a_page_through_a_published_tcp_port(cli, net):
    cli.out(IMG, "true")  # the default network is up (its keeper): only this test's part
    before = host_state(cli, {})
    cli.detach("--name", "web", "-p", "127.0.0.1::80", IMG, "sh", "-c",
               "echo hello-from-the-container > /tmp/index.html; "
               "exec httpd -f -p 80 -h /tmp")
    (line,) = cli.ok("port", "web", "80").split()
    host, _, port = line.rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0
    page = wait_until(lambda: _try_fetch(f"http://127.0.0.1:{port}/index.html"), 10)
    assert page == "hello-from-the-container\n"
    doc = cli.inspect("web")
    assert doc["NetworkSettings"]["Ports"]["80/tcp"] == [{"HostIp": "127.0.0.1",
                                                          "HostPort": port}]
    ip = doc["NetworkSettings"]["IPAddress"]
    assert ip and doc["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ip
    # the address inspect shows is the one the container has
    assert f"inet {ip}/" in cli.exec_out("web", "ip", "-4", "addr", "show", "eth0")
    # NET I/O counts the page
    (row,) = [json.loads(x) for x in cli.ok("stats", "--no-stream", "--format", "json",
                                            "web").splitlines()]
    assert row["NetIO"] != "0B / 0B"
    cli.ok("rm", "-f", "web")
    with pytest.raises(OSError):
        fetch(f"http://127.0.0.1:{port}/index.html", timeout=2)
    assert nothing_left(host_state(cli, {}), before)


def _try_fetch(url: str) -> str | None:
    try:
        return fetch(url, timeout=2)
    except OSError:
        return None


def test_fixed_host_port_and_its_conflict(cli):
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    port = s.getsockname()[1]
    # a port a host process holds is refused, with nothing left behind
    msg = cli.fails(125, "run", "-d", "--name", "clash", "-p", f"{port}:80", IMG,
                    "sleep", "30")
    assert f"{port}" in msg and "already allocated" in msg
    s.close()
    cli.detach("--name", "w1", "-p", f"{port}:80", IMG, "httpd", "-f", "-p", "80",
               "-h", "/etc")
    assert wait_until(lambda: _try_fetch(f"http://127.0.0.1:{port}/hostname"), 10) == \
        cli.inspect("w1")["Id"][:12] + "\n"
    # and a port another container publishes
    msg = cli.fails(125, "run", "-d", "-p", f"{port}:80", IMG, "sleep", "30")
    assert "already allocated" in msg


def test_udp_echo_through_a_published_udp_port(cli, udp_echo):
    cli.detach("--name", "echo", "-p", "127.0.0.1::5353/udp",
               "-v", f"{udp_echo}:/udpecho:ro", IMG, "/udpecho", "5353")
    (line,) = cli.ok("port", "echo", "5353/udp").split()
    port = int(line.rpartition(":")[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        def echoed():
            s.sendto(b"ping-over-udp", ("127.0.0.1", port))
            try:
                return s.recvfrom(512)[0]
            except OSError:
                return None

        assert wait_until(echoed, 10) == b"ping-over-udp"
    finally:
        s.close()


def test_publish_all_exposed_ports(cli):
    cli.detach("--name", "pa", "-P", "--expose", "8080", "--expose", "9090/udp", IMG,
               "sleep", "30")
    ports = cli.inspect("pa")["NetworkSettings"]["Ports"]
    assert set(ports) == {"8080/tcp", "9090/udp"}
    assert all(int(b[0]["HostPort"]) > 0 for b in ports.values())


# ------------------------------------------------------------------------------ names


def test_containers_reach_each_other_by_name_and_alias(cli, net):
    n = net()
    cli.detach("--name", "srv", "--network", n, "--network-alias", "web-alias", IMG,
               "httpd", "-f", "-p", "80", "-h", "/etc")
    srv_id = cli.inspect("srv")["Id"]
    for name in ("srv", "web-alias", srv_id[:12]):
        out = cli.out("--network", n, IMG, *wget(f"http://{name}/hostname", 5))
        assert out == srv_id[:12] + "\n", name
    # resolv.conf names the network's DNS (the gateway), hosts the container's address
    gw = networks_of(cli)
    gw = next(x for x in gw if x["Name"] == n)["IPAM"]["Config"][0]["Gateway"]
    assert f"nameserver {gw}" in cli.out("--network", n, IMG, "cat", "/etc/resolv.conf")
    ip = container_ip(cli, "srv", n)
    assert f"{ip}\t{srv_id[:12]}" in cli.exec_out("srv", "cat", "/etc/hosts")
    # the default network has no names (Docker's neither)
    r = cli("run", "--rm", IMG, *wget("http://srv/hostname", 3))
    assert r.returncode != 0


def test_networks_are_isolated(cli, net):
    a, b = net(), net()
    cli.detach("--name", "in-a", "--network", a, IMG, "httpd", "-f", "-p", "80", "-h", "/etc")
    ip = container_ip(cli, "in-a", a)
    # the same request from the same network works: the test can fail
    assert cli.out("--network", a, IMG, *wget(f"http://{ip}/hostname", 5))
    with isolation_guard(exclusive=True):
        _isolated_from(cli, ip, b)


def _isolated_from(cli, ip: str, b: str) -> None:
    for other in (b, "bridge"):
        r = cli("run", "--rm", "--network", other, IMG, *wget(f"http://{ip}/hostname", 3))
        assert r.returncode != 0, other
        r = cli("run", "--rm", "--network", other, IMG, "nslookup", "in-a")
        assert "Address" not in r.stdout.split("Name:", 1)[-1] or r.returncode != 0


def test_internal_network_has_no_way_out(cli, net):
    internal = net("--internal")
    # a listener on every host address; the default network's gateway is one of them
    srv = socket.socket()
    srv.bind(("0.0.0.0", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    done = threading.Event()

    def serve():  # accept and close at once: nc sees the end and exits 0
        while not done.is_set():
            try:
                srv.accept()[0].close()
            except OSError:
                continue

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        cli.out(IMG, "true")  # the default network exists and has a gateway
        gw = next(x for x in networks_of(cli) if x["Name"] == "bridge")
        gw = gw["IPAM"]["Config"][0]["Gateway"]
        # from the default network the host's address is reachable: the test can fail
        cli.out(IMG, *nc(gw, port))
        with isolation_guard(exclusive=True):
            r = cli("run", "--rm", "--network", internal, IMG, *nc(gw, port))
        assert r.returncode != 0
        r = cli("run", "--rm", "--network", internal, IMG, "ip", "route")
        assert "default" not in r.stdout
        # names still work inside it
        cli.detach("--name", "inner", "--network", internal, IMG, "httpd", "-f", "-p", "80",
                   "-h", "/etc")
        assert cli.out("--network", internal, IMG, *wget("http://inner/hostname", 5))
    finally:
        done.set()
        t.join()
        srv.close()


def test_network_connect_and_disconnect(cli, net):
    a, b = net(), net()
    cli.detach("--name", "multi", "--network", a, IMG, "httpd", "-f", "-p", "80", "-h", "/etc")
    with isolation_guard(exclusive=True):
        r = cli("run", "--rm", "--network", b, IMG, *wget("http://multi/", 3))
    assert r.returncode != 0
    cli.ok("network", "connect", "--alias", "m2", b, "multi")
    assert set(cli.inspect("multi")["NetworkSettings"]["Networks"]) == {a, b}
    assert cli.out("--network", b, IMG, *wget("http://m2/hostname", 5))
    assert "eth1" in cli.exec_out("multi", "ip", "-o", "link")
    cli.ok("network", "disconnect", b, "multi")
    assert "eth1" not in cli.exec_out("multi", "ip", "-o", "link")
    assert set(cli.inspect("multi")["NetworkSettings"]["Networks"]) == {a}


# ------------------------------------------------------------------------------ /etc files


def test_dns_flags_and_add_host(cli):
    out = cli.out("--dns", "192.0.2.53", "--dns-search", "example.test", "--dns-option",
                  "ndots:3", "--add-host", "gw:host-gateway", "--add-host", "db:192.0.2.7",
                  "--hostname", "box", IMG, "sh", "-c", "cat /etc/resolv.conf /etc/hosts")
    assert "nameserver 192.0.2.53" in out and "search example.test" in out
    assert "options ndots:3" in out and "192.0.2.7\tdb" in out
    gw = next(x for x in networks_of(cli) if x["Name"] == "bridge")
    assert f"{gw['IPAM']['Config'][0]['Gateway']}\tgw" in out
    assert "\tbox" in out  # the container's own address, with its hostname


def test_static_ip_and_mac(cli, net):
    n = net("--subnet", "10.87.250.0/24", "--gateway", "10.87.250.1")
    out = cli.out("--network", n, "--ip", "10.87.250.77", "--mac-address",
                  "02:42:0a:57:fa:4d", IMG, "ip", "addr", "show", "eth0")
    assert "inet 10.87.250.77/24" in out and "02:42:0a:57:fa:4d" in out
    cli.detach("--name", "holder", "--network", n, "--ip", "10.87.250.77", IMG, "sleep", "30")
    msg = cli.fails(125, "run", "--rm", "--network", n, "--ip", "10.87.250.77", IMG, "true")
    assert "already in use" in msg
    msg = cli.fails(125, "run", "--rm", "--network", n, "--ip", "10.87.251.5", IMG, "true")
    assert "not in the network's subnet" in msg


# ------------------------------------------------------------------------------ leftovers


def test_nothing_left_after_rm_network_rm_and_prune(cli, udp_echo):
    known: dict = {}
    with isolation_guard():
        cli.ok("network", "prune", "-f")
    before = host_state(cli, known)
    assert not before["bridges"] and not before["netns"] and not before["leases"]
    cli.ok("network", "create", "leftnet")
    cli.ok("network", "create", "--internal", "leftnet2")
    cli.detach("--name", "l1", "--network", "leftnet", "-p", "127.0.0.1::80", IMG,
               "httpd", "-f", "-p", "80", "-h", "/etc")
    cli.detach("--name", "l2", "--network", "leftnet", "--network-alias", "x", IMG,
               "sleep", "30")
    cli.detach("--name", "l3", "--network", "leftnet2", IMG, "sleep", "30")
    cli.detach("--name", "l4", "-p", "127.0.0.1::53/udp", IMG, "sleep", "30")
    during = host_state(cli, known)
    assert during["bridges"] and during["veths"] and during["rules"] and during["netns"]
    assert during["aardvark"] and len(during["leases"]) == 4 + 3  # + 3 keepers
    cli.ok("rm", "-f", "l1", "l2", "l3", "l4")
    after_rm = host_state(cli, known)
    assert len(after_rm["leases"]) == 3 and len(after_rm["netns"]) == 6  # keepers only
    with isolation_guard():
        cli.ok("network", "rm", "leftnet")
        cli.ok("network", "prune", "-f")
    assert "leftnet2" not in cli.ok("network", "ls")
    wait_until(lambda: nothing_left(host_state(cli, known), before), 10,
               message=f"the host's state to be as before: {host_state(cli, known)}")


def test_fifty_parallel_starts_never_share_an_address(cli):
    known: dict = {}
    with isolation_guard():
        cli.ok("network", "prune", "-f")
    before = host_state(cli, known)
    cli.ok("network", "create", "par")
    try:
        def start(i: int) -> str:
            return cli.ok("run", "-d", "--network", "par", IMG, "sleep", "60",
                          timeout=180).strip()

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            ids = list(pool.map(start, range(50)))
        addrs = []
        for cid in ids:
            out = cli.exec_out(cid, "ip", "-o", "-4", "addr", "show", "eth0")
            addrs.append(out.split("inet ")[1].split("/")[0])
        assert len(set(addrs)) == 50, sorted(addrs)
        during = host_state(cli, known)
        assert len(during["leases"]) == 51 and len(during["veths"]) >= 51  # + keeper

        def remove(cid: str) -> None:
            cli.ok("rm", "-f", cid, timeout=180)

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            list(pool.map(remove, ids))
        assert len(host_state(cli, known)["leases"]) == 1  # the network's keeper
    finally:
        with isolation_guard():
            cli("network", "rm", "par")
    wait_until(lambda: nothing_left(host_state(cli, known), before), 15,
               message=f"the host's state to be as before: {host_state(cli, known)}")


def _netavark_running(runroot) -> bool:
    """A netavark (or the test's slow wrapper) working in this run root."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"netavark" in cmd and str(runroot).encode() in cmd:
            return True
    return False


def test_kill9_of_the_cli_during_network_setup(cli, tmp_path):
    """A netavark that takes its time: the CLI is killed while it works; `system check`
    finds what is left, --repair removes it (after the set-up finished on its own)."""
    from sangja.network.netavark import netavark_binary

    slow = tmp_path / "slow-netavark"
    slow.write_text(f"#!/bin/sh\nsleep 1.5\nexec {netavark_binary()} \"$@\"\n")
    slow.chmod(0o755)
    known: dict = {}
    cli.ok("network", "create", "killnet")
    try:
        cli.out("--network", "killnet", IMG, "true")  # its keeper is up
        before = host_state(cli, known)
        env = dict(os.environ, SANGJA_NETAVARK=str(slow))
        p = cli.popen("run", "-d", "--name", "victim", "--network", "killnet", "-p",
                      "127.0.0.1::80", IMG, "sleep", "30", env=env)
        netns = cli.runroot / "netns"
        wait_until(lambda: any(n.endswith(".json") and not n.startswith("keeper-")
                               for n in os.listdir(netns)), 10)
        time.sleep(0.3)  # in the middle of the set-up
        p.send_signal(signal.SIGKILL)
        p.wait()
        # the set-up goes on without it and finishes: wait for its netavark to exit
        wait_until(lambda: not _netavark_running(cli.runroot), 60)
        r = cli("system", "check")
        assert r.returncode == 1 and "network left" in r.stdout, r.stdout + r.stderr
        assert host_state(cli, known) != before
        cli.ok("system", "check", "--repair")
        assert nothing_left(host_state(cli, known), before)
        assert cli("system", "check").returncode == 0
        # the record is still there, and starts
        cli.ok("start", "victim")
        assert container_ip(cli, "victim", "killnet")
        cli.ok("rm", "-f", "victim")
    finally:
        cli("rm", "-f", "victim")
        with isolation_guard():
            cli("network", "rm", "killnet")


# ------------------------------------------------------------------------------ bad input


def test_bad_network_input_is_one_line(cli, net):
    n = net("--subnet", "10.87.240.0/24")
    cli.out("--network", n, IMG, "true")
    before = host_state(cli, {})
    cases = [
        (("run", "--rm", "--network", "no-such-net", IMG, "true"), "not found"),
        (("network", "create", "--subnet", "10.87.240.0/25", "overlap"), "overlaps"),
        (("network", "create", "--subnet", "10.87.1.300/24", "badsub"), "invalid"),
        (("network", "create", "--subnet", "10.87.241.0/24", "--gateway", "10.9.9.9", "gw"),
         "not in subnet"),
        (("network", "create", "-d", "overlay", "drv"), "not supported"),
        (("network", "create", n), "already exists"),
        (("network", "rm", "bridge"), "pre-defined"),
        (("run", "--rm", "-p", "70000:80", IMG, "true"), "invalid port"),
        (("run", "--rm", "--network", "host", "-p", "80", IMG, "true"), "host"),
        (("run", "--rm", "--network", "bridge", "--network-alias", "a", IMG, "true"),
         "user-defined"),
        (("run", "--rm", "--network", "container:nosuch", IMG, "true"), "no such container"),
        (("run", "--rm", "--add-host", "x:host-gateway", "--network", "none", IMG, "true"),
         "host-gateway"),
    ]
    for args, want in cases:
        msg = cli.fails(None, *args)
        assert want in msg, (args, msg)
    cli.detach("--name", "user", "--network", n, IMG, "sleep", "30")
    assert "active endpoints" in cli.fails(1, "network", "rm", n)
    cli.ok("rm", "-f", "user")
    assert nothing_left(host_state(cli, {}), before)
    assert cli("system", "check").returncode == 0


def test_check_repairs_a_killed_writers_temp_state(cli):
    """A command killed while it wrote a network state file leaves `ID.json.tmpPID`:
    `system check` names it, --repair removes it (a live writer's copy is left alone)."""
    netns = cli.runroot / "netns"
    netns.mkdir(mode=0o700, parents=True, exist_ok=True)
    dead = netns / f"{'c' * 64}.json.tmp{2**22 + 7}"  # above pid_max: no such process
    live = netns / f"{'d' * 64}.json.tmp{os.getpid()}"
    dead.write_text("{")
    live.write_text("{")
    try:
        r = cli("system", "check")
        assert r.returncode == 1 and f"network left: {dead.name}" in r.stdout, r.stdout
        assert live.name not in r.stdout
        cli.ok("system", "check", "--repair")
        assert not dead.exists() and live.exists()
    finally:
        for p in (dead, live):
            p.unlink(missing_ok=True)


def test_rm_of_a_never_started_container_removes_a_killed_writers_temp_state(cli):
    """A CLI killed while it wrote the first network state of a container (before it ever
    ran) leaves only `ID.json.tmpPID`: removing the container removes it too."""
    cid = cli.ok("create", "--network", "bridge", IMG, "true").strip()
    netns = cli.runroot / "netns"
    netns.mkdir(mode=0o700, parents=True, exist_ok=True)
    dead = netns / f"{cid}.json.tmp{2**22 + 9}"  # above pid_max: its writer is gone
    dead.write_text("{")
    try:
        cli.ok("rm", cid)
        assert not dead.exists()
    finally:
        dead.unlink(missing_ok=True)
