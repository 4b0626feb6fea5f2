"""What the registry tests run against, all on 127.0.0.1 and all removed afterwards:

- `Registry`: Debian's docker-registry (Distribution 2.8) on a free port with its storage in a
  temp dir; no auth, htpasswd (basic) auth, or token auth, optionally over TLS.
- `TokenServer`: a small token server of the tests' own (Distribution's token auth: JWTs
  signed with RS256 by a key whose certificate the registry trusts; signed with openssl).
- `make_tls`: a CA and a server certificate for 127.0.0.1, made with the openssl CLI.
- `FaultProxy`: an HTTP proxy in front of a registry that can drop the connection in the
  middle of a blob, serve a wrong blob, answer 503 first, and counts what it forwards.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

REGISTRY = shutil.which("docker-registry")
HTPASSWD = shutil.which("htpasswd")
OPENSSL = shutil.which("openssl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def sh(*argv, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in argv], capture_output=True, timeout=60, **kw)
    assert r.returncode == 0, (argv, r.stderr.decode(errors="replace"))
    return r


# ---------------------------------------------------------------------------- TLS


def make_tls(d: Path, cn: str = "127.0.0.1") -> dict[str, Path]:
    """A CA, and a certificate for 127.0.0.1 (IP SAN) it signs."""
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = d / "ca.key", d / "ca.crt"
    key, csr, crt = d / "server.key", d / "server.csr", d / "server.crt"
    sh(OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
       "-subj", "/CN=sangja test CA", "-keyout", ca_key, "-out", ca_crt)
    sh(OPENSSL, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
       "-keyout", key, "-out", csr)
    ext = d / "ext.cnf"
    ext.write_text(f"subjectAltName=IP:{cn}\nbasicConstraints=CA:FALSE\n"
                   "extendedKeyUsage=serverAuth\n")
    sh(OPENSSL, "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
       "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt)
    return {"ca": ca_crt, "cert": crt, "key": key}


# ---------------------------------------------------------------------------- tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Distribution's token auth: GET /token?service=S&scope=repository:NAME:pull,push with
    Basic auth (the one user) or none (anonymous: nothing granted) -> {"token": JWT}. The
    JWT carries its signing certificate (x5c), which the registry's rootcertbundle holds."""

    def __init__(self, d: Path, user: str, password: str, service: str = "sangja-test"):
        d.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = d / "token.key", d / "token.crt"
        sh(OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
           "-subj", "/CN=sangja test token issuer", "-keyout", self.key, "-out", self.cert)
        der = sh(OPENSSL, "x509", "-in", self.cert, "-outform", "DER").stdout
        self.x5c = base64.b64encode(der).decode()
        self.user, self.password, self.service = user, password, service
        self.issuer = "sangja-test-issuer"
        self.requests: list[dict] = []
        self.port = free_port()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                from urllib.parse import parse_qs, urlsplit

                q = parse_qs(urlsplit(self.path).query)
                auth = self.headers.get("Authorization", "")
                who = None
                if auth.startswith("Basic "):
                    u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                    if (u, p) != (server.user, server.password):
                        self.send_response(401)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    who = u
                scopes = q.get("scope", [])
                server.requests.append({"user": who, "scopes": scopes})
                access = []
                for s in scopes:
                    for one in s.split(" "):
                        kind, _, rest = one.partition(":")
                        name, _, actions = rest.rpartition(":")
                        if kind == "repository" and who is not None:
                            access.append({"type": "repository", "name": name,
                                           "actions": actions.split(",")})
                body = json.dumps({"token": server.sign(who or "", access),
                                   "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def sign(self, subject: str, access: list) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        sig = subprocess.run([OPENSSL, "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing.encode(), capture_output=True, check=True).stdout
        return f"{signing}.{_b64(sig)}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------------- registry


class Registry:
    """docker-registry serving on 127.0.0.1:PORT, storage under `d`."""

    def __init__(self, d: Path, *, htpasswd: tuple[str, str] | None = None,
                 token: TokenServer | None = None, tls: dict | None = None):
        d.mkdir(parents=True, exist_ok=True)
        self.dir = d
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        lines = ["version: 0.1", "log:", "  level: warn", "  accesslog:", "    disabled: true",
                 "storage:", "  filesystem:", f"    rootdirectory: {d / 'data'}",
                 "  delete:", "    enabled: true",
                 "http:", f"  addr: 127.0.0.1:{self.port}", "  secret: sangja-tests"]
        if tls:
            lines += ["  tls:", f"    certificate: {tls['cert']}", f"    key: {tls['key']}"]
        if htpasswd:
            user, password = htpasswd
            out = sh(HTPASSWD, "-Bbn", user, password).stdout
            (d / "htpasswd").write_bytes(out)
            lines += ["auth:", "  htpasswd:", "    realm: sangja-test",
                      f"    path: {d / 'htpasswd'}"]
        if token:
            lines += ["auth:", "  token:", f"    realm: {token.realm}",
                      f"    service: {token.service}", f"    issuer: {token.issuer}",
                      f"    rootcertbundle: {token.cert}"]
        (d / "config.yml").write_text("\n".join(lines) + "\n")
        self.log = open(d / "registry.log", "wb")
        self.proc = subprocess.Popen([REGISTRY, "serve", str(d / "config.yml")],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            _wait_port(self.port, self.proc)
        except RuntimeError:
            self.close()
            raise RuntimeError(f"docker-registry did not start: "
                               f"{(d / 'registry.log').read_text(errors='replace')}")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------------------- proxy


class FaultProxy:
    """An HTTP/1.1 proxy to a plain-HTTP registry. Faults (set the attributes):

    - ``drop_after``: bytes of a blob GET after which the connection is cut, once per blob
      (the client must resume with Range; the Range request is passed through);
    - ``wrong_blob``: serve every blob GET of at least that many bytes with one byte flipped;
    - ``recompress``: serve gzip blobs decompressed and compressed again (other bytes, the
      same content: only the digest and size can tell);
    - ``fail_first``: answer the first N requests of each (method, path kind) with 503;
    - ``wrong_stored``: "manifest" or "upload": answer a PUT of that kind with another
      ``Docker-Content-Digest`` than the registry's (a registry that stored other bytes).

    ``seen`` lists (method, path, Range header) of every request forwarded."""

    def __init__(self, upstream_port: int):
        self.upstream = upstream_port
        self.port = free_port()
        self.drop_after: int | None = None
        self.wrong_blob: int | None = None
        self.recompress = False
        self.fail_first = 0
        self.wrong_stored: str | None = None
        self.dropped: set[str] = set()
        self.failed: dict[tuple[str, str], int] = {}
        self.seen: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _forward(self):
                path = self.path
                kind = ("blob" if "/blobs/sha256:" in path else "manifest"
                        if "/manifests/" in path else "upload" if "/uploads/" in path
                        else path)
                with proxy.lock:
                    proxy.seen.append((self.command, path, self.headers.get("Range")))
                    n = proxy.failed.get((self.command, kind), 0)
                    if n < proxy.fail_first:
                        proxy.failed[(self.command, kind)] = n + 1
                        fail = True
                    else:
                        fail = False
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if fail:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "keep-alive")}
                conn.request(self.command, path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                is_blob = self.command == "GET" and "/blobs/sha256:" in path and \
                    r.status in (200, 206)
                digest = path.rsplit("/", 1)[1]
                if is_blob and proxy.wrong_blob is not None and len(data) >= proxy.wrong_blob:
                    b = bytearray(data)
                    b[len(b) // 2] ^= 0x01
                    data = bytes(b)
                if is_blob and proxy.recompress and data[:2] == b"\x1f\x8b":
                    import gzip

                    data = gzip.compress(gzip.decompress(data), compresslevel=1, mtime=1)
                cut = None
                if is_blob and proxy.drop_after is not None and digest not in proxy.dropped \
                        and len(data) > proxy.drop_after:
                    proxy.dropped.add(digest)
                    cut = proxy.drop_after
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length",
                                         "keep-alive"):
                        if (k.lower() == "docker-content-digest" and self.command == "PUT"
                                and kind == proxy.wrong_stored):
                            v = sha256(v.encode())  # a digest, not the one sent
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data[:cut] if cut is not None else data)
                self.wfile.flush()
                conn.close()
                if cut is not None:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"
