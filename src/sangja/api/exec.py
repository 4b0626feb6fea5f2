"""`/containers/{id}/exec`, `/exec/{id}/start|resize|json`: a process in a running
container through the engine's exec (sangja.engine.exec), its stdio over the hijacked
connection: raw with a tty, else stdout and stderr multiplexed. The process never gets
the service's descriptors: the engine relays between them and the process's own."""

from __future__ import annotations

import os
import threading

from .errors import ApiError, bad_request, conflict, not_found
from .http import Request
from .streams import MULTIPLEXED, RAW, frame

_EXECS: dict[str, dict] = {}
_LOCK = threading.Lock()


def create(req: Request, id: str):  # noqa: A002 - Docker's name
    from ..engine.status import PAUSED, RUNNING, live_state

    body = req.json()
    if not isinstance(body, dict):
        raise bad_request("the exec body must be a JSON object")
    cmd = body.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    if not cmd or not isinstance(cmd, list):
        raise bad_request("No exec command specified")
    eng = req.engine
    row = eng.get(id)
    state = live_state(row)
    if state == PAUSED:
        raise conflict(f"Container {row['id']} is paused, unpause the container before exec")
    if state != RUNNING:
        raise conflict(f"Container {row['id']} is not running")
    env = [e for e in body.get("Env") or [] if isinstance(e, str) and "=" in e]
    exec_id = os.urandom(32).hex()
    with _LOCK:
        if len(_EXECS) > 1024:  # Docker forgets finished execs too
            for k in [k for k, v in _EXECS.items() if not v["Running"]][:512]:
                del _EXECS[k]
        _EXECS[exec_id] = {
            "ID": exec_id, "ContainerID": row["id"], "Running": False, "ExitCode": None,
            "Pid": 0, "OpenStdin": bool(body.get("AttachStdin")),
            "OpenStdout": bool(body.get("AttachStdout")),
            "OpenStderr": bool(body.get("AttachStderr")), "CanRemove": False,
            "DetachKeys": "",
            "ProcessConfig": {"tty": bool(body.get("Tty")), "entrypoint": str(cmd[0]),
                              "arguments": [str(x) for x in cmd[1:]],
                              "privileged": bool(body.get("Privileged")),
                              "user": body.get("User") or ""},
            "_env": env, "_workdir": body.get("WorkingDir") or None,
            "_size": body.get("ConsoleSize"), "_detached": False,
            "_started": False,
        }
    req.send_json({"Id": exec_id}, 201)


def _get(exec_id: str) -> dict:
    with _LOCK:
        e = _EXECS.get(exec_id)
    if e is None:
        raise not_found(f"No such exec instance: {exec_id}")
    return e


def inspect(req: Request, id: str):  # noqa: A002
    from ..engine.exec import session_pid

    e = _get(id)
    doc = {k: v for k, v in e.items() if not k.startswith("_")}
    if doc["Running"]:
        doc["Pid"] = session_pid(id)
    elif (record := _detached_record(req.engine, e)) is not None:
        doc["Running"], doc["Pid"] = True, record["Pid"]
    return doc


def _detached_record(eng, e: dict) -> dict | None:
    """The engine's record of a detached exec while its process runs, else None."""
    if not e["_detached"]:
        return None
    from ..engine.exec import running_exec_records

    return next((r for r in running_exec_records(eng.paths, e["ContainerID"])
                 if r["ID"] == e["ID"]), None)


def resize(req: Request, id: str):  # noqa: A002
    """The pty of a running exec gets h rows and w columns (Docker's checks in its order:
    the numbers, the exec, its state); a no-op without a tty, as Docker's."""
    from ..engine.exec import ExecError, ExecNotRunning, resize_detached, resize_exec

    size = []
    for key in ("h", "w"):
        value = req.arg(key) or ""
        if not (value.isascii() and value.isdigit()) or int(value) > 0xFFFF:
            raise bad_request(f"invalid {key} {value!r}: a number of rows/columns "
                              "(0-65535) is expected")
        size.append(int(value))
    e = _get(id)
    if not e["Running"]:
        record = _detached_record(req.engine, e)
        if record is None:
            raise conflict(f"exec {id} is not running")
        try:
            if record.get("Tty"):  # its pty is held by a process of its own
                resize_detached(record, size[0], size[1])
        except ExecNotRunning:
            raise conflict(f"exec {id} is not running") from None
        except ExecError as err:
            raise ApiError(500, str(err)) from None
        req.send_empty(200)  # without a tty: nothing to size (Docker's)
        return
    try:
        resize_exec(id, size[0], size[1], expected=lambda: bool(e["Running"]))
    except ExecNotRunning:
        raise conflict(f"exec {id} is not running") from None
    except ExecError as err:
        raise ApiError(500, str(err)) from None
    req.send_empty(200)


def start(req: Request, id: str):  # noqa: A002
    from ..engine.exec import ExecOptions, exec_in_container

    e = _get(id)
    body = req.json({}) or {}
    detach = bool(body.get("Detach"))
    tty = bool(body.get("Tty", e["ProcessConfig"]["tty"]))
    with _LOCK:
        if e["_started"]:
            raise conflict(f"exec {id} has already been started")
        e["Running"] = e["_started"] = True
    pc = e["ProcessConfig"]
    size = body.get("ConsoleSize") or e["_size"]
    xopts = ExecOptions(args=[pc["entrypoint"], *pc["arguments"]], interactive=e["OpenStdin"],
                        tty=tty, detach=detach, env=e["_env"], user=pc["user"] or None,
                        workdir=e["_workdir"], exec_id=id,
                        console_size=(int(size[0]), int(size[1])) if size and size[0] else None)
    eng = req.engine
    try:
        if detach:
            e["_detached"] = True
            null = _null_stdio()
            try:
                code = exec_in_container(eng, e["ContainerID"], xopts, null)
            finally:
                os.close(null[0])
            with _LOCK:  # from now on its record says whether it runs
                e["Running"] = False
            req.send_empty(200)
            return
        sock = req.hijack(RAW if tty else MULTIPLEXED)
        code = _attached(eng, e, xopts, sock, tty)
    except ApiError:
        raise
    except Exception as err:  # noqa: BLE001 - the exec's failure is its exit code
        code = getattr(err, "engine_exit_code", 126)
        if not req.responded:
            with _LOCK:
                e["Running"], e["ExitCode"] = False, code
            raise
        try:
            req.handler.connection.sendall(
                (str(err) + "\n").encode() if tty else frame(2, (str(err) + "\n").encode()))
        except OSError:
            pass
    finally:
        with _LOCK:
            e["Running"] = False
    with _LOCK:
        e["ExitCode"] = code


def _null_stdio() -> tuple[int, int, int]:
    fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    return (fd, fd, fd)


def _attached(eng, e: dict, xopts, sock, tty: bool) -> int:
    """Run the exec with the connection as its stdio; framing threads without a tty."""
    import socket

    from ..engine.exec import exec_in_container

    sfd = sock.fileno()
    if tty:
        stdin = sfd if xopts.interactive else os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return _finish(e, exec_in_container(eng, e["ContainerID"], xopts,
                                                (stdin, sfd, sfd)))
        finally:
            if stdin != sfd:
                os.close(stdin)
            _close(sock, socket)
    pipes = [os.pipe2(os.O_CLOEXEC), os.pipe2(os.O_CLOEXEC)]
    threads = [threading.Thread(target=_pump, args=(r, sock, n), daemon=True)
               for n, (r, _) in ((1, pipes[0]), (2, pipes[1]))]
    for t in threads:
        t.start()
    stdin = sfd if xopts.interactive else os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    code = None
    try:
        code = exec_in_container(eng, e["ContainerID"], xopts,
                                 (stdin, pipes[0][1], pipes[1][1]))
        return code
    finally:
        for _, w in pipes:
            os.close(w)
        for t in threads:
            t.join()
        if code is not None:
            _finish(e, code)
        for r, _ in pipes:
            os.close(r)
        if stdin != sfd:
            os.close(stdin)
        _close(sock, socket)


def _finish(e: dict, code: int) -> int:
    """The exit code is known before the connection closes: clients inspect right after."""
    with _LOCK:
        e["ExitCode"], e["Running"] = code, False
    return code


def _pump(fd: int, sock, stream: int) -> None:
    alive = True
    while True:
        data = os.read(fd, 32 * 1024)
        if not data:
            return
        if alive:
            try:
                sock.sendall(frame(stream, data))
            except OSError:
                alive = False  # the client went: keep draining so the process never blocks


def _close(sock, socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
