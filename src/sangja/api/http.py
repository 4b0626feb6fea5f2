"""One HTTP request of the Docker API: the version prefix, routing, the body (plain or
chunked), JSON replies and Docker's error bodies, chunked streams, and hijacking the
connection (attach, exec) as dockerd does (`101 UPGRADED`, then raw bytes both ways)."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import ApiError, bad_request, from_exception

TYPE_CHECKING = False  # annotations only: nothing more is imported at run time
if TYPE_CHECKING:
    from ..engine.containers import Engine
    from .server import _Server

API_MAX = "1.45"  # Docker 26's: what a newer client negotiates down to
API_MIN = "1.24"  # the oldest the docker CLI and docker-py still speak


def _vtuple(v: str) -> tuple[int, int]:
    major, _, minor = v.partition(".")
    return int(major), int(minor or 0)


class Request:
    """What an endpoint sees: the parsed request, its engine, and the ways to answer."""

    def __init__(self, handler: Handler, method: str, path: str, query: dict[str, list[str]],
                 version: str):
        self.handler = handler
        self.method = method
        self.path = path
        self.query = query
        self.version = version
        self.service = handler.server.service
        self.responded = False
        self._engine: Engine | None = None
        self._body: bytes | None = None
        self._reader: _ChunkedReader | _LimitedReader | None = None

    # -- arguments ------------------------------------------------------------------------
    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        v = self.arg(name)
        if v is None:
            return default
        return v.lower() in ("1", "true", "yes", "on")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        v = self.arg(name)
        if v in (None, ""):
            return default
        try:
            return int(v)
        except ValueError:
            raise bad_request(f"invalid value for {name}: {v!r}: not an integer") from None

    def filters(self) -> dict[str, list[str]]:
        """`filters={"status":["running"],"label":{"a=b":true}}` (both of Docker's forms)."""
        text = self.arg("filters")
        if not text:
            return {}
        from ..jsonio import JSONError, loads

        try:
            raw = loads(text)
        except (JSONError, ValueError) as e:
            raise bad_request(f"invalid filter: {e}") from None
        if not isinstance(raw, dict):
            raise bad_request("invalid filter: not a JSON object")
        out: dict[str, list[str]] = {}
        for k, v in raw.items():
            if isinstance(v, dict):
                out[k] = [x for x, on in v.items() if on]
            elif isinstance(v, list):
                out[k] = [str(x) for x in v]
            else:
                out[k] = [str(v)]
        return out

    def at_least(self, version: str) -> bool:
        return _vtuple(self.version) >= _vtuple(version)

    # -- body -----------------------------------------------------------------------------
    def body_stream(self):
        """The request body as a binary file object (chunked bodies decoded)."""
        if self._reader is None:
            h = self.handler
            if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
                self._reader = _ChunkedReader(h.rfile)
            else:
                try:
                    length = int(h.headers.get("Content-Length") or 0)
                except ValueError:
                    raise bad_request("invalid Content-Length") from None
                self._reader = _LimitedReader(h.rfile, length)
        return self._reader

    def drain(self) -> None:
        """Read what the endpoint left of the body: the next request starts after it."""
        reader = self.body_stream()
        while reader.read(1 << 16):
            pass

    def body(self) -> bytes:
        if self._body is None:
            self._body = self.body_stream().read()
        return self._body

    def json(self, default=None):
        data = self.body()
        if not data.strip():
            return default
        from ..jsonio import JSONError, loads

        try:
            return loads(data)
        except (JSONError, ValueError, UnicodeDecodeError) as e:
            raise bad_request(f"invalid JSON in the request body: {e}") from None

    # -- the engine -----------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from ..engine.containers import Engine

            self._engine = Engine(self.service.root, self.service.runroot)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    # -- answers --------------------------------------------------------------------------
    def send_json(self, value, status: int = 200) -> None:
        from ..jsonio import dumps

        self.send_bytes(dumps(value).encode() + b"\n", status, "application/json")

    def send_bytes(self, data: bytes, status: int = 200,
                   content_type: str = "application/json",
                   headers: dict[str, str] | None = None) -> None:
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if self.method != "HEAD":
            h.wfile.write(data)
        h.wfile.flush()
        self.responded = True

    def send_empty(self, status: int = 204, headers: dict[str, str] | None = None) -> None:
        h = self.handler
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", "0")
        h.end_headers()
        h.wfile.flush()
        self.responded = True

    def stream(self, content_type: str = "application/json", status: int = 200,
               headers: dict[str, str] | None = None) -> ChunkedWriter:
        """Start a chunked reply; write to it, then `close()` it."""
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.wfile.flush()
        self.responded = True
        return ChunkedWriter(h.wfile)

    def hijack(self, content_type: str) -> socket.socket:
        """Take the connection over: `101 UPGRADED` when the client asked for an upgrade
        (the docker CLI, docker-py), else `200` and the raw stream until we close it. The
        connection is not used for HTTP again."""
        h = self.handler
        upgrade = h.headers.get("Upgrade", "").lower() == "tcp" or "upgrade" in h.headers.get(
            "Connection", "").lower()
        if upgrade:
            h.send_response_only(101, "UPGRADED")
            h.send_header("Content-Type", content_type)
            h.send_header("Connection", "Upgrade")
            h.send_header("Upgrade", "tcp")
        else:
            h.send_response_only(200)
            h.send_header("Content-Type", content_type)
        h.end_headers()
        h.wfile.flush()
        self.responded = True
        h.close_connection = True
        return h.connection


class ChunkedWriter:
    def __init__(self, wfile):
        self.wfile = wfile
        self.closed = False

    def write(self, data: bytes) -> int:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        return len(data)

    def write_json(self, value) -> None:
        from ..jsonio import dumps

        self.write(dumps(value).encode() + b"\n")

    def flush(self) -> None:
        self.wfile.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()


class _LimitedReader:
    """A `Content-Length` body as a file object; one cut short (the client went away) is a
    400, not a shorter body (an upload cut at a tar block boundary would look whole)."""

    def __init__(self, rfile, length: int):
        self.rfile = rfile
        self.left = length

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.rfile.read(n)
        self.left -= len(data)
        if len(data) < n:  # the connection ended: what came is not the body announced
            self.left = 0
            raise bad_request("the request body ended early (shorter than its "
                              "Content-Length)")
        return data

    def readable(self) -> bool:
        return True


class _ChunkedReader:
    """A `Transfer-Encoding: chunked` body as a file object."""

    def __init__(self, rfile):
        self.rfile = rfile
        self.left = 0
        self.done = False

    def _next_chunk(self) -> None:
        line = self.rfile.readline(1024)
        if not line:
            raise bad_request("the chunked request body ended early")
        try:
            self.left = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise bad_request("malformed chunked request body") from None
        if self.left == 0:
            while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            self.done = True

    def read(self, n: int = -1) -> bytes:
        out = []
        while not self.done and (n < 0 or n > 0):
            if self.left == 0:
                self._next_chunk()
                if self.done:
                    break
            want = self.left if n < 0 else min(n, self.left)
            data = self.rfile.read(want)
            if not data:
                raise bad_request("the chunked request body ended early")
            out.append(data)
            self.left -= len(data)
            if n > 0:
                n -= len(data)
            if self.left == 0:
                self.rfile.readline(16)  # the CRLF after a chunk
            if n > 0 and out:
                break
        return b"".join(out)

    def readable(self) -> bool:
        return True


class Handler(BaseHTTPRequestHandler):
    server: _Server  # the base class's BaseServer: the service's, with its Service
    protocol_version = "HTTP/1.1"
    server_version = "sangja"
    sys_version = ""

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        if self.server.service.debug:
            super().log_message(format, *args)

    def address_string(self) -> str:
        return "unix"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        service = self.server.service
        service.busy(+1)
        url = urlsplit(self.path)
        path = unquote(url.path)
        version = API_MAX
        req = None
        try:
            if path.startswith("/v") and "/" in path[1:]:
                head, _, rest = path[2:].partition("/")
                try:
                    asked = _vtuple(head)
                except ValueError:
                    asked = None
                if asked is not None:
                    if asked < _vtuple(API_MIN):
                        raise bad_request(f"client version {head} is too old. Minimum "
                                          f"supported API version is {API_MIN}, please "
                                          "upgrade your client to a newer version")
                    if asked > _vtuple(API_MAX):
                        raise bad_request(f"client version {head} is too new. Maximum "
                                          f"supported API version is {API_MAX}")
                    version, path = head, "/" + rest
            req = Request(self, method, path, parse_qs(url.query, keep_blank_values=True),
                          version)
            from .routes import resolve

            endpoint, params = resolve(method, path)
            result = endpoint(req, **params)
            if not req.responded:
                if result is None:
                    req.send_empty(204 if method != "GET" else 200)
                else:
                    req.send_json(result)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - every error becomes Docker's reply
            err = from_exception(e)
            if err.status == 500:  # the operator's one line (a traceback with --debug)
                import sys

                if service.debug:
                    import traceback

                    traceback.print_exc()
                print(f"sangja: API {method} {path}: {err.message}", file=sys.stderr)
            if req is not None and req.responded:
                self.close_connection = True  # mid-stream: nothing more can be said
            else:
                self._error(err)
        finally:
            if req is not None:
                if not self.close_connection:
                    try:
                        req.drain()
                    except Exception:  # noqa: BLE001 - a broken body ends the connection
                        self.close_connection = True
                req.close()
            service.busy(-1)

    def _error(self, err: ApiError) -> None:
        from ..jsonio import dumps

        data = dumps({"message": err.message}).encode() + b"\n"
        try:
            self.send_response(err.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
        # A body we did not read would be taken for the next request.
        if self.headers.get("Content-Length") not in (None, "0") or self.headers.get(
                "Transfer-Encoding"):
            self.close_connection = True

    def send_response(self, code: int, message: str | None = None) -> None:
        super().send_response(code, message)
        self.send_header("Api-Version", API_MAX)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")
