"""`exec`: run another process in a running container: join its cgroup and namespaces,
take its root, then the same final steps as the init (identity, capabilities, cwd).

Like the init, the process is non-dumpable until it execs, so nothing in the container can
ptrace it or reach the host's interpreter through /proc/PID/exe meanwhile, and its last
exec goes through the sealed sangja-exec (sealed_exec.py).
"""

from __future__ import annotations

import os

from ..errors import ConfigError, InvalidState, SangjaError
from ..linux import namespaces as ns
from ..linux import process as lp
from ..oci.runtime_spec import Process
from . import process_setup as ps
from .store import Store
from .sync import Channel


def build_process(record: dict, args: list[str], *, process_file, tty, env, cwd, user,
                  additional_gids, caps, no_new_privs) -> Process:
    """The process to run: a process.json, or the container's own process with the
    command-line overrides (as runc does)."""
    if process_file:
        from ..jsonio import load_file

        try:
            doc = load_file(process_file)
        except ValueError as e:  # jsonio.JSONError: names the file and the position
            raise ConfigError(str(e)) from None
        except OSError as e:
            raise ConfigError(f"cannot read process file {process_file}: "
                              f"{e.strerror or e}") from None
        if not isinstance(doc, dict):
            from ..oci.validate import kind_of

            raise ConfigError(f"{process_file}: expected a JSON object, got {kind_of(doc)}")
        try:
            return _checked(Process(doc, "process"))
        except ConfigError as e:
            raise ConfigError(f"{process_file}: {e}") from None
    if not args:
        raise ConfigError("exec needs a command (or --process)")
    import copy

    doc = copy.deepcopy(record.get("process") or {"cwd": "/"})
    doc["args"] = args
    doc["terminal"] = bool(tty)
    doc.pop("consoleSize", None)
    doc["env"] = list(doc.get("env") or []) + list(env)
    if cwd:
        doc["cwd"] = cwd
    if user:
        uid, _, gid = user.partition(":")
        try:
            doc["user"] = dict(doc.get("user") or {}, uid=int(uid), gid=int(gid or 0))
        except ValueError:
            raise ConfigError(f"--user {user!r}: expected uid[:gid] as numbers") from None
    if additional_gids:
        try:
            doc.setdefault("user", {})["additionalGids"] = [int(g) for g in additional_gids]
        except ValueError:
            raise ConfigError("--additional-gids expects numbers") from None
    if caps:
        c = doc.setdefault("capabilities", {})
        for k in ("bounding", "effective", "permitted", "ambient"):
            c[k] = list(dict.fromkeys(list(c.get(k) or []) + list(caps)))
    if no_new_privs:
        doc["noNewPrivileges"] = True
    return _checked(Process(doc, "process"))


def _checked(proc: Process) -> Process:
    """What `create` checks of the init's process, before anything is forked."""
    from .bundle import check_process

    check_process(proc)
    return proc


def exec_process(store: Store, cid: str, args: list[str], *, process_file=None, tty=False,
                 env=(), cwd=None, user=None, additional_gids=(), detach=False,
                 pid_file=None, console_socket=None, preserve_fds=0, caps=(),
                 no_new_privs=False) -> int:
    c = store.peek(cid)
    status = c.status()
    if status not in ("created", "running"):
        raise InvalidState(f"cannot exec in container {cid}: it is {status}")
    proc = build_process(c.record, args, process_file=process_file, tty=tty, env=env, cwd=cwd,
                         user=user, additional_gids=additional_gids, caps=caps,
                         no_new_privs=no_new_privs)
    if not proc.args:
        raise ConfigError("process.args must not be empty")
    if console_socket and not proc.terminal:
        raise ConfigError("--console-socket given but no terminal was asked for (-t)")
    if proc.terminal and detach and not console_socket:
        raise ConfigError("a detached exec with a terminal needs --console-socket")
    console_fd = ours = None
    if proc.terminal:
        if console_socket:
            from ..linux.pty import connect_unix

            try:
                console_fd = connect_unix(console_socket)
            except OSError as e:
                raise SangjaError(f"cannot connect to console socket {console_socket}: "
                                  f"{e.strerror}") from None
        else:
            import socket

            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            console_fd = theirs.detach()
    if not detach:
        lp.set_subreaper()
    init_pid = c.pid
    from .sealed_exec import sealed_helper

    helper_fd = sealed_helper()
    chan, child_chan = Channel.pair()
    child = os.fork()
    if child == 0:
        chan.close()
        _child(child_chan, c.record, init_pid, proc, console_fd, preserve_fds, helper_fd)
    child_chan.close()
    os.close(helper_fd)
    if console_fd is not None:
        os.close(console_fd)
    pid = None  # the child may fail before it says
    try:
        pid = chan.expect("pid")["pid"]
        msg = chan.recv()  # EOF: the process exec'd (our end closed on exec)
        if msg is not None and msg["t"] == "seccomp":
            from ..linux import seccomp

            sc = c.record["seccomp"]
            nfd = seccomp.take_fd(pid, msg["fd"])
            try:
                seccomp.notify_listener(sc["listenerPath"], nfd, c.oci_state() | {
                    "status": "running"}, sc.get("listenerMetadata") or "", pid=pid)
            finally:
                os.close(nfd)
            chan.send("seccompDone")
            msg = chan.recv()
        if msg is not None and msg["t"] == "error":
            code = msg.get("code", 1)
            err = SangjaError(msg.get("msg", "exec failed"))
            err.exit_code = code
            raise err
    finally:
        chan.close()
        if child != init_pid:
            try:
                os.waitpid(child, 0) if child != pid else None
            except ChildProcessError:
                pass
    if pid_file:
        from ..fs import write_atomic

        write_atomic(os.path.abspath(pid_file), str(pid), 0o644)
    master = None
    if ours is not None:
        from ..linux.pty import recv_fd

        master = recv_fd(ours.fileno())
        ours.close()
    if detach:
        return 0
    from .run import _forward_signals, _wait_for

    _forward_signals(pid)
    if master is not None:
        from .console import proxy

        proxy(master)
        os.close(master)
    return _wait_for(pid)


def _child(chan: Channel, record: dict, init_pid: int, proc: Process, console_fd,
           preserve_fds: int, helper_fd: int) -> None:
    """C1: enter the container; fork C2 inside its pid namespace; C2 execs (through the
    sealed sangja-exec: see sealed_exec.py)."""
    try:
        ps.close_extra_fds(preserve_fds, keep=tuple(
            fd for fd in (chan.rfd, chan.wfd, console_fd, helper_fd) if fd is not None))
        os.setsid()
        lp.set_dumpable(False)
        lp.set_pdeathsig(9)
        from .init import setup_console

        _preload_exec(proc)
        filt = None
        if record.get("seccomp"):
            from ..linux import seccomp
        if record.get("seccomp") and seccomp.enabled(record["seccomp"]):
            filt = seccomp.compile(record["seccomp"])  # before the chroot
        dirs = record.get("cgroup_dirs") or []
        if dirs:
            from ..linux.cgroups import Cgroup

            Cgroup.from_dirs(record.get("cgroup", ""), dirs).join(0)
        rootfd = os.open(f"/proc/{init_pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        # As runc: join the init's current namespaces of the types the container was made
        # with (new or joined), and no others. A namespace the container's program made
        # for itself later (`unshare -U` in the init) is not the container's: joining that
        # user namespace would drop our rights over all the others.
        types = record.get("namespaces")  # None: a record older than this field
        fds = {}
        for t in ns.JOIN_ORDER:
            if types is not None and t not in types:
                continue
            name = ns.TYPES[t][1]
            try:
                if ns.ns_inode(init_pid, t) == ns.ns_inode("self", t):
                    continue
                fds[t] = os.open(f"/proc/{init_pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
        if not lp.is_alive(init_pid, record.get("init_start")):
            raise SangjaError("container init exited")
        for t in ns.JOIN_ORDER:
            if t in fds:
                try:
                    ns.setns(fds[t], ns.TYPES[t][0])
                except OSError as e:
                    assert e.errno is not None  # syscall.check raises with the errno
                    raise SangjaError(f"cannot join the container's {t} namespace: "
                                      f"{os.strerror(e.errno)}") from None
                os.close(fds[t])
        os.fchdir(rootfd)
        os.chroot(".")
        os.close(rootfd)
        if "pid" in fds or "time" in fds:
            pid = os.fork()
            if pid:
                chan.send("pid", pid=pid)
                os._exit(0)
            os.setsid()
        else:
            chan.send("pid", pid=os.getpid())
        if proc.terminal:
            setup_console(console_fd, proc.console_size, proc.user.uid, console_mount=False)
        ps.apply_scheduling(proc.raw, None)
        ps.apply_rlimits(proc)
        env = ps.exec_env(proc)
        from .init import load_seccomp

        if filt is not None and not proc.no_new_privileges:
            load_seccomp(filt, chan)
        ps.drop_privileges(proc)
        ps.enter_cwd(proc.cwd)
        path = ps.lookup(proc.args[0], env, proc.cwd)
        if filt is not None and proc.no_new_privileges:
            load_seccomp(filt, chan)
        ps.reset_signals()
        lp.set_pdeathsig(0)
        ps.close_extra_fds(preserve_fds, keep=(chan.wfd, helper_fd))
        from .sealed_exec import execve

        execve(helper_fd, path, proc.args, env)  # the channel's EOF tells the runtime
    except BaseException as e:  # noqa: BLE001 - every failure must reach the parent
        from .init import describe

        try:
            chan.send("error", msg=describe(e), code=getattr(e, "exit_code", 1))
        except OSError:
            pass
    os._exit(1)


def _preload_exec(proc: Process) -> None:
    """Everything needed after setns: from then on we may be an unprivileged host uid (a
    user namespace) unable to read the runtime's files, and inside the container's root."""
    import _json  # noqa: F401 - sangja.jsonio

    from ..linux import capabilities, pty, sched  # noqa: F401
    from ..linux.syscall import nr
    from . import init, sealed_exec  # noqa: F401 - setup_console, load_seccomp, describe

    nr("close_range")
    nr("execveat")
    if proc.terminal:
        import socket  # noqa: F401
        import termios  # noqa: F401
