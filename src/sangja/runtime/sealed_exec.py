"""The last exec of every container process goes through sangja-exec, a small static
program run from a sealed memfd (native/exec/sangja-exec.c says why: CVE-2019-5736).

A process of ours that execs a container's program is a fork of the host's interpreter.
Were it to exec the program itself, a program starting `#!/proc/self/exe` would run the
host's interpreter inside the container, with the image's loader and libraries, and hand
that host file to the container through /proc/PID/exe. Exec'd from a memfd instead, the
process's executable is a private, unwritable copy of sangja-exec until the program runs.

The memfd is made while the host's files are still reachable (before any namespace or
root change) and is close-on-exec: the program itself never holds it. The helper process
is as exposed to the container as the program it becomes (dumpable, ptrace-able), so it
holds nothing of the runtime's: no pipe back to it, no host file.
"""

from __future__ import annotations

import os
import sys

from ..errors import SangjaError

HELPER = "sangja-exec"
_MFD_CLOEXEC = 0x0001
_MFD_ALLOW_SEALING = 0x0002
_MFD_EXEC = 0x0010  # Linux 6.3+: say so explicitly (vm.memfd_noexec may forbid the default)
_F_ADD_SEALS = 1033
_F_SEAL_SEAL, _F_SEAL_SHRINK, _F_SEAL_GROW, _F_SEAL_WRITE = 0x01, 0x02, 0x04, 0x08
_F_SEAL_EXEC = 0x20  # Linux 6.3+: not even the mode may change
_AT_EMPTY_PATH = 0x1000


class HelperMissing(SangjaError):
    pass


def helper_path() -> str:
    """$SANGJA_EXEC_HELPER, else <prefix>/libexec/sangja/sangja-exec beside the monitor
    (<prefix>: the environment of the running interpreter; built by `make install`)."""
    prefix = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    return os.environ.get("SANGJA_EXEC_HELPER") or os.path.join(
        prefix, "libexec", "sangja", HELPER)


def sealed_helper() -> int:
    """A close-on-exec memfd holding sangja-exec, sealed against every change."""
    path = helper_path()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise HelperMissing(f"{HELPER} not found at {path}: {e.strerror} (run `make install`, "
                            "or set SANGJA_EXEC_HELPER)") from None
    if not data.startswith(b"\x7fELF"):
        raise HelperMissing(f"{path} is not an executable (run `make install`)")
    flags = _MFD_CLOEXEC | _MFD_ALLOW_SEALING
    try:
        fd = os.memfd_create(HELPER, flags | _MFD_EXEC)
    except OSError:
        fd = os.memfd_create(HELPER, flags)  # a kernel before 6.3: executable by default
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        import fcntl

        seals = _F_SEAL_SEAL | _F_SEAL_SHRINK | _F_SEAL_GROW | _F_SEAL_WRITE
        try:
            fcntl.fcntl(fd, _F_ADD_SEALS, seals | _F_SEAL_EXEC)
        except OSError:
            fcntl.fcntl(fd, _F_ADD_SEALS, seals)
    except BaseException:
        os.close(fd)
        raise
    return fd


def argv(path: str, args: list[str]) -> list[str]:
    """sangja-exec's command line: what to run."""
    return [HELPER, path, *args]


def execve(helper_fd: int, path: str, args: list[str], env: dict[str, str]) -> None:
    """Replace this process with the container's program, through the sealed helper.
    Every fd of the runtime's must be close-on-exec by now: the helper is as reachable from
    the container as the program, and must hold nothing more than it. Whoever waits for
    the exec sees it happen when those fds close (the helper's own exec follows at once);
    if the program cannot be exec'd the helper says why on stderr and exits 126 or 127."""
    _execveat(helper_fd, argv(path, args), [f"{k}={v}" for k, v in env.items()])


def _execveat(fd: int, args: list[str], env: list[str]) -> None:
    """execveat(fd, "", args, env, AT_EMPTY_PATH) itself: glibc's fexecve (os.execve with
    an fd) falls back to /proc/self/fd/N when execveat says ENOSYS (a seccomp profile may),
    and inside the container that path is the image's to define when /proc is not mounted.
    A seccomp profile must allow execveat."""
    import ctypes

    from ..linux.syscall import libc, nr

    def strings(items: list[str]):
        data = [os.fsencode(x) for x in items]
        if any(b"\0" in d for d in data):
            raise ValueError("embedded null byte in the program's arguments or environment")
        return (ctypes.c_char_p * (len(data) + 1))(*data, None)

    libc.syscall(nr("execveat"), ctypes.c_int(fd), b"", strings(args), strings(env),
                 ctypes.c_int(_AT_EMPTY_PATH))
    err = ctypes.get_errno()
    raise OSError(err, f"exec of {HELPER} (execveat) failed: {os.strerror(err)}")
