"""The last steps before a container process runs, shared by `create` (the init) and
`exec`: rlimits, identity, capabilities, no_new_privs, umask, cwd, and the execve itself."""

from __future__ import annotations

import os

from ..errors import SangjaError
from ..linux import capabilities as caps
from ..linux import process as lp
from ..linux import signals as signal

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ExecutableNotFound(SangjaError):
    exit_code = 127


class NotExecutable(SangjaError):
    exit_code = 126


def env_dict(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        k, sep, v = item.partition("=")
        if sep and k:
            out[k] = v
    return out


_PASSWD_MAX = 1 << 20


def home_of(uid: int) -> str:
    """HOME from the container's /etc/passwd, "/" if it has none. That file is the
    container's: a FIFO there must not block us (it is opened non-blocking and refused),
    a link to /dev/zero must not fill our memory (only a regular file is read, 1 MiB of
    it at most)."""
    import stat

    try:
        fd = os.open("/etc/passwd", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return "/"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "/"
        data = os.read(fd, _PASSWD_MAX)
    except OSError:
        return "/"
    finally:
        os.close(fd)
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 6 and parts[2] == str(uid):
            return parts[5] or "/"
    return "/"


def lookup(arg0: str, env: dict[str, str], cwd: str) -> str:
    """Find args[0] as execve would need it, with the errors a shell gives."""
    if "/" in arg0:
        path = arg0 if arg0.startswith("/") else os.path.join(cwd, arg0)
        if not os.path.exists(path):
            raise ExecutableNotFound(f"exec: {arg0!r}: no such file or directory")
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise NotExecutable(f"exec: {arg0!r}: permission denied")
        return path
    for d in (env.get("PATH") or DEFAULT_PATH).split(":"):
        path = os.path.join(d or ".", arg0)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise ExecutableNotFound(f"exec: {arg0!r}: executable file not found in $PATH")


def apply_rlimits(process) -> None:
    for r in process.rlimits:
        lp.set_rlimit(r.type, r.soft, r.hard)


def apply_scheduling(process_raw: dict, personality: dict | None) -> None:
    """process.scheduler, process.ioPriority and linux.personality (while still root)."""
    sched_cfg = process_raw.get("scheduler")
    io_cfg = process_raw.get("ioPriority")
    if sched_cfg or io_cfg or personality:
        from ..linux import sched

        if sched_cfg:
            sched.set_scheduler(sched_cfg)
        if io_cfg:
            sched.set_io_priority(io_cfg)
        if personality:
            sched.set_personality(personality)  # last: it changes what uname reports


def set_oom_score_adj(value: int | None) -> None:
    if value is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))


def drop_privileges(process) -> None:
    """Bounding set first (needs CAP_SETPCAP), then the uid switch keeping permitted
    capabilities, then the final capability sets and no_new_privs."""
    sets = caps.CapabilitySets(process.capabilities) if process.capabilities is not None \
        else None
    if sets is not None and sets.bounding is not None:
        caps.drop_bounding(sets.bounding)
    user = process.user
    if sets is not None:
        caps.prctl(caps.PR_SET_KEEPCAPS, 1)
    os.setgroups(user.additional_gids)
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    if sets is not None:
        caps.prctl(caps.PR_SET_KEEPCAPS, 0)
        sets.bounding = None
        sets.apply()
    if process.no_new_privileges:
        lp.set_no_new_privs()
    if user.umask is not None:
        os.umask(user.umask)


def enter_cwd(cwd: str) -> None:
    try:
        os.chdir(cwd)
    except OSError as e:
        raise SangjaError(f"process.cwd {cwd}: {e.strerror}") from None


def exec_env(process) -> dict[str, str]:
    env = env_dict(process.env)
    if "HOME" not in env:
        env["HOME"] = home_of(process.user.uid)
    return env


def reset_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across execve.
    Give the container process the defaults every program expects, and an empty mask."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                signal.SIGQUIT, signal.SIGTTOU, signal.SIGTTIN, signal.SIGTSTP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def check_preserved_fds(preserve: int) -> None:
    """Every fd of --preserve-fds must be open in the caller: a free number in the range
    could be taken by one of our own fds and handed to the container."""
    if preserve < 0:
        raise SangjaError("--preserve-fds must not be negative")
    for fd in range(3, 3 + preserve):
        try:
            os.fstat(fd)
        except OSError:
            raise SangjaError(f"--preserve-fds {preserve}: fd {fd} is not open") from None


def close_extra_fds(preserve: int, keep: tuple[int, ...] = ()) -> None:
    """Close all but stdio, the preserved fds (made inheritable) and `keep` (close-on-exec
    fds still needed until the exec itself)."""
    first = 3 + preserve
    for fd in range(3, first):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    start = first
    for k in sorted(k for k in keep if k >= first):
        if k > start:
            lp.close_range(start, k - 1)
        start = k + 1
    lp.close_range(start, 0xFFFFFFFF)

