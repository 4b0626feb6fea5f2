"""process.scheduler, process.ioPriority and linux.personality, observed from inside and
from the host."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import new_id, sh

pytestmark = [pytest.mark.root, pytest.mark.sangja_only]  # runc 1.1.5 predates these fields


def test_scheduler_policy_and_nice(runtime, make_bundle):
    bundle = make_bundle(args=sh("grep -E '^(policy|prio) ' /proc/self/sched"),
                         process={"scheduler": {"policy": "SCHED_BATCH", "nice": 5}})
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    values = {line.split(":")[0].strip(): line.split(":")[1].strip()
              for line in r.stdout.splitlines()}
    assert values == {"policy": "3", "prio": "125"}


def test_personality_linux32(runtime, make_bundle):
    r = runtime.run_container(make_bundle(args=["uname", "-m"],
                                          linux={"personality": {"domain": "LINUX32"}}))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("i686", "i386", "armv8l", "armv7l")


@pytest.mark.skipif(not shutil.which("ionice"), reason="util-linux ionice missing on host")
def test_io_priority_seen_from_host(runtime, make_bundle):
    bundle = make_bundle(args=["sleep", "1000"],
                         process={"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 6}})
    cid = new_id()
    runtime.create(bundle, cid)
    runtime.start(cid)
    pid = runtime.wait_status(cid, "running")["pid"]
    out = subprocess.run(["ionice", "-p", str(pid)], capture_output=True, text=True).stdout
    assert out.strip() == "best-effort: prio 6"


@pytest.mark.parametrize("field, value", [
    ("scheduler", {"policy": "SCHED_NOPE"}),
    ("scheduler", {"policy": "SCHED_FIFO"}),  # FIFO needs a priority
    ("scheduler", {"policy": "SCHED_OTHER", "nice": 40}),
    ("ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 9}),
])
def test_bad_scheduling_rejected(runtime, make_bundle, field, value):
    r = runtime.run("run", "--bundle", make_bundle(args=["true"], process={field: value}),
                    new_id())
    assert r.returncode != 0
    assert f"process.{field}" in r.stderr
    assert runtime.ids() == []
