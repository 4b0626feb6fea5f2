"""`POST /containers/{id}/attach`: the container's stdio over a hijacked connection.

Docker's clients attach *before* they start a container (`docker run`, `start -a`,
docker-py), so that no output is lost. Such an attach waits here (PendingAttaches) until a
`start` through the service hands it the monitor connection that the engine's start makes
before the program runs, as the clean-up owner (as a foreground `sangja run` is): the
session then records the exit itself (--rm included) once it has relayed every byte.
An attach to a running container connects to its monitor as any client."""

from __future__ import annotations

import select
import socket
import threading

from .errors import ApiError, conflict
from .http import Request
from .streams import MULTIPLEXED, RAW, frame

_CHUNK = 32 * 1024


class _Waiting:
    def __init__(self):
        self.ready = threading.Event()
        self.client = None  # the engine's AttachClient, the clean-up owner
        self.taken = False


class PendingAttaches:
    """Attach sessions waiting for their container's start, by container id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, list[_Waiting]] = {}

    def add(self, cid: str) -> _Waiting:
        w = _Waiting()
        with self._lock:
            self._by_id.setdefault(cid, []).append(w)
        return w

    def discard(self, cid: str, w: _Waiting) -> None:
        with self._lock:
            lst = self._by_id.get(cid, [])
            if w in lst:
                lst.remove(w)
            if not lst:
                self._by_id.pop(cid, None)

    def wanted(self, cid: str) -> bool:
        with self._lock:
            return bool(self._by_id.get(cid))

    def hand_over(self, cid: str, client) -> None:
        """The first waiting session gets the owner connection, the others are told to
        connect as plain clients."""
        with self._lock:
            waiting = self._by_id.pop(cid, [])
        for i, w in enumerate(waiting):
            if i == 0 and client is not None:
                w.client = client
            w.ready.set()
        if not waiting and client is not None:
            client.close()


def attach(req: Request, id: str):  # noqa: A002 - Docker's parameter name
    from ..engine.monitor import AttachClient
    from ..engine.status import PAUSED, RUNNING, live_state

    eng = req.engine
    row = eng.get(id)
    cid = row["id"]
    opts = eng.options(row)
    if not req.flag("stream") and not req.flag("logs"):
        raise ApiError(400, "attach needs stream=1 or logs=1")
    want = {"stdin": req.flag("stdin") and opts.interactive, "stdout": req.flag("stdout"),
            "stderr": req.flag("stderr")}
    state = live_state(row)
    waiting = None
    if state not in (RUNNING, PAUSED):
        if not req.flag("stream"):
            waiting = None
        else:
            waiting = req.service.pending.add(cid)
    sock = req.hijack(RAW if opts.tty else MULTIPLEXED)
    if req.flag("logs"):
        _replay_logs(eng, cid, sock, want, opts.tty)
    if not req.flag("stream"):
        return
    client = None
    owner = False
    try:
        if waiting is not None:
            while not waiting.ready.wait(0.5):
                if _hung_up(sock):
                    req.service.pending.discard(cid, waiting)
                    return
                try:  # started by someone else (the CLI): join it as a plain client
                    if live_state(eng.db.get(cid)) in (RUNNING, PAUSED):
                        req.service.pending.discard(cid, waiting)
                        break
                except LookupError:
                    req.service.pending.discard(cid, waiting)
                    return
            client, owner = waiting.client, waiting.client is not None
        if client is None:
            try:
                client = AttachClient(eng.paths.attach_socket(cid))
            except OSError:
                return  # not running (any more): nothing to relay
        code = relay(client, sock, want, opts.tty)
        if owner:
            if code is not None:
                req.service.note_exit(cid, code)
            client.close()
            client = None
            eng.cleanup(cid)
            req.service.changes.notify()
    finally:
        if client is not None:
            client.close()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _replay_logs(eng, cid: str, sock, want: dict, tty: bool) -> None:
    from ..engine.logs import read_logs
    from .streams import Discard, FramedWriter

    send = sock.sendall
    null = Discard()
    read_logs(eng.paths.log_path(cid),
              FramedWriter(send, 1, tty) if want["stdout"] else null,
              FramedWriter(send, 2, tty) if want["stderr"] else null)


def _hung_up(sock) -> bool:
    from .streams import peer_gone

    return peer_gone(sock)


def relay(client, sock: socket.socket, want: dict, tty: bool) -> int | None:
    """Copy the monitor's output to the connection (framed unless tty) and the
    connection's bytes to the container's stdin, until the exit code arrives (returned),
    the monitor hangs up or the client goes (None)."""
    from ..engine.monitor import EXIT, STDERR, STDIN, STDOUT

    p = select.poll()
    msock = client.sock
    msock.setblocking(False)
    stdin_open = want["stdin"]
    pending: list[bytes] = []
    p.register(msock, select.POLLIN)
    p.register(sock, (select.POLLIN if stdin_open else 0) | select.POLLRDHUP)
    try:
        while True:
            for fd, ev in p.poll():
                if fd == msock.fileno():
                    if ev & select.POLLOUT:
                        while pending:
                            try:
                                msock.send(pending[0])
                            except BlockingIOError:
                                break
                            pending.pop(0)
                        if not pending:
                            p.modify(msock, select.POLLIN)
                            if stdin_open:
                                p.modify(sock, select.POLLIN | select.POLLRDHUP)
                    if ev & (select.POLLIN | select.POLLHUP):
                        try:
                            data = msock.recv(64 * 1024 + 1)
                        except BlockingIOError:
                            continue
                        if not data:
                            return None
                        kind, payload = data[0], data[1:]
                        if kind == EXIT:
                            return int(payload)
                        if kind in (STDOUT, STDERR) and want["stdout" if kind == STDOUT
                                                              else "stderr"]:
                            try:
                                sock.sendall(payload if tty else frame(kind, payload))
                            except OSError:
                                return None  # the client went away
                else:
                    if ev & (select.POLLHUP | select.POLLERR):
                        return None
                    if stdin_open and ev & select.POLLIN:
                        try:
                            data = sock.recv(_CHUNK)
                        except OSError:
                            data = b""
                        pending.append(bytes([STDIN]) + data)
                        if not data:
                            stdin_open = False
                        p.modify(sock, select.POLLRDHUP)
                        p.modify(msock, select.POLLIN | select.POLLOUT)
                    elif ev & select.POLLRDHUP and not stdin_open:
                        # half-closed: no more stdin; watch only for a full hang-up
                        p.modify(sock, 0)
    finally:
        try:
            msock.setblocking(True)
        except OSError:
            pass


def resize(eng, cid: str, rows: int, cols: int) -> None:
    from ..engine.monitor import AttachClient

    try:
        with AttachClient(eng.paths.attach_socket(cid)) as c:
            c.resize(rows, cols)
    except OSError:
        raise conflict(f"container {cid[:12]} is not running") from None


