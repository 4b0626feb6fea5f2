"""Container lifecycle: run/create/start/state/kill/delete/list/ps, observed via the CLI."""

from __future__ import annotations

import json
import os

import pytest

from conftest import (
    add_mounts,
    bind,
    new_id,
    pid_alive,
    processes_referencing,
    sh,
    wait_until,
)

pytestmark = pytest.mark.root


def test_run_exit_status_passthrough(runtime, make_bundle):
    bundle = make_bundle(args=sh("echo out; echo err >&2; exit 3"))
    r = runtime.run_container(bundle)
    assert r.returncode == 3, r
    assert r.stdout == "out\n"
    assert "err" in r.stderr


def test_run_exit_zero_and_stdin(runtime, make_bundle):
    bundle = make_bundle(args=["cat"])
    r = runtime.run_container(bundle, input="from-stdin\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from-stdin\n"


def test_run_child_exit_status_from_signal(runtime, make_bundle):
    # a child killed by SIGKILL; the init shell passes its status on
    bundle = make_bundle(args=sh("sh -c 'kill -9 $$'; exit $?"))
    r = runtime.run_container(bundle)
    assert r.returncode == 137, r


def test_pid1_ignores_its_own_sigkill(runtime, make_bundle):
    # In a new PID namespace the kernel drops signals that init sends itself without a
    # handler, even SIGKILL: `kill -9 $$` as init is a no-op and the shell exits 0.
    bundle = make_bundle(args=sh("kill -9 $$; echo survived"))
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r
    assert r.stdout == "survived\n"


def test_run_init_killed_by_own_signal_without_pidns(runtime, make_bundle):
    # Without a PID namespace init is an ordinary process: it dies and run exits 128+9.
    def no_pidns(config):
        config["linux"]["namespaces"] = [
            ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"
        ]

    bundle = make_bundle(no_pidns, args=sh("kill -9 $$"))
    r = runtime.run_container(bundle)
    assert r.returncode == 137, r


def test_run_foreground_init_killed_from_outside(runtime, make_bundle):
    # `run` in the foreground reports 128+N when init dies from signal N
    bundle = make_bundle(args=["sleep", "1000"])
    cid = new_id()
    proc = runtime.spawn("run", "--bundle", bundle, cid)
    try:
        runtime.wait_status(cid, "running")
        runtime.run("kill", cid, "KILL", check=True)
        r = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert r.returncode == 137, r
    assert cid not in runtime.ids()


def test_create_start_state_transitions(runtime, make_bundle, host_dir):
    shared = host_dir()
    bundle = make_bundle(
        add_mounts(bind(shared, "/shared")),
        args=sh("touch /shared/ran; echo $$ > /shared/pid; exec sleep 1000"),
    )
    cid = new_id()
    runtime.create(bundle, cid)

    st = runtime.state(cid)
    assert st["status"] == "created"
    assert st["id"] == cid
    assert st["pid"] > 0
    assert os.path.isdir(f"/proc/{st['pid']}")
    # the user process has not run yet
    assert not (shared / "ran").exists()

    runtime.start(cid)
    wait_until(lambda: (shared / "pid").exists() and (shared / "pid").read_text().strip(),
               message="container process to run")
    assert (shared / "ran").exists()
    assert (shared / "pid").read_text().strip() == "1"
    st = runtime.wait_status(cid, "running")
    assert st["pid"] > 0 and pid_alive(st["pid"])

    # starting again fails
    r = runtime.run("start", cid)
    assert r.returncode != 0
    assert r.stderr.strip()

    runtime.run("kill", cid, "KILL", check=True)
    runtime.wait_status(cid, "stopped")
    r = runtime.run("start", cid)
    assert r.returncode != 0, "start of a stopped container must fail"
    assert r.stderr.strip()

    runtime.run("delete", cid, check=True)
    assert cid not in runtime.ids()
    assert runtime.status(cid) is None
    wait_until(lambda: not processes_referencing(cid, str(bundle)),
               message="no runtime/container process left for the container")


def test_stopped_after_process_exits(runtime, make_bundle):
    bundle = make_bundle(args=["true"])
    cid = new_id()
    runtime.create(bundle, cid)
    pid = runtime.state(cid)["pid"]
    runtime.start(cid)
    runtime.wait_status(cid, "stopped")
    wait_until(lambda: not pid_alive(pid), message="init to be reaped")
    assert cid in runtime.ids()
    runtime.run("delete", cid, check=True)
    assert cid not in runtime.ids()


def _running(runtime, make_bundle, args=("sleep", "1000"), cid=None, **kw):
    bundle = make_bundle(args=list(args), **kw)
    cid = cid or new_id()
    runtime.create(bundle, cid)
    runtime.start(cid)
    st = runtime.wait_status(cid, "running")
    return cid, st, bundle


@pytest.mark.parametrize("sig", ["TERM", "15", "SIGTERM", "KILL", "9", "SIGKILL"])
def test_kill_signal_forms(runtime, make_bundle, sig):
    # a shell init with a TERM trap: pid 1 only gets signals it handles (and KILL from outside)
    cid, st, _ = _running(
        runtime, make_bundle, args=sh("trap 'exit 42' TERM; while :; do sleep 0.1; done")
    )
    pid = st["pid"]
    r = runtime.run("kill", cid, sig)
    assert r.returncode == 0, r.stderr
    runtime.wait_status(cid, "stopped")
    assert not pid_alive(pid)


def test_kill_default_signal_is_term(runtime, make_bundle, host_dir):
    shared = host_dir()
    bundle = make_bundle(
        add_mounts(bind(shared, "/shared")),
        args=sh("trap 'echo term > /shared/got; exit 0' TERM; while :; do sleep 0.1; done"),
    )
    cid = new_id()
    runtime.create(bundle, cid)
    runtime.start(cid)
    runtime.wait_status(cid, "running")
    runtime.run("kill", cid, check=True)
    runtime.wait_status(cid, "stopped")
    assert (shared / "got").read_text() == "term\n"


def test_kill_all(runtime, make_bundle, host_dir):
    shared = host_dir()
    # init spawns a background sleeper and records its pid (as seen inside)
    bundle = make_bundle(
        add_mounts(bind(shared, "/shared")),
        args=sh("sleep 1000 & echo $! > /shared/child; wait"),
    )
    cid = new_id()
    runtime.create(bundle, cid)
    runtime.start(cid)
    runtime.wait_status(cid, "running")
    wait_until(lambda: (shared / "child").exists(), message="child to start")
    r = runtime.run("ps", "--format", "json", cid, check=True)
    pids = json.loads(r.stdout)
    assert len(pids) >= 2, pids
    r = runtime.run("kill", "--all", cid, "KILL")
    assert r.returncode == 0, r.stderr
    runtime.wait_status(cid, "stopped")
    wait_until(lambda: not any(pid_alive(p) for p in pids), message="all processes gone")


def test_delete_running_without_force_fails(runtime, make_bundle):
    cid, st, _ = _running(runtime, make_bundle)
    r = runtime.run("delete", cid)
    assert r.returncode != 0
    assert r.stderr.strip()
    assert runtime.state(cid)["status"] == "running"
    assert pid_alive(st["pid"])


def test_delete_force_kills_and_removes(runtime, make_bundle):
    cid, st, bundle = _running(runtime, make_bundle)
    r = runtime.run("delete", "--force", cid)
    assert r.returncode == 0, r.stderr
    assert cid not in runtime.ids()
    wait_until(lambda: not pid_alive(st["pid"]), message="init killed")
    wait_until(lambda: not processes_referencing(cid, str(bundle)),
               message="no runtime/container process left for the container")


def test_delete_force_created_container(runtime, make_bundle):
    bundle = make_bundle(args=["true"])
    cid = new_id()
    runtime.create(bundle, cid)
    pid = runtime.state(cid)["pid"]
    runtime.run("delete", "--force", cid, check=True)
    assert cid not in runtime.ids()
    wait_until(lambda: not pid_alive(pid), message="created init killed")
    wait_until(lambda: not processes_referencing(cid, str(bundle)),
               message="no runtime/container process left for the container")


def test_list_json(runtime, make_bundle):
    cid, st, bundle = _running(runtime, make_bundle)
    entries = runtime.list()
    assert [e["id"] for e in entries] == [cid]
    entry = entries[0]
    assert entry["pid"] == st["pid"]
    assert entry["status"] == "running"
    assert os.path.realpath(entry["bundle"]) == os.path.realpath(bundle)


def test_list_empty_and_text(runtime, make_bundle):
    assert runtime.list() == [] or runtime.list() is None
    cid, _, _ = _running(runtime, make_bundle)
    r = runtime.run("list", check=True)
    assert cid in r.stdout
    r = runtime.run("list", "-q", check=True)
    assert r.stdout.split() == [cid]


def test_state_json_keys(runtime, make_bundle):
    bundle = make_bundle(args=["sleep", "1000"], annotations={"org.example.key": "value-1"})
    cid = new_id()
    runtime.create(bundle, cid)
    st = runtime.state(cid)
    for key in ("ociVersion", "id", "status", "pid", "bundle"):
        assert key in st, st
    assert st["id"] == cid
    assert st["status"] == "created"
    assert os.path.realpath(st["bundle"]) == os.path.realpath(bundle)
    assert st.get("annotations", {}).get("org.example.key") == "value-1"
    runtime.start(cid)
    st = runtime.wait_status(cid, "running")
    assert st["annotations"]["org.example.key"] == "value-1"


def test_pid_file(runtime, make_bundle, tmp_path):
    bundle = make_bundle(args=["sleep", "1000"])
    cid = new_id()
    pidfile = tmp_path / "init.pid"
    runtime.create(bundle, cid, "--pid-file", pidfile)
    pid = int(pidfile.read_text().strip())
    assert pid == runtime.state(cid)["pid"]
    assert pid_alive(pid)


def test_pid_file_relative(runtime, make_bundle, tmp_path):
    bundle = make_bundle(args=["sleep", "1000"])
    cid = new_id()
    runtime.run("create", "--bundle", bundle, "--pid-file", "rel.pid", cid, check=True,
                cwd=tmp_path)
    assert int((tmp_path / "rel.pid").read_text()) == runtime.state(cid)["pid"]


def test_ps_json_lists_init(runtime, make_bundle):
    cid, st, _ = _running(runtime, make_bundle)
    r = runtime.run("ps", "--format", "json", cid, check=True)
    pids = json.loads(r.stdout)
    assert st["pid"] in pids


def test_run_detach(runtime, make_bundle, tmp_path):
    bundle = make_bundle(args=["sleep", "1000"])
    cid = new_id()
    pidfile = tmp_path / "pid"
    r = runtime.run("run", "-d", "--bundle", bundle, "--pid-file", pidfile, cid, timeout=20)
    assert r.returncode == 0, r.stderr
    st = runtime.state(cid)
    assert st["status"] == "running"
    assert pid_alive(st["pid"])
    assert int(pidfile.read_text()) == st["pid"]


def test_run_detach_long_flag(runtime, make_bundle):
    bundle = make_bundle(args=["sleep", "1000"])
    cid = new_id()
    r = runtime.run("run", "--detach", "--bundle", bundle, cid, timeout=20)
    assert r.returncode == 0, r.stderr
    assert runtime.state(cid)["status"] == "running"


def test_run_removes_container_after_exit(runtime, make_bundle):
    bundle = make_bundle(args=["true"])
    cid = new_id()
    r = runtime.run_container(bundle, cid)
    assert r.returncode == 0, r.stderr
    assert cid not in runtime.ids()


def test_bundle_defaults_to_cwd(runtime, make_bundle):
    bundle = make_bundle(args=sh("echo from-cwd-bundle"))
    r = runtime.run("run", new_id(), cwd=bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from-cwd-bundle\n"
