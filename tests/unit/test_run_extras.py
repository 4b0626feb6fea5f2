"""The pieces behind issue 13's commands and flags that need no root: the new run flags'
parsing, device cgroup rules, CDI edits, event filters and health state rules."""

from __future__ import annotations

import json

import pytest

from sangja.cli.engine.run_flags import InvalidOption, parse_run_args
from sangja.engine import cdi, event_query, events, health
from sangja.engine.device_rules import DeviceRuleError, parse_rule
from sangja.engine.options import ContainerOptions


def run(*args: str) -> ContainerOptions:
    return parse_run_args([*args, "img"])


def test_namespace_and_resource_flags():
    o = run("--pid", "host", "--ipc", "shareable", "--uts", "host", "--cgroupns", "private",
            "--userns", "host", "--oom-score-adj", "-500", "-m", "64m",
            "--memory-reservation", "32m", "--volumes-from", "a:ro", "--volumes-from", "b",
            "--device-cgroup-rule", "c 1:3 rwm", "--cidfile", "/tmp/x/cid")
    assert (o.pid_mode, o.ipc_mode, o.uts_mode, o.cgroupns_mode) == (
        "host", "shareable", "host", "private")
    assert o.oom_score_adj == -500 and o.memory_reservation == 32 << 20
    assert o.volumes_from == ["a:ro", "b"] and o.device_cgroup_rules == ["c 1:3 rwm"]
    assert o.cidfile == "/tmp/x/cid"
    assert run("--pid", "container:web").pid_mode == "container:web"


@pytest.mark.parametrize("args", [
    ["--pid", "private"], ["--ipc", "container:"], ["--userns", "auto"],
    ["--oom-score-adj", "-1001"], ["-m", "16m", "--memory-reservation", "32m"],
    ["--uts", "host", "-h", "x1"], ["--no-healthcheck", "--health-retries", "2"],
    ["--health-interval", "10us"], ["--gpus", "0"], ["--blkio-weight", "5"],
])
def test_bad_flags(args):
    with pytest.raises(InvalidOption):
        run(*args)


def test_health_flags_and_cdi_names():
    o = run("--health-cmd", "curl -f localhost", "--health-interval", "1m30s",
            "--health-timeout", "500ms", "--health-retries", "4", "--health-start-period", "0")
    assert o.healthcheck == {"Test": ["CMD-SHELL", "curl -f localhost"],
                             "Interval": 90 * 10**9, "Timeout": 5 * 10**8, "StartPeriod": 0,
                             "Retries": 4}
    assert run("--no-healthcheck").healthcheck == {"Test": ["NONE"]}
    assert run().healthcheck is None
    o = run("--device", "vendor.com/gpu=0", "--gpus", "2")
    assert o.cdi_devices == ["vendor.com/gpu=0", "nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    assert o.devices == []


def test_effective_healthcheck_merges_the_image():
    image = {"Healthcheck": {"Test": ["CMD", "true"], "Interval": 5, "Retries": 2}}
    o = ContainerOptions(healthcheck={"Interval": 7})
    assert health.effective_config(o, image) == {"Test": ["CMD", "true"], "Interval": 7,
                                                 "Retries": 2}
    assert health.effective_config(ContainerOptions(healthcheck={"Test": ["NONE"]}),
                                   image) is None
    assert health.effective_config(ContainerOptions(), {}) is None


@pytest.mark.parametrize("ns,text", [(200_000_000, "200ms"), (30 * 10**9, "30s"),
                                     (90 * 10**9, "1m30s"), (3600 * 10**9, "1h0m0s"),
                                     (1_500_000_000, "1.5s"), (1500, "1.5µs")])
def test_go_duration_text(ns, text):
    assert health._human(ns) == text


@pytest.mark.parametrize("rule,entry", [
    ("c 1:3 rwm", {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}),
    ("b *:* r", {"allow": True, "type": "b", "access": "r"}),
    ("a 7:* mw", {"allow": True, "type": "a", "major": 7, "access": "mw"}),
])
def test_device_rules(rule, entry):
    assert parse_rule(rule) == entry


@pytest.mark.parametrize("rule", ["c 1:3", "c 1-3 rwm", "z 1:3 rwm", "c 1:3 rwx",
                                  "c 1:3 rrw", "c -1:3 r", ""])
def test_bad_device_rules(rule):
    with pytest.raises(DeviceRuleError):
        parse_rule(rule)


def test_cdi_edits(tmp_path, monkeypatch):
    (tmp_path / "a.json").write_text(json.dumps({
        "cdiVersion": "0.6.0", "kind": "v.com/c", "containerEdits": {"env": ["K=1"]},
        "devices": [{"name": "d", "containerEdits": {
            "env": ["PATH=/x"],
            "deviceNodes": [{"path": "/dev/x", "type": "c", "major": 9, "minor": 8,
                             "permissions": "r"}],
            "mounts": [{"hostPath": "/opt/lib", "containerPath": "/usr/lib/x",
                        "options": ["ro", "bind"]}],
            "hooks": [{"hookName": "createContainer", "path": "/bin/h", "args": ["h"]}]}}]}))
    monkeypatch.setenv("SANGJA_CDI_SPEC_DIRS", str(tmp_path))
    spec = {"process": {"env": ["PATH=/bin"]}, "linux": {"resources": {"devices": []}}}
    cdi.apply(spec, ["v.com/c=d"])
    assert spec["process"]["env"] == ["K=1", "PATH=/x"]
    assert spec["linux"]["devices"] == [{"path": "/dev/x", "type": "c", "major": 9,
                                         "minor": 8}]
    assert spec["linux"]["resources"]["devices"] == [
        {"allow": True, "type": "c", "major": 9, "minor": 8, "access": "r"}]
    assert spec["mounts"] == [{"destination": "/usr/lib/x", "source": "/opt/lib",
                               "type": "bind", "options": ["ro", "bind"]}]
    assert spec["hooks"] == {"createContainer": [{"path": "/bin/h", "args": ["h"]}]}
    with pytest.raises(cdi.CDIError, match="v.com/c=e"):
        cdi.resolve(["v.com/c=e"])
    (tmp_path / "b.json").write_text('{"kind": 3}')
    with pytest.raises(cdi.CDIError, match="b.json"):
        cdi.resolve(["v.com/c=d"])


def test_event_filters():
    msg = {"Type": "container", "Action": "health_status: healthy",
           "Actor": {"ID": "abc123", "Attributes": {"name": "web", "image": "busybox",
                                                     "tier": "db"}}, "from": "busybox"}
    f = event_query.parse_filters
    assert event_query.matches(msg, f(["event=health_status", "container=web"]))
    assert event_query.matches(msg, f(["container=abc", "image=busybox:latest"]))
    assert event_query.matches(msg, f(["type=image", "type=container", "label=tier=db"]))
    assert not event_query.matches(msg, f(["type=image"]))
    assert not event_query.matches(msg, f(["event=die"]))
    assert not event_query.matches(msg, f(["container=web", "image=alpine"]))
    for bad in (["foo=bar"], ["noequals"]):
        with pytest.raises(event_query.FilterError):
            f(bad)


def test_event_log_round_trip(tmp_path, monkeypatch):
    events.emit(str(tmp_path), "container", "start", "c1", {"name": "n"}, image="img")
    first = (tmp_path / "events" / "events.log").stat().st_size
    monkeypatch.setattr(events, "MAX_SIZE", first + 10)  # only the next append rotates
    events.emit(str(tmp_path), "container", "die", "c1", {"name": "n", "exitCode": "0"})
    events.emit(str(tmp_path), "image", "tag", "sha256:x", {"name": "a:b"})
    got = list(event_query.read_events(str(tmp_path)))
    assert [e["Action"] for e in got] == ["start", "die", "tag"]
    assert (tmp_path / "events" / "events.log.1").exists()
    assert got[0]["from"] == "img" and got[0]["status"] == "start"
    assert "status" in got[2] and "from" not in got[2]
    assert [e["Action"] for e in event_query.read_events(
        str(tmp_path), filters={"type": ["image"]})] == ["tag"]
    assert list(event_query.read_events(str(tmp_path), until_ns=0)) == []
