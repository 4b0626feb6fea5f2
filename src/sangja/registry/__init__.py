"""The registry client: pull, push and login over the OCI distribution API.

    from sangja.registry import pull, push, image_for, Options
    pull(store, "127.0.0.1:5000/debian:bookworm", platform="linux/amd64", progress=print)

The layers (see docs/registry.md):

    pulling, pushing,     what the commands do (pull, image_for, push, login, logout: this
    logins                package's public functions)
    searching, describing `search` (v1 search, else the catalog); a name's descriptor and
                          platforms without pulling (the API's /distribution)
    client.Repository     the distribution API of one repository (manifests, blobs, uploads)
    http.Session          HTTP to one registry: scheme, TLS, retries, authentication
    auth, tls, config     credentials, certificates, the registries config (names)

Blobs come in through :mod:`sangja.image.ingest`, the path archives use too. Nothing here is
imported by ``run`` unless an image must be pulled.
"""

from __future__ import annotations

from sangja.registry.errors import NotFound, RegistryError, Unauthorized, UnresolvableName

__all__ = ["NotFound", "Options", "RegistryError", "Unauthorized", "UnresolvableName",
           "image_for", "login", "logout", "pull", "push"]


def __getattr__(name: str):
    if name in ("pull", "image_for", "POLICIES"):
        from sangja.registry import pulling

        return getattr(pulling, name)
    if name == "push":
        from sangja.registry.pushing import push

        return push
    if name in ("login", "logout"):
        from sangja.registry import logins

        return getattr(logins, name)
    if name == "Options":
        from sangja.registry.options import Options

        return Options
    raise AttributeError(name)
