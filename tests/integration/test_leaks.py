"""Repeated create/start/delete must not leak mounts, processes, state or cgroups."""

from __future__ import annotations

import os

import pytest

from conftest import host_mountinfo, new_id, parse_mountinfo, processes_referencing

pytestmark = [pytest.mark.root, pytest.mark.slow]

CYCLES = 100
# Host-side mounts other tests make concurrently (under -n 2) live in pytest's temp tree or
# /run/netns; they are excluded from the global count and checked per bundle instead.
FOREIGN_PREFIXES = ("/tmp/pytest-of-", "/run/netns", "/var/run/netns")


def _host_mounts():
    return [
        m for m in parse_mountinfo(host_mountinfo())
        if not m["mountpoint"].startswith(FOREIGN_PREFIXES)
    ]


def _cgroup_dirs_named(names: set[str], max_depth: int = 3) -> list[str]:
    """Directories under /sys/fs/cgroup/<controller>/ (and cgroup2 itself) named in `names`."""
    found = []
    base = "/sys/fs/cgroup"
    if not os.path.isdir(base):
        return sorted(set(found))
    tops = [base] + [os.path.join(base, d) for d in os.listdir(base)
                     if os.path.isdir(os.path.join(base, d))]
    for top in tops:
        top_depth = top.rstrip("/").count("/")
        for dirpath, dirnames, _ in os.walk(top):
            depth = dirpath.rstrip("/").count("/") - top_depth
            for d in dirnames:
                if d in names or any(n in d for n in names):
                    found.append(os.path.join(dirpath, d))
            if depth >= max_depth - 1:
                dirnames[:] = []
    return sorted(set(found))


def test_create_start_delete_cycles_leak_nothing(runtime, make_bundle, tmp_path):
    bundle = make_bundle(args=["true"])
    before_mounts = _host_mounts()
    ids = []
    for _ in range(CYCLES):
        cid = new_id("leak")
        ids.append(cid)
        runtime.create(bundle, cid)
        runtime.start(cid)
        runtime.wait_status(cid, "stopped")
        runtime.run("delete", cid, check=True)

    assert runtime.ids() == []
    leftovers = sorted(os.listdir(runtime.root)) if runtime.root.exists() else []
    assert not [e for e in leftovers if e in ids], leftovers
    assert not [e for e in leftovers if os.path.isdir(runtime.root / e)], leftovers

    after_mounts = _host_mounts()
    assert len(after_mounts) == len(before_mounts), (
        "host mount count changed:\n"
        + "\n".join(m["line"] for m in after_mounts
                    if m["line"] not in {b["line"] for b in before_mounts})
    )
    mine = [line for line in host_mountinfo().splitlines() if str(tmp_path) in line]
    assert not mine, mine

    procs = processes_referencing(str(bundle), *ids)
    assert not procs, procs

    cgroups = _cgroup_dirs_named(set(ids))
    assert not cgroups, cgroups


def test_run_cycles_leak_nothing(runtime, make_bundle, tmp_path):
    bundle = make_bundle(args=["true"])
    before_mounts = _host_mounts()
    ids = []
    for _ in range(CYCLES // 4):
        cid = new_id("leakrun")
        ids.append(cid)
        r = runtime.run_container(bundle, cid)
        assert r.returncode == 0, r.stderr
    assert runtime.ids() == []
    assert len(_host_mounts()) == len(before_mounts)
    assert not processes_referencing(str(bundle), *ids)
    assert not _cgroup_dirs_named(set(ids))


def test_delete_force_cycles_leak_nothing(runtime, make_bundle):
    bundle = make_bundle(args=["sleep", "1000"])
    ids = []
    for _ in range(CYCLES // 4):
        cid = new_id("leakforce")
        ids.append(cid)
        runtime.create(bundle, cid)
        runtime.start(cid)
        runtime.run("delete", "--force", cid, check=True)
    assert runtime.ids() == []
    assert not processes_referencing(str(bundle), *ids)
    assert not _cgroup_dirs_named(set(ids))
