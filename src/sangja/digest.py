"""sha256 for the start-up path: the interpreter's builtin module, not hashlib (which loads
OpenSSL: 2-6 ms at every command that hashes anything)."""

from __future__ import annotations

try:
    from _sha256 import sha256
except ImportError:  # pragma: no cover - Python 3.12 renamed the builtin
    from hashlib import sha256

__all__ = ["sha256", "file_sha256"]


def file_sha256(f) -> bytes:
    """The sha256 digest of what a binary file object holds from where it is."""
    h = sha256()
    while chunk := f.read(1 << 20):
        h.update(chunk)
    return h.digest()
