"""``search``: repositories in registries whose names match a term.

A term may name its registry (``quay.io/nginx``, ``127.0.0.1:5000/busy``); otherwise every
registry in ``unqualified-search-registries`` is searched, in order (none configured: the
same error as for an unqualified image name, naming the fix). Each registry is asked as
podman asks it: Docker's v1 search API (``/v1/search?q=``, Docker Hub, Harbor), and where
that is not offered (404), the distribution catalog (``/v2/_catalog``, paginated), its
repository names filtered by the term.
"""

from __future__ import annotations

from urllib.parse import quote

from sangja import jsonio
from sangja.records import dataclass
from sangja.registry.config import DOCKER_HUB
from sangja.registry.errors import RegistryError, UnresolvableName
from sangja.registry.options import Options

__all__ = ["InvalidSearch", "SearchResult", "search", "split_term"]

DOCKER_HUB_INDEX = "index.docker.io"  # where Docker Hub's v1 search lives
MAX_PAGES = 100  # catalog pages read (of up to 1000 names each)
MAX_DOCUMENT = 16 << 20


class InvalidSearch(RegistryError):
    """The search term or limit is unusable (the caller's mistake, not the registry's)."""


@dataclass(frozen=True)
class SearchResult:
    index: str  # the registry
    name: str  # registry/repository
    description: str = ""
    stars: int = 0
    official: bool = False
    automated: bool = False


def split_term(term: str) -> tuple[str | None, str]:
    """(registry, what to look for): the first component is a registry when it looks like
    a host (a dot or a port, or ``localhost``), as in image names."""
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, term


def search(term: str, *, limit: int = 25, options: Options | None = None
           ) -> list[SearchResult]:
    """Up to ``limit`` results from each registry searched."""
    if limit < 1:
        raise InvalidSearch(f"invalid limit {limit}: must be at least 1")
    own = options is None
    options = options or Options()
    try:
        registry, query = split_term(term.strip())
        if not query or any(c.isspace() for c in query):
            raise InvalidSearch(f"invalid search term {term!r}")
        if registry is not None:
            registries = [registry]
        else:
            config = options.registries()
            registries = config.search
            if not registries:
                raise UnresolvableName(
                    f"search term {term!r} names no registry, and no registries to search "
                    f"are configured: name one (e.g. quay.io/{query}), or list registries "
                    f"in unqualified-search-registries in {config.path}")
        out: list[SearchResult] = []
        for reg in registries:
            out += _search_one(options, reg, query, limit)
        return out
    finally:
        if own:
            options.close()


def _search_one(options: Options, registry: str, query: str, limit: int
                ) -> list[SearchResult]:
    hub = registry in (DOCKER_HUB, DOCKER_HUB_INDEX)
    session = options.session(DOCKER_HUB if hub else registry,
                              api_host=DOCKER_HUB_INDEX if hub else None)
    r = session.request("GET", f"/v1/search?q={quote(query)}&n={limit}", stream=True)
    if r.status == 200:
        return _v1_results(r, registry, limit)
    status = r.status
    _done(r)
    if status not in (404, 405):
        raise RegistryError(f"{registry}: search: HTTP {status}")
    return _catalog(session, registry, query, limit)


def _done(r) -> None:
    """An answer not read: drained (small error documents), so its connection is reused."""
    try:
        r.drain_conn()
    finally:
        r.release_conn()


def _document(r, what: str):
    data = r.read(MAX_DOCUMENT + 1)
    if len(data) > MAX_DOCUMENT:
        r.close()  # not read to its end: this connection is not reused
        r.release_conn()
        raise RegistryError(f"{what}: larger than {MAX_DOCUMENT} bytes")
    r.release_conn()
    try:
        return jsonio.loads(data, source=what)
    except ValueError as e:
        raise RegistryError(str(e)) from None


def _v1_results(r, registry: str, limit: int) -> list[SearchResult]:
    doc = _document(r, f"{registry}: search")
    items = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise RegistryError(f"{registry}: search: no results list in the answer")
    out = []
    prefix = DOCKER_HUB if registry == DOCKER_HUB_INDEX else registry
    for item in items[:limit]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        stars = item.get("star_count")
        out.append(SearchResult(
            prefix, f"{prefix}/{item['name']}", str(item.get("description") or ""),
            stars if isinstance(stars, int) else 0, item.get("is_official") is True,
            item.get("is_automated") is True))
    return out


def _catalog(session, registry: str, query: str, limit: int) -> list[SearchResult]:
    out: list[SearchResult] = []
    url = "/v2/_catalog?n=1000"
    needle = query.lower()
    for _ in range(MAX_PAGES):
        r = session.request("GET", url, scope="registry:catalog:*", stream=True)
        if r.status == 404:
            _done(r)
            raise RegistryError(f"{registry}: offers no search (neither /v1/search nor "
                                "/v2/_catalog)")
        if r.status in (401, 403):
            _done(r)
            raise RegistryError(f"{registry}: search: access denied to the catalog "
                                f"(sangja login {registry})")
        if r.status != 200:
            _done(r)
            raise RegistryError(f"{registry}: search: HTTP {r.status}")
        link = r.headers.get("Link", "")
        doc = _document(r, f"{registry}: catalog")
        names = doc.get("repositories") if isinstance(doc, dict) else None
        if not isinstance(names, list):
            raise RegistryError(f"{registry}: catalog: no repositories list in the answer")
        for name in names:
            if isinstance(name, str) and needle in name.lower():
                out.append(SearchResult(registry, f"{registry}/{name}"))
                if len(out) >= limit:
                    return out
        if 'rel="next"' not in link:
            break
        url = link.split(";")[0].strip().strip("<>")
    return out
