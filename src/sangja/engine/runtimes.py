"""The OCI runtime behind the engine: sangja's own (called in-process: no interpreter
start, no re-reading of what we already know) or any runc-compatible binary (runc, crun,
a path), driven through its command line."""

from __future__ import annotations

import os

from ..errors import SangjaError


class RuntimeError_(SangjaError):
    """A runtime command failed; the message is the runtime's own last line."""


def exit_code_for(message: str) -> int:
    """Docker's codes for a program that cannot start: 127 not found, 126 not runnable."""
    low = message.lower()
    if "executable file not found" in low or "no such file or directory" in low:
        return 127
    if "permission denied" in low or "exec format error" in low or "is a directory" in low:
        return 126
    return 125


class Runtime:
    """Common interface. `create` runs in the launcher child, the rest in the CLI."""

    name = ""

    def __init__(self, state_root: str):
        self.root = state_root

    def create(self, cid: str, bundle: str, *, console: bool) -> tuple[int, int | None]:
        """Create the container (its init waits for `start`); return (init pid, pty master
        or None). The init inherits this process's fds 0-2 as its stdio."""
        raise NotImplementedError

    def start(self, cid: str) -> None:
        raise NotImplementedError

    def kill(self, cid: str, sig: int, all_processes: bool = False) -> None:
        raise NotImplementedError

    def delete(self, cid: str) -> None:
        """Force-delete; no error when the runtime does not know the container."""
        raise NotImplementedError

    def pause(self, cid: str) -> None:
        raise NotImplementedError

    def resume(self, cid: str) -> None:
        raise NotImplementedError

    def pids(self, cid: str) -> list[int]:
        raise NotImplementedError

    def update(self, cid: str, resources: dict) -> None:
        """Change the live container's cgroup limits (an OCI linux.resources subset)."""
        raise NotImplementedError

    def status(self, cid: str) -> str | None:
        """The runtime's view: created, running, paused, stopped; None if unknown to it."""
        state = self.state(cid)
        return state.get("status") if state else None

    def state(self, cid: str) -> dict | None:
        """The runtime's OCI state document of `cid` (status, pid, bundle...), None if the
        runtime does not know it."""
        raise NotImplementedError

    def exec_argv(self, cid: str, *, process_file: str, pid_file: str, log: str,
                  console_socket: str | None) -> list[str]:
        """The command line of a detached `exec` of the process described in
        `process_file` (sangja.engine.exec runs it): the process gets the fds 0-2 the
        command is started with, or, when its `terminal` is true, a pty whose master goes
        to `console_socket`; its pid goes to `pid_file`, the runtime's errors to `log`
        (JSON lines)."""
        raise NotImplementedError


class SangjaRuntime(Runtime):
    name = "sangja-runtime"

    def _store(self):
        from ..runtime.store import Store

        return Store(self.root)

    def create(self, cid, bundle, *, console):
        from ..runtime.create import create

        ours = theirs = None
        if console:
            import socket

            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        c = create(self._store(), cid, bundle, console_fd=theirs.fileno() if theirs else None)
        pid = c.pid
        c.unlock()
        master = None
        if ours is not None:
            from ..linux.pty import recv_fd

            theirs.close()
            master = recv_fd(ours.fileno())
            ours.close()
        return pid, master

    def start(self, cid):
        from ..runtime.start import start

        start(self._store(), cid)

    def kill(self, cid, sig, all_processes=False):
        from ..runtime.kill import kill

        kill(self._store(), cid, sig, all_processes)

    def delete(self, cid):
        from ..runtime.delete import delete

        delete(self._store(), cid, force=True)

    def pause(self, cid):
        from ..runtime.pause import pause

        pause(self._store(), cid)

    def resume(self, cid):
        from ..runtime.pause import resume

        resume(self._store(), cid)

    def update(self, cid, resources):
        from ..runtime.update import update

        update(self._store(), cid, resources)

    def pids(self, cid):
        from ..runtime.kill import container_pids

        try:
            return container_pids(self._store().peek(cid).record)
        except SangjaError:
            return []

    def state(self, cid):
        try:
            return self._store().peek(cid).oci_state()
        except SangjaError:
            return None

    def exec_argv(self, cid, **kw):
        return _exec_argv([installed_command("sangja-runtime"), "--root", self.root], cid,
                          **kw)


class OCIRuntimeBinary(Runtime):
    """runc, crun or any binary with runc's command line."""

    def __init__(self, state_root: str, binary: str):
        super().__init__(state_root)
        self.binary = binary
        self.name = os.path.basename(binary)

    def _run(self, *args: str, check: bool = True, **kw) -> object:
        import subprocess

        r = subprocess.run([self.binary, "--root", self.root, *args], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, **kw)
        if check and r.returncode != 0:
            lines = [ln for ln in (r.stderr or r.stdout).strip().splitlines() if ln.strip()]
            msg = lines[-1] if lines else f"exit status {r.returncode}"
            raise RuntimeError_(f"{self.name} {args[0]}: {_strip_log(msg)}")
        return r

    def create(self, cid, bundle, *, console):
        import subprocess

        pid_file = os.path.join(bundle, "init.pid")
        args = ["create", "--bundle", bundle, "--pid-file", pid_file]
        listener = sock_path = None
        if console:
            import socket

            sock_path = os.path.join(bundle, "console.sock")
            if os.path.lexists(sock_path):
                os.unlink(sock_path)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            dfd = os.open(bundle, os.O_PATH | os.O_DIRECTORY)
            try:
                listener.bind(f"/proc/self/fd/{dfd}/console.sock")
            finally:
                os.close(dfd)
            listener.listen(1)
            # relative to the runtime's cwd (the bundle): sun_path holds only 107 bytes
            args += ["--console-socket", "console.sock"]
        log = os.path.join(bundle, "runtime.log")
        try:
            # stdio (fds 0-2) are inherited: the init gets them. The runtime hands its own
            # stderr to the init too, so its errors are read from --log, not from a pipe
            # (a pipe would never see EOF while the container runs).
            r = subprocess.run([self.binary, "--root", self.root, "--log", log,
                                "--log-format", "json", *args, cid], stdin=None, stdout=None,
                               stderr=None, cwd=bundle)
            if r.returncode != 0:
                msg = last_log_error(log) or f"exit status {r.returncode}"
                err = RuntimeError_(f"{self.name} create: {msg}")
                err.engine_exit_code = exit_code_for(msg)
                raise err
            with open(pid_file) as f:
                pid = int(f.read().strip())
            master = None
            if listener is not None:
                from ..linux.pty import recv_fd

                listener.settimeout(10)
                conn, _ = listener.accept()
                master = recv_fd(conn.fileno())
                conn.close()
            return pid, master
        finally:
            if listener is not None:
                listener.close()
                os.unlink(sock_path)

    def start(self, cid):
        try:
            self._run("start", cid)
        except RuntimeError_ as e:
            e.engine_exit_code = exit_code_for(str(e))
            raise

    def kill(self, cid, sig, all_processes=False):
        self._run("kill", *(["--all"] if all_processes else []), cid, str(sig))

    def delete(self, cid):
        r = self._run("delete", "--force", cid, check=False)
        if r.returncode != 0 and "does not exist" not in r.stderr and "not found" not in r.stderr:
            raise RuntimeError_(f"{self.name} delete: {_strip_log(r.stderr.strip())}")

    def pause(self, cid):
        self._run("pause", cid)

    def resume(self, cid):
        self._run("resume", cid)

    def update(self, cid, resources):
        import subprocess

        from ..jsonio import dumps

        r = subprocess.run([self.binary, "--root", self.root, "update", "--resources", "-",
                            cid], input=dumps(resources), capture_output=True, text=True)
        if r.returncode != 0:
            lines = [ln for ln in (r.stderr or r.stdout).strip().splitlines() if ln.strip()]
            msg = lines[-1] if lines else f"exit status {r.returncode}"
            raise RuntimeError_(f"{self.name} update: {_strip_log(msg)}")

    def pids(self, cid):
        r = self._run("ps", "--format", "json", cid, check=False)
        if r.returncode != 0:
            return []
        from ..jsonio import loads

        return [int(p) for p in loads(r.stdout or "[]") or []]

    def state(self, cid):
        r = self._run("state", cid, check=False)
        if r.returncode != 0:
            return None
        from ..jsonio import loads

        try:
            state = loads(r.stdout)
        except ValueError:
            return None
        return state if isinstance(state, dict) else None

    def exec_argv(self, cid, **kw):
        return _exec_argv([self.binary, "--root", self.root], cid, **kw)


def installed_command(name: str) -> str:
    """The absolute path of sangja's command `name` (sangja, sangja-runtime) installed
    beside the running one: next to this command (argv[0], made absolute now: later
    commands run in other directories), next to the interpreter (a venv's bin), on PATH."""
    import shutil
    import sys

    dirs = [os.path.dirname(os.path.realpath(sys.argv[0]))] if sys.argv and sys.argv[0] \
        else []
    dirs.append(os.path.dirname(os.path.abspath(sys.executable)))
    for d in dirs:
        exe = os.path.join(d, name)
        if os.access(exe, os.X_OK):
            return exe
    found = shutil.which(name)
    if found:
        return os.path.abspath(found)
    raise SangjaError(f"cannot find the {name} command beside {sys.argv[0] or 'sangja'} "
                      "or on PATH (run `make install`)")


def _exec_argv(base: list[str], cid: str, *, process_file: str, pid_file: str, log: str,
               console_socket: str | None) -> list[str]:
    """runc's command line, which sangja-runtime shares. The whole process goes in
    --process (as podman and containerd do): the --user, --additional-gids and --env
    flags would add to the container's own groups and variables, not replace them."""
    argv = [*base, "--log", log, "--log-format", "json", "exec", "--detach",
            "--pid-file", pid_file, "--process", process_file]
    if console_socket:
        argv += ["--console-socket", console_socket]
    return [*argv, cid]


def last_log_error(path: str) -> str | None:
    """The last error a runc-style runtime wrote to its --log file (JSON lines)."""
    from ..jsonio import loads

    try:
        with open(path, "rb") as f:
            lines = f.read()[-65536:].splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            entry = loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            return str(entry.get("msg", "")).strip() or None
    return None


def _strip_log(line: str) -> str:
    """runc prints logrus lines (`time=... level=error msg="..."`): keep the message."""
    marker = 'msg="'
    i = line.find(marker)
    if i >= 0:
        return line[i + len(marker):].rstrip('"').replace('\\"', '"')
    return line


def runtime_for(name: str, paths) -> Runtime:
    """sangja-runtime (default), runc, crun, or an absolute path to a runc-like binary."""
    root = paths.runtime_root(name)
    if name in ("", "sangja-runtime", "sangja"):
        return SangjaRuntime(paths.runtime_root("sangja-runtime"))
    import shutil

    binary = name if os.path.isabs(name) else shutil.which(name)
    if not binary or not os.access(binary, os.X_OK):
        raise SangjaError(f"unknown or missing OCI runtime {name!r}")
    return OCIRuntimeBinary(root, binary)
