"""Errors of the registry client: each is one line a user can act on."""

from __future__ import annotations

from sangja.errors import SangjaError


class RegistryError(SangjaError):
    """A registry could not be reached, refused, or sent something wrong."""

    engine_exit_code = 125


class NotFound(RegistryError):
    """The registry has no such repository, tag, manifest or blob."""


class Unauthorized(RegistryError):
    """The registry refused the credentials (or asked for some and there were none)."""


class UnresolvableName(RegistryError):
    """An image name that cannot go to a registry (unqualified, blocked...)."""
