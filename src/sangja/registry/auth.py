"""Credentials, as podman, skopeo and docker keep them, and the registry's challenges.

Where logins are written: ``$REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/
auth.json``, else ``/run/containers/UID/auth.json`` (podman's and skopeo's file: a login made
with one is seen by the others). Where they are read, first match wins: that file,
``$XDG_CONFIG_HOME/containers/auth.json`` (``~/.config/...``), then Docker's
``$DOCKER_CONFIG/config.json`` (``~/.docker/config.json``). In each file, for a registry (its
most specific key first: ``host/namespace/repo`` ... ``host``, and Docker's legacy URL keys),
a credential helper named in ``credHelpers`` is asked, else the ``auths`` entry is used, else
the file's ``credsStore`` helper. Helpers are called as docker calls them:
``docker-credential-NAME get`` with the server on stdin, JSON on stdout.

Challenges: a 401 carries ``WWW-Authenticate: Bearer realm=..,service=..,scope=..`` (a token
server to ask, with the credentials as Basic auth, or an identity token as an OAuth2 refresh
token) or ``Basic realm=..`` (the credentials go with every request)."""

from __future__ import annotations

import base64
import os
import re

from sangja import jsonio
from sangja.records import dataclass
from sangja.registry.errors import RegistryError

__all__ = ["Credentials", "auth_file", "lookup", "parse_challenge", "remove", "store"]

DOCKER_HUB_KEYS = ("docker.io", "index.docker.io", "registry-1.docker.io",
                   "https://index.docker.io/v1/")


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth2 refresh token (a helper's "<token>" user)


def _redacted(self: Credentials) -> str:
    return f"Credentials(username={self.username!r})"


# Never show a secret. Set after the class: records.dataclass writes __repr__ over one in
# the class body.
Credentials.__repr__ = _redacted  # type: ignore[method-assign,assignment]  # mypy: self is object


# ---------------------------------------------------------------------------- files


def auth_file(path: str | None = None) -> str:
    """The file logins are written to (and read first)."""
    if path:
        return path
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        return env
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "containers", "auth.json")
    return f"/run/containers/{os.getuid()}/auth.json"


def _read_paths(path: str | None) -> list[tuple[str, bool]]:
    """(file, is_docker_config) to read, in order."""
    first = auth_file(path)
    if path or os.environ.get("REGISTRY_AUTH_FILE"):
        return [(first, False)]
    home = os.path.expanduser("~")
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    docker = os.environ.get("DOCKER_CONFIG") or os.path.join(home, ".docker")
    return [(first, False), (os.path.join(config_home, "containers", "auth.json"), False),
            (os.path.join(docker, "config.json"), True)]


def _load(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return {}
    try:
        doc = jsonio.loads(data, source=path) if data.strip() else {}
    except ValueError as e:
        raise RegistryError(str(e)) from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{path}: expected a JSON object")
    return doc


def _section(doc: dict, key: str) -> dict:
    """``doc[key]`` when it is an object (the same dict, to change in place), else {}."""
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _keys(host: str, repo: str | None) -> list[str]:
    """Keys to look a registry up by, most specific first."""
    keys = []
    if repo:
        parts = repo.split("/")
        keys += [f"{host}/{'/'.join(parts[:i])}" for i in range(len(parts), 0, -1)]
    keys.append(host)
    if host in DOCKER_HUB_KEYS:
        keys += [k for k in DOCKER_HUB_KEYS if k != host]
    return keys


def _normalize(key: str) -> str:
    """A legacy key (``https://host/v1/``) as a plain ``host``."""
    key = re.sub(r"^https?://", "", key)
    if key.endswith("/v1/") or key.endswith("/v2/") or key.endswith("/v1") or \
            key.endswith("/v2"):
        key = key.rsplit("/v", 1)[0]
    return key.rstrip("/")


def _decode_auth(entry: dict, where: str) -> Credentials | None:
    token = entry.get("identitytoken")
    raw = entry.get("auth")
    if isinstance(raw, str) and raw:
        try:
            user, sep, password = base64.b64decode(raw, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise RegistryError(f"{where}: its auth is not base64 of user:password") from None
        if not sep:
            raise RegistryError(f"{where}: its auth is not base64 of user:password")
        return Credentials(user, password, token if isinstance(token, str) else "")
    if isinstance(token, str) and token:
        return Credentials("", "", token)
    return None


def lookup(host: str, repo: str | None = None, path: str | None = None) -> Credentials | None:
    """The credentials for a registry (and repository), or None."""
    for file, _docker in _read_paths(path):
        doc = _load(file)
        if not doc:
            continue
        helpers = _section(doc, "credHelpers")
        auths = _section(doc, "auths")
        normalized = {_normalize(k): v for k, v in auths.items() if isinstance(v, dict)}
        for key in _keys(host, repo):
            helper = helpers.get(key)
            if isinstance(helper, str) and helper:
                found = helper_get(helper, key)
                if found is not None:
                    return found
            entry = auths.get(key) if isinstance(auths.get(key), dict) else normalized.get(key)
            if entry is not None:
                found = _decode_auth(entry, f"{file}: auths[{key!r}]")
                if found is not None:
                    return found
        store_helper = doc.get("credsStore")
        if isinstance(store_helper, str) and store_helper:
            found = helper_get(store_helper, host)
            if found is not None:
                return found
    return None


def _write(path: str, doc: dict) -> None:
    from sangja.fs import write_atomic

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    write_atomic(path, jsonio.dumps(doc, indent=4) + "\n", mode=0o600)


def store(host: str, creds: Credentials, path: str | None = None) -> str:
    """Record a login (through the registry's credential helper when the file names one);
    return where."""
    file = auth_file(path)
    doc = _load(file)
    helpers = _section(doc, "credHelpers")
    helper = helpers.get(host) or doc.get("credsStore")
    if isinstance(helper, str) and helper:
        _helper(helper, "store", jsonio.dumps({"ServerURL": host, "Username": creds.username,
                                               "Secret": creds.password}))
        return f"docker-credential-{helper}"
    auths = doc.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise RegistryError(f"{file}: auths: expected an object")
    raw = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    auths[host] = {"auth": raw}
    _write(file, doc)
    return file


def remove(host: str | None, path: str | None = None) -> bool:
    """Forget the login for a registry (all of them with None); False if there was none."""
    file = auth_file(path)
    doc = _load(file)
    if not doc:
        return False
    if host is None:
        had = bool(doc.get("auths"))
        doc["auths"] = {}
        _write(file, doc)
        return had
    helpers = _section(doc, "credHelpers")
    helper = helpers.get(host) or doc.get("credsStore")
    auths = _section(doc, "auths")
    gone = [k for k in auths if k == host or _normalize(k) == host]
    for k in gone:
        del auths[k]
    if gone:
        _write(file, doc)
    if isinstance(helper, str) and helper:
        try:
            _helper(helper, "erase", host)
            return True
        except RegistryError:
            pass
    return bool(gone)


# ---------------------------------------------------------------------------- helpers


_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _helper(name: str, verb: str, stdin: str) -> str:
    import shutil
    import subprocess

    if not _HELPER_NAME.fullmatch(name):
        raise RegistryError(f"invalid credential helper name {name!r}")
    exe = shutil.which(f"docker-credential-{name}")
    if exe is None:
        raise RegistryError(f"credential helper docker-credential-{name} is not installed")
    try:
        r = subprocess.run([exe, verb], input=stdin.encode(), capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RegistryError(f"docker-credential-{name} {verb}: {e}") from None
    out = r.stdout.decode(errors="replace").strip()
    if r.returncode != 0:
        msg = out or r.stderr.decode(errors="replace").strip()
        first = msg.splitlines()[0] if msg else "failed"
        raise RegistryError(f"docker-credential-{name} {verb}: {first}")
    return out


def helper_get(name: str, server: str) -> Credentials | None:
    try:
        out = _helper(name, "get", server)
    except RegistryError as e:
        if "credentials not found" in str(e).lower():
            return None
        raise
    try:
        doc = jsonio.loads(out, source=f"docker-credential-{name} get")
    except ValueError as e:
        raise RegistryError(str(e)) from None
    user = doc.get("Username") if isinstance(doc, dict) else None
    secret = doc.get("Secret") if isinstance(doc, dict) else None
    if not isinstance(user, str) or not isinstance(secret, str):
        raise RegistryError(f"docker-credential-{name} get: no Username and Secret")
    if user == "<token>":
        return Credentials("", "", secret)
    return Credentials(user, secret)


# ---------------------------------------------------------------------------- challenges

_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="https://auth",service="reg",scope="repository:a:pull,push"`` ->
    ("bearer", {"realm": ..., "service": ..., "scope": ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            break
        params[m.group(1).lower()] = (m.group(2).replace('\\"', '"') if m.group(2) is not None
                                      else m.group(3))
        pos = m.end()
    return scheme.lower(), params
