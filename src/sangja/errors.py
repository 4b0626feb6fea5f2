"""Errors a user can cause: each becomes one clear line on stderr and a non-zero exit."""


class SangjaError(Exception):
    """Base of every error sangja reports to a user (no traceback unless --debug)."""

    exit_code = 1
    # Docker's exit code for this error in `sangja` (engine) commands, where a subclass or
    # the code that raised it knows one; not set otherwise, so it is read with
    # getattr(e, "engine_exit_code", default). Declared for the type checker only.
    engine_exit_code: int


class ConfigError(SangjaError):
    """config.json is missing, malformed, or asks for something we cannot honour."""


class Unsupported(ConfigError):
    """A config field we do not implement asks for something: fail closed, name the field."""

    def __init__(self, field: str, why: str = "is not supported by this runtime"):
        super().__init__(f"{field} {why}")
        self.field = field


class ContainerNotFound(SangjaError):
    def __init__(self, cid: str):
        super().__init__(f"container {cid!r} does not exist")


class ContainerExists(SangjaError):
    def __init__(self, cid: str):
        super().__init__(f"container {cid!r} already exists")


class InvalidState(SangjaError):
    """The operation does not fit the container's current status."""
