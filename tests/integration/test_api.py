"""`sangja system service` driven by the real docker CLI and by raw HTTP: version
negotiation, the everyday commands, the CLI and the API seeing the same containers,
Docker's error codes for bad input, clients that go away mid-stream, the socket's
permissions, socket activation and the idle exit. Effects are checked from inside the
containers or with the sangja CLI, and the engine fixture's leak checks run after every
test."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time

import pytest
from api_service import (
    Service,
    UnixHTTPConnection,
    service_fixture,  # noqa: F401 - the module's fixtures
    start_service,
    wait_gone,
)
from engine_cli import wait_until

pytestmark = pytest.mark.root


@pytest.fixture
def api(service: Service, cli):
    yield service
    # a test's leftovers are the cli fixture's to remove; the service must have let go
    wait_gone(lambda: not [p for p in service.children()
                           if _comm(p) != "sangja-monitor"], 10,
              "the service kept child processes")


def _comm(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


# ---------------------------------------------------------------------------- the socket


def test_socket_is_roots_alone(api):
    st = os.stat(api.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    # an unprivileged user cannot connect to it
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "python3", "-c", "import socket,sys; s=socket.socket(socket.AF_UNIX);"
                        f"s.connect({str(api.sock)!r})"], capture_output=True, text=True)
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_version_negotiation(api):
    status, headers, body = api.request("GET", "/_ping")
    assert status == 200 and body == b"OK"
    assert headers["Api-Version"] == "1.45"
    for path in ("/version", "/v1.41/version", "/v1.45/version"):
        status, _, body = api.request("GET", path)
        assert status == 200, path
        doc = json.loads(body)
        assert doc["ApiVersion"] == "1.45" and doc["MinAPIVersion"] == "1.24"
    status, _, body = api.request("GET", "/v1.99/version")
    assert status == 400 and "too new" in json.loads(body)["message"]
    status, _, body = api.request("GET", "/v1.12/version")
    assert status == 400 and "too old" in json.loads(body)["message"]
    # the docker CLI (newer than 1.45) negotiates down
    out = api.ok("version", "--format", "{{.Server.APIVersion}} {{.Client.APIVersion}}")
    assert out.split()[0] == "1.45"


# ---------------------------------------------------------------------------- docker CLI


def test_run_rm_echo_and_exit_code(api, cli):
    assert api.ok("run", "--rm", "busybox", "echo", "hello") == "hello\n"
    r = api.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert r.returncode == 7 and r.stdout == "out\n" and r.stderr == "err\n"
    assert cli.ok("ps", "-a", "-q") == ""  # --rm: gone, as the sangja CLI sees it


def test_parallel_runs(api, cli):
    """Clients at once (compose starts services in parallel): every run gets its own
    output and exit code, and nothing is left."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int):
        return api.docker("run", "--rm", "busybox", "sh", "-c", f"echo out{i}; exit {i % 4}")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    for i, r in enumerate(results):
        assert (r.returncode, r.stdout) == (i % 4, f"out{i}\n"), r.stderr
    assert cli.ok("ps", "-a", "-q") == ""


def test_run_with_stdin(api):
    r = api.docker("run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done",
                   input="from-stdin\n")
    assert r.returncode == 0 and r.stdout == "from-stdin\ndone\n"


def test_terminal(api):
    """`docker run -it` and `docker exec -it`: a terminal of the client's size from the
    start (ConsoleSize), keys to the program, its output raw."""
    import shutil

    from engine_cli import Pty

    docker = shutil.which("docker")
    base = [docker, "--config", str(api.sock.parent / "docker-config"), "-H",
            f"unix://{api.sock}"]
    t = Pty([*base, "run", "-it", "--rm", "busybox", "sh", "-c",
             "stty size; tty; read line; echo got:$line"], rows=33, cols=101)
    try:
        t.expect(r"33 101\r\n/dev/pts/\d+")
        t.send("typed\r")
        t.expect("got:typed")
        assert t.wait() == 0
    finally:
        t.close()
    cid = api.ok("run", "-d", "-t", "busybox", "sleep", "60").strip()
    t = Pty([*base, "exec", "-it", cid, "sh", "-c", "tty; read x; echo exec:$x"])
    try:
        t.expect(r"/dev/pts/\d+")
        t.send("in\r")
        t.expect("exec:in")
        assert t.wait() == 0
    finally:
        t.close()
    api.ok("rm", "-f", cid)


def test_detached_logs_exec_stop_rm(api, cli):
    cid = api.ok("run", "-d", "--name", "web1", "-e", "K=v", "busybox", "sh", "-c",
                 "echo started; trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done"
                 ).strip()
    # the sangja CLI sees what the API made, and the other way round
    assert cli.inspect("web1")["Id"] == cid
    other = cli.detach("--name", "fromcli", "busybox", "sleep", "60")
    names = api.ok("ps", "--format", "{{.Names}}").split()
    assert {"web1", "fromcli"} <= set(names)
    wait_until(lambda: "started" in api.docker("logs", "web1").stdout, 10)
    assert api.ok("exec", "web1", "sh", "-c", "echo $K") == "v\n"
    r = api.docker("exec", "web1", "sh", "-c", "echo o; echo e >&2; exit 5")
    assert (r.returncode, r.stdout, r.stderr) == (5, "o\n", "e\n")
    assert api.ok("exec", "-i", "web1", "cat", input="piped\n") == "piped\n"
    doc = json.loads(api.ok("inspect", "web1"))[0]
    pid = doc["State"]["Pid"]
    assert doc["State"]["Running"] and os.path.exists(f"/proc/{pid}")
    top = api.ok("top", "web1")
    assert str(pid) in top
    api.ok("stop", "-t", "5", "web1")
    assert not os.path.exists(f"/proc/{pid}") or _comm(str(pid)) != "sh"
    assert "bye" in api.ok("logs", "web1")
    assert json.loads(api.ok("inspect", "web1"))[0]["State"]["ExitCode"] == 0
    api.ok("rm", "web1")
    api.ok("rm", "-f", other)
    assert cli.ok("ps", "-a", "-q") == ""


def test_images_volumes_networks(api, cli):
    out = api.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert "localhost/busybox:latest" in out.split()
    api.ok("volume", "create", "apivol")
    assert "apivol" in cli.ok("volume", "ls", "-q").split()
    api.ok("run", "--rm", "-v", "apivol:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert api.ok("run", "--rm", "-v", "apivol:/data", "busybox", "cat", "/data/f") == "kept\n"
    assert json.loads(api.ok("volume", "inspect", "apivol"))[0]["Name"] == "apivol"
    api.ok("volume", "rm", "apivol")
    api.ok("network", "create", "apinet")
    api.ok("run", "-d", "--name", "srv", "--network", "apinet", "busybox", "httpd", "-f",
           "-p", "80", "-h", "/etc")
    # a container on the same network reaches it by name (aardvark-dns)
    r = api.docker("run", "--rm", "--network", "apinet", "busybox", "sh", "-c",
                   "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://srv/hostname && "
                   "exit 0; sleep 0.3; done; exit 1")
    assert r.returncode == 0, r.stderr
    assert "apinet" in api.ok("network", "ls", "--format", "{{.Name}}").split()
    api.ok("rm", "-f", "srv")
    api.ok("network", "rm", "apinet")
    assert "apinet" not in cli.ok("network", "ls", "--format", "json")


def test_cp_both_ways(api, tmp_path):
    api.ok("run", "-d", "--name", "cpc", "busybox", "sleep", "60")
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.txt").write_text("into the container\n")
    api.ok("cp", str(src), "cpc:/tmp/")
    assert api.ok("exec", "cpc", "cat", "/tmp/in/a.txt") == "into the container\n"
    api.ok("exec", "cpc", "sh", "-c", "mkdir /out && echo out > /out/b.txt")
    api.ok("cp", "cpc:/out", str(tmp_path / "back"))
    assert (tmp_path / "back" / "b.txt").read_text() == "out\n"
    r = api.docker("cp", "cpc:/no/such", str(tmp_path / "x"))
    assert r.returncode != 0 and "Could not find the file" in r.stderr
    api.ok("rm", "-f", "cpc")


def test_build(api, cli, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY hello.txt /hello.txt\n"
                                         "RUN echo built >> /hello.txt\n"
                                         'CMD ["cat", "/hello.txt"]\n')
    (tmp_path / "hello.txt").write_text("hello\n")
    r = api.docker("build", "-t", "apibuilt:1", str(tmp_path),
                   env={"DOCKER_BUILDKIT": "0"}, timeout=180)
    assert r.returncode == 0, r.stderr
    assert api.ok("run", "--rm", "apibuilt:1") == "hello\nbuilt\n"
    assert "localhost/apibuilt:1" in cli.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    api.ok("rmi", "apibuilt:1")


def _frozen(cid: str) -> bool:
    """The container's cgroup as the kernel's freezer sees it (v1 or v2)."""
    for path, frozen in ((f"/sys/fs/cgroup/freezer/sangja/{cid}/freezer.state", "FROZEN"),
                         (f"/sys/fs/cgroup/sangja/{cid}/cgroup.freeze", "1")):
        if os.path.exists(path):
            with open(path) as f:
                return f.read().strip() == frozen
    raise AssertionError(f"no freezer state for {cid}")


def test_admin_commands(api, cli, tmp_path):
    """ps filters, pause/unpause (the freezer seen on the host), rename, restart, commit,
    history, save/load, system df and events."""
    start = str(int(time.time()) - 1)
    a = api.ok("run", "-d", "--name", "fa", "-l", "role=web", "busybox", "sleep", "60").strip()
    api.ok("run", "-d", "--name", "fb", "-l", "role=db", "busybox", "sleep", "60")
    assert api.ok("ps", "--filter", "label=role=web", "--format", "{{.Names}}") == "fa\n"
    assert api.ok("ps", "-q", "--no-trunc", "--filter", "name=fa") == a + "\n"
    api.ok("pause", "fa")
    assert _frozen(a)
    assert api.ok("ps", "--filter", "status=paused", "--format", "{{.Names}}") == "fa\n"
    api.ok("unpause", "fa")
    assert not _frozen(a)
    api.ok("rename", "fb", "fb2")
    assert cli.inspect("fb2")["Name"] == "/fb2"
    api.ok("restart", "-t", "1", "fb2")
    assert cli.inspect("fb2")["State"]["Running"]
    api.ok("exec", "fa", "sh", "-c", "echo changed > /marker")
    image_id = api.ok("commit", "fa", "localhost/committed:1").strip()
    assert image_id.startswith("sha256:")
    assert api.ok("run", "--rm", "localhost/committed:1", "cat", "/marker") == "changed\n"
    assert api.ok("history", "-q", "localhost/committed:1").split()[0] == image_id[7:19]
    api.ok("save", "-o", str(tmp_path / "c.tar"), "localhost/committed:1")
    api.ok("rmi", "localhost/committed:1")
    assert "localhost/committed" not in cli.ok("images")
    assert "localhost/committed:1" in api.ok("load", "-i", str(tmp_path / "c.tar"))
    assert "localhost/committed" in cli.ok("images")
    api.ok("rm", "-f", "fa", "fb2")
    api.ok("rmi", "localhost/committed:1")
    assert "Images" in api.ok("system", "df")
    events = api.ok("events", "--since", start, "--until", str(int(time.time()) + 1),
                    "--filter", "type=container", "--format", "{{.Action}} {{.Actor.ID}}")
    for action in ("create", "start", "pause", "unpause", "destroy"):
        assert f"{action} {a}" in events, events


# ---------------------------------------------------------------------------- bad input


def _error(api, method: str, path: str, body=None) -> tuple[int, str]:
    status, headers, data = api.request(method, path, body)
    assert headers.get("Content-Type") == "application/json"
    return status, json.loads(data)["message"]


def test_bad_input_gets_dockers_codes(api, cli):
    status, msg = _error(api, "POST", "/v1.45/containers/create", b"{not json")
    assert status == 400 and "invalid JSON" in msg
    status, msg = _error(api, "POST", "/v1.45/containers/create", {"Image": "no-such-image"})
    assert status == 404 and msg == "No such image: no-such-image"
    status, msg = _error(api, "GET", "/v1.45/containers/nope/json")
    assert status == 404 and msg == "No such container: nope"
    status, msg = _error(api, "POST", "/v1.45/containers/create",
                         {"Image": "busybox", "HostConfig": {"Memory": 1024}})
    assert status == 400 and "Minimum memory limit" in msg
    status, msg = _error(api, "POST", "/v1.45/containers/create",
                         {"Image": "busybox", "HostConfig": {"AutoRemove": True,
                                                             "RestartPolicy": {
                                                                 "Name": "always"}}})
    assert status == 400 and "--restart and --rm" in msg
    status, msg = _error(api, "POST", "/v1.45/containers/create",
                         {"Image": "busybox", "HostConfig": {"PidMode": "host"}})
    assert status == 400 and "PidMode" in msg
    status, msg = _error(api, "GET", "/v1.45/no/such/endpoint")
    assert status == 404
    cid = api.ok("run", "-d", "--name", "busy", "busybox", "sleep", "60").strip()
    status, msg = _error(api, "DELETE", f"/v1.45/containers/{cid}")
    assert status == 409 and "stop the container before removing" in msg
    status, msg = _error(api, "POST", "/v1.45/containers/create?name=busy",
                         {"Image": "busybox"})
    assert status == 409 and "already in use" in msg
    r = api.docker("rm", "no-such-container")
    assert r.returncode != 0 and "No such container: no-such-container" in r.stderr
    api.ok("rm", "-f", "busy")
    # nothing half-made by the refused creates
    assert cli.ok("ps", "-a", "-q") == ""


def test_service_bad_command_lines(api, engine, tmp_path):
    """One line and exit 125; nothing replaced: a file where the socket goes, or a
    socket another service answers on."""
    (tmp_path / "file").write_text("keep")
    for args, words in ((["tcp://0.0.0.0:2375"], "only unix:///PATH"),
                        (["--time", "abc"], "invalid --time"),
                        ([f"unix://{tmp_path}/file"], "is not a socket"),
                        ([f"unix://{api.sock}"], "another service is listening")):
        r = engine("system", "service", *args, timeout=30)
        assert r.returncode == 125 and r.stdout == "", args
        assert len(r.stderr.splitlines()) == 1 and words in r.stderr, r.stderr
    assert (tmp_path / "file").read_text() == "keep"
    assert api.request("GET", "/_ping")[0] == 200  # the running service kept its socket


def _raw(api, request: bytes) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(api.sock))
    s.sendall(request)
    return s


def test_clients_going_away_mid_stream(api):
    """logs -f, attach, events and stats streams whose client disconnects: the service's
    threads end and it keeps no process."""
    cid = api.ok("run", "-d", "busybox", "sh", "-c",
                 "while :; do echo tick; sleep 0.2; done").strip()
    time.sleep(0.5)
    base = api.threads()
    socks = []
    for path in (f"/containers/{cid}/logs?follow=1&stdout=1&stderr=1",
                 "/events", f"/containers/{cid}/stats"):
        socks.append(_raw(api, f"GET /v1.45{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()))
    socks.append(_raw(api, f"POST /v1.45/containers/{cid}/attach?stream=1&stdout=1 "
                      "HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                      "\r\n".encode()))
    for s in socks:
        s.settimeout(10)
        assert s.recv(4096)  # the stream started
    assert api.threads() >= base + 4
    for s in socks:
        s.close()
    wait_gone(lambda: api.threads() <= base, 10,
              f"threads left after the clients went: {api.threads()} > {base}")
    api.ok("rm", "-f", cid)


# ---------------------------------------------------------------------------- the service


def test_idle_exit_and_socket_activation(engine, tmp_path):
    """--time N: the service exits once idle for N seconds (and removes its socket);
    systemd's LISTEN_FDS: it serves the socket it was given."""
    svc = start_service(engine, "--time", "3", sock=tmp_path / "idle.sock")
    assert svc.request("GET", "/_ping")[0] == 200
    svc.proc.wait(15)
    assert svc.proc.returncode == 0 and not (tmp_path / "idle.sock").exists()

    path = tmp_path / "act.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    os.set_inheritable(listener.fileno(), True)
    argv = engine.argv("system", "service", "--time", "3")
    # what systemd does: the socket as fd 3, LISTEN_PID the service's own pid
    proc = subprocess.Popen(
        ["python3", "-c", "import os, sys; os.dup2(int(sys.argv[1]), 3); "
         "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); "
         "os.execv(sys.argv[2], sys.argv[2:])", str(listener.fileno()), *argv],
        pass_fds=[listener.fileno()], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    listener.close()
    try:
        conn = UnixHTTPConnection(str(path))
        try:
            conn.request("GET", "/v1.41/_ping")
            assert conn.getresponse().read() == b"OK"
        except OSError as e:
            proc.wait(20)
            raise AssertionError(f"{e}: {proc.stderr.read().decode()}") from None
        conn.close()
        # the activated socket is not passed on to containers (close-on-exec)
        fds = os.listdir(f"/proc/{proc.pid}/fd")
        for fd in fds:
            if fd == "3":
                flags = open(f"/proc/{proc.pid}/fdinfo/3").read()
                assert int(flags.split("flags:")[1].split()[0], 8) & 0o2000000
    finally:
        proc.wait(20)
    assert proc.returncode == 0, proc.stderr.read()


def test_container_gets_no_service_descriptors(api):
    """The container's init and an exec'd process hold their stdio and nothing else (no
    socket, database or pipe of the service's)."""
    cid = api.ok("run", "-d", "busybox", "sleep", "60").strip()
    assert sorted(api.ok("exec", cid, "ls", "/proc/1/fd").split()) == ["0", "1", "2"]
    out = api.ok("exec", cid, "sh", "-c", "ls /proc/$$/fd; true")
    assert set(out.split()) <= {"0", "1", "2", "10", "255"}, out  # busybox sh's own: 10
    api.ok("rm", "-f", cid)


def test_login_push_pull_through_the_api(api, cli, tmp_path):
    """`docker login` is checked by the service against the registry (/auth) and kept by
    the docker CLI, which sends it with push and pull (X-Registry-Auth); `docker pull`
    streams Docker's JSON progress."""
    from registry_fixtures import HTPASSWD, REGISTRY, Registry

    if not (os.path.exists(REGISTRY) and os.path.exists(HTPASSWD)):
        pytest.skip("docker-registry or htpasswd is not installed")
    reg = Registry(tmp_path / "reg", htpasswd=("alice", "s3cret"))
    try:
        r = api.docker("login", "-u", "alice", "--password-stdin", reg.host, input="wrong\n")
        assert r.returncode != 0 and "refused the credentials" in r.stderr
        r = api.docker("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret\n")
        assert r.returncode == 0, r.stderr
        name = f"{reg.host}/api/busybox:1"
        api.ok("tag", "busybox", name)
        api.ok("push", name, timeout=120)
        api.ok("rmi", name)
        assert name not in cli.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
        api.ok("pull", name, timeout=120)
        assert api.ok("run", "--rm", name, "echo", "pulled") == "pulled\n"
        api.ok("rmi", name)
        # without the login the registry refuses, and the error reaches the client
        api.ok("logout", reg.host)
        r = api.docker("pull", name, timeout=120)
        assert r.returncode != 0
    finally:
        reg.close()
