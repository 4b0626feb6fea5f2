"""The clients people use against `sangja system service`: docker-py (Debian's
python3-docker) running its own usage patterns (containers.run, the create/start/wait/
remove loop of testcontainers, exec_run, streamed logs, images, volumes), and
docker-compose 1.29 bringing a two-service project up (a web server and a client that
reaches it by its service name on the project's network, a named volume, depends_on),
`logs`, `ps`, `exec`, and `down -v` leaving nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap

import pytest
from api_service import docker_client_fixture, service_fixture  # noqa: F401 - the module's fixtures
from engine_cli import wait_until

pytestmark = pytest.mark.root


def test_docker_py_run_and_loop(client, cli):
    assert client.version()["ApiVersion"] == "1.45"
    assert client.ping()
    assert client.containers.run("busybox", ["echo", "hi"], remove=True) == b"hi\n"
    # testcontainers' pattern: create, start, wait, logs, remove, again and again
    for i in range(5):
        c = client.containers.create("busybox", ["sh", "-c", f"echo run{i}; exit {i}"],
                                     labels={"loop": str(i)})
        c.start()
        assert c.wait(timeout=30) == {"StatusCode": i, "Error": None}
        assert c.logs() == f"run{i}\n".encode()
        c.remove(v=True)
    assert client.containers.list(all=True) == []
    assert cli.ok("ps", "-a", "-q") == ""


def test_docker_py_exec_logs_images_volumes(client, cli):
    c = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo line$i; "
                                          "sleep 0.1; done; sleep 60"], detach=True,
                              name="dp1", environment={"X": "y"})
    assert client.containers.get("dp1").id == c.id
    assert [x.name for x in client.containers.list(filters={"name": "dp1"})] == ["dp1"]
    assert c.exec_run(["sh", "-c", "echo $X; exit 4"]) == (4, b"y\n")
    code, (out, err) = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert (code, out, err) == (0, b"o\n", b"e\n")
    lines = []
    stream = c.logs(stream=True, follow=True)
    for line in stream:
        lines.append(line)
        if len(lines) == 3:
            break
    stream.close()
    assert b"".join(lines) == b"line1\nline2\nline3\n"
    c.reload()
    assert c.status == "running" and c.attrs["Config"]["Env"][-1] == "X=y"
    c.stop(timeout=1)
    c.remove()
    tags = [t for i in client.images.list() for t in i.tags]
    assert "localhost/busybox:latest" in tags
    assert client.images.get("busybox").id.startswith("sha256:")
    v = client.volumes.create("dpvol", labels={"k": "v"})
    assert "dpvol" in cli.ok("volume", "ls", "-q").split()
    assert [x.name for x in client.volumes.list(filters={"label": "k=v"})] == ["dpvol"]
    v.remove()
    assert "dpvol" not in cli.ok("volume", "ls", "-q").split()


COMPOSE = textwrap.dedent("""\
    version: "2.4"
    services:
      web:
        image: busybox
        # the page comes two seconds late: only its healthcheck tells when web is ready
        command:
          - sh
          - -c
          - sleep 2; echo from-web > /www/index.html; exec httpd -f -p 80 -h /www
        volumes:
          - site:/www
        healthcheck:
          test: ["CMD", "wget", "-qO-", "http://127.0.0.1/"]
          interval: 1s
          timeout: 2s
          retries: 60
      client:
        image: busybox
        depends_on:
          web:
            condition: service_healthy
        # one try, no retries: it works only if compose waited for web to be healthy
        command:
          - sh
          - -c
          - wget -qO- http://web/ && echo client-done; sleep 300
    volumes:
      site:
    """)


def test_compose_up_logs_exec_down(service, cli, tmp_path):
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (Debian's docker-compose)")
    (tmp_path / "docker-compose.yml").write_text(COMPOSE)
    env = {**os.environ, "DOCKER_HOST": f"unix://{service.sock}",
           "COMPOSE_PROJECT_NAME": "apiproj"}

    def compose(*args: str, timeout: float = 120) -> str:
        r = subprocess.run(["docker-compose", *args], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, f"docker-compose {' '.join(args)}: {r.stderr}"
        return r.stdout

    try:
        compose("up", "-d", timeout=180)
        # compose waited for web's healthcheck (it reads State.Health through the service)
        health = json.loads(subprocess.run(
            ["docker", "-H", f"unix://{service.sock}", "inspect", "--format",
             "{{json .State.Health}}", "apiproj_web_1"], capture_output=True, text=True,
            check=True).stdout)
        assert health["Status"] == "healthy" and health["Log"][-1]["ExitCode"] == 0, health
        # the sangja CLI sees the project: its containers, network and volume
        names = cli.ok("ps", "--format", "{{.Names}}").split()
        assert {"apiproj_web_1", "apiproj_client_1"} <= set(names)
        assert "apiproj_default" in cli.ok("network", "ls")
        assert "apiproj_site" in cli.ok("volume", "ls", "-q").split()
        # the client reached the web server by its service name
        wait_until(lambda: "client-done" in compose("logs", "--no-color", "client"), 30)
        assert "from-web" in compose("logs", "--no-color", "client")
        ps = compose("ps")
        assert "apiproj_web_1" in ps and "Up" in ps
        assert compose("exec", "-T", "web", "cat", "/www/index.html") == "from-web\n"
        # run: a one-off container on the same network (compose inspects the network
        # and would refuse options other than its own)
        assert "from-web" in compose("run", "--rm", "-T", "client", "sh", "-c",
                                     "for i in $(seq 20); do wget -qO- http://web/ && "
                                     "exit 0; sleep 0.3; done; exit 1")
        # logs -f ends when the project goes
        follow = subprocess.Popen(["docker-compose", "logs", "-f", "--no-color", "web"],
                                  cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        compose("down", "-v")
        follow.wait(60)
    finally:
        subprocess.run(["docker-compose", "down", "-v"], cwd=tmp_path, env=env,
                       capture_output=True, timeout=120)
    assert cli.ok("ps", "-a", "-q") == ""
    assert "apiproj" not in cli.ok("network", "ls")
    assert "apiproj_site" not in cli.ok("volume", "ls", "-q").split()
