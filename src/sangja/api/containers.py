"""`/containers/...`: list, create, start, stop, kill, wait, remove, inspect, logs, top,
stats, archive (cp), export, rename, pause, restart, prune, resize, and `/commit`."""

from __future__ import annotations

import select
import time

from .errors import ApiError, bad_request, conflict, not_found
from .http import Request

# ---------------------------------------------------------------------------- list, create


def _api_entry(eng, row, entry: dict) -> dict:
    """A ps row in the API's shape (containers/json)."""
    from ..engine.inspect import container_document

    doc = container_document(eng, row)
    ports = []
    for spec, bindings in (doc["NetworkSettings"].get("Ports") or {}).items():
        port, _, proto = spec.partition("/")
        for b in bindings or [None]:
            p = {"PrivatePort": int(port), "Type": proto}
            if b:
                p.update(IP=b.get("HostIp") or "0.0.0.0", PublicPort=int(b.get("HostPort") or 0))
            ports.append(p)
    return {
        "Id": row["id"], "Names": ["/" + row["name"]], "Image": row["image_name"],
        "ImageID": row["image_id"], "Command": entry["Command"], "Created": int(row["created"]),
        "Ports": ports, "Labels": doc["Config"]["Labels"], "State": entry["State"],
        "Status": entry["Status"], "HostConfig": {"NetworkMode": doc["HostConfig"]["NetworkMode"]},
        "NetworkSettings": {"Networks": doc["NetworkSettings"].get("Networks") or {}},
        "Mounts": doc["Mounts"],
    }


def list_containers(req: Request):
    from ..engine.listing import list_containers as listing

    filters = req.filters()
    limit = req.int_arg("limit")
    eng = req.engine
    rows = listing(eng, all_states=req.flag("all"), filters=filters,
                   last=limit if limit and limit > 0 else None)
    return [_api_entry(eng, r, e) for r, e in rows]


def create(req: Request):
    from ..image.db import ImageNotFound
    from .create_body import container_options

    name = req.arg("name") or None
    body = req.json()
    if body is None:
        raise bad_request("the create body is empty: a JSON object with at least Image")
    eng = req.engine
    if isinstance(body, dict) and isinstance(body.get("HostConfig"), dict) and \
            body["HostConfig"].get("Links"):
        body["HostConfig"] = _links_as_hosts(eng, body["HostConfig"])
    opts = container_options(body, name)
    from .names import lookup_name

    opts.image = lookup_name(eng.images, opts.image)
    try:
        eng.images.resolve(opts.image)
    except ImageNotFound:
        raise not_found(f"No such image: {opts.image}") from None
    opts.pull = "never"  # dockerd never pulls at create: its clients pull, then create
    cid = eng.create(opts)
    size = (body.get("HostConfig") or {}).get("ConsoleSize")
    if opts.tty and isinstance(size, list) and len(size) == 2 and all(size):
        req.service.console_sizes[cid] = (int(size[0]), int(size[1]))
    req.send_json({"Id": cid, "Warnings": []}, 201)


def _links_as_hosts(eng, host: dict) -> dict:
    """Legacy links (`NAME:ALIAS`, docker-compose's for depends_on) are what Docker makes
    of them: /etc/hosts entries for the alias with the linked container's address (on a
    network the two share); a link to a container that is not running is refused."""
    from ..engine.inspect import container_document
    from ..engine.records import NoSuchContainer

    host = dict(host)
    mode = host.get("NetworkMode") or "default"
    extra = list(host.get("ExtraHosts") or [])
    for link in host.pop("Links") or []:
        target, _, alias = str(link).partition(":")
        alias = alias.rsplit("/", 1)[-1] or target.lstrip("/")
        try:
            doc = container_document(eng, eng.get(target.lstrip("/")))
        except NoSuchContainer:
            raise bad_request(f"could not get container for {target.lstrip('/')}") from None
        if not doc["State"]["Running"]:
            raise conflict(f"Cannot link to a non running container: {doc['Name']} AS "
                           f"/{alias}")
        nets = doc["NetworkSettings"].get("Networks") or {}
        net = nets.get("bridge" if mode == "default" else mode) or {}
        if not net.get("IPAddress"):
            raise bad_request(f"Cannot link to {doc['Name']}: it is not on network {mode}")
        extra.append(f"{alias}:{net['IPAddress']}")
    host["ExtraHosts"] = extra
    return host


# ---------------------------------------------------------------------------- lifecycle


def _live(eng, ref: str):
    from ..engine.status import live_state

    row = eng.get(ref)
    return row, live_state(row)


def start(req: Request, id: str):  # noqa: A002 - Docker's name
    from ..engine.status import PAUSED, RUNNING

    eng = req.engine
    row, state = _live(eng, id)
    cid = row["id"]
    if state in (RUNNING, PAUSED):
        req.send_empty(304)
        return
    pending = req.service.pending
    if pending.wanted(cid):
        try:
            # the terminal's size the client gave at create (ConsoleSize): set before the
            # program starts (its own resize call comes after the start)
            client = eng.start(cid, attach=True,
                               console_size=req.service.console_sizes.pop(cid, None))
        except BaseException:
            pending.hand_over(cid, None)
            raise
        pending.hand_over(cid, client)
    else:
        eng.start(cid)
    req.service.changes.notify()
    req.send_empty(204)


def _timeout(req: Request) -> int | None:
    t = req.arg("t") if req.arg("t") is not None else req.arg("timeout")
    if t in (None, ""):
        return None
    try:
        return int(t)
    except ValueError:
        raise bad_request(f"invalid timeout {t!r}") from None


def stop(req: Request, id: str):  # noqa: A002
    from ..engine.status import PAUSED, RUNNING

    eng = req.engine
    row, state = _live(eng, id)
    if state not in (RUNNING, PAUSED):
        req.send_empty(304)
        return
    eng.stop(row["id"], _timeout(req))
    req.service.changes.notify()
    req.send_empty(204)


def restart(req: Request, id: str):  # noqa: A002
    eng = req.engine
    eng.restart(id, _timeout(req))
    req.service.changes.notify()
    req.send_empty(204)


def kill(req: Request, id: str):  # noqa: A002
    from ..linux import signals

    try:
        sig = signals.parse(req.arg("signal") or "SIGKILL")
    except ValueError as e:
        raise bad_request(str(e)) from None
    eng = req.engine
    eng.kill(id, sig)
    req.service.changes.notify()
    req.send_empty(204)


def pause(req: Request, id: str):  # noqa: A002
    req.engine.pause(id)
    req.service.changes.notify()
    req.send_empty(204)


def unpause(req: Request, id: str):  # noqa: A002
    req.engine.unpause(id)
    req.service.changes.notify()
    req.send_empty(204)


def rename(req: Request, id: str):  # noqa: A002
    new = req.arg("name")
    if not new:
        raise bad_request("rename needs name=NEW_NAME")
    req.engine.rename(id, new.lstrip("/"))
    req.send_empty(204)


def resize(req: Request, id: str):  # noqa: A002
    from .attach import resize as do_resize

    h, w = req.int_arg("h") or 0, req.int_arg("w") or 0
    row = req.engine.get(id)
    do_resize(req.engine, row["id"], h, w)
    req.send_empty(200)


def update(req: Request, id: str):  # noqa: A002
    """`docker update`: the body's resources and restart policy through the engine's
    update (sangja.engine.update, as `sangja update`). Docker's clients send every field,
    unset ones as 0: 0 (or absent) keeps the current value."""
    from ..engine.update import UpdateError, update_container

    body = req.json({}) or {}
    if not isinstance(body, dict):
        raise bad_request("the update body must be a JSON object")
    try:
        ch = update_changes(body)
    except (TypeError, ValueError) as e:
        raise bad_request(f"invalid update: {e}") from None
    try:
        update_container(req.engine, id, ch)
    except UpdateError as e:
        raise ApiError(500 if str(e).startswith("Cannot update") else 400, str(e)) from None
    req.service.changes.notify()
    return {"Warnings": []}


def update_changes(body: dict):
    """Docker's UpdateConfig as the engine's Changes (None: keep)."""
    from ..engine.options import RestartPolicy
    from ..engine.update import Changes

    def num(key: str) -> int | None:
        v = body.get(key)
        if v is None or isinstance(v, bool) or not isinstance(v, int):
            if v is None:
                return None
            raise ValueError(f"{key} must be an integer")
        return v

    ch = Changes()
    if num("Memory"):
        ch.memory = num("Memory")
    if num("MemorySwap"):
        ch.memory_swap = num("MemorySwap")
    if num("MemoryReservation"):
        ch.memory_reservation = num("MemoryReservation")
    if nano := num("NanoCpus"):
        ch.cpus = nano / 1e9
    elif quota := num("CpuQuota"):
        ch.cpus = quota / (num("CpuPeriod") or 100000)
    if num("CpuShares"):
        ch.cpu_shares = num("CpuShares")
    if body.get("CpusetCpus"):
        ch.cpuset_cpus = str(body["CpusetCpus"])
    if num("PidsLimit") is not None:  # sent only when given (0 and -1: unlimited)
        ch.pids_limit = num("PidsLimit")
    if num("BlkioWeight"):
        ch.blkio_weight = num("BlkioWeight")
    policy = body.get("RestartPolicy")
    if isinstance(policy, dict) and policy.get("Name"):
        name = str(policy["Name"])
        if name not in ("no", "on-failure", "always", "unless-stopped"):
            raise ValueError(f"invalid restart policy {name!r}")
        ch.restart = RestartPolicy(name, int(policy.get("MaximumRetryCount") or 0))
    return ch


def changes(req: Request, id: str):  # noqa: A002
    """`docker diff`: the engine's diff (as `sangja diff`) in Docker's form, Kind 0
    modified, 1 added, 2 deleted."""
    from ..engine.diff import container_diff

    kinds = {"C": 0, "A": 1, "D": 2}
    return [{"Path": path, "Kind": kinds[kind]}
            for kind, path in container_diff(req.engine, id)]


def remove(req: Request, id: str):  # noqa: A002
    eng = req.engine
    eng.remove(id, force=req.flag("force"), volumes=req.flag("v"))
    req.service.changes.notify()
    req.send_empty(204)


def prune(req: Request):
    from ..engine.filters import PruneFilter
    from ..engine.usage import prune_containers

    keep = PruneFilter("container", req.filters())
    gone, size = prune_containers(req.engine, keep or None)
    req.service.changes.notify()
    return {"ContainersDeleted": gone, "SpaceReclaimed": size}


# ---------------------------------------------------------------------------- wait

_CONDITIONS = ("not-running", "next-exit", "removed")


def wait(req: Request, id: str):  # noqa: A002
    """Docker's wait: the reply's headers at once, its body when the condition is met."""
    cond = req.arg("condition") or "not-running"
    if cond not in _CONDITIONS:
        raise bad_request(f"invalid condition: {cond!r} (not-running, next-exit, removed)")
    eng = req.engine
    row = eng.get(id)
    out = req.stream("application/json")
    code = _wait_for(req, row, cond)
    if code is None:  # the client went away
        return
    out.write_json({"StatusCode": code, "Error": None})
    out.close()


def _wait_for(req: Request, row, cond: str) -> int | None:
    from ..engine.records import NoSuchContainer
    from ..engine.status import (
        CREATED,
        PAUSED,
        REMOVING,
        RUNNING,
        finished,
        live_state,
        read_exit,
    )
    from .streams import peer_gone

    eng, bus, service = req.engine, req.service.changes, req.service
    sock = req.handler.connection
    cid = row["id"]
    started = row["started_at"]
    ran = cond == "not-running"
    code = None
    late = None
    while True:
        seq = bus.mark()
        try:
            row = eng.db.get(cid)
        except NoSuchContainer:
            known = service.exit_code(cid)
            return known if known is not None else (code if code is not None else 0)
        state = live_state(row)
        if row["started_at"] != started:
            ran = True
        if state in (RUNNING, PAUSED):
            ran = True
            _wait_gone(row, sock, bus, seq)
        elif ran and state not in (CREATED, REMOVING):
            if row["state"] in (RUNNING, PAUSED):  # exited, its clean-up not done yet
                ex = read_exit(eng.paths, cid)
                if ex is not None and cond != "removed":
                    # the monitor's word is final: the clean-up (the monitor's exit command,
                    # or whoever acts on the container first) records the same code
                    code = int(ex["exit_code"])
                    service.note_exit(cid, code)
                    return code
                late = late or time.monotonic() + 5
                if time.monotonic() > late:
                    eng.cleanup(cid)
            else:
                code = finished(eng.paths, row)[0]
                service.note_exit(cid, code)
                if cond != "removed":
                    return code
            bus.wait(seq, 0.02)
        elif ran and state == CREATED and cond == "not-running":
            return 0
        else:
            bus.wait(seq, 0.05)
        if peer_gone(sock):
            return None


def _wait_gone(row, sock, bus, seq) -> None:
    """Until the container's init is gone, an event, or a second passes."""
    import os

    try:
        fd = os.pidfd_open(row["pid"])
    except OSError:
        return
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        p.register(sock, select.POLLHUP)
        p.poll(1000)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- inspect, logs


def inspect(req: Request, id: str):  # noqa: A002
    from ..engine.inspect import container_document

    eng = req.engine
    return container_document(eng, eng.get(id))


def logs(req: Request, id: str):  # noqa: A002
    from ..engine.logs import read_logs
    from ..engine.status import PAUSED, RUNNING, live_state
    from .streams import MULTIPLEXED, RAW, Discard, FramedWriter, peer_gone

    eng = req.engine
    row = eng.get(id)
    opts = eng.options(row)
    if opts.log_driver == "none":
        raise bad_request('configured logging driver does not support reading: "none"')
    if not (req.flag("stdout") or req.flag("stderr")):
        raise bad_request("Bad parameters: you must choose at least one stream")
    since = _time_arg(req, "since")
    until = _time_arg(req, "until")
    tail = req.arg("tail")
    tail_n = None if tail in (None, "", "all") else req.int_arg("tail")
    if tail_n is not None and tail_n < 0:
        tail_n = None
    cid = row["id"]
    out = req.stream(RAW if opts.tty else MULTIPLEXED)
    sock = req.handler.connection

    def running() -> bool:
        if peer_gone(sock):
            return False
        try:
            return live_state(eng.db.get(cid)) in (RUNNING, PAUSED)
        except Exception:  # noqa: BLE001 - removed meanwhile
            return False

    stdout = (FramedWriter(out.write, 1, opts.tty, per_line=True) if req.flag("stdout")
              else Discard())
    stderr = (FramedWriter(out.write, 2, opts.tty, per_line=True) if req.flag("stderr")
              else Discard())
    read_logs(eng.paths.log_path(cid), stdout, stderr, since=since, until=until, tail=tail_n,
              timestamps=req.flag("timestamps"), follow=req.flag("follow"),
              is_running=running)
    out.close()


def _time_arg(req: Request, name: str) -> float | None:
    v = req.arg(name)
    if v in (None, "", "0"):
        return None
    try:
        return float(v)
    except ValueError:
        from ..engine.logs import parse_timestamp

        try:
            return parse_timestamp(v)
        except ValueError as e:
            raise bad_request(str(e)) from None


# ---------------------------------------------------------------------------- top, stats


def top(req: Request, id: str):  # noqa: A002
    import subprocess

    from ..engine.status import RUNNING, live_state

    eng = req.engine
    row = eng.get(id)
    if live_state(row) != RUNNING:
        raise conflict(f"Container {row['id']} is not running")
    pids = set(eng.runtime(row).pids(row["id"]))
    ps_args = (req.arg("ps_args") or "-ef").split()
    r = subprocess.run(["ps", *ps_args], capture_output=True, text=True)
    if r.returncode != 0:
        raise ApiError(500, f"ps: {r.stderr.strip() or 'failed'}")
    lines = r.stdout.splitlines()
    header = lines[0].split() if lines else []
    if "PID" not in header:
        raise ApiError(500, "Couldn't find PID field in ps output")
    col = header.index("PID")
    procs = []
    for line in lines[1:]:
        fields = line.split(None, len(header) - 1)
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in pids:
            procs.append(fields)
    return {"Titles": header, "Processes": procs}


def stats(req: Request, id: str):  # noqa: A002
    from .stats import stats_document
    from .streams import peer_gone

    eng = req.engine
    row = eng.get(id)
    if not req.flag("stream", True) or req.flag("one-shot"):
        return stats_document(eng, row, None)
    out = req.stream("application/json")
    sock = req.handler.connection
    prev = None
    while not peer_gone(sock):
        doc = stats_document(eng, row, prev)
        out.write_json(doc)
        prev = doc
        if not doc["pids_stats"].get("current") and not doc["read"]:
            break
        time.sleep(1)
    out.close()


# ---------------------------------------------------------------------------- files


def _stat_header(root: str, path: str) -> str:
    """X-Docker-Container-Path-Stat: the path's lstat, resolved inside the root."""
    import base64
    import os
    import stat as s

    from ..engine.inspect import rfc3339
    from ..jsonio import dumps
    from ..linux.paths import open_in_root

    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = open_in_root(rootfd, path.rstrip("/") or "/", os.O_PATH | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise not_found(f"Could not find the file {path} in container") from None
    finally:
        os.close(rootfd)
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    mode = st.st_mode & 0o7777
    if s.S_ISDIR(st.st_mode):
        mode |= 1 << 31
    elif s.S_ISLNK(st.st_mode):
        mode |= 1 << 27
    doc = {"name": os.path.basename(path.rstrip("/")) or "/", "size": st.st_size,
           "mode": mode, "mtime": rfc3339(st.st_mtime), "linkTarget": ""}
    return base64.b64encode(dumps(doc).encode()).decode()


def archive_head(req: Request, id: str):  # noqa: A002
    from ..engine.containers import mounted_source

    path = req.arg("path")
    if not path:
        raise bad_request("path is required")
    eng = req.engine
    with eng.rootfs(id) as (row, root):
        root, inner = mounted_source(eng, row, root, path)
        header = _stat_header(root, inner)
    req.send_empty(200, {"X-Docker-Container-Path-Stat": header})


def archive_get(req: Request, id: str):  # noqa: A002
    from ..engine import copy as cp
    from ..engine.containers import mounted_source
    from .streams import ChunkSink

    path = req.arg("path")
    if not path:
        raise bad_request("path is required")
    eng = req.engine
    with eng.rootfs(id) as (row, root):
        root, inner = mounted_source(eng, row, root, path)
        header = _stat_header(root, inner)
        out = req.stream("application/x-tar", headers={"X-Docker-Container-Path-Stat": header})
        cp.copy_out(root, inner, ChunkSink(out), archive=True, follow_link=False)
        out.close()


def archive_put(req: Request, id: str):  # noqa: A002
    from ..engine import copy as cp
    from ..engine.containers import mounted_source

    path = req.arg("path")
    if not path:
        raise bad_request("path is required")
    eng = req.engine
    with eng.rootfs(id) as (row, root):
        root, inner = mounted_source(eng, row, root, path, writing=True)
        cp.copy_in(root, req.body_stream(), inner, archive=True, follow_link=False)
    req.send_empty(200)


def export(req: Request, id: str):  # noqa: A002
    from ..engine.export import export_rootfs
    from .streams import ChunkSink

    eng = req.engine
    with eng.rootfs(id) as (_, root):
        out = req.stream("application/x-tar")
        export_rootfs(root, ChunkSink(out))
        out.close()


def commit(req: Request):
    from ..engine.commit import commit_container

    ref = req.arg("container")
    if not ref:
        raise bad_request("commit needs container=")
    repo, tag = req.arg("repo"), req.arg("tag")
    name = f"{repo}:{tag}" if repo and tag else repo
    if name:
        from .names import local_name

        name = local_name(req.engine.images, name)
    body = req.json({}) or {}
    changes = req.query.get("changes", [])
    changes = [c for ch in changes for c in ch.split("\n") if c]
    if body.get("Cmd"):
        from ..jsonio import dumps

        changes.append(f"CMD {dumps(body['Cmd'])}")
    image_id = commit_container(req.engine, ref, reference=name, changes=changes,
                                author=req.arg("author") or "",
                                message=req.arg("comment") or "",
                                pause=req.flag("pause", True))
    req.send_json({"Id": image_id}, 201)
