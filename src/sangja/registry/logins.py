"""``login`` and ``logout``: credentials checked against the registry, then kept where podman,
skopeo and docker read them (see :mod:`sangja.registry.auth`)."""

from __future__ import annotations

import re

from sangja.registry import auth
from sangja.registry.auth import Credentials
from sangja.registry.errors import RegistryError, Unauthorized
from sangja.registry.options import Options

__all__ = ["login", "logout", "registry_key"]


def registry_key(text: str) -> str:
    """What a user names a registry by (``https://index.docker.io/v1/``, ``127.0.0.1:5000``,
    ``quay.io/team``) as the auth file's key."""
    key = re.sub(r"^https?://", "", text.strip()).rstrip("/")
    key = re.sub(r"/v[12]$", "", key)
    if key in ("index.docker.io", "registry-1.docker.io"):
        key = "docker.io"
    if not key or " " in key:
        raise RegistryError(f"invalid registry {text!r}")
    return key


def login(registry: str, creds: Credentials, *, options: Options | None = None) -> str:
    """Check the credentials against the registry's API, then record them; return where."""
    key = registry_key(registry)
    host, _, path = key.partition("/")
    own = options is None
    options = options or Options()
    try:
        api = "registry-1.docker.io" if host == "docker.io" else host
        session = options.session(host, api, path or None, creds=creds)
        r = session.request("GET", "/v2/", scope="")
        status = r.status
        r.release_conn()
        if status == 401:
            raise Unauthorized(f"login to {host} failed: the registry refused the "
                               f"credentials of {creds.username!r}")
        if status != 200:
            raise RegistryError(f"login to {host} failed: HTTP {status} from /v2/")
    finally:
        if own:
            options.close()
    return auth.store(key, creds, options.auth_file)


def logout(registry: str | None, *, options: Options | None = None) -> bool:
    """Forget a login (every login with None); whether there was one."""
    path = options.auth_file if options is not None else None
    return auth.remove(registry_key(registry) if registry else None, path)
