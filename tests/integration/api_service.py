"""Shared helpers of the API tests (test_api*.py): `sangja system service` on the worker's
engine (its socket in the engine's run root), the docker CLI pointed at it, and raw HTTP
over the unix socket."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from engine_cli import Cli, wait_until


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Service:
    def __init__(self, cli: Cli, proc: subprocess.Popen, sock: Path):
        self.cli, self.proc, self.sock = cli, proc, sock

    def docker(self, *args: str, input: str | bytes | None = None, timeout: float = 60,
               text: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        r = subprocess.run(["docker", "-H", f"unix://{self.sock}", *args], input=input,
                           capture_output=True, text=text, timeout=timeout,
                           env={**os.environ, "DOCKER_CONFIG": str(self.sock.parent /
                                                                  "docker-config"),
                                **(env or {})})
        if text:
            self.cli.seen.update(__import__("re").findall(r"\b[0-9a-f]{64}\b", r.stdout))
        return r

    def ok(self, *args: str, **kw) -> str:
        r = self.docker(*args, **kw)
        assert r.returncode == 0, f"docker {' '.join(args)}: exit {r.returncode}\n{r.stderr}"
        return r.stdout

    def request(self, method: str, path: str, body=None, headers: dict | None = None
                ) -> tuple[int, dict, bytes]:
        conn = UnixHTTPConnection(str(self.sock))
        try:
            data = json.dumps(body).encode() if isinstance(body, dict | list) else body
            conn.request(method, path, body=data, headers={
                **({"Content-Type": "application/json"} if data is not None else {}),
                **(headers or {})})
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def children(self) -> list[str]:
        out = []
        for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
            try:
                with open(f"/proc/{self.proc.pid}/task/{tid}/children") as f:
                    out += f.read().split()
            except FileNotFoundError:  # the thread ended since the listing
                continue
        return out


def start_service(cli: Cli, *extra: str, sock: Path | None = None) -> Service:
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed (Debian's docker.io)")
    sock = sock or cli.runroot / "docker.sock"
    proc = subprocess.Popen(cli.argv("system", "service", *extra, f"unix://{sock}"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    svc = Service(cli, proc, sock)
    wait_until(lambda: sock.exists() or proc.poll() is not None, 15,
               message="the service's socket")
    assert proc.poll() is None, proc.stderr.read().decode()
    return svc


def stop_service(svc: Service) -> None:
    svc.proc.send_signal(signal.SIGINT)
    try:
        svc.proc.wait(15)
    except subprocess.TimeoutExpired:
        svc.proc.kill()
        svc.proc.wait()
        raise AssertionError("the service did not stop on SIGINT") from None
    assert not svc.sock.exists(), "the service left its socket behind"


def wait_gone(pred, timeout: float = 10, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(message)


def _service(engine):
    """The module's service on the worker's engine, stopped (and its socket gone) after
    the module."""
    svc = start_service(engine)
    yield svc
    stop_service(svc)


# A test module takes it with `from api_service import service_fixture` (its fixture name
# is `service`).
service_fixture = pytest.fixture(scope="module", name="service")(_service)


def _docker_client(service, cli):
    """docker-py's client on the module's service (skipped without docker-py)."""
    docker = pytest.importorskip("docker")
    c = docker.DockerClient(base_url=f"unix://{service.sock}", timeout=60)
    yield c
    c.close()


# `from api_service import docker_client_fixture`: the fixture named `client`.
docker_client_fixture = pytest.fixture(name="client")(_docker_client)
