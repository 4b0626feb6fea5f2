"""File-system durability helpers shared by the stores."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO


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


@contextmanager
def atomic_output(path: str, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Write a file that appears whole or not at all: a temp name beside it, renamed into
    place when the block succeeds, removed when it fails (`save -o`, `export -o`)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            yield f
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
