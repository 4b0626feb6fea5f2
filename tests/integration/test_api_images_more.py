"""More of the image API through the clients people use: `docker search` and docker-py's
`images.search` (GET /images/search), `docker import` and docker-py's `import_image*`
(POST /images/create?fromSrc=), docker-py's `images.get_registry_data` (GET
/distribution/{name}/json), against `sangja system service` and a local docker-registry
(Distribution has no v1 search: its catalog is searched) or a registry of the test's own
that speaks Docker Hub's v1 search API (Docker Hub itself is not reachable here)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import lzma
import os
import tarfile
import threading
from pathlib import Path
from urllib.parse import quote

import pytest
from api_service import (
    Service,
    service_fixture,  # noqa: F401 - the module's `service`
)

pytestmark = pytest.mark.root


@pytest.fixture
def api(service: Service, cli):
    yield service


@pytest.fixture
def client(service: Service):
    docker = pytest.importorskip("docker")
    c = docker.DockerClient(base_url=f"unix://{service.sock}", timeout=120)
    yield c
    c.close()


@pytest.fixture
def registry(tmp_path):
    from registry_fixtures import REGISTRY, Registry

    if REGISTRY is None:
        pytest.skip("docker-registry is not installed")
    reg = Registry(tmp_path / "reg")
    yield reg
    reg.close()


@pytest.fixture
def fake_registry():
    from test_registry import FakeRegistry

    fake = FakeRegistry()
    yield fake
    fake.close()


def _error(status_headers_body: tuple[int, dict, bytes]) -> tuple[int, str]:
    status, _, body = status_headers_body
    return status, json.loads(body)["message"]


# ---------------------------------------------------------------------------- search


def _push_repos(cli, reg, *repos: str) -> None:
    for repo in repos:
        cli.ok("push", "busybox", f"{reg.host}/{repo}:1", timeout=120)


def test_search_catalog_with_docker_cli_and_docker_py(api, cli, client, registry):
    """Distribution offers no v1 search: the engine's search reads its catalog, filtered by
    the term; the reply has Docker's fields; limit and filters apply."""
    _push_repos(cli, registry, "tools/busybox", "other/busy-too", "x/unrelated")
    host = registry.host
    rows = api.ok("search", f"{host}/busy").splitlines()
    assert rows[0].split()[:2] == ["NAME", "DESCRIPTION"]
    assert sorted(r.split()[0] for r in rows[1:]) == [f"{host}/other/busy-too",
                                                      f"{host}/tools/busybox"]
    assert len(api.ok("search", "--limit", "1", f"{host}/busy").splitlines()) == 2
    assert api.ok("search", "--filter", "stars=1", f"{host}/busy").splitlines()[1:] == []
    assert api.ok("search", "--filter", "is-official=true",
                  f"{host}/busy").splitlines()[1:] == []
    assert len(api.ok("search", "--filter", "is-official=false",
                      f"{host}/busy").splitlines()) == 3
    found = client.images.search(f"{host}/UNREL")
    assert found == [{"name": f"{host}/x/unrelated", "description": "", "star_count": 0,
                      "is_official": False, "is_automated": False}]
    assert client.images.search(f"{host}/nothing-like-it") == []


def test_search_v1_api_fields_and_filters(api, client, fake_registry):
    """A registry with Docker's v1 search API (as Docker Hub): its description, stars,
    official and automated flags reach the client; stars and is-* filters pick."""
    fake = fake_registry
    fake.routes["/v1/search"] = (200, {}, json.dumps({"results": [
        {"name": "library/nginx", "description": "Official build of Nginx.",
         "star_count": 19000, "is_official": True, "is_automated": False},
        {"name": "bitnami/nginx", "description": "Bitnami nginx", "star_count": 150,
         "is_automated": True},
        {"name": "someone/nginx", "description": "", "star_count": 2}]}).encode())
    rows = api.ok("search", f"{fake.host}/nginx").splitlines()
    first = rows[1].split()
    assert first[0] == f"{fake.host}/library/nginx" and "19000" in first and "[OK]" in first
    assert [r.split()[0] for r in api.ok("search", "--filter", "stars=100",
                                         f"{fake.host}/nginx").splitlines()[1:]] == [
        f"{fake.host}/library/nginx", f"{fake.host}/bitnami/nginx"]
    assert [r.split()[0] for r in api.ok("search", "--filter", "is-official=true",
                                         f"{fake.host}/nginx").splitlines()[1:]] == [
        f"{fake.host}/library/nginx"]
    status, _, body = api.request("GET", f"/images/search?term={fake.host}/nginx&filters="
                                  + quote('{"is-automated":{"true":true}}'))
    assert status == 200 and json.loads(body) == [
        {"name": f"{fake.host}/bitnami/nginx", "description": "Bitnami nginx",
         "star_count": 150, "is_official": False, "is_automated": True}]
    assert len(client.api.search(f"{fake.host}/nginx", limit=2)) == 2
    # the registry's failures: Docker's status and {"message": ...}
    fake.routes["/v1/search"] = (500, {}, b"")
    status, message = _error(api.request("GET", f"/images/search?term={fake.host}/nginx"))
    assert status == 500 and "HTTP 500" in message, message
    r = api.docker("search", f"{fake.host}/nginx")
    assert r.returncode != 0 and "HTTP 500" in r.stderr, r.stderr
    del fake.routes["/v1/search"]
    status, message = _error(api.request("GET", f"/images/search?term={fake.host}/nginx"))
    assert status == 500 and "offers no search" in message, message


def test_search_unqualified_term_uses_the_configured_registries(cli, registry, tmp_path,
                                                                monkeypatch):
    """A term naming no registry searches the service's unqualified-search-registries;
    with none configured it is a 400 naming the fix."""
    from api_service import start_service, stop_service

    _push_repos(cli, registry, "team/busybox")
    conf = tmp_path / "registries.conf"
    conf.write_text(f'unqualified-search-registries = ["{registry.host}"]\n')
    monkeypatch.setenv("SANGJA_REGISTRIES_CONF", str(conf))
    svc = start_service(cli, sock=tmp_path / "search.sock")
    try:
        rows = svc.ok("search", "team").splitlines()
        assert [r.split()[0] for r in rows[1:]] == [f"{registry.host}/team/busybox"]
        conf.write_text("")
        r = svc.docker("search", "team")
        assert r.returncode != 0 and "unqualified-search-registries" in r.stderr, r.stderr
        status, message = _error(svc.request("GET", "/images/search?term=team"))
        assert status == 400 and "names no registry" in message, message
    finally:
        stop_service(svc)


def test_search_bad_input(api):
    """A missing term, a limit that is no number or out of Docker's range, unknown or
    malformed filters, a term naming no repository: 400 and Docker's {"message"}."""
    term = "127.0.0.1:1/busy"  # never asked: each is refused before the registry is
    for query, mentions in (("", "term"), ("term=", "term"),
                            (f"term={term}&limit=x", "limit"),
                            (f"term={term}&limit=0", "limit"),
                            (f"term={term}&limit=101", "limit"),
                            (f"term={term}&filters=" + quote('{"colour":["red"]}'), "colour"),
                            (f"term={term}&filters=" + quote('{"stars":["many"]}'), "stars"),
                            (f"term={term}&filters=" + quote('{"is-official":["maybe"]}'),
                             "is-official"),
                            (f"term={term}&filters=notjson", "filter"),
                            ("term=127.0.0.1:1/", "search term")):
        status, message = _error(api.request("GET", f"/images/search?{query}"))
        assert status == 400 and mentions in message, (query, status, message)
    r = api.docker("search", "--limit", "1000", term)
    assert r.returncode != 0 and "limit" in r.stderr, r.stderr
    # a registry that is not there: the engine's error, not a hang or a crash
    status, message = _error(api.request("GET", f"/images/search?term={term}"))
    assert status == 500 and message, message


# ---------------------------------------------------------------------------- import


def _rootfs_tar(text: str) -> bytes:
    """A root filesystem: static busybox as /bin/busybox and /bin/sh, and /hello."""
    from sangja.image.busybox import BusyboxNotFound, find_static_busybox

    try:
        busybox = find_static_busybox()
    except BusyboxNotFound as e:
        pytest.skip(str(e))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "tmp"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add(str(busybox), "bin/busybox")
        link = tarfile.TarInfo("bin/sh")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(link)
        data = text.encode()
        info = tarfile.TarInfo("hello")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _store_state(cli) -> dict:
    """What an import could leave: blobs, layers, images, temp files in the store."""
    root = Path(cli.root)

    def ls(d: Path) -> list[str]:
        return sorted(os.listdir(d)) if d.exists() else []
    return {"blobs": ls(root / "blobs" / "sha256"), "blob_tmp": ls(root / "blobs" / "tmp"),
            "layers": ls(root / "layers"),
            "temp": [n for n in ls(root) if n.startswith(".import-")],
            "images": cli.ok("images", "-a", "-q", "--no-trunc").split()}


class _TarServer:
    """Serves bytes at http://127.0.0.1:PORT/rootfs.tar (and 404 elsewhere)."""

    def __init__(self, data: bytes):
        server = self
        self.data = data

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                ok = self.path == "/rootfs.tar"
                self.send_response(200 if ok else 404)
                body = server.data if ok else b"no such file"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_import_with_docker_cli(api, cli, tmp_path):
    """`docker import FILE` sends the (gzip) tarball as the body, with -c and -m: the
    image runs, with the changes and the message; `docker import URL` has the service
    fetch it (loopback http)."""
    tar = _rootfs_tar("from a file\n")
    path = tmp_path / "rootfs.tar.gz"
    path.write_bytes(gzip.compress(tar))
    out = api.ok("import", "-c", "ENV GREETING=hi", "-c", 'CMD ["/bin/sh", "-c", '
                 '"cat /hello; echo $GREETING"]', "-m", "from docker import", str(path),
                 "imported:1")
    image_id = out.strip().splitlines()[-1]
    assert image_id.startswith("sha256:") and len(image_id) == 71, out
    info = json.loads(cli.ok("image", "inspect", "imported:1"))[0]
    assert info["Id"] == image_id
    assert "GREETING=hi" in info["Config"]["Env"]
    assert info["RootFS"]["Layers"] == [f"sha256:{hashlib.sha256(tar).hexdigest()}"]
    assert cli.ok("run", "--rm", "imported:1") == "from a file\nhi\n"
    assert "from docker import" in api.ok("history", "--no-trunc", "imported:1")
    r = api.docker("import", "-", "fromstdin:1", input=_rootfs_tar("from stdin\n"),
                   text=False)
    assert r.returncode == 0, r.stderr
    assert cli.ok("run", "--rm", "fromstdin:1", "/bin/busybox", "cat", "/hello") == \
        "from stdin\n"
    server = _TarServer(_rootfs_tar("from a URL\n"))
    try:
        out = api.ok("import", f"{server.url}/rootfs.tar", "fromurl:1")
        assert out.strip().splitlines()[-1].startswith("sha256:"), out
        assert cli.ok("run", "--rm", "fromurl:1", "/bin/busybox", "cat", "/hello") == "from a URL\n"
        before = _store_state(cli)
        r = api.docker("import", f"{server.url}/missing.tar", "nothere:1")
        assert r.returncode != 0 and "404" in r.stderr, r.stderr
        assert _store_state(cli) == before
    finally:
        server.close()
        api.docker("rmi", "imported:1", "fromurl:1", "fromstdin:1")


def test_import_with_docker_py(api, cli, client):
    """docker-py's import_image_from_data (xz this time) and import_image_from_url; the
    reply ends with {"status": "sha256:..."}."""
    data = lzma.compress(_rootfs_tar("xz data\n"))
    reply = client.api.import_image_from_data(data, repository="pyimp", tag="2",
                                              changes=["WORKDIR /tmp"])
    last = json.loads(reply.strip().splitlines()[-1])
    image = client.images.get("pyimp:2")
    assert last == {"status": image.id}
    assert image.attrs["Config"]["WorkingDir"] == "/tmp"
    assert cli.ok("run", "--rm", "pyimp:2", "/bin/busybox", "cat", "/hello") == "xz data\n"
    server = _TarServer(_rootfs_tar("py URL\n"))
    try:
        reply = client.api.import_image_from_url(f"{server.url}/rootfs.tar",
                                                 repository="pyurl")
        image_id = json.loads(reply.strip().splitlines()[-1])["status"]
        assert client.images.get("pyurl:latest").id == image_id
    finally:
        server.close()
        api.docker("rmi", "pyimp:2", "pyurl")


def test_import_bad_input_leaves_nothing(api, cli, tmp_path):
    """Garbage, a truncated gzip, a bad --change, a source that is no http(s) URL: the
    client gets the error (4xx, {"message"}), and the store has no new blob, layer, image,
    tag or temp file."""
    before = _store_state(cli)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(os.urandom(4096))
    r = api.docker("import", str(garbage), "garbage:1")
    assert r.returncode != 0 and "not a valid tar archive" in r.stderr, r.stderr
    assert _store_state(cli) == before
    status, message = _error(api.request("POST", "/images/create?fromSrc=-&repo=garbage",
                                         body=b"this is not a tarball" * 100))
    assert status == 400 and "not a valid tar archive" in message, message
    status, message = _error(api.request(
        "POST", "/images/create?fromSrc=-&repo=trunc",
        body=gzip.compress(_rootfs_tar("x\n"))[:5000]))
    assert status == 400 and "corrupt or truncated gzip" in message, message
    # a hostile entry is refused by the unpacking, after the blob was stored: taken back
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../../escaped")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"evil\n"))
    status, message = _error(api.request("POST", "/images/create?fromSrc=-&repo=hostile",
                                         body=buf.getvalue()))
    assert status == 400 and "escaped" in message, message
    assert _store_state(cli) == before
    r = api.docker("import", "-c", "NOSUCH instruction", str(garbage), "badchange:1")
    assert r.returncode != 0 and "NOSUCH" in r.stderr.upper(), r.stderr
    for src in ("file:///etc/hostname", "/etc/hostname", "ftp://127.0.0.1/x.tar"):
        status, message = _error(api.request("POST", "/images/create?fromSrc="
                                             + quote(src, safe="")))
        assert status == 400 and "fromSrc" in message, (src, message)
    status, message = _error(api.request(
        "POST", "/images/create?fromSrc=-&repo=x&tag=" + quote("sha256:" + "a" * 64),
        body=_rootfs_tar("x\n")))
    assert status == 400, message
    assert _store_state(cli) == before


def test_import_client_gone_mid_body_leaves_nothing(api, cli):
    """A client that promised more bytes than it sent (it died mid-upload, at a tar block
    boundary, where the tar alone would look whole) imports nothing."""
    import socket
    import time

    before = _store_state(cli)
    tar = _rootfs_tar("cut\n")
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        cut = t.getmembers()[-1].offset  # where /hello starts: a tar complete so far
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(api.sock))
        s.sendall(b"POST /images/create?fromSrc=-&repo=cut HTTP/1.1\r\nHost: x\r\n"
                  + f"Content-Length: {len(tar)}\r\n\r\n".encode() + tar[:cut])
        s.shutdown(socket.SHUT_WR)
        s.settimeout(60)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.split(b"\r\n", 1)[0].split()[1] == b"400", reply
    deadline = time.monotonic() + 10
    while _store_state(cli) != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _store_state(cli) == before
    assert "cut" not in cli.ok("images", "--format", "{{.Repository}}")


# ---------------------------------------------------------------------------- distribution


def test_distribution_descriptor_and_platforms(api, cli, client, registry, fake_registry):
    """GET /distribution/{name}/json: the manifest's descriptor as the registry serves it
    and the platform of its config; an index's platforms; 404 for what is not there."""
    import http.client

    _push_repos(cli, registry, "tools/busybox")
    name = f"{registry.host}/tools/busybox:1"
    conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=30)
    try:
        conn.request("GET", "/v2/tools/busybox/manifests/1", headers={"Accept": ", ".join((
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json"))})
        r = conn.getresponse()
        body = r.read()
        media = r.getheader("Content-Type")
    finally:
        conn.close()
    digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
    status, _, reply = api.request("GET", f"/distribution/{name}/json")
    assert status == 200, reply
    doc = json.loads(reply)
    assert doc["Descriptor"] == {"mediaType": media, "digest": digest, "size": len(body)}
    arch = json.loads(cli.ok("image", "inspect", "busybox"))[0]["Architecture"]
    assert doc["Platforms"] == [{"architecture": arch, "os": "linux"}]
    data = client.images.get_registry_data(name)
    assert data.id == digest and data.has_platform(f"linux/{arch}")
    assert not data.has_platform("windows/amd64")
    status, message = _error(api.request("GET",
                                         f"/distribution/{registry.host}/tools/busybox:no/json"))
    assert status == 404 and "not found" in message, message
    # an index (a registry of the test's own): its entries' platforms, no child fetched
    index = json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [
                            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "digest": "sha256:" + "1" * 64, "size": 500,
                             "platform": {"os": "linux", "architecture": "amd64"}},
                            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "digest": "sha256:" + "2" * 64, "size": 500,
                             "platform": {"os": "linux", "architecture": "arm64",
                                          "variant": "v8"}}]}).encode()
    fake = fake_registry
    fake.routes["/v2/multi/img/manifests/1"] = (200, {
        "Content-Type": "application/vnd.oci.image.index.v1+json"}, index)
    doc = client.api.inspect_distribution(f"{fake.host}/multi/img:1")
    assert doc["Descriptor"] == {"mediaType": "application/vnd.oci.image.index.v1+json",
                                 "digest": f"sha256:{hashlib.sha256(index).hexdigest()}",
                                 "size": len(index)}
    assert doc["Platforms"] == [{"architecture": "amd64", "os": "linux"},
                                {"architecture": "arm64", "os": "linux", "variant": "v8"}]
