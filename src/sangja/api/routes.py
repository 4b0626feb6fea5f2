"""The endpoints: (method, path pattern, "module:function"). `{name}` matches one path
segment, `{name*}` the rest of the path (image names have slashes). Modules are imported
when first used."""

from __future__ import annotations

import re
from importlib import import_module

from .errors import ApiError

ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/_ping", "system:ping"),
    ("HEAD", "/_ping", "system:ping"),
    ("GET", "/version", "system:version"),
    ("GET", "/info", "system:info"),
    ("GET", "/system/df", "system:df"),
    ("POST", "/auth", "system:auth"),
    ("GET", "/events", "system:events"),
    # containers
    ("GET", "/containers/json", "containers:list_containers"),
    ("POST", "/containers/create", "containers:create"),
    ("POST", "/containers/prune", "containers:prune"),
    ("GET", "/containers/{id}/json", "containers:inspect"),
    ("POST", "/containers/{id}/start", "containers:start"),
    ("POST", "/containers/{id}/stop", "containers:stop"),
    ("POST", "/containers/{id}/restart", "containers:restart"),
    ("POST", "/containers/{id}/kill", "containers:kill"),
    ("POST", "/containers/{id}/wait", "containers:wait"),
    ("POST", "/containers/{id}/pause", "containers:pause"),
    ("POST", "/containers/{id}/unpause", "containers:unpause"),
    ("POST", "/containers/{id}/rename", "containers:rename"),
    ("POST", "/containers/{id}/resize", "containers:resize"),
    ("POST", "/containers/{id}/update", "containers:update"),
    ("DELETE", "/containers/{id}", "containers:remove"),
    ("GET", "/containers/{id}/logs", "containers:logs"),
    ("GET", "/containers/{id}/top", "containers:top"),
    ("GET", "/containers/{id}/changes", "containers:changes"),
    ("GET", "/containers/{id}/stats", "containers:stats"),
    ("GET", "/containers/{id}/export", "containers:export"),
    ("GET", "/containers/{id}/archive", "containers:archive_get"),
    ("HEAD", "/containers/{id}/archive", "containers:archive_head"),
    ("PUT", "/containers/{id}/archive", "containers:archive_put"),
    ("POST", "/containers/{id}/attach", "attach:attach"),
    ("POST", "/containers/{id}/exec", "exec:create"),
    ("POST", "/exec/{id}/start", "exec:start"),
    ("POST", "/exec/{id}/resize", "exec:resize"),
    ("GET", "/exec/{id}/json", "exec:inspect"),
    ("POST", "/commit", "containers:commit"),
    # images
    ("GET", "/images/json", "images:list_images"),
    ("POST", "/images/create", "images:create"),
    ("POST", "/images/load", "images:load"),
    ("GET", "/images/get", "images:get_many"),
    ("GET", "/images/search", "images:search"),
    ("POST", "/images/prune", "images:prune"),
    ("POST", "/build", "images:build"),
    ("POST", "/build/prune", "images:build_prune"),
    ("GET", "/images/{name*}/json", "images:inspect"),
    ("GET", "/images/{name*}/history", "images:history"),
    ("GET", "/images/{name*}/get", "images:get_one"),
    ("POST", "/images/{name*}/tag", "images:tag"),
    ("POST", "/images/{name*}/push", "images:push"),
    ("DELETE", "/images/{name*}", "images:remove"),
    ("GET", "/distribution/{name*}/json", "images:distribution"),
    # volumes
    ("GET", "/volumes", "volumes:list_volumes"),
    ("POST", "/volumes/create", "volumes:create"),
    ("POST", "/volumes/prune", "volumes:prune"),
    ("GET", "/volumes/{name}", "volumes:inspect"),
    ("DELETE", "/volumes/{name}", "volumes:remove"),
    # networks
    ("GET", "/networks", "networks:list_networks"),
    ("POST", "/networks/create", "networks:create"),
    ("POST", "/networks/prune", "networks:prune"),
    ("GET", "/networks/{id}", "networks:inspect"),
    ("DELETE", "/networks/{id}", "networks:remove"),
    ("POST", "/networks/{id}/connect", "networks:connect"),
    ("POST", "/networks/{id}/disconnect", "networks:disconnect"),
]


def _compile(pattern: str) -> re.Pattern:
    rx = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", pattern)
    rx = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", rx)
    return re.compile(rx + "/?$")


_TABLE = [(m, _compile(p), target) for m, p, target in ROUTES]


def resolve(method: str, path: str):
    """(endpoint function, path parameters); 404 for an unknown path (Docker's "page not
    found"), 405 for a known path with another method."""
    known = False
    for m, rx, target in _TABLE:
        match = rx.match(path)
        if match is None:
            continue
        known = True
        if m != method:
            continue
        module, _, func = target.partition(":")
        return getattr(import_module(f"{__package__}.{module}"), func), match.groupdict()
    if known:
        raise ApiError(405, f"method {method} not allowed for {path}")
    raise ApiError(404, "page not found")
