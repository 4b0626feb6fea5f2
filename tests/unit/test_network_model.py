"""sangja.network without root: addresses, subnets, leases (SQLite, concurrent), the /etc
files a network gives, Docker's port shapes."""

from __future__ import annotations

import concurrent.futures

import pytest

from sangja.engine import etc_files
from sangja.network import addr, config, ipam, report
from sangja.network.store import NetworkDB, NetworkError


def test_subnet_arithmetic():
    s = addr.Subnet("10.87.3.0/24")
    assert (addr.to_text(4, s.first), addr.to_text(4, s.last)) == ("10.87.3.0", "10.87.3.255")
    assert "10.87.3.77" in s and "10.87.4.1" not in s and "fd00::1" not in s
    assert s.overlaps(addr.Subnet("10.87.0.0/16")) and not s.overlaps(addr.Subnet("10.87.4.0/24"))
    with pytest.raises(ValueError, match="host bits"):
        addr.Subnet("10.87.3.1/24")
    with pytest.raises(ValueError):
        addr.Subnet("10.87.3.0/33")
    assert str(addr.Subnet("fd87:1::/64")) == "fd87:1::/64"
    assert addr.mac_for("10.87.0.2") == "02:42:0a:57:00:02"


def test_free_subnet_avoids_taken_and_routes():
    routes = [(addr.Subnet("10.87.0.0/24"), "eth9"), (addr.Subnet("10.87.2.0/23"), "br0")]
    assert config.free_subnet(["10.87.1.0/24"], routes=routes) == "10.87.4.0/24"
    assert config.conflict("10.87.2.0/24", "sj0", routes) == "br0"
    assert config.conflict("10.87.2.0/24", "br0", routes) is None  # its own bridge
    v6 = config.free_subnet([], 6, routes=[])
    assert v6.startswith("fd87:") and v6.endswith("::/64")


def test_ipam_address_choice():
    sub = {"subnet": "10.87.9.0/29", "gateway": "10.87.9.1", "ip_range": ""}
    assert ipam.address(sub, set(), {}) == "10.87.9.2"
    assert ipam.address(sub, {"10.87.9.2", "10.87.9.3"}, {}) == "10.87.9.4"
    assert ipam.address(sub, set(), {4: "10.87.9.6"}) == "10.87.9.6"
    with pytest.raises(NetworkError, match="already in use"):
        ipam.address(sub, {"10.87.9.6"}, {4: "10.87.9.6"})
    with pytest.raises(NetworkError, match="already in use"):
        ipam.address(sub, set(), {4: "10.87.9.1"})  # the gateway
    with pytest.raises(NetworkError, match="not in the network's subnet"):
        ipam.address(sub, set(), {4: "10.87.10.2"})
    with pytest.raises(NetworkError, match="no free IP"):
        ipam.address(sub, {f"10.87.9.{i}" for i in range(2, 7)}, {})
    ranged = {"subnet": "10.87.9.0/24", "gateway": "10.87.9.1", "ip_range": "10.87.9.128/25"}
    assert ipam.address(ranged, set(), {}) == "10.87.9.128"


def _net(tmp_path, subnet="10.87.20.0/24"):
    net = config.new_network(str(tmp_path), "n", [], subnets=[{"subnet": subnet}])
    return net


def test_leases_are_unique_under_concurrency(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "conflict", lambda *a, **k: None)
    net = _net(tmp_path)
    with NetworkDB(tmp_path / "networks.db") as db:
        db.insert(net)

    def lease(i: int) -> str:
        with NetworkDB(tmp_path / "networks.db") as db:
            return db.lease(net, f"{i:064x}", {})[0]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lease, range(100)))
    assert len(set(got)) == 100
    with NetworkDB(tmp_path / "networks.db") as db:
        assert db.lease(net, f"{5:064x}", {}) == [got[5]]  # its own, kept
        db.release(f"{5:064x}")
        assert db.lease(net, "f" * 64, {}) == [got[5]]  # freed, leased again


def test_network_definition_checks(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "conflict", lambda *a, **k: None)
    net = _net(tmp_path)
    assert net["subnets"] == [{"subnet": "10.87.20.0/24", "gateway": "10.87.20.1",
                               "ip_range": ""}]
    assert not net["auto_subnet"] and net["interface"].startswith("sj")
    with pytest.raises(NetworkError, match="overlaps"):
        config.new_network(str(tmp_path), "m", [net], subnets=[{"subnet": "10.87.20.128/25"}])
    with pytest.raises(NetworkError, match="not in subnet"):
        config.new_network(str(tmp_path), "m", [], subnets=[
            {"subnet": "10.87.21.0/24", "gateway": "10.87.22.1"}])
    with pytest.raises(NetworkError, match="not supported"):
        config.new_network(str(tmp_path), "m", [], driver="overlay")
    assert config.bridge_prefix("/var/lib/sangja") == "sangja"


def test_etc_files_on_a_network(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("search corp.test\nnameserver 127.0.0.53\nnameserver 192.0.2.1\n"
                    "options edns0\n")
    out = etc_files.resolv_conf("bridge", str(conf), {"nameservers": ["10.87.1.1"],
                                                      "search": [], "options": []})
    assert out.splitlines() == ["search corp.test", "options edns0", "nameserver 10.87.1.1"]
    out = etc_files.resolv_conf("bridge", str(conf), {"search": ["a.test"],
                                                      "options": ["ndots:2"]})
    assert "search a.test" in out and "corp.test" not in out and "options ndots:2" in out
    assert "nameserver 192.0.2.1" in out and "127.0.0.53" not in out
    hosts = etc_files.hosts("bridge", "box", net={"addresses": ["10.87.0.5"],
                                                  "aliases": ["web"],
                                                  "add_hosts": ["db:10.87.0.1"]})
    assert "10.87.0.1\tdb" in hosts and hosts.endswith("10.87.0.5\tbox web\n")


def test_docker_port_shapes():
    state = {"ports": [{"host_ip": "", "host_port": 8080, "container_port": 80,
                        "protocol": "tcp", "range": 2},
                       {"host_ip": "127.0.0.1", "host_port": 5353, "container_port": 53,
                        "protocol": "udp", "range": 1}]}
    assert report.port_lines(state) == ["80/tcp -> 0.0.0.0:8080", "81/tcp -> 0.0.0.0:8081",
                                        "53/udp -> 127.0.0.1:5353"]
    assert report.port_lines(state, "53/udp") == ["127.0.0.1:5353"]
    assert report.ps_ports(state).startswith("0.0.0.0:8080->80/tcp")
