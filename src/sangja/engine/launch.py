"""Start a container under its monitor (docs/engine.md, "One container, start to finish").

The CLI forks a launcher child. The child leaves the CLI's session, becomes a child
subreaper, gives the container its stdio (pipes, or a pty the runtime makes), asks the
runtime to create the container, and then *becomes* the monitor by execve: the container's
init is already its child, so the monitor reaps it and learns its exit status without any
daemon. The CLI learns the outcome through a pipe: "pid N" from the child, then "ok M" from
the monitor, or "error CODE MESSAGE"."""

from __future__ import annotations

import os
import socket

from sangja.records import dataclass, field

from ..errors import SangjaError


class LaunchError(SangjaError):
    def __init__(self, message: str, code: int = 125):
        super().__init__(message)
        self.engine_exit_code = code


@dataclass
class Launched:
    init_pid: int
    monitor_pid: int


@dataclass
class LaunchPlan:
    cid: str
    bundle: str
    run_dir: str
    log_path: str | None
    log_max_size: int | None
    log_max_file: int
    tty: bool
    stdin: bool
    exit_command: list[str]
    health_interval_ms: int = 0  # > 0: the monitor runs health_command that often
    health_command: list[str] = field(default_factory=list)
    health_start_interval_ms: int = 0  # during health_start_period_ms, until a pass
    health_start_period_ms: int = 0


def launch(runtime, plan: LaunchPlan, monitor: str) -> Launched:
    """Create the container under a new monitor; return once both are in place."""
    os.makedirs(plan.run_dir, mode=0o700, exist_ok=True)
    attach_path = os.path.join(plan.run_dir, "attach")
    for stale in (attach_path, os.path.join(plan.run_dir, "exit"),
                  os.path.join(plan.run_dir, "cleaned")):
        try:
            os.unlink(stale)
        except FileNotFoundError:
            pass
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the launcher child: never returns
        os.close(r)
        _child(runtime, plan, monitor, w, attach_path)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        report = f.read().decode(errors="replace")
    init_pid = monitor_pid = 0
    for line in report.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "pid":
            init_pid = int(rest)
        elif kind == "ok":
            monitor_pid = int(rest)
        elif kind == "error":
            code, _, message = rest.partition(" ")
            _reap(pid)
            raise LaunchError(message, int(code))
    if not (init_pid and monitor_pid):
        _reap(pid)
        raise LaunchError("the container monitor did not start"
                          + (f" (after the container's init {init_pid})" if init_pid else ""))
    for name, pid in (("init.pid", init_pid), ("monitor.pid", monitor_pid)):
        with open(os.path.join(plan.run_dir, name), "w") as f:
            f.write(str(pid))
    return Launched(init_pid, monitor_pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _child(runtime, plan: LaunchPlan, monitor: str, w: int, attach_path: str) -> None:
    code = 125
    try:
        from ..linux import process as lp

        os.setsid()
        lp.set_subreaper()
        null = os.open("/dev/null", os.O_RDWR)
        keep: list[int] = []
        args = [monitor, "--cid", plan.cid, "--exit-dir", plan.run_dir]
        if plan.tty:
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(null, 2)
        else:
            out_r, out_w = os.pipe2(0)
            err_r, err_w = os.pipe2(0)
            if plan.stdin:
                in_r, in_w = os.pipe2(0)
                os.dup2(in_r, 0)
                os.close(in_r)
                keep.append(in_w)
                args += ["--stdin-fd", str(in_w)]
            else:
                os.dup2(null, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.close(out_w)
            os.close(err_w)
            keep += [out_r, err_r]
            args += ["--stdout-fd", str(out_r), "--stderr-fd", str(err_r)]
        os.close(null)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if len(os.fsencode(attach_path)) < 108:
            listener.bind(attach_path)
        else:  # sun_path holds 107 bytes: bind through the directory's fd
            dfd = os.open(plan.run_dir, os.O_PATH | os.O_DIRECTORY)
            listener.bind(f"/proc/self/fd/{dfd}/attach")
            os.close(dfd)
        os.chmod(attach_path, 0o600)
        listener.listen(16)
        keep.append(listener.fileno())
        args += ["--attach-fd", str(listener.fileno()), "--sync-fd", str(w)]
        try:
            init_pid, master = runtime.create(plan.cid, plan.bundle, console=plan.tty)
        except SangjaError as e:
            known = getattr(e, "engine_exit_code", None)
            if known is not None:
                code = known
            else:
                from .runtimes import exit_code_for

                code = exit_code_for(str(e))
            raise
        if master is not None:
            keep.append(master)
            args += ["--pty-fd", str(master)]
        # The container has its ends of the pipes now; the monitor must not hold them (it
        # waits for EOF on the read ends after the init exits).
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        os.write(w, f"pid {init_pid}\n".encode())
        args += ["--pid", str(init_pid)]
        if plan.log_path:
            args += ["--log-path", plan.log_path]
            if plan.log_max_size:
                args += ["--log-max-size", str(plan.log_max_size),
                         "--log-max-file", str(plan.log_max_file)]
        if plan.health_interval_ms > 0 and plan.health_command:
            args += ["--health-interval", str(plan.health_interval_ms)]
            if plan.health_start_interval_ms > 0 and plan.health_start_period_ms > 0:
                args += ["--health-start-interval", str(plan.health_start_interval_ms),
                         "--health-start-period", str(plan.health_start_period_ms)]
            for a in plan.health_command:
                args += ["--health-arg", a]
        args += ["--", *plan.exit_command]
        for fd in [*keep, w]:
            os.set_inheritable(fd, True)
        code = 125
        os.execv(monitor, args)
    except BaseException as e:  # noqa: BLE001 - report anything, then leave
        try:
            msg = str(e).replace("\n", " ") or type(e).__name__
            os.write(w, f"error {code} {msg}\n".encode())
        finally:
            os._exit(code)
