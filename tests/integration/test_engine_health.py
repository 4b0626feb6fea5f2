"""Healthchecks run by the container's monitor (no daemon): the status seen by `inspect`
(State.Health) and `ps` moves as the check's command starts to pass or fail inside the
container; health_status events; the image's HEALTHCHECK and --no-healthcheck;
`healthcheck run` by hand; a probe past its timeout is killed. Bad input: one line."""

from __future__ import annotations

import time

import pytest
from engine_cli import wait_until

pytestmark = pytest.mark.root

NONE = ("--network", "none")


def health(cli, ref: str) -> dict:
    return cli.inspect(ref)["State"].get("Health") or {}


def ps_status(cli, ref: str) -> str:
    return next(r["Status"] for r in cli.ps() if r["ID"] == ref)


def test_status_follows_the_check(cli):
    since = str(time.time() - 1)
    cid = cli.detach(*NONE, "--health-cmd", "test -e /tmp/ok && echo fine",
                     "--health-interval", "200ms", "--health-retries", "2", "busybox",
                     "sleep", "300")
    h = health(cli, cid)
    assert h["Status"] in ("starting", "unhealthy")
    wait_until(lambda: health(cli, cid).get("Status") == "unhealthy", 20)
    h = health(cli, cid)
    assert h["FailingStreak"] >= 2 and h["Log"][-1]["ExitCode"] == 1
    assert ps_status(cli, cid).endswith("(unhealthy)")
    cli.exec_out(cid, "touch", "/tmp/ok")
    wait_until(lambda: health(cli, cid).get("Status") == "healthy", 20)
    h = health(cli, cid)
    assert h["FailingStreak"] == 0
    last = h["Log"][-1]
    assert last["ExitCode"] == 0 and last["Output"] == "fine\n"
    assert set(last) == {"Start", "End", "ExitCode", "Output"}
    assert len(h["Log"]) <= 5
    assert ps_status(cli, cid).endswith("(healthy)")
    out = cli.ok("events", "--since", since, "--until", "0s", "--filter",
                 f"container={cid}", "--filter", "event=health_status", "--format",
                 "{{.Action}}")
    assert out.splitlines()[:2] == ["health_status: unhealthy", "health_status: healthy"]
    # stopped: no more probes, the last state stays visible
    cli.ok("stop", "-t", "0", cid)
    n = len(health(cli, cid)["Log"])
    time.sleep(0.6)
    assert len(health(cli, cid)["Log"]) == n
    assert "healthy" not in ps_status(cli, cid)
    # a new start begins again at starting
    cli.ok("update", "--restart", "no", cid)
    cli.ok("start", cid)
    assert health(cli, cid)["Status"] in ("starting", "healthy")


def test_start_period_does_not_count_failures(cli):
    cid = cli.detach(*NONE, "--health-cmd", "false", "--health-interval", "100ms",
                     "--health-retries", "1", "--health-start-period", "1h", "busybox",
                     "sleep", "300")
    wait_until(lambda: len(health(cli, cid).get("Log") or []) >= 3, 20)
    h = health(cli, cid)
    assert h["Status"] == "starting" and h["FailingStreak"] == 0


def test_start_interval_until_the_first_pass(cli):
    """--health-start-interval: probes at that pace while the start period lasts and the
    status is starting; after the first pass, at --health-interval (here: never again)."""
    cid = cli.detach(*NONE, "--health-cmd", "test -e /tmp/ok", "--health-interval", "1h",
                     "--health-start-period", "1h", "--health-start-interval", "100ms",
                     "busybox", "sleep", "300")
    wait_until(lambda: len(health(cli, cid).get("Log") or []) >= 2, 20)
    assert health(cli, cid)["Status"] == "starting"
    cli.exec_out(cid, "touch", "/tmp/ok")
    wait_until(lambda: health(cli, cid).get("Status") == "healthy", 20)
    n = len(health(cli, cid)["Log"])
    time.sleep(0.6)
    assert len(health(cli, cid)["Log"]) == n


def test_timeout_kills_the_probe(cli):
    cid = cli.detach(*NONE, "--health-cmd", "echo begun > /tmp/probe; sleep 30",
                     "--health-timeout", "300ms", "--health-interval", "1h", "busybox",
                     "sleep", "300")
    t0 = time.monotonic()
    r = cli("healthcheck", "run", cid)
    assert time.monotonic() - t0 < 20
    assert r.returncode == 1 and r.stdout.strip() == "unhealthy"
    last = health(cli, cid)["Log"][-1]
    assert last["ExitCode"] == -1
    assert last["Output"] == "Health check exceeded timeout (300ms)"
    assert cli.exec_out(cid, "cat", "/tmp/probe").strip() == "begun"
    # the probe's process is gone from the container
    assert "sleep 30" not in cli.exec_out(cid, "ps", "-o", "args").splitlines()


def test_healthcheck_run_by_hand(cli):
    cid = cli.detach(*NONE, "--health-cmd", "exit 0", "--health-interval", "1h", "busybox",
                     "sleep", "300")
    assert health(cli, cid)["Status"] == "starting"
    r = cli("healthcheck", "run", cid)
    assert r.returncode == 0 and r.stdout == ""
    assert health(cli, cid)["Status"] == "healthy"
    plain = cli.detach(*NONE, "busybox", "sleep", "300")
    assert "no defined healthcheck" in cli.fails(125, "healthcheck", "run", plain)
    assert "No such container" in cli.fails(None, "healthcheck", "run", "zz-missing")
    stopped = cli.create(*NONE, "--health-cmd", "true", "busybox", "true")
    assert "not running" in cli.fails(125, "healthcheck", "run", stopped)
    assert "Health" not in cli.inspect(plain)["State"]


def test_image_healthcheck_and_no_healthcheck(cli, tmp_path):
    (tmp_path / "Containerfile").write_text(
        "FROM busybox\nHEALTHCHECK --interval=150ms --retries=1 CMD [\"true\"]\n")
    cli.ok("build", "-q", "-t", "localhost/zz-health:1", str(tmp_path), timeout=120)
    try:
        cid = cli.detach(*NONE, "localhost/zz-health:1", "sleep", "300")
        wait_until(lambda: health(cli, cid).get("Status") == "healthy", 20)
        assert cli.inspect(cid)["Config"]["Healthcheck"]["Test"] == ["CMD", "true"]
        # flags override the image's fields; --no-healthcheck turns it off
        off = cli.detach(*NONE, "--no-healthcheck", "localhost/zz-health:1", "sleep", "300")
        time.sleep(0.5)
        assert "Health" not in cli.inspect(off)["State"]
        assert "health" not in ps_status(cli, off)
        bad = cli.detach(*NONE, "--health-cmd", "exit 3", "localhost/zz-health:1", "sleep",
                         "300")
        wait_until(lambda: health(cli, bad).get("Status") == "unhealthy", 20)
        assert health(cli, bad)["Log"][-1]["ExitCode"] == 3
    finally:
        cli.ok("rm", "-f", *[c["ID"] for c in cli.ps() if c["Image"] ==
                             "localhost/zz-health:1"])
        cli.ok("rmi", "localhost/zz-health:1")


def test_bad_health_flags(cli):
    for args in (["--no-healthcheck", "--health-cmd", "true"],
                 ["--health-interval", "100us"], ["--health-timeout", "x"],
                 ["--health-retries", "many"]):
        before = {r["ID"] for r in cli.ps()}
        cli.fails(125, "run", "-d", *NONE, *args, "busybox", "sleep", "1")
        assert {r["ID"] for r in cli.ps()} == before
