"""`exec`: run another process in a running container, with stdio of its own.

The process never gets the caller's file descriptors (a container process holding the
operator's terminal could read their later keystrokes; holding a file they redirected
into, it could write there, or reopen it through /proc/self/fd, long after `exec`
returned). As with Docker and podman:

- without a terminal, it gets fresh pipes for stdout and stderr, and for stdin with
  `interactive` (else /dev/null); we copy them to and from the caller's fds while it runs;
- with `tty`, a fresh pty from the container's own devpts (the runtime makes it and sends
  us the master through a console socket); the caller's terminal is raw while we relay
  (with `interactive`), its size is passed on now and at every SIGWINCH, and restored after;
- `detach`: /dev/null for all three (a pty that nobody reads with `tty`), and we return.

When the process exits we copy what it wrote before its exit and stop: a background
process it left behind keeps its end of the pipes or the pty, but nothing reads the
caller's stdin for it any more and nothing it writes later reaches the caller.

The runtime's `exec` runs detached (it returns once the process runs, runc's contract:
the process gets the runtime's own fds 0-2, here ours for it) while we are a child
subreaper, so the process becomes our child: we wait for it and its exit code is ours
(128+N for signal N). Signals we get (INT, TERM, HUP, QUIT, USR1, USR2, ALRM) are
forwarded to it. A process that cannot start gives Docker's codes: 127 not found, 126
not runnable, 125 other runtime errors.

Each running exec is a session known to the engine, as Docker's exec instances: a record
(id of 64 hex digits, container, the process's pid and start time, tty, command) in the
container's run directory (`Paths.exec_records_dir`) from the moment the process runs
until it ends, so that `inspect` lists the container's `ExecIDs`. A record outlives a
killed caller or a detached exec; it counts only while its process (that pid with that
start time) lives, and a stale one is removed when the records are next read. The pty of
a running `tty` session is held in this process (`_SESSIONS`), where `resize_exec` sets
its size (the API's POST /exec/{id}/resize; the kernel sends the process SIGWINCH); that
of a detached one by a keeper process the record names (`resize_detached`).
"""

from __future__ import annotations

import _thread
import os
import stat
import time

from sangja.records import dataclass, field

from ..errors import SangjaError

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from signal import _HANDLER  # typeshed's name for what signal.signal returns

_CHUNK = 65536
_PTY_DRAIN_MAX = 1 << 20  # bytes read from the pty after the exit, at most
FORWARDED_SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2",
                     "SIGALRM")


class ExecError(SangjaError):
    """The process could not be started; `engine_exit_code` is Docker's code for it."""

    def __init__(self, message: str, code: int = 125):
        super().__init__(message)
        self.engine_exit_code = code


@dataclass
class ExecOptions:
    args: list[str]
    interactive: bool = False
    tty: bool = False
    detach: bool = False
    env: list[str] = field(default_factory=list)  # NAME=VALUE
    user: str | None = None  # name or uid, [:group or gid], as the container sees them
    workdir: str | None = None
    console_size: tuple[int, int] | None = None  # (rows, columns); None: the caller's terminal's
    exec_id: str | None = None  # the session's id (64 hex digits); None: a new one


def exec_in_container(eng, ref: str, opts: ExecOptions, stdio: tuple[int, int, int] = (0, 1, 2)
                      ) -> int:
    """Run `opts.args` in the running container `ref`, relaying it to and from the fds
    `stdio` (the caller's stdin, stdout, stderr) until it exits; its exit code (0 at once
    with `detach`)."""
    from .status import PAUSED, RUNNING, live_state

    row = eng.get(ref)
    state = live_state(row)
    if state == PAUSED:  # docker's words and exit code (a daemon error: 1)
        raise ExecError(f"Container {row['id']} is paused, unpause the container before "
                        "exec", 1)
    if state != RUNNING:
        raise ExecError(f"Container {row['id']} is not running", 1)
    if not opts.args:
        raise ExecError("exec needs a command")
    cid = row["id"]
    size = (opts.console_size or _terminal_size(stdio)) if opts.tty else None
    process = exec_process_spec(eng, row, opts, console_size=size)
    runtime = eng.runtime(row)
    session = _Session.open(opts.exec_id, eng.paths.exec_records_dir(cid), cid, opts)
    try:
        with _ExecDir(eng.paths.run_dir(cid), session) as d:
            from ..fs import write_atomic
            from ..jsonio import dumps

            write_atomic(d.process_file, dumps(process), durable=False)
            argv = runtime.exec_argv(cid, process_file=d.process_file, pid_file=d.pid_file,
                                     log=d.log,
                                     console_socket=d.console_name if opts.tty else None)
            if opts.detach:
                return _detached(runtime.name, argv, d, opts.tty)
            if opts.tty:
                return _with_terminal(runtime.name, argv, d, opts.interactive, stdio)
            return _with_pipes(runtime.name, argv, d, opts.interactive, stdio)
    finally:
        session.close(keep_record=opts.detach)


def exec_captured(eng, row, args: list[str], timeout: float, limit: int,
                  stop_fd: int | None = None) -> tuple[int | None, str]:
    """Run `args` in the running container of `row` (its user, environment, working
    directory) with stdout and stderr into one pipe: (exit code, the first `limit` bytes
    of the output as text). Past `timeout` seconds the process is killed and the code is
    None; once `stop_fd` is readable, too, and ExecError says it was stopped. For
    healthchecks (sangja.engine.health)."""
    import select

    cid = row["id"]
    process = exec_process_spec(eng, row, ExecOptions(args=list(args)))
    runtime = eng.runtime(row)
    kept = bytearray()
    with _ExecDir(eng.paths.run_dir(cid)) as d:
        from ..fs import write_atomic
        from ..jsonio import dumps

        write_atomic(d.process_file, dumps(process), durable=False)
        argv = runtime.exec_argv(cid, process_file=d.process_file, pid_file=d.pid_file,
                                 log=d.log, console_socket=None)
        r, w = os.pipe2(os.O_CLOEXEC)
        null = _devnull()
        child = _Child()
        try:
            try:
                pid = _start(runtime.name, argv, d, (null, w, w))
            finally:
                os.close(w)
                os.close(null)
            pidfd = child.adopt(pid)
            os.set_blocking(r, False)
            deadline = time.monotonic() + timeout
            timed_out = stopped = False
            stop = [] if stop_fd is None else [stop_fd]
            try:
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0 or stopped:
                        timed_out = not stopped
                        from ..linux.process import kill_tree

                        kill_tree(pid)  # and what it started: a probe past its time ends
                        break
                    ready, _, _ = select.select([pidfd, r, *stop], [], [], left)
                    if stop_fd in ready:
                        stopped = True
                        continue
                    if r in ready and not _read_into(r, kept, limit):
                        r_done = True
                    else:
                        r_done = False
                    if pidfd in ready:
                        _read_into(r, kept, limit)  # what it wrote before it exited
                        break
                    if r_done:  # EOF: only the exit is left to wait for
                        select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))
            except BaseException:  # interrupted (^C by hand): the process does not stay
                from ..linux.process import kill_tree

                kill_tree(pid)
                child.exit_code()
                raise
            finally:
                os.close(pidfd)
            code = child.exit_code()
        finally:
            child.close()
            os.close(r)
    if stopped:
        raise ExecError("the process was stopped")
    text = bytes(kept[:limit]).decode("utf-8", "replace")
    return (None if timed_out else code), text


def _read_into(fd: int, buf: bytearray, limit: int, chunks: int = 16) -> bool:
    """Read what `fd` has now, keeping up to `limit` bytes; False at EOF. At most `chunks`
    reads: writers that refill the pipe as fast as it is read must not keep the caller
    from its deadline."""
    for _ in range(chunks):
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return True
        except InterruptedError:
            continue
        if not data:
            return False
        if len(buf) < limit:
            buf += data[: limit - len(buf)]
    return True


def exec_process_spec(eng, row, opts: ExecOptions,
                      console_size: tuple[int, int] | None = None) -> dict:
    """The OCI process to run: the container's own (capabilities, rlimits, ...), with the
    command, terminal (of `console_size` rows and columns from its start), environment
    (Docker's rule: a variable given again replaces the container's), working directory
    and user of `opts`. A user is resolved in the container's /etc/passwd and /etc/group
    as for `run -u`: its own supplementary groups (and the container's --group-add), never
    those of the container's user."""
    from ..jsonio import load_file

    cid = row["id"]
    try:
        spec = load_file(os.path.join(eng.paths.container_dir(cid), "config.json"))
    except (OSError, ValueError) as e:
        raise ExecError(f"cannot read the configuration of container {cid}: {e}") from None
    proc = dict(spec.get("process") or {})
    proc["args"] = list(opts.args)
    proc["terminal"] = bool(opts.tty)
    proc.pop("consoleSize", None)
    if opts.tty and console_size:
        proc["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    env = list(proc.get("env") or [])
    for var in opts.env:
        name = var.partition("=")[0]
        env = [x for x in env if x.partition("=")[0] != name]
        env.append(var)
    if opts.tty and not any(x.startswith("TERM=") for x in env):
        env.append("TERM=xterm")  # Docker's exec -t
    proc["env"] = env
    if opts.workdir:
        proc["cwd"] = opts.workdir
    if opts.user:
        from .users import resolve

        who = resolve(eng.snapshots().merged_dir(cid), opts.user, eng.options(row).group_add)
        proc["user"] = dict(proc.get("user") or {}, uid=who.uid, gid=who.gid,
                            additionalGids=who.additional_gids)
    return proc


# ---------------------------------------------------------------------------- sessions


class ExecNotRunning(ExecError):
    """No such exec session runs in this process (it ended, or never started here)."""


_SESSIONS: dict[str, _Session] = {}  # the running exec sessions of this process, by id
_COND: threading.Condition | None = None  # guards _SESSIONS and the sessions' terminals
_COND_MADE = _thread.allocate_lock()  # threading is imported only where sessions run


def _cond() -> threading.Condition:
    global _COND
    with _COND_MADE:
        if _COND is None:
            import threading

            _COND = threading.Condition()
        return _COND


def new_exec_id() -> str:
    """An exec session's id: 64 hex digits, as Docker's."""
    return os.urandom(32).hex()


def _valid_id(exec_id: str) -> bool:
    return len(exec_id) == 64 and all(c in "0123456789abcdef" for c in exec_id)


class _Session:
    """One running exec: its record in the container's run directory (written once its
    process runs) and, with a tty, the pty master we hold for it."""

    def __init__(self, exec_id: str, records: str, cid: str, opts: ExecOptions):
        self.id, self.records, self.cid, self.opts = exec_id, records, cid, opts
        self.record = os.path.join(records, exec_id + ".json")
        self.pid = 0
        self.master = -1  # the pty master while we relay it; -1 before and after
        self.ready = False  # resize can be answered: the process runs (and we hold its pty)
        self.doc: dict = {}  # the record

    @classmethod
    def open(cls, exec_id: str | None, records: str, cid: str, opts: ExecOptions
             ) -> _Session:
        if exec_id is None:
            exec_id = new_exec_id()
        elif not _valid_id(exec_id):
            raise ExecError(f"invalid exec id {exec_id!r}: 64 hex digits are expected")
        try:
            os.makedirs(records, 0o700, exist_ok=True)
        except OSError as e:
            raise ExecError(f"cannot exec: {records}: {e.strerror}") from None
        session = cls(exec_id, records, cid, opts)
        cond = _cond()
        with cond:
            if exec_id in _SESSIONS:
                raise ExecError(f"exec {exec_id} is already running")
            _SESSIONS[exec_id] = session
            cond.notify_all()
        return session

    def running(self, pid: int) -> None:
        """The process runs as `pid`: record the session."""
        from ..linux.process import start_time

        self.pid = pid
        self.doc = {"ID": self.id, "ContainerID": self.cid, "Pid": pid,
                    "PidStart": start_time(pid), "Tty": self.opts.tty,
                    "Cmd": list(self.opts.args), "Detached": self.opts.detach,
                    "Started": time.time(), "Caller": os.getpid()}
        self._write()
        if not self.opts.tty:
            self._set(ready=True)

    def kept_by(self, keeper: int) -> None:
        """A detached exec's pty master is held by `keeper` (its fd _KEEPER_FD)."""
        from ..linux.process import start_time

        self.doc["Terminal"] = {"Pid": keeper, "PidStart": start_time(keeper),
                                "Fd": _KEEPER_FD}
        self._write()

    def _write(self) -> None:
        from ..fs import write_atomic
        from ..jsonio import dumps

        try:
            write_atomic(self.record, dumps(self.doc), durable=False)
        except OSError:  # the process runs: it is not stopped for a record's sake
            pass

    def hold_terminal(self, master: int) -> None:
        """We relay the pty `master` (-1: no longer)."""
        self._set(master=master, ready=self.ready or master >= 0)

    def _set(self, **fields) -> None:
        cond = _cond()
        with cond:
            for k, v in fields.items():
                setattr(self, k, v)
            cond.notify_all()

    def close(self, keep_record: bool) -> None:
        """The exec returns: forgotten here; its record goes unless the process (detached)
        still runs, in which case whoever next reads the records removes it after."""
        cond = _cond()
        with cond:
            _SESSIONS.pop(self.id, None)
            self.master = -1
            cond.notify_all()
        if not (keep_record and self.pid):
            try:
                os.unlink(self.record)
            except OSError:
                pass


def resize_exec(exec_id: str, rows: int, cols: int, timeout: float = 10,
                expected: Callable[[], bool] | None = None) -> None:
    """Set the terminal size of the exec session `exec_id` that runs in this process (the
    kernel sends its process SIGWINCH); nothing for a session without a tty (Docker's).
    A session that is starting is waited for, up to `timeout` seconds while `expected()`
    says it is still to come (Docker's wait for the exec to start); ExecNotRunning if
    none is or comes."""
    from ..linux.pty import set_winsize

    if not (0 <= rows <= 0xFFFF and 0 <= cols <= 0xFFFF):
        raise ExecError(f"invalid terminal size {rows}x{cols}")
    deadline = time.monotonic() + timeout
    cond = _cond()
    with cond:
        while True:
            session = _SESSIONS.get(exec_id)
            if session is not None and session.ready:
                break
            left = deadline - time.monotonic()
            if left <= 0 or (session is None and expected is not None and not expected()):
                raise ExecNotRunning(f"exec {exec_id} is not running")
            cond.wait(min(left, 0.1))
        if session.master < 0:
            return  # no tty, or it ended: nothing to size
        try:
            set_winsize(session.master, rows, cols)
        except OSError as e:
            raise ExecError(f"cannot resize exec {exec_id}: {e.strerror}") from None


def resize_detached(record: dict, rows: int, cols: int) -> None:
    """Set the terminal size of a detached exec (`-d -t`) from its record (one of
    running_exec_records): its pty master, copied out of the process that keeps it
    (pidfd_getfd; that pid with that start time, and the fd must be a pty master).
    ExecNotRunning when that process is gone."""
    from ..linux.process import start_time
    from ..linux.pty import set_winsize
    from ..linux.syscall import libc

    if not (0 <= rows <= 0xFFFF and 0 <= cols <= 0xFFFF):
        raise ExecError(f"invalid terminal size {rows}x{cols}")
    exec_id = record.get("ID")
    keeper = record.get("Terminal")
    if not isinstance(keeper, dict) or not isinstance(keeper.get("Pid"), int):
        raise ExecError(f"exec {exec_id}: no terminal of it is known")
    try:
        pidfd = os.pidfd_open(keeper["Pid"])
    except OSError:
        raise ExecNotRunning(f"exec {exec_id} is not running") from None
    try:
        if start_time(keeper["Pid"]) != keeper.get("PidStart"):  # checked once pinned
            raise ExecNotRunning(f"exec {exec_id} is not running")
        master = libc.pidfd_getfd(pidfd, _KEEPER_FD, 0)
        if master < 0:
            raise ExecNotRunning(f"exec {exec_id} is not running")
    finally:
        os.close(pidfd)
    try:
        st = os.fstat(master)
        if not (stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 5
                and os.minor(st.st_rdev) == 2):  # a ptmx, nothing else is sized
            raise ExecError(f"exec {exec_id}: its terminal keeper holds no pty master")
        set_winsize(master, rows, cols)
    except OSError as e:
        raise ExecError(f"cannot resize exec {exec_id}: {e.strerror}") from None
    finally:
        os.close(master)


def session_pid(exec_id: str) -> int:
    """The pid of this process's running exec session `exec_id`; 0 if none."""
    cond = _cond()
    with cond:
        session = _SESSIONS.get(exec_id)
        return session.pid if session is not None else 0


def running_exec_ids(paths, cid: str) -> list[str]:
    """The ids of the container's running exec sessions (any process's), oldest first."""
    return [r["ID"] for r in running_exec_records(paths, cid)]


def running_exec_records(paths, cid: str) -> list[dict]:
    """The records of the container's running exec sessions (ID, ContainerID, Pid, Tty,
    Cmd, Detached, ...), oldest first. A record whose process is gone (its caller was
    killed, a detached exec ended) is removed, never returned."""
    from ..jsonio import load_file

    where = paths.exec_records_dir(cid)
    try:
        names = os.listdir(where)
    except OSError:
        return []
    found = []
    for name in names:
        exec_id, _, ext = name.partition(".")
        if ext != "json" or not _valid_id(exec_id):  # write_atomic's temp files too
            continue
        path = os.path.join(where, name)
        try:
            record = load_file(path)
        except (OSError, ValueError):
            continue  # unreadable: not shown (a rename makes it whole, never half)
        if isinstance(record, dict) and record.get("ID") == exec_id and _process_lives(record):
            found.append(record)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass
    found.sort(key=lambda r: r.get("Started") or 0)
    return found


def _process_lives(record: dict) -> bool:
    """The record's process still runs: that pid, started then, not a zombie."""
    from ..linux.process import proc_state, start_time

    pid, started = record.get("Pid"), record.get("PidStart")
    if not isinstance(pid, int) or pid <= 0 or started is None:
        return False
    try:
        return start_time(pid) == started and proc_state(pid) not in (None, "Z", "X")
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------------------- start


class _ExecDir:
    """A private directory for one exec's pid file, runtime log and console socket, in the
    container's run directory; removed afterwards."""

    console_name = "console.sock"  # relative to the runtime's cwd: sun_path is 107 bytes

    def __init__(self, parent: str, session: _Session | None = None):
        self.parent = parent
        self.session = session  # told the process's pid once it runs

    def __enter__(self) -> _ExecDir:
        self.path = os.path.join(self.parent, f"exec-{os.urandom(6).hex()}")
        try:
            os.mkdir(self.path, 0o700)
        except OSError as e:
            raise ExecError(f"cannot exec: {self.parent}: {e.strerror}") from None
        self.pid_file = os.path.join(self.path, "pid")
        self.process_file = os.path.join(self.path, "process.json")
        self.log = os.path.join(self.path, "runtime.log")
        self.listener = None
        return self

    def listen(self):
        """The console socket the runtime sends the pty master to."""
        import socket

        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dfd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self.listener.bind(f"/proc/self/fd/{dfd}/{self.console_name}")
        finally:
            os.close(dfd)
        self.listener.listen(1)
        return self.listener

    def __exit__(self, *exc) -> None:
        if self.listener is not None:
            self.listener.close()
        for name in os.listdir(self.path):  # only files we (and the runtime) made
            try:
                os.unlink(os.path.join(self.path, name))
            except OSError:
                pass
        try:
            os.rmdir(self.path)
        except OSError:
            pass


def _start(name: str, argv: list[str], d: _ExecDir, stdio: tuple[int, int, int]) -> int:
    """Run the runtime's detached exec with `stdio` as its (and so the process's) fds 0-2;
    the pid of the process, which is running when this returns."""
    import subprocess

    try:
        r = subprocess.run(argv, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], cwd=d.path,
                           check=False)
    except OSError as e:
        raise ExecError(f"cannot run {argv[0]}: {e.strerror}") from None
    if r.returncode != 0:
        from .runtimes import exit_code_for, last_log_error

        msg = last_log_error(d.log) or f"exit status {r.returncode}"
        import re

        started = re.search(r"""exec: ['"](.*?)['"]: (.+?)\s*$""", msg)
        if started and exit_code_for(msg) != 125:
            # the program did not start (sangja-runtime's or runc's words): Docker's words
            # and code (126, for any reason)
            raise ExecError("OCI runtime exec failed: exec failed: unable to start container "
                            f'process: exec: "{started[1]}": {started[2]}: unknown', 126)
        raise ExecError(f"{name} exec: {msg}", 126)
    try:
        with open(d.pid_file) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError) as e:
        raise ExecError(f"{name} exec: no pid of the process: {e}") from None
    if d.session is not None:
        d.session.running(pid)
    return pid


def _devnull() -> int:
    return os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)


def _detached(name: str, argv: list[str], d: _ExecDir, tty: bool) -> int:
    null = _devnull()
    try:
        listener = d.listen() if tty else None
        _start(name, argv, d, (null, null, null))
    finally:
        os.close(null)
    if listener is not None:
        keeper = _keep_terminal(_receive_master(name, listener))
        if d.session is not None and keeper:
            d.session.kept_by(keeper)
    return 0


def _receive_master(name: str, listener) -> int:
    from ..linux.pty import recv_fd

    listener.settimeout(10)
    try:
        conn, _ = listener.accept()
    except OSError as e:
        raise ExecError(f"{name} exec: no terminal came through the console socket: "
                        f"{e}") from None
    try:
        return recv_fd(conn.fileno())
    finally:
        conn.close()


def _keep_terminal(master: int) -> int:
    """`-d -t`: nobody reads the pty, but its master must stay open or the process's
    terminal hangs up. A detached grandchild holds it (as its fd 3, where resize_detached
    finds it), discarding the output, until the last process on the terminal closes it.
    Its pid (0 if it could not be told)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setsid()
            keeper = os.fork()
            if keeper == 0:
                import fcntl

                from ..linux.process import close_range

                high = fcntl.fcntl(master, fcntl.F_DUPFD_CLOEXEC, 10)  # out of 0-3's way
                null = _devnull()
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                keep = os.dup2(high, _KEEPER_FD, inheritable=False)
                close_range(4)
                while True:
                    try:
                        if not os.read(keep, _CHUNK):
                            break
                    except InterruptedError:
                        continue
                    except OSError:
                        break
            else:
                os.write(w, str(keeper).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.close(master)
    os.waitpid(pid, 0)
    try:
        told = os.read(r, 32)
    finally:
        os.close(r)
    return int(told) if told.isdigit() else 0


_KEEPER_FD = 3  # the pty master's fd in the process that keeps a detached exec's terminal


# ---------------------------------------------------------------------------- relays


class _Child:
    """The exec'd process, our child (we are a subreaper while the runtime starts it):
    signals forwarded to it, its exit seen through a pidfd, its status collected."""

    def __init__(self) -> None:
        self.pid = 0
        from ..linux import process as lp

        self._was_subreaper = lp.is_subreaper()
        self._handlers: dict = {}
        if not self._was_subreaper:
            lp.set_subreaper()

    def adopt(self, pid: int) -> int:
        """Start watching `pid`; a pidfd that is readable once it exited."""
        self.pid = pid
        try:
            return os.pidfd_open(pid)
        except OSError as e:
            raise ExecError(f"cannot watch the exec'd process {pid}: {e.strerror}") from None

    def forward_signals(self) -> None:
        from ..linux import signals as signal

        def forward(sig, _frame):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

        for name in FORWARDED_SIGNALS:
            sig = getattr(signal, name)
            try:
                self._handlers[sig] = signal.signal(sig, forward)
            except ValueError:  # not the main thread: no forwarding
                break

    def exit_code(self) -> int:
        from ..linux import process as lp

        while True:
            try:
                _, status = os.waitpid(self.pid, 0)
                return lp.exit_status(status)
            except InterruptedError:
                continue
            except ChildProcessError:  # not ours after all: its status is lost
                return 255

    def close(self) -> None:
        from ..linux import signals as signal

        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)
        if not self._was_subreaper:
            from ..linux import process as lp

            lp.set_subreaper(False)


def _with_pipes(name: str, argv: list[str], d: _ExecDir, interactive: bool,
                stdio: tuple[int, int, int]) -> int:
    ours: list[int] = []
    theirs: list[int] = []

    def close_stdin() -> None:  # the caller's stdin ended: EOF for the process
        os.close(ours.pop(0))

    try:
        if interactive:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
            theirs.append(in_r)
            ours.append(in_w)
        else:
            in_r = _devnull()
            theirs.append(in_r)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        ours += [out_r, err_r]
        theirs += [out_w, err_w]
        child = _Child()
        try:
            pid = _start(name, argv, d, (in_r, out_w, err_w))
            while theirs:
                os.close(theirs.pop())
            pidfd = child.adopt(pid)
            try:
                child.forward_signals()
                relay = _Relay(pidfd, {out_r: stdio[1], err_r: stdio[2]}, _pipe_bytes)
                if interactive:
                    relay.feed(stdio[0], in_w, close_stdin)
                relay.run()
            finally:
                os.close(pidfd)
            return child.exit_code()
        finally:
            child.close()
    finally:
        for fd in ours + theirs:
            os.close(fd)


def _with_terminal(name: str, argv: list[str], d: _ExecDir, interactive: bool,
                   stdio: tuple[int, int, int]) -> int:
    from ..runtime.console import RawMode

    null = _devnull()
    master = -1
    child = _Child()
    try:
        listener = d.listen()
        pid = _start(name, argv, d, (null, null, null))
        pidfd = child.adopt(pid)
        try:
            master = _receive_master(name, listener)
            if d.session is not None:
                d.session.hold_terminal(master)
            child.forward_signals()
            relay = _Relay(pidfd, {master: stdio[1]}, lambda _: _PTY_DRAIN_MAX)
            if interactive:
                relay.feed(stdio[0], master, lambda: relay.send(b"\x04"))
            with _WindowSize(master, stdio), RawMode(stdio[0] if interactive else -1):
                relay.run()
        finally:
            os.close(pidfd)
        return child.exit_code()
    finally:
        child.close()
        os.close(null)
        if master >= 0:
            if d.session is not None:
                d.session.hold_terminal(-1)  # no resize on a closed (or reused) fd number
            os.close(master)


def _terminal_size(stdio: tuple[int, int, int]) -> tuple[int, int] | None:
    """(rows, columns) of the caller's terminal (its stdout's, else its stdin's)."""
    from ..linux.pty import get_winsize

    for fd in (stdio[1], stdio[0]):
        size = get_winsize(fd)
        if size and size[0] and size[1]:
            return size
    return None


class _WindowSize:
    """The pty gets the caller's terminal size now and at every SIGWINCH meanwhile."""

    def __init__(self, master: int, stdio: tuple[int, int, int]):
        self.master, self.stdio = master, stdio
        self.old: _HANDLER = None

    def resize(self, *_) -> None:
        from ..linux.pty import set_winsize

        size = _terminal_size(self.stdio)
        if size:
            set_winsize(self.master, *size)

    def __enter__(self) -> _WindowSize:
        from ..linux import signals as signal

        self.resize()
        try:
            self.old = signal.signal(signal.SIGWINCH, self.resize)
        except ValueError:  # not the main thread: the size is set once
            pass
        return self

    def __exit__(self, *exc) -> None:
        from ..linux import signals as signal

        if self.old is not None:
            signal.signal(signal.SIGWINCH, self.old)


class _Relay:
    """Copies the process's output (our non-blocking read ends) to the caller's fds, and
    the caller's stdin to the process, until the pidfd says it exited; then copies what
    its outputs held at that moment (`held(fd)` bytes at most) and stops.

    Stdin is read only when the last chunk went out (bounded memory, and a process that
    does not read holds back the caller's input). Writes to the caller's fds block: their
    flags are the caller's, not ours to change."""

    def __init__(self, pidfd: int, outputs: dict[int, int], held):
        self.pidfd = pidfd
        self.sink: dict[int, int | None] = dict(outputs)
        self.open = set(outputs)
        self.held = held
        self.src: int | None = None
        self.dst = -1
        self.on_eof: Callable[[], object] | None = None
        self.pending = b""
        for fd in outputs:
            os.set_blocking(fd, False)

    def feed(self, src: int, dst: int, on_eof: Callable[[], object]) -> None:
        """Copy the caller's `src` to our `dst`; `on_eof()` when `src` ends."""
        self.src, self.dst, self.on_eof = src, dst, on_eof
        os.set_blocking(dst, False)

    def send(self, data: bytes) -> None:
        self.pending += data

    def run(self) -> None:
        import select

        while True:
            masks = {self.pidfd: select.POLLIN}
            for fd in self.open:
                masks[fd] = select.POLLIN
            if self.pending:
                masks[self.dst] = masks.get(self.dst, 0) | select.POLLOUT
            elif self.src is not None:
                masks[self.src] = masks.get(self.src, 0) | select.POLLIN
            poller = select.poll()
            for fd, mask in masks.items():
                poller.register(fd, mask)
            ready = dict(poller.poll())
            for fd in list(self.open):
                if ready.get(fd, 0) & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    if not self._copy_some(fd):
                        self.open.discard(fd)
            if self.src is not None and not self.pending and self.src in ready:
                self._read_stdin(self.src)
            if self.pending and ready.get(self.dst, 0) & (select.POLLOUT | select.POLLERR):
                self._write_stdin()
            if self.pidfd in ready:
                for fd in self.open:
                    self._drain(fd, self.held(fd))
                return

    def _read_stdin(self, src: int) -> None:
        try:
            data = os.read(src, _CHUNK)
        except BlockingIOError:
            return
        except OSError:  # EIO: the terminal hung up
            data = b""
        if data:
            self.pending = data
        else:
            self.src = None
            assert self.on_eof is not None  # feed() set it with src
            self.on_eof()

    def _write_stdin(self) -> None:
        try:
            self.pending = self.pending[os.write(self.dst, self.pending):]
        except BlockingIOError:
            pass
        except OSError:  # the process closed its stdin: it gets nothing more
            self.pending = b""
            self.src = None

    def _copy_some(self, fd: int) -> bool:
        """One read from `fd` written to its sink; False at EOF."""
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return True
        except OSError:  # EIO: the pty's other side is gone
            return False
        if not data:
            return False
        self._write_out(fd, data)
        return True

    def _drain(self, fd: int, limit: int) -> None:
        """Copy up to `limit` bytes that `fd` holds now, without waiting for more."""
        while limit > 0:
            try:
                data = os.read(fd, min(limit, _CHUNK))
            except OSError:  # EAGAIN: nothing more now; EIO: the other side is gone
                return
            if not data:
                return
            limit -= len(data)
            self._write_out(fd, data)

    def _write_out(self, fd: int, data: bytes) -> None:
        out = self.sink.get(fd)
        view = memoryview(data)
        while out is not None and view:
            try:
                view = view[os.write(out, view):]
            except BlockingIOError:  # the caller's fd is non-blocking: wait for room
                import select

                select.select([], [out], [])
            except OSError:  # the caller went away (EPIPE): no more output for it
                self.sink[fd] = out = None


def _pipe_bytes(fd: int) -> int:
    """How much a pipe holds now (FIONREAD): what was written into it before the exit."""
    import fcntl
    import struct
    import termios

    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    except OSError:
        return 0
