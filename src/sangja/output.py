"""Output paths a user names (`save -o`, `export -o`): written through, never replaced by
something else (docs/engine.md, "Output paths")."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import SangjaError

TYPE_CHECKING = False  # typing costs ~1.5 ms at start-up; annotations only
if TYPE_CHECKING:
    from typing import BinaryIO, Protocol

    class ByteSink(Protocol):
        """What a writer of a byte stream (a tar stream, logs) uses of its output: a file,
        sys.stdout.buffer, or the API's framed and chunked writers."""

        def write(self, data: bytes, /) -> object: ...
        def flush(self) -> object: ...


class OutputPathError(SangjaError):
    """An output path the user named cannot be written (a directory, a socket, a missing
    directory); Docker's exit code 125."""

    engine_exit_code = 125


@contextmanager
def output_file(path: str, mode: int = 0o644) -> Iterator[BinaryIO]:
    """The file a user named for output (`save -o`, `export -o`), written through and never
    replaced by something else:

    - a FIFO or a device (/dev/null, a tape), or a file reached through /proc's fd links
      (/dev/stdout): opened and written in place (a file such as /dev/stdout is appended to,
      as the shell's redirection asked);
    - a regular file, or none yet: the content goes to an unnamed temp file in the target's
      directory and is renamed over the target once complete, so a failure leaves the old
      content, or nothing, behind. Through a symlink the target is written and the link
      stays; a replaced file keeps its mode and owner;
    - a directory or a socket: refused (OutputPathError).
    """
    if not path:
        raise OutputPathError("no output path given")
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)  # no side effect, no wait: just the object
    except FileNotFoundError:
        fd = None
    except OSError as e:
        raise OutputPathError(f"cannot write {path}: {e.strerror}") from None
    if fd is None:
        with _replacing(path, None, mode) as f:
            yield f
        return
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise OutputPathError(f"cannot write {path}: it is a directory")
        if stat.S_ISSOCK(st.st_mode):
            raise OutputPathError(f"cannot write {path}: it is a socket")
        if stat.S_ISREG(st.st_mode) and not _through_magic_link(path):
            with _replacing(path, st, mode) as f:
                yield f
            return
        # the very object we looked at, reopened for writing (a FIFO waits for its reader)
        flags = os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC
        if stat.S_ISREG(st.st_mode):
            flags |= os.O_APPEND
        try:
            wfd = os.open(f"/proc/self/fd/{fd}", flags)
        except OSError as e:
            raise OutputPathError(f"cannot write {path}: {e.strerror}") from None
    finally:
        os.close(fd)
    with open(wfd, "wb") as f:
        yield f


def _through_magic_link(path: str) -> bool:
    """Whether resolving `path` passes a /proc magic link (/dev/stdout -> /proc/self/fd/1):
    its target is an open file of some process, not a name in a directory to rename over."""
    from .linux.paths import RESOLVE_NO_MAGICLINKS, openat2

    try:
        os.close(openat2(_AT_FDCWD, path, os.O_PATH, resolve=RESOLVE_NO_MAGICLINKS))
    except OSError as e:
        return e.errno == errno.ELOOP
    return False


_AT_FDCWD = -100


@contextmanager
def _replacing(path: str, old: os.stat_result | None, mode: int) -> Iterator[BinaryIO]:
    """Write the regular file at `path` (its symlinks resolved: `old` is what is there now,
    None when nothing is) as a whole: a temp file, renamed over the target when the block
    succeeds."""
    target = os.path.realpath(path)  # a dangling link: the file it names, as `>` would
    parent, name = os.path.split(target)
    try:
        dfd = os.open(parent or "/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise OutputPathError(f"cannot write {path}: {parent}: {e.strerror}") from None
    tmp = None
    try:
        if old is not None:
            now = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if (now.st_dev, now.st_ino) != (old.st_dev, old.st_ino):
                raise OutputPathError(f"cannot write {path}: it changed while being opened")
        fd, tmp = _temp_file(dfd, name, mode, path)
        try:
            with open(fd, "wb", closefd=False) as f:
                yield f
            if old is not None:
                os.fchmod(fd, stat.S_IMODE(old.st_mode))
                if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                    try:
                        os.fchown(fd, old.st_uid, old.st_gid)
                    except PermissionError:
                        pass
            os.fsync(fd)
            if tmp is None:  # unnamed until now: give it a name to rename
                tmp = f".{name}.{os.urandom(6).hex()}.tmp"
                os.link(f"/proc/self/fd/{fd}", tmp, dst_dir_fd=dfd)
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            tmp = None
        finally:
            os.close(fd)
    except BaseException:
        if tmp is not None:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except FileNotFoundError:
                pass
        raise
    finally:
        os.close(dfd)


def _temp_file(dfd: int, name: str, mode: int, path: str) -> tuple[int, str | None]:
    """An unnamed file in the directory `dfd` (O_TMPFILE: nothing is left if we die), or a
    fresh hidden name beside `name` where the filesystem has no O_TMPFILE."""
    flags = os.O_WRONLY | os.O_CLOEXEC
    try:
        return os.open(".", flags | os.O_TMPFILE, mode, dir_fd=dfd), None
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise OutputPathError(f"cannot write {path}: {e.strerror}") from None
    tmp = f".{name}.{os.urandom(6).hex()}.tmp"
    try:
        return os.open(tmp, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode,
                       dir_fd=dfd), tmp
    except OSError as e:
        raise OutputPathError(f"cannot write {path}: {e.strerror}") from None
