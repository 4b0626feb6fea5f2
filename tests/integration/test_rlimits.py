"""rlimits the host forbids: a clear error naming the limit, nothing left behind."""

from __future__ import annotations

import resource

import pytest

from conftest import new_id

pytestmark = pytest.mark.root


def _has_cap_sys_resource() -> bool:
    with open("/proc/self/status") as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    return bool(eff >> 24 & 1)


@pytest.mark.sangja_only  # runc reports the same failure, worded differently
@pytest.mark.skipif(_has_cap_sys_resource(), reason="root may raise hard limits here")
def test_rlimit_above_host_hard_limit_is_a_clear_error(runtime, make_bundle):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit on open files here")
    bundle = make_bundle(args=["true"], process={"rlimits": [
        {"type": "RLIMIT_NOFILE", "soft": hard + 1000, "hard": hard + 1000}]})
    r = runtime.run("run", "--bundle", bundle, new_id())
    assert r.returncode != 0
    assert "RLIMIT_NOFILE" in r.stderr and "CAP_SYS_RESOURCE" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert runtime.ids() == []


def test_rlimits_seen_inside(runtime, make_bundle):
    bundle = make_bundle(args=["sh", "-c", "ulimit -n; ulimit -c"], process={"rlimits": [
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]})
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["512", "0"]
