"""HTTP to one registry: urllib3 (thread-safe pools of keep-alive connections), the scheme,
retries and authentication.

- Scheme: HTTPS, verified (see :mod:`sangja.registry.tls`). Where plain HTTP is allowed (a
  loopback registry, one the registries config marks insecure, or ``--tls-verify=false``) and
  the server turns out not to speak TLS, plain HTTP, as docker does for such registries.
- Retries: a dropped or refused connection, a timeout, 429 and 5xx answers are retried with
  exponential backoff (``ATTEMPTS`` tries in all); anything else is answered at once.
- Authentication: a 401's ``WWW-Authenticate`` challenge is answered once per request, with a
  token for the request's scope (Bearer: kept and reused for that scope until it expires) or
  the credentials themselves (Basic).

urllib3 is imported here only (never on ``run``'s path); the ``sangja`` command runs without
``site``, so the environment's site-packages are put on the path first
(:func:`sangja.installed.add_site_packages`).
"""

from __future__ import annotations

import base64
import threading
import time
from urllib.parse import urlencode, urljoin, urlsplit

from sangja import __version__ as _version
from sangja.registry.auth import Credentials, parse_challenge
from sangja.registry.errors import RegistryError, Unauthorized

__all__ = ["ATTEMPTS", "Session", "urllib3"]

ATTEMPTS = 5
BACKOFF = 0.2  # seconds before the 2nd try; doubled each time
RETRY_STATUS = (429, 500, 502, 503, 504)
USER_AGENT = f"sangja/{_version}"


def _urllib3():
    try:
        import urllib3
    except ImportError:
        from sangja.installed import add_site_packages

        add_site_packages()
        try:
            import urllib3
        except ImportError:
            raise RegistryError("the registry client needs urllib3 (pip install urllib3, or "
                                "make install in sangja's checkout)") from None
    return urllib3


TYPE_CHECKING = False
if TYPE_CHECKING:
    import urllib3  # for the type checker: what Session sets
else:
    urllib3 = None  # set by Session (the module, once imported)


def describe(e: BaseException) -> str:
    """A urllib3 error as one readable phrase (the root cause, not the retry wrapper)."""
    reason: BaseException = e
    for _ in range(4):
        inner = getattr(reason, "reason", None)
        if not isinstance(inner, BaseException) or inner is reason:
            break
        reason = inner
    text = str(reason)
    for marker in ("Failed to establish a new connection: ", "Connection aborted.', "):
        if marker in text:
            text = text.split(marker, 1)[1]
    if "[Errno 111]" in text or "Connection refused" in text:
        return "connection refused"
    return text.strip("()'\" ") or type(reason).__name__


def _cert_rejected(e: BaseException) -> bool:
    """The server spoke TLS and its certificate failed verification (never a reason to
    fall back to plain HTTP)."""
    import ssl

    seen: BaseException | None = e
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in \
                str(seen):
            return True
        seen = _inner(seen)
    return False


def _inner(e: BaseException) -> BaseException | None:
    """The error a urllib3 error wraps (its reason, an exception; or its cause)."""
    reason = getattr(e, "reason", None)
    if isinstance(reason, BaseException) and reason is not e:
        return reason
    return e.__cause__ or e.__context__


def _is_tls_error(e: BaseException) -> bool:
    u3 = urllib3
    seen: BaseException | None = e
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, u3.exceptions.SSLError) or type(seen).__name__.startswith("SSL"):
            return True
        seen = _inner(seen)
    return False


class _Token:
    __slots__ = ("value", "expires")

    def __init__(self, value: str, expires: float):
        self.value, self.expires = value, expires


class Session:
    """One registry (``host`` as it is named; ``api_host`` where its API is)."""

    def __init__(self, host: str, *, api_host: str | None = None, creds: Credentials | None = None,
                 tls_verify: bool = True, plain_http_ok: bool = False,
                 cert_dir: str | None = None, timeout: float = 60.0):
        global urllib3
        urllib3 = _urllib3()
        from sangja.registry.tls import ssl_context

        self.host = host
        self.api_host = api_host or host
        self.creds = creds
        self.tls_verify = tls_verify
        self.plain_http_ok = plain_http_ok or not tls_verify
        self.cert_dir = cert_dir
        self.scheme: str | None = None
        self.pool = urllib3.PoolManager(
            num_pools=4, maxsize=8, ssl_context=ssl_context(self.api_host, verify=tls_verify,
                                                            cert_dir=cert_dir))
        self.timeout = urllib3.Timeout(connect=15.0, read=timeout)
        # redirects (blob downloads from object stores) are followed; retries are ours
        self.follow = urllib3.Retry(total=10, connect=0, read=0, status=0, other=0,
                                    redirect=10, raise_on_redirect=True)
        self._auth_scheme: str | None = None
        self._challenge: dict[str, str] = {}
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
        self._scheme_lock = threading.Lock()

    # -- URLs ----------------------------------------------------------------------------
    @property
    def base(self) -> str:
        if self.scheme is None:
            with self._scheme_lock:  # once, whichever thread asks first
                if self.scheme is None:
                    self._detect_scheme()
        return f"{self.scheme}://{self.api_host}"

    def url(self, path: str) -> str:
        return urljoin(self.base + "/", path.lstrip("/")) if not path.startswith(
            ("http://", "https://")) else path

    def _detect_scheme(self) -> None:
        """HTTPS; plain HTTP where allowed and the server does not speak TLS. Learns the
        registry's challenge on the way (GET /v2/)."""
        try:
            r = self._send("GET", f"https://{self.api_host}/v2/", {}, None, False)
        except RegistryError as e:
            cause = e.__cause__
            if not (self.plain_http_ok and cause is not None and _is_tls_error(cause)
                    and not _cert_rejected(cause)):
                raise
            try:  # no TLS there: is it a registry speaking plain HTTP?
                r = self._send("GET", f"http://{self.api_host}/v2/", {}, None, False)
            except RegistryError:
                raise e from None
            if r.status not in (200, 401) or not r.headers.get(
                    "Docker-Distribution-Api-Version"):
                r.release_conn()
                raise e from None
            self.scheme = "http"
        else:
            self.scheme = "https"
        if r.status == 401:
            self._learn(r.headers.get("WWW-Authenticate", ""))
        r.release_conn()

    # -- sending -------------------------------------------------------------------------
    def _send(self, method: str, url: str, headers: dict, body, stream: bool
              ) -> urllib3.BaseHTTPResponse:
        """One request with retries on dropped connections, timeouts, 429 and 5xx."""
        u3 = urllib3
        last: BaseException | None = None
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(BACKOFF * (2 ** (attempt - 1)))
            try:
                r = self.pool.request(method, url, headers={"User-Agent": USER_AGENT, **headers},
                                      body=body() if callable(body) else body,
                                      preload_content=not stream, retries=self.follow,
                                      timeout=self.timeout)
            except u3.exceptions.HTTPError as e:
                last = e
                if _is_tls_error(e):  # a certificate problem does not go away by retrying
                    break
                continue
            if r.status in RETRY_STATUS and attempt + 1 < ATTEMPTS:
                r.drain_conn()
                r.release_conn()
                continue
            return r
        assert last is not None
        hint = ""
        if _is_tls_error(last):
            hint = (" (a registry with its own CA: put it in /etc/containers/certs.d/"
                    f"{self.api_host}/ca.crt, or --cert-dir; --tls-verify=false to skip "
                    "verification)")
        raise RegistryError(f"{self.api_host}: {describe(last)}{hint}") from last

    def request(self, method: str, path: str, *, scope: str = "", headers: dict | None = None,
                body=None, stream: bool = False) -> urllib3.BaseHTTPResponse:
        """Send a request to the registry (``path`` under its base, or a full URL it gave),
        authenticating for ``scope`` (space-separated ``repository:NAME:ACTIONS``). Returns
        the response, whatever its status (the caller judges it); body may be bytes or a
        function returning a fresh body (a retried upload)."""
        url = self.url(path)
        # credentials go to the registry itself only, never to another host a Location
        # header names (urllib3 drops them on a redirect to another host, too)
        own = urlsplit(url).netloc == self.api_host
        if own and scope:
            self._token_ahead(scope)
        for tried in (False, True):
            h = dict(headers or {})
            if own:
                h.update(self._authorization(scope))
            r = self._send(method, url, h, body, stream)
            if r.status != 401 or tried or not own:
                return r
            challenge = r.headers.get("WWW-Authenticate", "")
            r.drain_conn()
            r.release_conn()
            if not self._answer(challenge, scope, sent="Authorization" in h):
                return r
        return r

    # -- authentication ------------------------------------------------------------------
    def _learn(self, header: str) -> None:
        scheme, params = parse_challenge(header) if header else ("", {})
        with self._lock:
            if scheme in ("bearer", "basic"):
                self._auth_scheme, self._challenge = scheme, params

    def _authorization(self, scope: str) -> dict[str, str]:
        with self._lock:
            if self._auth_scheme == "basic" and self.creds and self.creds.username:
                raw = f"{self.creds.username}:{self.creds.password}".encode()
                return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
            if self._auth_scheme == "bearer":
                tok = self._tokens.get(scope)
                if tok is not None and tok.expires > time.monotonic():
                    return {"Authorization": f"Bearer {tok.value}"}
        return {}

    def _token_ahead(self, scope: str) -> None:
        """A registry known to want Bearer tokens gets one for a new scope before the
        request, not after a 401 (one round trip less per scope)."""
        with self._lock:
            if self._auth_scheme != "bearer" or "realm" not in self._challenge:
                return
            tok = self._tokens.get(scope)
            if tok is not None and tok.expires > time.monotonic():
                return
            params = dict(self._challenge)
            params.pop("scope", None)  # the scope the ping's challenge named is not ours
        token, ttl = self._fetch_token(params, scope.split())
        with self._lock:
            self._tokens[scope] = _Token(token, time.monotonic() + max(ttl - 10, 5))

    def _answer(self, header: str, scope: str, sent: bool) -> bool:
        """Whether a 401 may be retried: a new token fetched, or credentials to send."""
        scheme, params = parse_challenge(header) if header else ("", {})
        if scheme == "basic":
            with self._lock:
                self._auth_scheme = "basic"
            return bool(self.creds and self.creds.username) and not sent
        if scheme != "bearer" or "realm" not in params:
            return False
        with self._lock:
            self._auth_scheme, self._challenge = "bearer", params
        wanted = " ".join(s for s in (params.get("scope", ""), scope) if s)
        scopes = list(dict.fromkeys(wanted.split()))
        token, ttl = self._fetch_token(params, scopes)
        with self._lock:
            # good for the request's scope (a registry asking for another scope than ours
            # gets it too: the token is kept under the request's scope)
            self._tokens[scope] = _Token(token, time.monotonic() + max(ttl - 10, 5))
        return True

    def _fetch_token(self, params: dict[str, str], scopes: list[str]) -> tuple[str, float]:
        """Ask the challenge's token server for a token for `scopes`."""
        from sangja import jsonio
        from sangja.registry.tls import ssl_context

        u3 = urllib3
        realm = params["realm"]
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryError(f"{self.host}: token realm {realm!r} is not an http(s) URL")
        from sangja.registry.config import is_loopback

        if (parts.scheme == "http" and not is_loopback(parts.netloc)
                and parts.netloc != self.api_host and self.creds is not None):
            # credentials in clear text to a host that is neither this machine nor the
            # registry (which the user allowed plain HTTP for): refused
            raise RegistryError(f"{self.host}: token realm {realm!r} is plain HTTP on another "
                                "host: credentials are not sent there")
        creds = self.creds
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        pool = u3.PoolManager(ssl_context=ssl_context(parts.netloc, verify=self.tls_verify,
                                                      cert_dir=None))
        headers: dict[str, str] = {"User-Agent": USER_AGENT}
        try:
            if creds is not None and creds.identity_token:
                form = [*query, ("grant_type", "refresh_token"),
                        ("refresh_token", creds.identity_token), ("client_id", "sangja"),
                        ("scope", " ".join(scopes))]
                r = pool.request("POST", realm, body=urlencode(form),
                                 headers={**headers,
                                          "Content-Type": "application/x-www-form-urlencoded"},
                                 timeout=self.timeout, retries=u3.Retry(3, backoff_factor=0.2))
            else:
                query += [("scope", s) for s in scopes]
                if creds is not None and creds.username:
                    query.append(("account", creds.username))
                    raw = f"{creds.username}:{creds.password}".encode()
                    headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
                sep = "&" if parts.query else "?"
                r = pool.request("GET", realm + (sep + urlencode(query) if query else ""),
                                 headers=headers, timeout=self.timeout,
                                 retries=u3.Retry(3, backoff_factor=0.2))
        except u3.exceptions.HTTPError as e:
            raise RegistryError(f"token server {parts.netloc}: {describe(e)}") from None
        finally:
            pool.clear()
        if r.status in (401, 403):
            if creds is None:
                raise Unauthorized(f"{self.host}: the token server wants credentials "
                                   f"(sangja login {self.host})")
            who = f" of {creds.username}" if creds.username else ""
            raise Unauthorized(f"{self.host}: the token server refused the credentials{who} "
                               f"(sangja login {self.host})")
        if r.status != 200:
            raise RegistryError(f"token server {parts.netloc}: HTTP {r.status}")
        try:
            doc = jsonio.loads(r.data, source=f"token from {parts.netloc}")
        except ValueError as e:
            raise RegistryError(str(e)) from None
        token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token server {parts.netloc}: no token in its answer")
        ttl = doc.get("expires_in")
        return token, float(ttl) if isinstance(ttl, int | float) and ttl > 0 else 60.0

    def close(self) -> None:
        self.pool.clear()
