"""File-system durability helpers shared by the stores."""

from __future__ import annotations

import os


def syncfs(path: str) -> None:
    """Flush the filesystem holding `path`: one call makes every file written there durable
    (far cheaper than an fsync per file of an unpacked layer). Falls back to sync(2)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs {path}: {os.strerror(err)}")
    except (AttributeError, OSError):
        os.sync()
    finally:
        os.close(fd)
