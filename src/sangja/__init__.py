"""sangja (상자, "box"): a daemonless container engine and OCI runtime.

Kept import-free on purpose: `sangja-runtime` start-up time is a feature.
"""

__version__ = "0.1.0"
OCI_VERSION = "1.2.0"


def __getattr__(name: str):
    """`from sangja import Engine` (and its records): the typed Python API, imported only
    when asked for (the CLIs never do)."""
    if name in ("Engine", "Container", "Image"):
        from . import python_api

        return getattr(python_api, name)
    raise AttributeError(f"module 'sangja' has no attribute {name!r}")
