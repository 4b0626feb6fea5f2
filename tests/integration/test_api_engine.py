"""The service and the engine as one: `docker events` through the service reads the
engine's event log (what the sangja CLI does shows there, and each event once),
`docker update` and `docker diff` through the engine's update and diff, image names
through the service stored as the sangja CLI stores them. Effects are checked on the host
(the cgroup), through the sangja CLI, or from inside the containers."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter

import pytest
from api_service import (
    Service,
    service_fixture,  # noqa: F401 - the module's fixtures
    )
from engine_cli import wait_until

pytestmark = pytest.mark.root


@pytest.fixture
def api(service: Service, cli):
    yield service


def _events(api, since: str, *filters: str) -> list[str]:
    out = api.ok("events", "--since", since, "--until", str(int(time.time()) + 1),
                 *[a for f in filters for a in ("--filter", f)],
                 "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
    return out.splitlines()


def test_one_run_rm_is_one_of_each_event(api):
    since = str(int(time.time()) - 1)
    assert api.ok("run", "--rm", "--name", "ev-once", "busybox", "true") == ""
    seen = Counter(_events(api, since, "container=ev-once"))
    for action in ("create", "start", "die", "destroy"):
        assert seen[f"container {action} ev-once"] == 1, seen


def test_what_the_cli_does_is_in_docker_events(api, cli):
    since = str(int(time.time()) - 1)
    # a follower started before: the CLI's run reaches it while it streams
    follower = subprocess.Popen(
        ["docker", "-H", f"unix://{api.sock}", "events", "--filter", "container=ev-cli",
         "--filter", "event=start", "--format", "{{.Action}} {{.Actor.Attributes.name}}"],
        stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # the follower's request is in before the run (no timing asserted)
        cli.ok("run", "--rm", "--name", "ev-cli", "busybox", "true")
        assert _line_within(follower.stdout, 30) == "start ev-cli\n"
    finally:
        follower.kill()
        follower.wait()
    seen = Counter(_events(api, since, "container=ev-cli"))
    for action in ("create", "start", "die", "destroy"):
        assert seen[f"container {action} ev-cli"] == 1, seen
    # the API's own network and volume events land in the same log: `sangja events` too
    api.ok("network", "create", "ev-net")
    api.ok("network", "rm", "ev-net")
    api.ok("volume", "create", "ev-vol")
    api.ok("volume", "rm", "ev-vol")
    out = cli.ok("events", "--since", since, "--until", str(int(time.time()) + 1),
                 "--format", "{{json .}}")
    seen = Counter((m["Type"], m["Action"], m["Actor"]["Attributes"].get("name")
                    or m["Actor"]["ID"]) for m in map(json.loads, out.splitlines()))
    for kind, name in (("network", "ev-net"), ("volume", "ev-vol")):
        for action in ("create", "destroy"):
            assert seen[(kind, action, name)] == 1, seen


def _line_within(stream, seconds: float) -> str:
    """One line of `stream`, or "" when none came within `seconds` (the test fails, it
    does not hang)."""
    import select

    r, _, _ = select.select([stream], [], [], seconds)
    return stream.readline() if r else ""


def test_events_query_bounds_and_bad_filters(api):
    since = str(int(time.time()) - 1)
    api.ok("run", "--rm", "--name", "ev-q", "busybox", "true")
    # until before the run: nothing of it
    assert not [e for e in _events_until(api, since, since) if "ev-q" in e]
    assert Counter(_events(api, since, "container=ev-q", "event=die")) == {
        "container die ev-q": 1}
    # Docker's other keys: scope=local is every event, a swarm object's key none
    assert Counter(_events(api, since, "container=ev-q", "event=die", "scope=local")) == {
        "container die ev-q": 1}
    assert not _events(api, since, "container=ev-q", "service=x")
    status, _, body = api.request("GET", '/events?filters={"bogus":["x"]}')
    assert status == 400 and b"bogus" in body
    status, _, body = api.request("GET", "/events?since=yesterday-ish")
    assert status == 400 and b"since" in body


def _events_until(api, since: str, until: str) -> list[str]:
    return api.ok("events", "--since", since, "--until", until, "--format",
                  "{{.Action}} {{.Actor.Attributes.name}}").splitlines()


def _memory_limit(cli, ref: str) -> str:
    """The container's memory limit read from inside (cgroup v1's file or v2's)."""
    return cli.exec_out(ref, "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                        "2>/dev/null || cat /sys/fs/cgroup/memory.max").strip()


def test_update_and_diff(api, cli):
    cid = api.ok("run", "-d", "--name", "upd", "busybox", "sleep", "60").strip()
    api.ok("update", "--memory", "64m", "--restart", "on-failure:3", "upd")
    # the live cgroup, as the container sees it, and the recorded options
    assert _memory_limit(cli, "upd") == str(64 << 20)
    doc = cli.inspect("upd")
    assert doc["HostConfig"]["Memory"] == 64 << 20
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure",
                                                  "MaximumRetryCount": 3}
    r = api.docker("update", "--memory", "1m", "upd")
    assert r.returncode != 0 and "Minimum memory limit allowed is 6MB" in r.stderr
    assert _memory_limit(cli, "upd") == str(64 << 20)
    r = api.docker("update", "--memory", "64m", "no-such-container")
    assert r.returncode != 0 and "No such container" in r.stderr

    api.ok("exec", "upd", "sh", "-c", "echo x > /added; rm /etc/group; echo y >> /etc/passwd")
    out = api.ok("diff", "upd").splitlines()
    assert "A /added" in out and "D /etc/group" in out and "C /etc/passwd" in out, out
    assert out == cli.ok("diff", "upd").splitlines()
    api.ok("rm", "-f", "upd")
    assert cid not in cli.ok("ps", "-a", "-q", "--no-trunc")


def test_names_are_the_clis(api, cli):
    """commit and tag through the service store the name `sangja commit/tag` stores for
    the same text (the docker CLI sends `docker.io/library/nmfoo`), so both CLIs find
    `nmfoo:1`; a short name that is only in Docker Hub's form is found too."""
    api.ok("run", "-d", "--name", "nm", "busybox", "sleep", "60")
    api.ok("exec", "nm", "sh", "-c", "echo committed > /marker")
    api.ok("commit", "nm", "nmfoo:1")
    cli.ok("commit", "nm", "nmcli:1")
    api.ok("rm", "-f", "nm")
    names = _names(cli)
    assert "localhost/nmfoo:1" in names and "localhost/nmcli:1" in names, names
    assert api.ok("run", "--rm", "nmfoo:1", "cat", "/marker") == "committed\n"
    assert cli.ok("run", "--rm", "nmfoo:1", "cat", "/marker") == "committed\n"
    api.ok("tag", "nmfoo:1", "nmbar:2")
    api.ok("tag", "nmfoo:1", "me/nmbar:2")
    cli.ok("tag", "nmfoo:1", "me/nmbaz:2")
    names = _names(cli)
    for n in ("localhost/nmbar:2", "localhost/me/nmbar:2", "localhost/me/nmbaz:2"):
        assert n in names, names
    assert cli.ok("run", "--rm", "me/nmbar:2", "cat", "/marker") == "committed\n"
    # pulled through the service, a name is Docker Hub's: `nmhub:3` finds it
    cli.ok("tag", "nmfoo:1", "docker.io/library/nmhub:3")
    assert api.ok("run", "--rm", "nmhub:3", "cat", "/marker") == "committed\n"
    assert api.ok("inspect", "--format", "{{.Id}}", "nmhub:3").startswith("sha256:")
    for n in ("nmfoo:1", "nmcli:1", "nmbar:2", "me/nmbar:2", "me/nmbaz:2", "nmhub:3"):
        api.ok("rmi", n)
    assert not [n for n in _names(cli) if "nm" in n], _names(cli)


def _names(cli) -> list[str]:
    return cli.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()


def test_health_in_inspect(api, cli):
    api.ok("run", "-d", "--name", "hl", "--health-cmd", "true", "--health-interval", "1s",
           "busybox", "sleep", "60")
    wait_until(lambda: api.ok("inspect", "--format", "{{.State.Health.Status}}", "hl")
               .strip() == "healthy", 30, message="never healthy through the service")
    assert cli.inspect("hl")["State"]["Health"]["Status"] == "healthy"
    api.ok("rm", "-f", "hl")
