"""A build stopped in the middle of a RUN step, seen from the outside: kill -9 of `sangja
build` leaves no container (`ps -a`), process, cgroup or mount, and `system check` finds
nothing to repair (the build's watchdog removes the RUN containers); SIGINT and SIGTERM
stop the RUN containers (one stage, or two stages built in parallel threads), remove them
and tag nothing, before the build exits with 130."""

from __future__ import annotations

import signal

import pytest
from engine_cli import cgroups_of, processes_in, wait_until
from test_build import build_mounts, context

pytestmark = pytest.mark.root

ONE = "FROM busybox\nRUN echo started-a; sleep 60\n"
TWO = ("FROM busybox AS a\nRUN echo started-a; sleep 60\n"
       "FROM busybox AS b\nRUN echo started-b; sleep 60\n"
       "FROM busybox\nCOPY --from=a /bin/busybox /a\nCOPY --from=b /bin/busybox /b\n")


def start_build(cli, ctx, waits: list[str]):
    """`sangja build` (no cache) in the background, once every RUN step of `waits` printed
    its line; (the process, the ids of the RUN containers running)."""
    p = cli.popen("build", "--no-cache", "--network", "none", "-t", "localhost/stopped:1",
                  str(ctx), text=True)
    seen = []
    while len(seen) < len(waits):
        line = p.stdout.readline()
        assert line, f"the build ended early: {p.wait()} {p.stderr.read()}"
        seen += [w for w in waits if w in line and not line.startswith(("STEP", "["))]
    ids = {r["ID"] for r in cli.ps()}
    assert len(ids) == len(waits), ids
    return p, ids


def assert_nothing_left(cli, ids: set[str]) -> None:
    assert cli.ps() == []
    assert processes_in(ids) == [] and cgroups_of(ids) == []
    assert build_mounts(cli) == []
    assert "localhost/stopped" not in cli.ok("images")
    assert cli.ok("system", "check").splitlines() == ["no problems found"]


@pytest.mark.parametrize("containerfile, waits", [(ONE, ["started-a"]),
                                                  (TWO, ["started-a", "started-b"])],
                         ids=["one-stage", "two-stages"])
def test_kill_9_during_run_leaves_nothing(cli, tmp_path, containerfile, waits):
    ctx = context(tmp_path, containerfile)
    p, ids = start_build(cli, ctx, waits)
    p.kill()
    p.wait(30)
    p.stdout.close()
    p.stderr.close()
    wait_until(lambda: cli.ps() == [], 30, message="the RUN containers to go")
    assert_nothing_left(cli, ids)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("containerfile, waits", [(ONE, ["started-a"]),
                                                  (TWO, ["started-a", "started-b"])],
                         ids=["one-stage", "two-stages"])
def test_interrupt_stops_and_removes_the_run_containers(cli, tmp_path, sig, containerfile,
                                                        waits):
    ctx = context(tmp_path, containerfile)
    p, ids = start_build(cli, ctx, waits)
    p.send_signal(sig)
    assert p.wait(60) == 130
    err = p.stderr.read()
    p.stdout.close()
    p.stderr.close()
    assert "Traceback" not in err, err
    assert_nothing_left(cli, ids)  # at once: the build waited for its clean-up
