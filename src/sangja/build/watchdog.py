"""Removes a build's RUN containers when the build dies without removing them itself.

A RUN step is a container of the engine, run by its monitor: it outlives a build killed
with SIGKILL (or SIGTERM, whose default action skips every clean-up). So the build starts
this, at its first RUN step, as a process in a session of its own (a Ctrl-C or a closed
terminal reaches the build, not this), reading a pipe whose write end only the build
holds; the build's RUN containers carry the label ``io.sangja.build.run=TOKEN``. However
the build ends, the pipe closes: after a normal end (success or error: the steps removed
their containers) the build has written ``done`` and this exits at once; otherwise it
removes every container with the build's token, as ``rm -f`` does: the step's processes
killed, its snapshot unmounted, its cgroup, network and record gone.

    python -c 'from sangja.build.watchdog import main; main()' ROOT RUNROOT TOKEN
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # subprocess is imported only when a watchdog starts (start-up cost)
if TYPE_CHECKING:
    from subprocess import Popen

__all__ = ["LABEL", "Watchdog", "main"]

LABEL = "io.sangja.build.run"


class Watchdog:
    """The build's side: `token()` starts the watchdog (once; thread-safe) and returns the
    label value for a RUN container; `close()` tells it the build ended normally."""

    def __init__(self, root: str, runroot: str):
        from _thread import allocate_lock

        self.root, self.runroot = root, runroot
        self._lock = allocate_lock()
        self._proc: Popen[bytes] | None = None
        self._pipe: int | None = None
        self._token: str | None = None

    def token(self) -> str:
        with self._lock:
            token = self._token
            if token is None:
                token = self._start()
            return token

    def _start(self) -> str:
        import subprocess

        token = os.urandom(16).hex()
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-S", "-c", "from sangja.build.watchdog import main; main()",
                 self.root, self.runroot, token],
                stdin=rfd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                start_new_session=True, close_fds=True)
        except BaseException:
            os.close(wfd)
            raise
        finally:
            os.close(rfd)
        self._pipe, self._token = wfd, token
        return token

    def close(self, normal: bool = True) -> None:
        """The build ended normally (its steps removed their containers): the watchdog
        exits without looking. Not normal (an interrupt): it removes them now; waited for,
        so that none is left when the build returns."""
        with self._lock:
            if self._pipe is None:
                return
            try:
                if normal:
                    os.write(self._pipe, b"done\n")
            except OSError:
                pass
            os.close(self._pipe)
            self._pipe = None
            proc = self._proc
            assert proc is not None  # started before the pipe was kept
            try:
                proc.wait(120)
            except Exception:  # noqa: BLE001 - it goes on alone; the build must end
                pass


def sweep(root: str, runroot: str, token: str) -> None:
    """Remove (force) every container labelled with the build's token."""
    from ..engine.containers import Engine

    with Engine(root, runroot) as engine:
        for row in engine.db.all():
            try:
                if engine.options(row).labels.get(LABEL) != token:
                    continue
                engine.remove(row["id"], force=True)
            except Exception:  # noqa: BLE001 - gone already, or for system check to repair
                continue


def main() -> None:
    import signal

    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    root, runroot, token = sys.argv[1:4]
    data = b""
    while chunk := os.read(0, 64):
        data += chunk
        if data.startswith(b"done"):  # at once: not waiting for every copy of the pipe
            return
    sweep(root, runroot, token)
