"""Running exec sessions are known to the engine, as Docker's: `inspect` lists their ids in
ExecIDs while they run (null when none), whoever started them (the sangja CLI, attached
or detached, or the API), and a record whose process is gone (its CLI was killed) is never
shown and is removed; POST /exec/{id}/resize sizes the pty of a running exec, as the
docker CLI does when its terminal is resized. What the process sees is read from inside
(`stty size`); the records and processes on the host."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest
from api_service import (
    Service,
    service_fixture,  # noqa: F401 - the module's fixtures
    )
from engine_cli import HEX64, Pty, wait_until

pytestmark = pytest.mark.root


@pytest.fixture
def api(service: Service, cli):
    yield service
    # the service let go of every exec (its detached ones are its children while they run)
    wait_until(lambda: not _children(service), 10, message="the service's exec processes")


def _children(service: Service) -> list[str]:
    out = []
    for pid in service.children():
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "sangja-monitor":
                    out.append(pid)
        except OSError:
            pass
    return out


def _exec_ids(cli, ref: str):
    return cli.inspect(ref)["ExecIDs"]


def _records(cli, cid: str) -> list[Path]:
    where = Path(cli.runroot) / "engine" / cid / "execs"
    return sorted(where.glob("*.json")) if where.is_dir() else []


def _until_stop_file(name: str) -> list[str]:
    """A command that runs until /tmp/NAME exists in the container."""
    return ["sh", "-c", f"while [ ! -e /tmp/{name} ]; do sleep 0.1; done"]


# ---------------------------------------------------------------------------- the CLI


def test_detached_exec_is_listed_while_it_runs(cli):
    cid = cli.detach("busybox", "sleep", "600")
    assert _exec_ids(cli, cid) is None
    assert cli.ok("exec", "-d", cid, *_until_stop_file("stop")) == ""
    (exec_id,) = _exec_ids(cli, cid)
    assert HEX64.fullmatch(exec_id)
    # the record names the process, and it is the command, in the container
    (record,) = _records(cli, cid)
    doc = json.loads(record.read_text())
    assert (doc["ID"], doc["ContainerID"], doc["Tty"]) == (exec_id, cid, False)
    assert doc["Cmd"] == _until_stop_file("stop")
    with open(f"/proc/{doc['Pid']}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sh", b"-c"]
    inside = cli.inspect(cid)["State"]["Pid"]
    assert os.readlink(f"/proc/{doc['Pid']}/ns/pid") == os.readlink(f"/proc/{inside}/ns/pid")
    # a second one is listed too, after the first
    cli.ok("exec", "-d", cid, *_until_stop_file("stop"))
    ids = _exec_ids(cli, cid)
    assert len(ids) == 2 and ids[0] == exec_id
    cli.ok("exec", cid, "touch", "/tmp/stop")
    wait_until(lambda: _exec_ids(cli, cid) is None, 15, message="the execs to be gone")
    assert _records(cli, cid) == []


def test_attached_exec_is_listed_until_it_ends(cli):
    cid = cli.detach("busybox", "sleep", "600")
    p = cli.popen("exec", "-i", cid, "sh", "-c", "echo up; read x; echo got-$x",
                  stdin=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "up\n"
        (exec_id,) = _exec_ids(cli, cid)
        p.stdin.write("it\n")
        p.stdin.close()
        assert p.stdout.read() == "got-it\n"
        assert p.wait(15) == 0
    finally:
        p.kill()
        p.wait()
    assert _exec_ids(cli, cid) is None
    assert _records(cli, cid) == []  # removed by the exec as it ended, not later


def test_killed_cli_leaves_no_exec_id(cli):
    """`exec -t` whose CLI is killed -9: the pty's master closes with it, the process gets
    the hangup and ends; its record stays behind, and is neither shown nor kept."""
    cid = cli.detach("busybox", "sleep", "600")
    p = cli.popen("exec", "-t", cid, "sh", "-c", "echo up; sleep 600")
    try:
        assert p.stdout.readline().strip() == b"up"
        (exec_id,) = _exec_ids(cli, cid)
        (record,) = _records(cli, cid)
        pid = json.loads(record.read_text())["Pid"]
        assert os.path.exists(f"/proc/{pid}")
    finally:
        p.kill()
        p.wait()
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 15,
               message="the exec's process to end with its terminal")
    assert _records(cli, cid) == [record]  # nobody removed it: the CLI was killed
    assert _exec_ids(cli, cid) is None
    assert _records(cli, cid) == []  # and inspect cleaned it


def test_exec_ids_null_once_stopped(cli):
    cid = cli.detach("busybox", "sleep", "600")
    cli.ok("exec", "-d", cid, "sleep", "600")
    assert len(_exec_ids(cli, cid)) == 1
    cli.ok("kill", cid)
    cli.wait_status(cid, "exited")
    assert _exec_ids(cli, cid) is None


# ---------------------------------------------------------------------------- the API


def _docker_argv(api: Service) -> list[str]:
    return [shutil.which("docker") or "docker", "--config",
            str(api.sock.parent / "docker-config"), "-H", f"unix://{api.sock}"]


def _expect_size(t: Pty, rows: int, cols: int, timeout: float = 15) -> None:
    """Ask the shell for `stty size` until it reports rows x cols (the resize reaches the
    pty a little after the terminal changes)."""
    deadline = time.monotonic() + timeout
    while True:
        t.send("\r")
        try:
            t.expect(rf"\b{rows} {cols}\r\n", timeout=0.5)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def test_exec_resize_through_the_api(api, cli):
    cid = cli.detach("busybox", "sleep", "600")
    t = Pty([*_docker_argv(api), "exec", "-it", cid, "sh", "-c",
             "stty size; while read x; do stty size; done"], rows=20, cols=70)
    try:
        t.expect(r"20 70\r\n")
        # the container lists the API's exec, under the API's id
        (exec_id,) = wait_until(lambda: _exec_ids(cli, cid), 10)
        assert json.loads(api.ok("inspect", cid))[0]["ExecIDs"] == [exec_id]  # the API's too
        status, _, body = api.request("GET", f"/exec/{exec_id}/json")
        doc = json.loads(body)
        assert status == 200 and doc["Running"] and doc["ProcessConfig"]["tty"]
        assert doc["ContainerID"] == cid and os.path.exists(f"/proc/{doc['Pid']}")
        # the API's resize, as a client sends it
        status, _, body = api.request("POST", f"/exec/{exec_id}/resize?h=31&w=93")
        assert status == 200, body
        _expect_size(t, 31, 93)
        # the docker CLI's terminal is resized: it gets SIGWINCH and calls resize
        fcntl.ioctl(t.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 42, 123, 0, 0))
        _expect_size(t, 42, 123)
        t.send("\x04")
        assert t.wait() == 0
    finally:
        t.close()
    assert _exec_ids(cli, cid) is None
    status, _, _ = api.request("POST", f"/exec/{exec_id}/resize?h=10&w=10")
    assert status == 409


def _create_exec(api: Service, cid: str, cmd: list[str], tty: bool = False) -> str:
    status, _, body = api.request("POST", f"/containers/{cid}/exec",
                                  {"Cmd": cmd, "Tty": tty, "AttachStdout": True})
    assert status == 201, body
    return json.loads(body)["Id"]


def test_exec_resize_bad_input(api, cli):
    cid = cli.detach("busybox", "sleep", "600")
    exec_id = _create_exec(api, cid, _until_stop_file("stop"))
    assert HEX64.fullmatch(exec_id)

    def resize(query: str, eid: str = exec_id) -> tuple[int, str]:
        status, _, body = api.request("POST", f"/exec/{eid}/resize{query}")
        return status, json.loads(body)["message"] if body else ""

    for query in ("?h=abc&w=10", "?h=10", "?h=10&w=-1", "?h=1.5&w=2", "?h=70000&w=2"):
        assert resize(query)[0] == 400, query
    status, message = resize("?h=10&w=10", "0" * 64)
    assert status == 404 and message.startswith("No such exec instance"), message
    assert resize("?h=10&w=10") == (409, f"exec {exec_id} is not running")  # not started
    # a detached exec without a tty: running while its process runs, resize does nothing
    status, _, body = api.request("POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert status == 200, body
    status, _, body = api.request("GET", f"/exec/{exec_id}/json")
    doc = json.loads(body)
    assert doc["Running"] and os.path.exists(f"/proc/{doc['Pid']}")
    assert _exec_ids(cli, cid) == [exec_id]
    assert resize("?h=10&w=10")[0] == 200
    # it starts once
    status, _, _ = api.request("POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert status == 409
    cli.ok("exec", cid, "touch", "/tmp/stop")
    wait_until(lambda: not json.loads(api.request("GET", f"/exec/{exec_id}/json")[2])
               ["Running"], 15, message="the detached exec to end")
    assert resize("?h=10&w=10")[0] == 409
    assert _exec_ids(cli, cid) is None


def test_cli_exec_follows_its_terminal(cli):
    """`sangja exec -it` in a terminal: the process's pty follows the size of the CLI's
    terminal (SIGWINCH)."""
    cid = cli.detach("busybox", "sleep", "600")
    t = Pty(cli.argv("exec", "-it", cid, "sh", "-c",
                     "stty size; while read x; do stty size; done"), rows=21, cols=71)
    try:
        t.expect(r"21 71\r\n")
        fcntl.ioctl(t.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 43, 124, 0, 0))
        _expect_size(t, 43, 124)
        t.send("\x04")
        assert t.wait() == 0
    finally:
        t.close()


def test_detached_tty_exec_resize(api, cli):
    """`Detach` with `Tty`: the pty master is kept by a process of its own; resize reaches
    it there, and the process sees the size."""
    cid = cli.detach("busybox", "sleep", "600")
    exec_id = _create_exec(api, cid, ["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.1; "
                                      "done; stty size > /tmp/size"], tty=True)
    status, _, body = api.request("POST", f"/exec/{exec_id}/start",
                                  {"Detach": True, "Tty": True})
    assert status == 200, body
    assert json.loads(api.request("GET", f"/exec/{exec_id}/json")[2])["Running"]
    status, _, body = api.request("POST", f"/exec/{exec_id}/resize?h=27&w=88")
    assert status == 200, body
    cli.ok("exec", cid, "touch", "/tmp/go")
    wait_until(lambda: cli("exec", cid, "cat", "/tmp/size").stdout == "27 88\n", 15,
               message="the detached exec's stty size")
    wait_until(lambda: _exec_ids(cli, cid) is None, 15, message="the exec to end")
    status, _, _ = api.request("POST", f"/exec/{exec_id}/resize?h=27&w=88")
    assert status == 409
