"""The service's socket and threads: `sangja system service [--time N] [URI]`.

The socket is made 0600 root (access to it is root-equivalent: docs/api.md), or comes
from systemd (`LISTEN_FDS`, contrib/systemd/sangja.socket). One thread per connection;
each request opens the engine itself. With `--time N` the service exits once no request
has been running for N seconds. The service forks the containers' monitors (through the
engine's launch, as `sangja start` does); it reaps them when they exit, and it is a child
subreaper so that the engine's exec sees its processes exit (as `sangja exec` does)."""

from __future__ import annotations

import os
import socket
import socketserver
import threading
import time

from ..errors import SangjaError

DEFAULT_URI = "unix:///run/sangja/docker.sock"
SD_LISTEN_FDS_START = 3


class ServiceError(SangjaError):
    pass


def socket_path(uri: str) -> str:
    if uri.startswith("unix://"):
        path = uri[len("unix://"):]
    elif uri.startswith("/"):
        path = uri
    else:
        raise ServiceError(f"unsupported address {uri!r}: only unix:///PATH (a tcp socket "
                           "would be root access for anyone who reaches it)")
    if not path.startswith("/"):
        raise ServiceError(f"invalid address {uri!r}: the socket path must be absolute")
    return path


class Service:
    """What the request threads share: the engine's roots and the idle clock."""

    def __init__(self, root: str, runroot: str, *, idle: float = 0, debug: bool = False):
        self.root, self.runroot = root, runroot
        self.idle, self.debug = idle, debug
        self._lock = threading.Lock()
        self._active = 0
        self._last = time.monotonic()
        from .events import Changes

        self.changes = Changes()
        from .attach import PendingAttaches

        self.pending = PendingAttaches()
        self._exits: dict[str, int] = {}
        self._detached: set[tuple[str, str]] = set()
        self.console_sizes: dict[str, tuple[int, int]] = {}  # tty containers' ConsoleSize

    def note_exit(self, cid: str, code: int) -> None:
        """Remember an exit code the service was told (a --rm container's record goes)."""
        with self._lock:
            if len(self._exits) > 4096:
                self._exits.clear()
            self._exits[cid] = code

    def exit_code(self, cid: str) -> int | None:
        with self._lock:
            return self._exits.get(cid)

    def endpoint_detached(self, key: tuple[str, str], *, mark: bool = False,
                          clear: bool = False) -> bool:
        """A stopped container disconnected from its --network through the service (and
        not connected again yet)."""
        with self._lock:
            if mark:
                self._detached.add(key)
            was = key in self._detached
            if clear:
                self._detached.discard(key)
            return was

    def busy(self, delta: int) -> None:
        with self._lock:
            self._active += delta
            self._last = time.monotonic()

    def idle_for(self) -> float:
        with self._lock:
            return 0.0 if self._active else time.monotonic() - self._last


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = False

    def __init__(self, sock: socket.socket, service: Service):
        from .http import Handler

        self.service = service
        super().__init__("", Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_address = sock.getsockname()

    def get_request(self):
        conn, addr = self.socket.accept()
        return conn, "unix"


def _activated() -> socket.socket | None:
    """The socket systemd passed (sd_listen_fds), made close-on-exec: the service never
    passes its own descriptors on to what it starts."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    try:
        n = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if n < 1:
        return None
    for fd in range(SD_LISTEN_FDS_START + 1, SD_LISTEN_FDS_START + n):
        os.close(fd)  # one socket is all we serve
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    sock.set_inheritable(False)
    if sock.family != socket.AF_UNIX:
        raise ServiceError("the socket systemd passed is not a unix socket")
    return sock


def bind(path: str) -> socket.socket:
    """A new socket at `path`, 0600 from the start (umask), root's. A socket already there
    is replaced only when nothing answers on it (a service left it); anything else there
    is refused."""
    import stat

    os.makedirs(os.path.dirname(path) or "/", mode=0o700, exist_ok=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise ServiceError(f"{path} exists and is not a socket: not replacing it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)
        else:
            raise ServiceError(f"{path}: another service is listening on it")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


class _Reaper(threading.Thread):
    # (see reap_monitors)
    """Collects the monitors the service forked when they exit (they are its children,
    as they are a `sangja start`'s until it exits). Only zombies named sangja-monitor, or
    sangja (a monitor that exec'd its exit command, `sangja container cleanup`) are
    reaped: the service runs no `sangja` itself, and other children belong to whoever made
    them (subprocess, exec), which waits for them."""

    def __init__(self, stop: threading.Event):
        super().__init__(name="reaper", daemon=True)
        self.stop = stop

    def run(self) -> None:
        seen: set[int] = set()
        while not self.stop.wait(0.5):
            reap_monitors(seen)


_OURS = ("sangja-monitor", "sangja")


def reap_monitors(seen: set[int] | None = None) -> None:
    """Reap our zombie children that nobody else waits for: monitors (and a monitor that
    exec'd its exit command, `sangja container cleanup`) at once; any other zombie
    seen twice (`seen`: the last round's), which an orphan the service adopted as a
    subreaper is (a network's aardvark-dns when netavark stops it): a child of the
    engine's own subprocess calls is waited for by them at once."""
    me = os.getpid()
    zombies = set()
    try:
        tasks = os.listdir(f"/proc/{me}/task")
    except OSError:
        return
    for tid in tasks:
        try:
            with open(f"/proc/{me}/task/{tid}/children") as f:
                pids = f.read().split()
        except OSError:
            continue
        for pid in map(int, pids):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            end = stat.rfind(")")
            if stat[end + 2:end + 3] != "Z":
                continue
            comm = stat[stat.find("(") + 1:end]
            if comm in _OURS or (seen is not None and pid in seen):
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            else:
                zombies.add(pid)
    if seen is not None:
        seen.clear()
        seen |= zombies


def serve(root: str, runroot: str, uri: str | None, *, idle: float = 0,
          debug: bool = False, ready=None) -> int:
    """Serve until interrupted or idle for `idle` seconds (0: never)."""
    from ..linux import process as lp

    sock = _activated()
    path = None
    if sock is None:
        path = socket_path(uri or default_uri(runroot))
        sock = bind(path)
    service = Service(root, runroot, idle=idle, debug=debug)
    lp.set_subreaper()
    server = _Server(sock, service)
    stop = threading.Event()
    _Reaper(stop).start()
    if idle:
        def watch() -> None:
            while not stop.wait(min(1.0, idle / 4)):
                if service.idle_for() >= idle:
                    server.shutdown()
                    return

        threading.Thread(target=watch, name="idle", daemon=True).start()
    import signal

    def stop_on_term(_sig, _frame):
        raise KeyboardInterrupt  # the same orderly end as ^C: the socket is removed

    signal.signal(signal.SIGTERM, stop_on_term)
    if ready is not None:
        ready(path)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        service.changes.close()
        server.server_close()
        if path is not None:
            import stat

            try:
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    os.unlink(path)
            except OSError:
                pass
        reap_monitors()
    return 0


def default_uri(runroot: str) -> str:
    """unix:///run/sangja/docker.sock, or docker.sock in another --runroot (tests)."""
    return f"unix://{os.path.join(runroot, 'docker.sock')}"
