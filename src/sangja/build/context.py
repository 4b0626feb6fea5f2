"""The build context: the directory COPY and ADD read from, and the Containerfile.

``CONTEXT`` is a directory, or ``-``: standard input holds either a Containerfile (no
context: COPY has nothing to read) or a tar archive of the context (plain or compressed),
unpacked into a private temporary directory with the same checks and limits as an image
layer. The Containerfile is ``-f FILE``, else ``Containerfile``, else ``Dockerfile`` in
the context.

`digest_sources` hashes what a COPY reads (names, types, modes, link targets, content; not
owners or times: the context's files become 0:0 and times are clamped) for its cache key.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..records import dataclass
from .errors import BuildError

__all__ = ["Context", "digest_sources", "open_context"]

NAMES = ("Containerfile", "Dockerfile")
_TAR_MAGIC_AT = 257


@dataclass
class Context:
    path: str | None  # the directory; None when standard input held only a Containerfile
    containerfile: str  # its text
    containerfile_name: str  # for error messages ("Containerfile", "-", the -f path)
    containerfile_path: str | None  # on disk (for FILE.dockerignore)


def _read_text(path: str, shown: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(16 << 20)
    except FileNotFoundError:
        raise BuildError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise BuildError(f"{shown}: is a directory, not a Containerfile") from None
    return data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")


def _is_tar(head: bytes) -> bool:
    from ..image.layers import detect_compression

    if detect_compression(head[:4]) != "none" or head[:3] == b"BZh" or \
            head[:6] == b"\xfd7zXZ\x00":
        return True
    return head[_TAR_MAGIC_AT:_TAR_MAGIC_AT + 5] == b"ustar"


@contextmanager
def open_context(context: str, containerfile: str | None, stdin=None,
                 scratch_dir: str | None = None) -> Iterator[Context]:
    """Yield the Context for `sangja build [-f FILE] CONTEXT`; a context read from standard
    input lives in a temporary directory (in `scratch_dir`) until the build ends."""
    if context == "-":
        data = stdin.read() if stdin is not None else b""
        if not _is_tar(data[:512]):
            if containerfile not in (None, "-"):
                raise BuildError("a Containerfile on standard input needs no -f")
            yield Context(None, data.decode("utf-8", "surrogateescape"), "-", None)
            return
        import shutil
        import tempfile

        tmp = tempfile.mkdtemp(prefix=".build-context-", dir=scratch_dir)
        try:
            _unpack(data, tmp)
            yield _in_dir(tmp, containerfile, stdin_name=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    if not os.path.isdir(context):
        raise BuildError(f"build context {context!r} is not a directory (or '-' for standard "
                         "input)")
    yield _in_dir(context, containerfile)


def _in_dir(path: str, containerfile: str | None, stdin_name: bool = False) -> Context:
    path = os.path.abspath(path)
    if containerfile == "-":
        import sys

        text = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
        return Context(path, text, "-", None)
    if containerfile:
        where = containerfile
        if stdin_name and not os.path.isabs(containerfile):
            where = os.path.join(path, containerfile)
        return Context(path, _read_text(where, containerfile), containerfile, where)
    for name in NAMES:
        full = os.path.join(path, name)
        if os.path.isfile(full):
            return Context(path, _read_text(full, name), name, full)
    raise BuildError(f"no Containerfile or Dockerfile in {path} (name one with -f)")


def _unpack(data: bytes, dest: str) -> None:
    import io

    from ..image.layers import LayerError, apply_layer

    head = data[:6]
    raw = io.BytesIO(data)
    if head[:3] == b"BZh" or head == b"\xfd7zXZ\x00":
        import bz2
        import lzma

        try:
            raw = io.BytesIO(bz2.decompress(data) if head[:3] == b"BZh" else
                             lzma.decompress(data))
        except (OSError, lzma.LZMAError, ValueError) as e:
            raise BuildError(f"build context on standard input: {e}") from None
    try:
        apply_layer(raw, dest)
    except LayerError as e:
        raise BuildError(f"build context on standard input: {e}") from None


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == \
        (b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns, b.st_ctime_ns)


def digest_sources(root: int, rels: list[str], skip: Callable[[str], bool] | None = None,
                   descend: Callable[[str], bool] | None = None, cache=None) -> str:
    """sha256 over the trees at `rels` below the directory fd `root` (resolved inside it),
    as COPY will read them. `cache` (a build.digest_cache.DigestCache): files whose stat
    it knows are not read again."""
    from ..digest import file_sha256, sha256
    from ..linux.fdtree import walk_tree
    from ..linux.paths import O_PATH, fd_path, open_in_root, open_regular, reopen_regular

    h = sha256()

    def add(rel: str, st: os.stat_result, full: str | int) -> None:
        h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode):o}\0".encode(
            "utf-8", "surrogateescape"))
        if stat.S_ISREG(st.st_mode):
            digest = cache.get(st) if cache is not None else None
            if digest is None:
                fd = os.dup(full) if isinstance(full, int) else open_regular(full)
                with os.fdopen(fd, "rb") as f:
                    before = os.fstat(f.fileno())
                    digest = file_sha256(f)
                    after = os.fstat(f.fileno())
                if cache is not None and _same(before, after) and _same(st, before):
                    cache.put(before, digest)
            h.update(digest)
        elif stat.S_ISLNK(st.st_mode) and isinstance(full, str):
            h.update(os.readlink(full).encode("utf-8", "surrogateescape"))
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            h.update(str(st.st_rdev).encode())
        h.update(b"\n")

    for rel in rels:
        try:
            pfd = open_in_root(root, rel, O_PATH)
        except FileNotFoundError:
            raise BuildError(f"{rel!r}: not found") from None
        try:  # opened for reading only once known to be a directory or a file
            st = os.fstat(pfd)
            if stat.S_ISDIR(st.st_mode):
                fd = os.open(fd_path(pfd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            elif stat.S_ISREG(st.st_mode):
                fd = reopen_regular(pfd)
            else:
                fd = os.dup(pfd)
        finally:
            os.close(pfd)
        try:
            if stat.S_ISDIR(st.st_mode):
                h.update(f"{rel}/\0dir\0{stat.S_IMODE(st.st_mode):o}\n".encode(
                    "utf-8", "surrogateescape"))

                def keep(sub: str, dst: os.stat_result, rel=rel) -> bool:
                    full = f"{rel}/{sub}".lstrip("/") if rel not in ("", ".", "/") else sub
                    return skip is None or not skip(full) or descend is None or descend(full)

                for full, sub, est in walk_tree(fd, descend=keep):
                    path = f"{rel}/{sub}".lstrip("/") if rel not in ("", ".", "/") else sub
                    if skip is not None and skip(path) and not stat.S_ISDIR(est.st_mode):
                        continue
                    add(sub, est, full)
            elif stat.S_ISREG(st.st_mode):
                add(os.path.basename(rel), st, fd)
            else:
                add(os.path.basename(rel), st, -1)
        finally:
            os.close(fd)
    return h.hexdigest()
