"""sangja.api.create_body: Docker's create body as the engine's options, through the
CLI's own parser (what the docker CLI, docker-py and compose send)."""

from __future__ import annotations

import pytest

from sangja.api.create_body import container_options
from sangja.api.errors import ApiError


def test_docker_cli_run_body():
    body = {
        "Image": "busybox", "Cmd": ["sh", "-c", "echo hi"], "Env": ["A=1", "FROM_HOST"],
        "Tty": True, "OpenStdin": True, "Labels": {"k": "v"}, "WorkingDir": "/w",
        "User": "1000:1000", "Hostname": "h1", "StopSignal": "SIGINT", "StopTimeout": 3,
        "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/anon": {}, "/named": {}},
        "HostConfig": {
            "Binds": ["vol1:/named:ro", "/tmp:/hosttmp"], "AutoRemove": True,
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
            "Memory": 64 << 20, "NanoCpus": 500_000_000, "PidsLimit": 100,
            "CapAdd": ["NET_ADMIN"], "CapDrop": ["MKNOD"], "ReadonlyRootfs": True,
            "Tmpfs": {"/run": "size=1m"}, "Ulimits": [{"Name": "nofile", "Soft": 100,
                                                       "Hard": 200}],
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
            "ConsoleSize": [24, 80], "IpcMode": "private", "OomScoreAdj": 0,
        },
        "NetworkingConfig": {"EndpointsConfig": {"bridge": {}}},
    }
    o = container_options(body, "c1")
    assert o.name == "c1" and o.image == "busybox" and o.command == ["sh", "-c", "echo hi"]
    assert o.env == ["A=1"]  # a name without a value would be the service's own
    assert o.tty and o.interactive and o.rm and o.read_only
    assert o.labels == {"k": "v"} and o.workdir == "/w" and o.user == "1000:1000"
    assert o.hostname == "h1" and o.stop_signal == "SIGINT" and o.stop_timeout == 3
    targets = {m.target: m for m in o.mounts}
    # /named is covered by a bind: not an anonymous volume as well
    assert targets["/named"].source == "vol1" and targets["/named"].readonly
    assert targets["/anon"].type == "volume" and targets["/anon"].source == ""
    assert targets["/hosttmp"].type == "bind" and targets["/run"].type == "tmpfs"
    assert len(o.mounts) == 4
    (p,) = o.publish
    assert (p.host_ip, p.host_port, p.container_port, p.protocol) == ("127.0.0.1", 8080, 80,
                                                                      "tcp")
    assert o.memory == 64 << 20 and o.cpus == 0.5 and o.pids_limit == 100
    assert o.cap_add == ["CAP_NET_ADMIN"] and o.cap_drop == ["CAP_MKNOD"]
    assert o.ulimits[0].soft == 100 and o.log_max_size == 1_000_000  # decimal, as Docker
    assert o.network == "bridge"


def test_entrypoint_and_networks():
    o = container_options({"Image": "busybox", "Entrypoint": ["/bin/sh", "-c"],
                           "Cmd": ["true"], "HostConfig": {"NetworkMode": "proj_default"},
                           "NetworkingConfig": {"EndpointsConfig": {
                               "proj_default": {"Aliases": ["web"]},
                               "other": {"Aliases": ["x"],
                                         "IPAMConfig": {"IPv4Address": "10.9.0.5"}}}}},
                          None)
    assert o.entrypoint == ["/bin/sh", "-c"] and o.command == ["true"]
    assert o.network == "proj_default" and o.network_aliases == ["web"]
    (extra,) = o.extra_networks
    assert (extra.name, extra.aliases, extra.ip) == ("other", ["x"], "10.9.0.5")
    assert container_options({"Image": "busybox", "Entrypoint": [""]}, None).entrypoint == []
    assert container_options({"Image": "busybox"}, None).entrypoint is None


@pytest.mark.parametrize("body, words", [
    ({}, "Config.Image is required"),
    ({"Image": "busybox", "HostConfig": {"PidMode": "host"}}, "PidMode"),
    ({"Image": "busybox", "HostConfig": {"VolumesFrom": ["x"]}}, "VolumesFrom"),
    ({"Image": "busybox", "HostConfig": {"Memory": 1024}}, "Minimum memory limit"),
    ({"Image": "busybox", "HostConfig": {"AutoRemove": True,
                                         "RestartPolicy": {"Name": "always"}}},
     "--restart and --rm"),
    ({"Image": "busybox", "HostConfig": {"Binds": ["/tmp:/x", "/etc:/x"]}},
     "Duplicate mount point"),
    ({"Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}},
     "invalid restart policy"),
    ({"Image": "busybox", "Env": "A=1", "HostConfig": {"Binds": {"a": 1}}}, "Binds"),
    ([], "must be an object"),
])
def test_refused_with_400(body, words):
    with pytest.raises(ApiError) as e:
        container_options(body, None)
    assert e.value.status == 400 and words in e.value.message


def test_healthcheck_keeps_its_form():
    """compose sends CMD (exec form) or CMD-SHELL; both stay what they are."""
    o = container_options({"Image": "busybox", "Healthcheck": {
        "Test": ["CMD", "wget", "-q", "http://localhost/"], "Interval": 2_000_000_000,
        "Timeout": 1_000_000_000, "Retries": 3, "StartPeriod": 5_000_000_000}}, None)
    assert o.healthcheck == {"Test": ["CMD", "wget", "-q", "http://localhost/"],
                             "Interval": 2_000_000_000, "Timeout": 1_000_000_000,
                             "StartPeriod": 5_000_000_000, "Retries": 3}
    o = container_options({"Image": "busybox",
                           "Healthcheck": {"Test": ["CMD-SHELL", "test -f /ok"]}}, None)
    assert o.healthcheck == {"Test": ["CMD-SHELL", "test -f /ok"]}
    o = container_options({"Image": "busybox", "Healthcheck": {"Test": ["NONE"]}}, None)
    assert o.healthcheck == {"Test": ["NONE"]}


@pytest.mark.parametrize("check, message", [
    ({"Test": ["BOGUS", "x"]}, "unknown kind"),
    ({"Test": ["CMD"]}, "a command is required"),
    ({"Test": ["CMD", "true"], "Interval": 10}, "cannot be less than 1ms"),
    ({"Test": ["CMD", "true"], "Retries": -1}, "cannot be negative"),
])
def test_bad_healthcheck_is_a_400(check, message):
    with pytest.raises(ApiError) as e:
        container_options({"Image": "busybox", "Healthcheck": check}, None)
    assert message in str(e.value)
