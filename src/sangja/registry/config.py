"""Which registry a name goes to: a registries config in the TOML format of containers'
registries.conf (podman, skopeo, buildah), read from ``$SANGJA_REGISTRIES_CONF`` or
``/etc/sangja/registries.conf`` (plus ``/etc/sangja/registries.conf.d/*.conf``, in name order)::

    unqualified-search-registries = ["registry.example.com", "docker.io"]

    [[registry]]                    # a registry (or a namespace in one) by its prefix
    prefix = "docker.io/library"    # default: location
    location = "mirror.example.com/dockerhub-library"   # where it really is
    insecure = false                # plain HTTP / unverified TLS allowed
    blocked = false                 # never pulled from
      [[registry.mirror]]           # tried first, in order, for pulls
      location = "127.0.0.1:5000/library"
      insecure = true

    [aliases]                       # short names
    "debian" = "docker.io/library/debian"

Names are local first: an unqualified name (``debian``, ``localhost/debian``: sangja's local
domain) resolves in the store; only when it is not there is it looked up in the aliases, then
in each search registry, in order. With no aliases and no search registries (the default) such
a name goes to no registry at all: the error says how to name one. Nothing is ever sent to a
registry the user did not name or configure.
"""

from __future__ import annotations

import os

from sangja.image.reference import DEFAULT_DOMAIN, InvalidReference, Reference, parse
from sangja.records import dataclass, field
from sangja.registry.errors import RegistryError, UnresolvableName

__all__ = ["Endpoint", "RegistriesConfig", "default_config_path", "is_loopback"]

ENV_CONF = "SANGJA_REGISTRIES_CONF"
DEFAULT_CONF = "/etc/sangja/registries.conf"
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"


def default_config_path() -> str:
    return os.environ.get(ENV_CONF) or DEFAULT_CONF


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1, with or without a port: plain HTTP is allowed there
    by default (as docker and podman do)."""
    name = host
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name == "localhost" or name == "::1":
        return True
    parts = name.split(".")
    return (len(parts) == 4 and parts[0] == "127"
            and all(p.isdigit() and int(p) < 256 for p in parts))


@dataclass(frozen=True)
class Endpoint:
    """One place to fetch a repository from: ``host`` (with port), the repository's path
    there, whether plain HTTP / unverified TLS is allowed, whether it is a mirror."""

    host: str
    path: str
    insecure: bool = False
    mirror: bool = False

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    def __str__(self) -> str:
        return f"{self.host}/{self.path}"


@dataclass
class _Registry:
    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirrors: list[tuple[str, bool]] = field(default_factory=list)


def _strs(value, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RegistryError(f"{where}: expected a list of names")
    return list(value)


def _bool(value, where: str) -> bool:
    if not isinstance(value, bool):
        raise RegistryError(f"{where}: expected true or false")
    return value


class RegistriesConfig:
    def __init__(self, search: list[str] | None = None, registries: list[_Registry] | None = None,
                 aliases: dict[str, str] | None = None, path: str | None = None):
        self.search = search or []
        self.registries = registries or []
        self.aliases = aliases or {}
        self.path = path or default_config_path()

    # -- reading -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | None = None) -> RegistriesConfig:
        """The config at `path` (default: $SANGJA_REGISTRIES_CONF or /etc/sangja/...),
        with its drop-in directory; an absent file is the empty default."""
        path = path or default_config_path()
        conf = cls(path=path)
        files = [path]
        dropins = f"{path}.d"
        if os.path.isdir(dropins):
            files += [os.path.join(dropins, n) for n in sorted(os.listdir(dropins))
                      if n.endswith(".conf")]
        for name in files:
            try:
                with open(name, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue
            conf._merge(data, name)
        return conf

    def _merge(self, data: bytes, where: str) -> None:
        import tomllib

        try:
            doc = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise RegistryError(f"{where}: {e}") from None
        if "unqualified-search-registries" in doc:
            self.search = _strs(doc["unqualified-search-registries"],
                                f"{where}: unqualified-search-registries")
        regs = doc.get("registry", [])
        if not isinstance(regs, list):
            raise RegistryError(f"{where}: registry: expected [[registry]] tables")
        for n, r in enumerate(regs):
            w = f"{where}: registry[{n}]"
            if not isinstance(r, dict):
                raise RegistryError(f"{w}: expected a table")
            location = r.get("location", "")
            prefix = r.get("prefix") or location
            if not isinstance(location, str) or not isinstance(prefix, str) or not prefix:
                raise RegistryError(f"{w}: needs a location or a prefix")
            reg = _Registry(prefix.rstrip("/"), (location or prefix).rstrip("/"),
                            _bool(r.get("insecure", False), f"{w}.insecure"),
                            _bool(r.get("blocked", False), f"{w}.blocked"))
            mirrors = r.get("mirror", [])
            if not isinstance(mirrors, list):
                raise RegistryError(f"{w}.mirror: expected [[registry.mirror]] tables")
            for m, mirror in enumerate(mirrors):
                loc = mirror.get("location") if isinstance(mirror, dict) else None
                if not isinstance(loc, str) or not loc:
                    raise RegistryError(f"{w}.mirror[{m}]: needs a location")
                reg.mirrors.append((loc.rstrip("/"), _bool(mirror.get("insecure", False),
                                                          f"{w}.mirror[{m}].insecure")))
            self.registries = [x for x in self.registries if x.prefix != reg.prefix] + [reg]
        aliases = doc.get("aliases", {})
        if not isinstance(aliases, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()):
            raise RegistryError(f"{where}: aliases: expected a table of names")
        self.aliases.update(aliases)

    # -- names ---------------------------------------------------------------------------
    @staticmethod
    def qualified(text: str) -> bool:
        """Whether a name says its registry (``host[:port]/...`` with a host other than
        sangja's local domain)."""
        first, slash, _ = text.partition("/")
        if not slash:
            return False
        looks = "." in first or ":" in first or first.lower() != first
        return looks and first != DEFAULT_DOMAIN

    def candidates(self, text: str) -> list[Reference]:
        """The fully qualified references an image name may mean, in the order to try."""
        try:
            ref = parse(text)
        except InvalidReference as e:
            raise UnresolvableName(str(e)) from None
        if self.qualified(text):
            return [ref]
        short = ref.path  # the name without sangja's local domain
        tail = f":{ref.tag}" if ref.tag and not ref.digest else ""
        tail += f"@{ref.digest}" if ref.digest else ""
        alias = self.aliases.get(short)
        if alias is not None:
            try:
                return [parse(alias + tail)]
            except InvalidReference as e:
                raise UnresolvableName(f"{self.path}: alias {short!r}: {e}") from None
        if not self.search:
            example = f"docker.io/library/{short}{tail}" if "/" not in short else \
                f"registry.example.com/{short}{tail}"
            raise UnresolvableName(
                f"image {text!r} names no registry, and no registries to search are "
                f"configured: use its full name (e.g. {example}), or list registries in "
                f"unqualified-search-registries in {self.path}")
        out = []
        for registry in self.search:
            try:
                out.append(parse(f"{registry}/{short}{tail}"))
            except InvalidReference as e:
                raise UnresolvableName(f"{self.path}: unqualified-search-registries: "
                                       f"{e}") from None
        return out

    def _entry(self, name: str) -> _Registry | None:
        best = None
        for reg in self.registries:
            p = reg.prefix
            if (name == p or name.startswith(p + "/") or name.startswith(p + ":")
                    or name.startswith(p + "@")) and (best is None or len(p) > len(best.prefix)):
                best = reg
        return best

    def endpoints(self, ref: Reference, *, for_push: bool = False) -> list[Endpoint]:
        """Where to fetch (mirrors first) or push (the registry itself) ``ref``'s
        repository."""
        name = ref.name
        reg = self._entry(name)
        if reg is None:
            return [Endpoint(ref.domain, ref.path, False)]
        if reg.blocked:
            raise UnresolvableName(f"registry {reg.prefix!r} is blocked in {self.path}")
        rest = name[len(reg.prefix):].lstrip("/")
        out = []

        def add(location: str, insecure: bool, mirror: bool) -> None:
            full = f"{location}/{rest}" if rest else location
            host, _, path = full.partition("/")
            if not path:
                raise RegistryError(f"{self.path}: {location!r} names no repository for "
                                    f"{name}")
            out.append(Endpoint(host, path, insecure, mirror))

        if not for_push:
            for loc, insecure in reg.mirrors:
                add(loc, insecure, True)
        add(reg.location, reg.insecure, False)
        return out

    def insecure(self, host: str) -> bool:
        """Whether a [[registry]] entry marks `host` insecure."""
        for reg in self.registries:
            if reg.location.partition("/")[0] == host and reg.insecure:
                return True
            if any(loc.partition("/")[0] == host and ins for loc, ins in reg.mirrors):
                return True
        return False
