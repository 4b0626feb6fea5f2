"""Image names from Docker's clients, stored as the sangja CLI stores the same text.

The docker CLI expands what its user typed before sending it: `docker commit c foo:1` and
`docker tag x foo:1` arrive as `docker.io/library/foo` (tag `1`), `docker tag x me/foo` as
`docker.io/me/foo`. The sangja CLI keeps such short names local (`localhost/foo:1`,
sangja.image.reference), so the service takes the docker client's expansion back to the
text the user typed (its "familiar" form) and canonicalizes that with the store's own rule:
`docker run foo:1` and `sangja run foo:1` then find the image. A name that really is on
Docker Hub is written `docker.io/...` by the user too and cannot be told apart: it is kept
local as well (push it with `sangja push` or tag it for another registry). Lookups of a
short name that is not local fall back to Docker Hub's form (an image `docker pull
alpine` stored as docker.io/library/alpine is found as `alpine`)."""

from __future__ import annotations

_HUB_PREFIXES = ("docker.io/library/", "index.docker.io/library/", "docker.io/",
                 "index.docker.io/")


def familiar(name: str) -> str:
    """`docker.io/library/foo:1` -> `foo:1`, `docker.io/me/foo` -> `me/foo`."""
    for prefix in _HUB_PREFIXES:
        if name.startswith(prefix) and name[len(prefix):]:
            return name[len(prefix):]
    return name


def local_name(store, name: str) -> str:
    """The canonical name the sangja CLI gives the text the docker client's user typed."""
    return store.canonical(familiar(name))


def lookup_name(store, text: str) -> str:
    """The name to look `text` up by: `text` itself when the store has it as the CLI
    resolves it, else, for a short name, its Docker Hub form when the store has that."""
    from ..image.db import ImageNotFound
    from ..image.reference import InvalidReference, parse

    try:
        store.resolve(text)
        return text
    except (ImageNotFound, InvalidReference):
        try:
            ref = parse(text)
        except InvalidReference:
            return text
        if ref.domain != "localhost" or text.startswith("localhost/"):
            return text
        try:
            store.resolve(f"docker.io/{text}")
        except (ImageNotFound, InvalidReference):
            return text
        return f"docker.io/{text}"
