"""`run`: create, start and wait in one command; the container's exit status becomes ours
(128+N for a signal). Signals we receive are forwarded to the container's init."""

from __future__ import annotations

import os

from ..errors import ConfigError
from ..linux import process as lp
from ..linux import signals as signal
from .bundle import Bundle
from .create import create
from .delete import destroy
from .start import release, run_poststart
from .store import Store

NOT_FORWARDED = {signal.SIGCHLD, signal.SIGKILL, signal.SIGSTOP, signal.SIGWINCH}


def run(store: Store, cid: str, bundle_path: str, *, detach: bool = False,
        pid_file: str | None = None, console_socket: str | None = None, no_pivot: bool = False,
        preserve_fds: int = 0, keep: bool = False, systemd_cgroup: bool = False,
        warn=None) -> int:
    bundle = Bundle(bundle_path, seccomp_cache=store.seccomp_cache)
    assert bundle.spec.process is not None  # Bundle refuses a config without one
    terminal = bundle.spec.process.terminal
    local_console = terminal and console_socket is None
    if local_console and detach:
        raise ConfigError("process.terminal is true: a detached run needs --console-socket")
    ours = theirs = None
    if local_console:
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if not detach:
        lp.set_subreaper()
    c = create(store, cid, bundle, pid_file=pid_file, console_socket=console_socket,
               console_fd=theirs.fileno() if theirs else None, no_pivot=no_pivot,
               preserve_fds=preserve_fds, systemd_cgroup=systemd_cgroup, warn=warn)
    master = None
    try:
        if ours is not None and theirs is not None:
            theirs.close()
            from ..linux.pty import recv_fd

            master = recv_fd(ours.fileno())
            ours.close()
        pid = c.pid
        if not detach:
            _forward_signals(pid)
        release(c)
        run_poststart(c, warn)
    except BaseException:
        destroy(c, warn)
        c.unlock()
        raise
    c.unlock()
    if detach:
        return 0
    if master is not None:
        from .console import proxy

        proxy(master)
        os.close(master)
    code = _wait_for(pid)
    if not keep:
        c = store.open(cid)
        try:
            destroy(c, warn)
        finally:
            c.unlock()
    return code


def _forward_signals(pid: int) -> None:
    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    for sig in signal.valid_signals():
        if sig in NOT_FORWARDED or sig >= signal.SIGRTMIN:
            continue
        try:
            signal.signal(sig, forward)
        except (OSError, ValueError):
            pass


def _wait_for(pid: int) -> int:
    """Reap children (we are their subreaper) until the init's status arrives."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if got == pid:
            return lp.exit_status(status)
