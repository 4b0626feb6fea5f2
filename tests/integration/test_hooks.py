"""OCI hooks: which run, where, with what state on stdin, and how failures are handled."""

from __future__ import annotations

import json
import os

import pytest

from conftest import (
    add_mounts,
    assert_clean,
    bind,
    new_id,
    pid_alive,
    processes_referencing,
    sh,
    wait_until,
)

pytestmark = pytest.mark.root

HOST_HOOKS = ("prestart", "createRuntime", "poststart", "poststop")
CONTAINER_HOOKS = ("createContainer", "startContainer")
ALL_HOOKS = HOST_HOOKS + CONTAINER_HOOKS


def recording_hook(name: str, outdir: str, env=None, extra: str = "") -> dict:
    """A hook that stores its stdin, environment and namespaces under outdir/name.*"""
    script = (
        f"cat > {outdir}/{name}.json; "
        f"env > {outdir}/{name}.env; "
        f"readlink /proc/self/ns/mnt > {outdir}/{name}.mnt; "
        f"readlink /proc/self/ns/pid > {outdir}/{name}.pidns; "
        f"{extra}"
    )
    hook = {"path": "/bin/sh", "args": ["sh", "-c", script]}
    if env is not None:
        hook["env"] = env
    return hook


@pytest.fixture
def hooked(make_bundle, host_dir):
    """Factory: a bundle whose hooks record themselves into a host dir (returned too).

    Host-side hooks and createContainer (which runs before pivot_root, with host paths)
    write to the host path; startContainer runs in the container's root and writes to the
    same directory bind-mounted at /hooks."""

    def factory(*mutators, hooks=ALL_HOOKS, args=("true",), env=None, **overrides):
        out = host_dir("hooks")
        config_hooks = {}
        for name in hooks:
            target = "/hooks" if name == "startContainer" else str(out)
            config_hooks.setdefault(name, []).append(recording_hook(name, target, env=env))
        bundle = make_bundle(
            add_mounts(bind(out, "/hooks")),
            *mutators,
            args=list(args),
            hooks=config_hooks,
            **overrides,
        )
        return bundle, out

    return factory


def _state(out, name) -> dict:
    return json.loads((out / f"{name}.json").read_text())


def test_all_hooks_run_with_state_on_stdin(runtime, hooked):
    bundle, out = hooked(args=sh("echo $$ > /hooks/ran; exit 0"))
    cid = new_id()
    runtime.create(bundle, cid)
    init_pid = runtime.state(cid)["pid"]
    container_mnt = os.readlink(f"/proc/{init_pid}/ns/mnt")
    container_pidns = os.readlink(f"/proc/{init_pid}/ns/pid")
    for name in ("createRuntime", "prestart", "createContainer"):
        assert (out / f"{name}.json").exists(), f"{name} did not run at create"
    assert not (out / "startContainer.json").exists(), "startContainer ran before start"
    assert not (out / "ran").exists()

    runtime.start(cid)
    runtime.wait_status(cid, "stopped")
    assert (out / "ran").read_text().strip() == "1"
    for name in ("startContainer", "poststart"):
        assert (out / f"{name}.json").exists(), f"{name} did not run at start"
    assert not (out / "poststop.json").exists(), "poststop ran before delete"

    runtime.run("delete", cid, check=True)
    assert (out / "poststop.json").exists(), "poststop did not run at delete"

    host_mnt = os.readlink("/proc/self/ns/mnt")
    host_pidns = os.readlink("/proc/self/ns/pid")
    for name in ALL_HOOKS:
        st = _state(out, name)
        assert st["id"] == cid, (name, st)
        assert os.path.realpath(st["bundle"]) == os.path.realpath(bundle), (name, st)
        assert "ociVersion" in st, (name, st)
    # statuses (runc 1.1.5 runs poststart during create, hence "created" is accepted)
    expected = {
        "createRuntime": {"creating"},
        "prestart": {"creating"},
        "createContainer": {"creating"},
        "startContainer": {"created"},
        "poststart": {"created", "running"},
        "poststop": {"stopped"},
    }
    for name, statuses in expected.items():
        assert _state(out, name)["status"] in statuses, (name, _state(out, name))
    # host hooks see the init's host pid; container hooks get a pid too
    for name in ("createRuntime", "prestart", "poststart"):
        assert _state(out, name)["pid"] == init_pid, (name, _state(out, name), init_pid)
    for name in CONTAINER_HOOKS:
        assert _state(out, name)["pid"] > 0
    assert _state(out, "poststop").get("pid", 0) in (0, init_pid)
    # namespaces: host hooks in the host's, createContainer/startContainer in the container's
    for name in HOST_HOOKS:
        assert (out / f"{name}.mnt").read_text().strip() == host_mnt, name
        assert (out / f"{name}.pidns").read_text().strip() == host_pidns, name
    for name in CONTAINER_HOOKS:
        assert (out / f"{name}.mnt").read_text().strip() == container_mnt, name
        assert (out / f"{name}.pidns").read_text().strip() == container_pidns, name


def test_hooks_run_with_run_command(runtime, hooked):
    bundle, out = hooked(args=sh("echo main-ran"))
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "main-ran\n"
    for name in ALL_HOOKS:
        assert (out / f"{name}.json").exists(), name
    assert _state(out, "poststop")["status"] == "stopped"


def test_hook_env_and_args(runtime, hooked):
    bundle, out = hooked(hooks=("createRuntime", "poststop"), env=["HOOKVAR=hook-value",
                                                                  "PATH=/bin:/usr/bin"])
    r = runtime.run_container(bundle)
    assert r.returncode == 0, r.stderr
    for name in ("createRuntime", "poststop"):
        env = (out / f"{name}.env").read_text().splitlines()
        assert "HOOKVAR=hook-value" in env, (name, env)


def test_multiple_hooks_run_in_order(runtime, make_bundle, host_dir):
    out = host_dir()
    hooks = [
        {"path": "/bin/sh", "args": ["sh", "-c", f"echo {i} >> {out}/order"]} for i in range(3)
    ]
    bundle = make_bundle(args=["true"], hooks={"createRuntime": hooks})
    assert runtime.run_container(bundle).returncode == 0
    assert (out / "order").read_text().split() == ["0", "1", "2"]


@pytest.mark.parametrize("hook", ["createRuntime", "prestart", "createContainer"])
def test_failing_create_hook_fails_create_and_cleans_up(runtime, make_bundle, hook):
    bundle = make_bundle(
        args=["sleep", "1000"],
        hooks={hook: [{"path": "/bin/sh", "args": ["sh", "-c", "echo hook-broke >&2; exit 3"]}]},
    )
    cid = new_id()
    before = sorted(os.listdir(runtime.root))
    r = runtime.run("create", "--bundle", bundle, cid)
    assert r.returncode != 0
    assert r.stderr.strip()
    wait_until(lambda: not processes_referencing(cid, str(bundle)), timeout=10,
               message="container processes to go away")
    assert_clean(runtime, cid, bundle, before_root=before)


def test_hook_timeout_fails_create(runtime, make_bundle, host_dir):
    out = host_dir()
    bundle = make_bundle(
        args=["sleep", "1000"],
        hooks={"createRuntime": [
            {"path": "/bin/sh", "args": ["sh", "-c", f"sleep 5; touch {out}/finished"],
             "timeout": 1}
        ]},
    )
    cid = new_id()
    r = runtime.run("create", "--bundle", bundle, cid, timeout=30)
    assert r.returncode != 0
    assert r.stderr.strip()
    assert_clean(runtime, cid, bundle)
    # the hook was killed, not waited for
    assert not (out / "finished").exists()


def test_missing_hook_binary_fails_create(runtime, make_bundle):
    bundle = make_bundle(
        args=["true"], hooks={"prestart": [{"path": "/no/such/hook", "args": ["hook"]}]}
    )
    cid = new_id()
    r = runtime.run("create", "--bundle", bundle, cid)
    assert r.returncode != 0
    assert r.stderr.strip()
    assert_clean(runtime, cid, bundle)


@pytest.mark.sangja_only  # runc 1.1.5 runs poststart inside `create` and fails create on error
def test_failing_poststart_hook_does_not_fail_start(runtime, make_bundle, host_dir):
    out = host_dir()
    bundle = make_bundle(
        add_mounts(bind(out, "/out")),
        args=sh("echo started > /out/main; exec sleep 1000"),
        hooks={"poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 1"]}]},
    )
    cid = new_id()
    runtime.create(bundle, cid)
    r = runtime.run("start", cid)
    assert r.returncode == 0, r.stderr
    st = runtime.wait_status(cid, "running")
    assert pid_alive(st["pid"])
    wait_until(lambda: (out / "main").exists(), message="user process to run")


@pytest.mark.sangja_only  # runc 1.1.5 runs poststart during create, with status "created"
def test_poststart_runs_after_start_with_running_state(runtime, hooked):
    bundle, out = hooked(hooks=("poststart",), args=("sleep", "1000"))
    cid = new_id()
    runtime.create(bundle, cid)
    assert not (out / "poststart.json").exists()
    runtime.start(cid)
    record = out / "poststart.json"
    wait_until(lambda: record.exists() and record.stat().st_size, message="poststart hook")
    st = _state(out, "poststart")
    assert st["status"] == "running"
    assert st["pid"] == runtime.state(cid)["pid"]


def test_failing_poststop_hook_does_not_fail_delete(runtime, make_bundle):
    bundle = make_bundle(
        args=["true"], hooks={"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 1"]}]}
    )
    cid = new_id()
    runtime.create(bundle, cid)
    runtime.start(cid)
    runtime.wait_status(cid, "stopped")
    r = runtime.run("delete", cid)
    assert r.returncode == 0, r.stderr
    assert cid not in runtime.ids()


def test_failing_poststop_hook_does_not_change_run_status(runtime, make_bundle):
    bundle = make_bundle(
        args=sh("exit 5"),
        hooks={"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 1"]}]},
    )
    cid = new_id()
    r = runtime.run_container(bundle, cid)
    assert r.returncode == 5, r
    assert cid not in runtime.ids()
