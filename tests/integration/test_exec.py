"""`exec` into a running container."""

from __future__ import annotations

import json
import os

import pytest

from conftest import new_id, pid_alive, sh, wait_until

pytestmark = pytest.mark.root


@pytest.fixture
def running(runtime, make_bundle):
    """Factory: a running container (default init `sleep 1000`); returns (id, state)."""

    def factory(args=("sleep", "1000"), detach_with_run=False, **overrides):
        bundle = make_bundle(args=list(args), **overrides)
        cid = new_id()
        if detach_with_run:
            runtime.run("run", "-d", "--bundle", bundle, cid, check=True)
        else:
            runtime.create(bundle, cid)
            runtime.start(cid)
        return cid, runtime.wait_status(cid, "running")

    return factory


def test_exec_args_after_id(runtime, running):
    cid, _ = running()
    r = runtime.run("exec", cid, "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"


def test_exec_in_container_started_with_run_detach(runtime, running):
    cid, _ = running(detach_with_run=True)
    r = runtime.run("exec", cid, "echo", "detached-ok")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "detached-ok\n"


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exec_exit_status(runtime, running, code):
    cid, _ = running()
    r = runtime.run("exec", cid, "sh", "-c", f"exit {code}")
    assert r.returncode == code, r


def test_exec_signal_status(runtime, running):
    cid, _ = running()
    r = runtime.run("exec", cid, "sh", "-c", "kill -9 $$")
    assert r.returncode == 137, r


def test_exec_stdin(runtime, running):
    cid, _ = running()
    r = runtime.run("exec", cid, "cat", input="piped-in\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "piped-in\n"


def test_exec_env(runtime, running):
    cid, _ = running(process={"env": ["PATH=/bin:/usr/bin", "BASE=base"]})
    r = runtime.run("exec", "-e", "FOO=bar", "-e", "BAZ=qux", "-e", "BASE=over", cid, "env")
    assert r.returncode == 0, r.stderr
    env = r.stdout.splitlines()
    assert "FOO=bar" in env
    assert "BAZ=qux" in env
    assert "BASE=over" in env and "BASE=base" not in env  # -e overrides the config's env
    # (runc's flag parser refuses mixing -e and --env in one command line)
    r = runtime.run("exec", "--env", "LONG=form", cid, "env")
    assert r.returncode == 0, r.stderr
    env = r.stdout.splitlines()
    assert "LONG=form" in env
    assert "BASE=base" in env  # inherits the container's process env


def test_exec_cwd(runtime, running):
    cid, _ = running()
    r = runtime.run("exec", "--cwd", "/tmp", cid, "pwd")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "/tmp\n"


def test_exec_default_cwd_from_config(runtime, running):
    cid, _ = running(process={"cwd": "/etc"})
    r = runtime.run("exec", cid, "pwd")
    assert r.stdout == "/etc\n", r


@pytest.mark.parametrize("flag", ["-u", "--user"])
def test_exec_user(runtime, running, flag):
    cid, _ = running()
    r = runtime.run("exec", flag, "65534:65534", cid, "sh", "-c", "id -u; id -g")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["65534", "65534"]


def test_exec_process_json(runtime, running, tmp_path):
    cid, _ = running()
    process = {
        "terminal": False,
        "user": {"uid": 65534, "gid": 65534},
        "args": ["sh", "-c", "echo $PJ; pwd; id -u"],
        "env": ["PATH=/bin:/usr/bin", "PJ=from-process-json"],
        "cwd": "/tmp",
    }
    pj = tmp_path / "process.json"
    pj.write_text(json.dumps(process))
    r = runtime.run("exec", "-p", pj, cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["from-process-json", "/tmp", "65534"]
    r = runtime.run("exec", "--process", pj, cid)
    assert r.returncode == 0, r.stderr


def test_exec_sees_same_pid_namespace(runtime, running):
    cid, _ = running(args=("sleep", "1000"))
    r = runtime.run("exec", cid, "cat", "/proc/1/cmdline")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\0")[:2] == ["sleep", "1000"]
    r = runtime.run("exec", cid, "sh", "-c", "echo $$")
    assert int(r.stdout) > 1


def test_exec_sees_same_hostname_and_mounts(runtime, running):
    cid, st = running(hostname="exec-host")
    r = runtime.run("exec", cid, "sh", "-c",
                    "hostname; readlink /proc/self/ns/mnt; readlink /proc/self/ns/net")
    assert r.returncode == 0, r.stderr
    hostname, mnt, net = r.stdout.split()
    assert hostname == "exec-host"
    assert mnt == os.readlink(f"/proc/{st['pid']}/ns/mnt")
    assert net == os.readlink(f"/proc/{st['pid']}/ns/net")


def test_exec_inherits_capabilities_and_nnp(runtime, running):
    cid, _ = running()
    r = runtime.run("exec", cid, "cat", "/proc/self/status")
    status = dict(line.split(":\t", 1) for line in r.stdout.splitlines() if ":\t" in line)
    assert status["CapBnd"] == "0000000020000420"
    assert status["NoNewPrivs"].strip() == "1"


def test_exec_detach_with_pid_file(runtime, running, tmp_path):
    cid, _ = running()
    pidfile = tmp_path / "exec.pid"
    r = runtime.run("exec", "-d", "--pid-file", pidfile, cid, "sleep", "999")
    assert r.returncode == 0, r.stderr
    pid = int(pidfile.read_text())
    assert pid_alive(pid)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sleep", b"999"]
    ps = json.loads(runtime.run("ps", "--format", "json", cid, check=True).stdout)
    assert pid in ps
    runtime.run("kill", "--all", cid, "KILL", check=True)
    wait_until(lambda: not pid_alive(pid), message="exec'd process killed")


def test_exec_missing_binary(runtime, running):
    cid, st = running()
    r = runtime.run("exec", cid, "/no/such/binary")
    assert r.returncode != 0
    assert r.stderr.strip()
    assert runtime.state(cid)["status"] == "running"


def test_exec_into_stopped_container_fails(runtime, make_bundle):
    bundle = make_bundle(args=["true"])
    cid = new_id()
    runtime.create(bundle, cid)
    runtime.start(cid)
    runtime.wait_status(cid, "stopped")
    r = runtime.run("exec", cid, "echo", "nope")
    assert r.returncode != 0
    assert "nope" not in r.stdout
    assert r.stderr.strip()


def test_exec_into_missing_container_fails(runtime):
    r = runtime.run("exec", new_id(), "true")
    assert r.returncode != 0
    assert r.stderr.strip()


def test_exec_does_not_stop_container(runtime, running):
    cid, st = running()
    for _ in range(3):
        assert runtime.run("exec", cid, "true").returncode == 0
    assert runtime.state(cid)["status"] == "running"
    assert pid_alive(st["pid"])


def test_exec_shell_script(runtime, running):
    cid, _ = running()
    r = runtime.run("exec", cid, *sh("echo a; echo b >&2; echo c"))
    assert r.stdout.split() == ["a", "c"]
    assert "b" in r.stderr
