"""Try a name where the registries config says it may be: each candidate reference
(unqualified-search registries) and, for each, its endpoints (mirrors first, then the
registry). `pull` and `describe` (GET /distribution) resolve a name this way.

The first endpoint that answers wins. "Not found" and "unauthorized" move on to the next;
another registry error ends the search at once when there is nothing else to try (one
candidate, not a mirror), else it is kept and the next one is tried."""

from __future__ import annotations

from sangja.registry.errors import NotFound, RegistryError, Unauthorized

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from sangja.image.reference import Reference
    from sangja.registry.config import Endpoint
    from sangja.registry.options import Options

    T = TypeVar("T")

__all__ = ["first_answer"]


def first_answer(options: Options, name: str, verb: str,
                 attempt: Callable[[Reference, Endpoint], T]) -> T:
    """attempt(ref, endpoint)'s result at the first endpoint that answers. When none
    does: its error if it was the only one, NotFound when every one said not found (with
    several), else RegistryError("cannot VERB NAME: ...") naming them all."""
    config = options.registries()
    refs = config.candidates(name)
    errors: list[RegistryError] = []
    for ref in refs:
        for ep in config.endpoints(ref):
            try:
                return attempt(ref, ep)
            except (NotFound, Unauthorized) as e:
                errors.append(e)
            except RegistryError as e:
                if len(refs) == 1 and not ep.mirror:
                    raise
                errors.append(e)
    if len(errors) == 1:
        raise errors[0]
    detail = "; ".join(map(str, errors))
    if errors and all(isinstance(e, NotFound) for e in errors):
        raise NotFound(f"{name}: not found: {detail}")
    raise RegistryError(f"cannot {verb} {name!r}: {detail}")
