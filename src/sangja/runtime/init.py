"""The container side of `create`: runs in the forked child, in the order runtime-spec
gives. Everything here happens before the user's program; errors go back to the runtime
process over the sync channel as one line.

Process chain: the runtime forks C1, which joins/creates namespaces; a new pid (or time)
namespace only applies to children, so C1 forks C2, the container's PID 1, and exits.
C2 sets up the root filesystem, reports "created", and blocks opening the exec fifo until
`start` opens the other end; then it runs startContainer hooks and execs the program.
"""

from __future__ import annotations

import errno
import os

from ..linux import namespaces as ns
from ..linux import process as lp
from . import process_setup as ps
from . import rootfs


class InitJob:
    """Everything the child needs, prepared by the parent before fork."""

    def __init__(self, *, cid: str, spec, bundle: str, rootfs_path: str, fifo: str, chan, cgroup,
                 console_fd: int | None, no_pivot: bool, preserve_fds: int,
                 helper_fd: int, fd_sock: int | None = None):
        self.cid = cid
        self.spec = spec
        self.bundle = bundle
        self.rootfs = rootfs_path
        self.fifo = fifo
        self.chan = chan
        self.cgroup = cgroup
        self.console_fd = console_fd
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds
        self.helper_fd = helper_fd  # sealed sangja-exec: the last exec (sealed_exec.py)
        self.fd_sock = fd_sock  # idmapped mounts arrive here, made by the runtime
        self.idmap_fds: dict[int, int] = {}
        self.fifo_fd = -1  # opened by the child before it changes namespaces


def child_main(job: InitJob) -> None:
    """Entry point of C1 (never returns)."""
    code = 1
    try:
        preload(job.spec)  # before any namespace or identity change (see preload)
        # Only what we were given survives the fork: stdio, the caller's preserved fds, the
        # channel and the console socket (nothing of the runtime reaches the container).
        ps.close_extra_fds(job.preserve_fds, keep=tuple(
            fd for fd in (job.chan.rfd, job.chan.wfd, job.console_fd, job.fd_sock,
                          job.helper_fd) if fd is not None))
        os.setsid()
        lp.set_dumpable(False)  # no ptrace or /proc/PID/exe games before exec
        lp.set_pdeathsig(9)
        # The exec fifo lives in the runtime's mount namespace: a mount namespace joined by
        # path may have no such path (or another file there).
        job.fifo_fd = os.open(job.fifo, os.O_PATH | os.O_CLOEXEC)
        from .bundle import changed_namespaces

        flags = enter_namespaces(job.spec.linux.namespaces, defer=ns.CLONE_NEWCGROUP,
                                 map_user=lambda: _await_mapping(job),
                                 private=changed_namespaces(job.spec))
        if flags & (ns.CLONE_NEWPID | ns.CLONE_NEWTIME) or _joins(job, ("pid", "time")):
            pid = os.fork()
            if pid:
                job.chan.send("pid", pid=pid)
                os._exit(0)
            os.setsid()  # the init leads its own session (it may take a controlling tty)
        else:
            job.chan.send("pid", pid=os.getpid())
        container_init(job)
    except BaseException as e:  # noqa: BLE001 - every failure must reach the parent
        try:
            from .hooks import HookFailed

            job.chan.send("error", msg=describe(e), hook=isinstance(e, HookFailed))
        except OSError:
            pass
    os._exit(code)


def _joins(job: InitJob, types: tuple[str, ...]) -> bool:
    return any(n.type in types and n.path for n in job.spec.linux.namespaces)


def _await_mapping(job: InitJob) -> None:
    """A new user namespace: the runtime (privileged outside) writes our uid/gid maps and
    makes the idmapped mounts, which only it may."""
    job.chan.send("userns")
    if job.fd_sock is not None:
        from ..linux.pty import recv_fds
        from .create import idmap_indexes

        wanted = idmap_indexes(job.spec)
        job.idmap_fds = dict(zip(wanted, recv_fds(job.fd_sock, len(wanted)), strict=True))
        os.close(job.fd_sock)
        job.fd_sock = None
    job.chan.expect("mapped")


def become_root_in_userns() -> None:
    """Take uid/gid 0 of the user namespace we are in (when mapped), so the namespaces
    created next belong to it and we hold its capabilities for the setup."""
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError:
        pass  # root is not mapped: keep the credentials we have


def enter_namespaces(namespaces: list, defer: int = 0, map_user=None, private=()) -> int:
    """Join the namespaces given by path, then create the others in one unshare (except
    those in `defer`, created later by the caller). A new user namespace comes first, so
    that every other namespace is owned by it; `map_user` gets its mappings written.
    A type in `private` (what the container changes) must not turn out to be the host's:
    the path was checked before the fork, but it may name another namespace now (a
    reused pid, a file mounted over)."""
    by_type = {n.type: n for n in namespaces}
    user = by_type.get("user")
    if user is not None and not user.path:
        ns.unshare(ns.CLONE_NEWUSER)
        if map_user is not None:
            map_user()
        become_root_in_userns()
    for t in ns.JOIN_ORDER:
        n = by_type.get(t)
        if n is not None and n.path:
            host = ns.own(t) if t in private else None
            try:
                joined = ns.join(n.path, t)
            except OSError as e:
                raise OSError(e.errno, f"join {t} namespace {n.path}: {e.strerror}") from None
            if joined == host:
                raise OSError(errno.EINVAL, f"join {t} namespace {n.path}: it is the host's, "
                              "which the container would change")
            if t == "user":
                become_root_in_userns()
    flags = 0
    for n in namespaces:
        if not n.path:
            flags |= ns.TYPES[n.type][0]
    ns.unshare(flags & ~(defer | ns.CLONE_NEWUSER))
    return flags


def describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        text = e.strerror
        if e.filename and str(e.filename) not in text:
            text += f": {e.filename}"
        return text
    return str(e) or e.__class__.__name__


def preload(spec) -> None:
    """Import now everything the init will need. After this the init may lose access to
    the runtime's files: inside a user namespace its root is an unprivileged host uid
    (the source tree may be 0700), and after pivot_root the host's library is gone."""
    import _json  # noqa: F401 - the sync channel speaks JSON (sangja.jsonio)

    from ..linux import capabilities, mounts, paths, pty, sched, syscall, sysctl  # noqa: F401
    from ..linux.syscall import nr
    from . import bundle, create, hooks, process_setup, rootfs, sealed_exec  # noqa: F401

    nr("close_range")
    nr("execveat")
    if spec.process.terminal or any(n.type == "user" for n in spec.linux.namespaces):
        import socket  # noqa: F401 - console socket, idmapped mount fds
        import termios  # noqa: F401
    if spec.hooks["startContainer"] or spec.hooks["createContainer"]:
        import subprocess  # noqa: F401
    if (spec.raw.get("linux") or {}).get("seccomp"):
        from ..linux import seccomp  # noqa: F401


def container_init(job: InitJob) -> None:
    """C2: the container's init until exec."""
    spec = job.spec
    filt = None
    sc = (spec.raw.get("linux") or {}).get("seccomp")
    if sc:
        from ..linux import seccomp  # imported by preload()

        if spec.seccomp_filter is not None:  # built by the validation before the fork
            filt = spec.seccomp_filter
        elif seccomp.enabled(sc):
            filt = seccomp.compile(sc)  # before pivot_root: dlopen libseccomp
    proc = spec.process
    chan = job.chan
    types = {n.type: n for n in spec.linux.namespaces}
    os.chdir(job.bundle)
    rootfs.prepare_root(job.rootfs, spec.linux.rootfs_propagation)
    new_cgroupns = "cgroup" in types and not types["cgroup"].path
    entered: list[bool] = []

    def enter_cgroup() -> None:
        """The runtime moves us into the container's cgroup while we mount (a cgroup move
        can wait ~10 ms for the kernel); a new cgroup namespace must start from there."""
        if not entered:
            chan.expect("cgroup")
            if new_cgroupns:
                ns.unshare(ns.CLONE_NEWCGROUP)
            entered.append(True)

    ctx = rootfs.MountContext(job.rootfs, job.bundle,
                              job.cgroup.paths if job.cgroup is not None else [],
                              new_cgroupns, enter_cgroup, job.idmap_fds)
    rootfs.mount_all(ctx, spec.mounts)
    rootfs.create_devices(ctx, spec.linux.devices, not rootfs.dev_is_bind(spec.mounts),
                          bind=("user" in types))
    os.close(rootfs.mkdir_all_in_root(ctx.rootfd, proc.cwd))  # runc creates a missing cwd
    ctx.close()
    enter_cgroup()
    fifo = job.fifo_fd
    hooks = spec.hooks
    if hooks["prestart"] or hooks["createRuntime"] or hooks["createContainer"]:
        chan.send("hooks")
        state = chan.expect("state")["state"]
        from .hooks import run_hooks

        run_hooks(hooks["createContainer"], "createContainer", state, job.helper_fd)
    if job.no_pivot:
        rootfs.chroot_into(job.rootfs)
    else:
        rootfs.pivot(job.rootfs)
    if spec.linux.rootfs_propagation in ("shared", "rshared"):
        rootfs.set_root_propagation(spec.linux.rootfs_propagation)
    if proc.terminal:
        setup_console(job.console_fd, proc.console_size, proc.user.uid)
    elif job.console_fd is not None:
        os.close(job.console_fd)
    if spec.hostname:
        _sethostname(spec.hostname, "sethostname")
    if spec.domainname:
        _sethostname(spec.domainname, "setdomainname")
    if spec.linux.sysctl:
        from ..linux.sysctl import apply

        apply(spec.linux.sysctl)
    for path in spec.linux.readonly_paths:
        rootfs.make_readonly(path)
    for path in spec.linux.masked_paths:
        rootfs.mask(path)
    if spec.root_readonly:
        rootfs.readonly_root()
    ps.set_oom_score_adj(proc.oom_score_adj)
    ps.apply_scheduling(proc.raw, spec.linux.raw.get("personality"))
    ps.apply_rlimits(proc)
    env = ps.exec_env(proc)
    if filt is not None and not proc.no_new_privileges:
        load_seccomp(filt, chan)  # needs CAP_SYS_ADMIN: before the identity switch
    ps.drop_privileges(proc)
    ps.enter_cwd(proc.cwd)
    path = ps.lookup(proc.args[0], env, proc.cwd)
    if filt is not None and proc.no_new_privileges:
        load_seccomp(filt, chan)  # as late as the channel allows (runc)
    chan.send("created")
    state = chan.expect("go")["state"]
    chan.close()
    lp.set_pdeathsig(0)  # from here on the init outlives the `create` command
    wfd = os.open(f"/proc/self/fd/{fifo}", os.O_WRONLY | os.O_CLOEXEC)  # blocks until start
    os.close(fifo)
    try:
        if hooks["startContainer"]:
            from .hooks import run_hooks

            run_hooks(hooks["startContainer"], "startContainer", state, job.helper_fd)
        ps.reset_signals()
        ps.close_extra_fds(job.preserve_fds, keep=(wfd, job.helper_fd))
        from .sealed_exec import execve

        execve(job.helper_fd, path, proc.args, env)  # the fifo's EOF tells `start`
    except BaseException as e:  # noqa: BLE001 - reported to `start` through the fifo
        from .sync import error_line

        os.write(wfd, error_line(describe(e), getattr(e, "exit_code", 1)))
        os._exit(1)


def load_seccomp(filt, chan) -> None:
    fd = filt.load()
    filt.release()
    if fd is not None:
        chan.send("seccomp", fd=fd)
        chan.expect("seccompDone")
        os.close(fd)


def setup_console(console_fd: int | None, size, uid: int, console_mount: bool = True) -> None:
    """Open a pty in the container's devpts, give the master to the console socket and
    make the slave our controlling terminal (and, for the init, /dev/console)."""
    if console_fd is None:
        raise OSError("process.terminal is true but there is no console socket")
    try:
        _console(console_fd, size, uid, console_mount)
    except OSError as e:
        raise OSError(e.errno, f"terminal setup: {e.strerror}") from None


def _console(console_fd: int, size, uid: int, console_mount: bool) -> None:
    from ..linux import mounts, pty

    master, slave = pty.open_pty()
    if size and size[0] and size[1]:
        pty.set_winsize(master, size[0], size[1])
    os.fchown(slave, uid, -1)
    if console_mount:
        if not os.path.exists("/dev/console"):
            open("/dev/console", "a").close()
        mounts.mount(f"/proc/self/fd/{slave}", "/dev/console", None, mounts.MS_BIND)
    pty.send_fd(console_fd, master)
    os.close(master)
    os.close(console_fd)
    pty.make_controlling_tty(slave)


def _sethostname(name: str, call: str) -> None:
    from ..linux.syscall import check, libc

    data = name.encode()
    check(getattr(libc, call)(data, len(data)), call)
