"""Image references: the docker/distribution grammar, normalized the sangja way.

    reference := name [ ":" tag ] [ "@" digest ]
    name      := [ domain "/" ] path-component [ "/" path-component ]*
    domain    := host [ ":" port ]          host: DNS name, IPv4, or "[" IPv6 "]"
    path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag       := [\\w][\\w.-]{0,127}
    digest    := algorithm ":" hex          sha256: 64 hex, sha512: 128 hex

Normalization differs from Docker on purpose: a name whose first component does not look like
a registry (no ".", no ":", not "localhost", no uppercase) lives in the *local* domain
``localhost`` (Podman-like), not on docker.io.  ``docker.io/busybox`` still becomes
``docker.io/library/busybox``.  With neither tag nor digest the tag is ``latest``.
"""

from __future__ import annotations

from sangja.errors import SangjaError
from sangja.records import dataclass

__all__ = ["DEFAULT_DOMAIN", "DEFAULT_TAG", "InvalidReference", "Reference", "parse"]

DEFAULT_DOMAIN = "localhost"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_KNOWN_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

# The grammar's patterns, checked by hand rather than with `re` (every build, run and
# image command parses a reference; `re` and the `enum` it brings cost milliseconds at
# start-up). tests/unit/test_image_reference.py checks them against the regexes.
_DIGITS = frozenset("0123456789")
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz") | _DIGITS
_ALNUM = _LOWER_ALNUM | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WORD = _ALNUM | {"_"}
_HEX = frozenset("0123456789abcdef")
_IPV6 = frozenset("0123456789abcdefABCDEF:.")


def _separated(text: str, ok_separator) -> bool:
    """Runs of [a-z0-9] separated by runs of other characters that `ok_separator`
    accepts; it starts and ends with a run of [a-z0-9]."""
    if not text or text[0] not in _LOWER_ALNUM or text[-1] not in _LOWER_ALNUM:
        return False
    sep = ""
    for c in text:
        if c in _LOWER_ALNUM:
            if sep and not ok_separator(sep):
                return False
            sep = ""
        else:
            sep += c
    return True


def _is_path_component(text: str) -> bool:
    """[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"""
    return _separated(text, lambda sep: sep in (".", "_", "__") or set(sep) == {"-"})


def _is_algorithm(text: str) -> bool:
    """[a-z0-9]+(?:[+._-][a-z0-9]+)*"""
    return _separated(text, lambda sep: len(sep) == 1 and sep in "+._-")


def _is_host(text: str) -> bool:
    """DNS labels ([a-zA-Z0-9], or [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]) joined by dots,
    or \\[[0-9a-fA-F:.]+\\]"""
    if text.startswith("["):
        return len(text) > 2 and text.endswith("]") and set(text[1:-1]) <= _IPV6
    for label in text.split("."):
        if not label or label[0] not in _ALNUM or label[-1] not in _ALNUM \
                or not set(label) <= _ALNUM | {"-"}:
            return False
    return True


def _is_port(text: str) -> bool:
    return bool(text) and set(text) <= _DIGITS


def _is_tag(text: str) -> bool:
    """[\\w][\\w.-]{0,127} (ASCII)"""
    return 0 < len(text) <= 128 and text[0] in _WORD and set(text) <= _WORD | {".", "-"}


class InvalidReference(SangjaError, ValueError):
    """The text is not a valid image reference; the message names the bad part."""

    def __init__(self, text: str, why: str):
        super().__init__(f"invalid image reference {text!r}: {why}")
        self.text = text
        self.why = why


@dataclass(frozen=True, slots=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``domain/path`` without tag or digest."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def familiar(self) -> str:
        """Short form for humans: the local domain ``localhost/`` is dropped."""
        text = str(self)
        prefix = f"{DEFAULT_DOMAIN}/"
        return text[len(prefix):] if text.startswith(prefix) else text


def _check_digest(text: str, digest: str) -> str:
    algorithm, sep, hexpart = digest.partition(":")
    if not sep:
        raise InvalidReference(text, f"digest {digest!r} must look like 'algorithm:hex'")
    if not _is_algorithm(algorithm):
        raise InvalidReference(text, f"digest algorithm {algorithm!r} is invalid")
    want = _KNOWN_DIGEST_LENGTHS.get(algorithm)
    if not hexpart or not set(hexpart) <= _HEX:
        raise InvalidReference(
            text, f"digest {digest!r}: the hex part must be lowercase hexadecimal"
        )
    if want is not None and len(hexpart) != want:
        raise InvalidReference(
            text, f"digest {digest!r}: {algorithm} needs {want} hex digits, got {len(hexpart)}"
        )
    if want is None and len(hexpart) < 32:
        raise InvalidReference(text, f"digest {digest!r}: the hex part needs 32+ digits")
    return digest


def _looks_like_domain(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost" or first.lower() != first


def _check_domain(text: str, domain: str) -> str:
    if domain.startswith("["):
        host, _, rest = domain.partition("]")
        host += "]"
        port = rest[1:] if rest.startswith(":") else None
        if rest and port is None:
            raise InvalidReference(text, f"domain {domain!r} is invalid")
    else:
        host, sep, port_text = domain.partition(":")
        port = port_text if sep else None
    if not host or not _is_host(host):
        raise InvalidReference(text, f"domain {domain!r}: host {host!r} is invalid")
    if port is not None and not _is_port(port):
        raise InvalidReference(text, f"domain {domain!r}: port {port!r} must be a number")
    return domain


def parse(text: str) -> Reference:
    """Parse and normalize an image reference; raise InvalidReference naming the bad part."""
    if not isinstance(text, str):
        raise InvalidReference(repr(text), "a reference must be a string")
    if not text:
        raise InvalidReference(text, "the reference is empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise InvalidReference(text, "whitespace is not allowed")

    rest, at, digest_text = text.partition("@")
    digest: str | None = None
    if at:
        if "@" in digest_text:
            raise InvalidReference(text, "more than one '@'")
        if not digest_text:
            raise InvalidReference(text, "empty digest after '@'")
        _check_digest(text, digest_text)
        digest = digest_text

    tag: str | None = None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1:]
        if not tag:
            raise InvalidReference(text, "empty tag after ':'")
        if not _is_tag(tag):
            raise InvalidReference(
                text, f"tag {tag!r} is invalid (want [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})"
            )
    if not rest:
        raise InvalidReference(text, "the repository name is empty")
    if len(rest) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(
            text, f"repository name is {len(rest)} characters (max {NAME_TOTAL_LENGTH_MAX})"
        )

    first, slash, remainder = rest.partition("/")
    if slash and _looks_like_domain(first):
        domain = _check_domain(text, first)
        path = remainder
    else:
        domain, path = DEFAULT_DOMAIN, rest

    for component in path.split("/"):
        if not component:
            raise InvalidReference(text, f"empty path component in {path!r}")
        if component.lower() != component:
            raise InvalidReference(
                text, f"repository name component {component!r} must be lowercase"
            )
        if not _is_path_component(component):
            raise InvalidReference(
                text,
                f"repository name component {component!r} is invalid "
                "(lowercase letters and digits, separated by '.', '_', '__' or '-')",
            )

    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = f"library/{path}"
    if len(f"{domain}/{path}") > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(
            text, f"normalized name is longer than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain=domain, path=path, tag=tag, digest=digest)
