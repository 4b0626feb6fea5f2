"""Container commands: run, create, start, stop, restart, kill, rm, ps, inspect, wait,
rename, pause, unpause, port, top, stats, attach, exec, logs, cp, commit, export,
container prune, and the monitor's `container cleanup`. Parsing and printing only: the
work is in sangja.engine."""

from __future__ import annotations

import os
import sys

from .common import PROG, Flag, Globals, UsageError, error, parse_flags, print_json


def _engine(opts: Globals):
    from ...engine.containers import Engine

    return Engine(opts.storage_root, opts.run_root)


def _view(opts: Globals):
    """For the commands that only look: the engine's read side, records opened read-only."""
    from ...engine.view import EngineView

    return EngineView(opts.storage_root, opts.run_root, readonly=True)


def _each(opts: Globals, refs: list[str], action) -> int:
    """Docker's multi-container commands: act on each, print what worked, report the rest
    and exit 1 if any failed."""
    from ...errors import SangjaError

    rc = 0
    with _engine(opts) as eng:
        for ref in refs:
            try:
                out = action(eng, ref)
                if out is not None:
                    print(out)
            except SangjaError as e:
                error(str(e))
                rc = 1
    return rc


def _each_parallel(opts: Globals, refs: list[str], action) -> int:
    """_each, with every container at once (Docker's `stop a b`: one slow container does
    not hold up the others); each thread has its own engine (its own database
    connection); the results print in the order given."""
    if len(refs) < 2:
        return _each(opts, refs, action)
    import threading

    from ...errors import SangjaError

    results: list = [None] * len(refs)

    def one(i: int, ref: str) -> None:
        try:
            with _engine(opts) as eng:
                results[i] = (True, action(eng, ref))
        except SangjaError as e:
            results[i] = (False, str(e))
        except BaseException as e:  # noqa: BLE001 - reported in the main thread
            results[i] = (None, e)

    threads = [threading.Thread(target=one, args=(i, ref), daemon=True)
               for i, ref in enumerate(refs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rc = 0
    for ok, value in results:
        if ok is None:
            raise value
        if ok:
            if value is not None:
                print(value)
        else:
            error(value)
            rc = 1
    return rc


# ---------------------------------------------------------------------------- run, create


class _PullProgress:
    """Progress of a pull that run/create needs, on stderr (imported only then)."""

    def __init__(self) -> None:
        self.view = None

    def __call__(self, event: dict) -> None:
        if self.view is None:
            from .progress import Progress

            self.view = Progress("auto", stream=sys.stderr, defer=True)
        self.view(event)


class _RunExitCodes:
    """`docker run` and `create` exit 125 for what other commands exit 1 for (a missing
    image, a name in use...); the container's own 126/127 stay."""

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb) -> bool:
        from ...errors import SangjaError

        if isinstance(e, SangjaError) and getattr(e, "engine_exit_code", 125) == 1:
            e.engine_exit_code = 125
        return False


def cmd_create(opts: Globals, args: list[str]) -> int:
    from .run_flags import parse_run_args

    copts = parse_run_args(args, command="create")
    with _engine(opts) as eng, _RunExitCodes():
        print(eng.create(copts, progress=_PullProgress()))
    return 0


def cmd_run(opts: Globals, args: list[str]) -> int:
    from .run_flags import parse_run_args

    copts = parse_run_args(args, command="run")
    if copts.tty and copts.interactive and not copts.detach and not os.isatty(0):
        error("the input device is not a TTY")  # Docker's words and exit code
        return 1
    with _engine(opts) as eng:
        with _RunExitCodes():
            cid = eng.create(copts, progress=_PullProgress())
        if copts.detach:
            try:
                eng.start(cid)
            except BaseException:
                if copts.rm:
                    _quietly(eng.remove, cid, force=True, volumes=True)
                raise
            print(cid)
            return 0
        try:
            client = eng.start(cid, attach=True)
        except BaseException:
            if copts.rm:
                _quietly(eng.remove, cid, force=True, volumes=True)
            raise
        try:
            code = _foreground(eng, cid, client, copts.tty, copts.interactive)
            eng.cleanup(cid)  # as the clean-up owner: the monitor waits for us to hang up
        finally:
            client.close()
        return code


def _quietly(fn, *a, **kw) -> None:
    from ...errors import SangjaError

    try:
        fn(*a, **kw)
    except (SangjaError, OSError):
        pass


def _foreground(eng, cid: str, client, tty: bool, interactive: bool) -> int:
    """Relay the container's stdio until it exits; return its exit code. Without a tty,
    signals to us go to the container (Docker's --sig-proxy); with one, ^C travels
    through the terminal as a byte."""
    from ...linux import signals
    from ...runtime.console import RawMode

    row = eng.get(cid)
    runtime = eng.runtime(row)
    handlers = {}
    if not tty:
        def forward(sig, _frame):
            try:
                runtime.kill(cid, sig)
            except Exception:  # noqa: BLE001 - it may be gone already
                pass

        for s in (signals.SIGINT, signals.SIGTERM, signals.SIGHUP, signals.SIGQUIT,
                  signals.SIGUSR1, signals.SIGUSR2):
            handlers[s] = signals.signal(s, forward)
    else:
        from ...linux.pty import get_winsize

        def resize(*_):
            size = get_winsize(0) if os.isatty(0) else None
            if size:
                try:
                    client.resize(*size)
                except OSError:
                    pass

        handlers[signals.SIGWINCH] = signals.signal(signals.SIGWINCH, resize)
        resize()
    stdin_fd = 0 if interactive else None
    try:
        with RawMode(0) if (tty and interactive) else _Nothing():
            code = client.relay(stdin_fd, sys.stdout.buffer, sys.stderr.buffer, tty)
    finally:
        for s, h in handlers.items():
            signals.signal(s, h)
    if code is None:  # the monitor went away: ask the kernel and the records
        code = eng.wait(cid)
    return code


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ---------------------------------------------------------------------------- start, stop


def cmd_start(opts: Globals, args: list[str]) -> int:
    flags, refs = parse_flags(args, [Flag("-a,--attach"), Flag("-i,--interactive")])
    if not refs:
        raise UsageError(f"usage: {PROG} start [-a] [-i] CONTAINER...")
    if not (flags["attach"] or flags["interactive"]):
        return _each(opts, refs, lambda eng, ref: (eng.start(ref), ref)[1])
    if len(refs) > 1:
        raise UsageError("you cannot start and attach multiple containers at once")
    with _engine(opts) as eng:
        row = eng.get(refs[0])
        copts = eng.options(row)
        client = eng.start(refs[0], attach=True)
        if client is None:
            raise UsageError(f"container {refs[0]} is already running: use attach")
        try:
            code = _foreground(eng, row["id"], client, copts.tty,
                               flags["interactive"] and copts.interactive)
            eng.cleanup(row["id"])
        finally:
            client.close()
        return code


def cmd_stop(opts: Globals, args: list[str]) -> int:
    flags, refs = parse_flags(args, [Flag("-t,--time,--timeout", "value"),
                                     Flag("-s,--signal", "value")])
    if not refs:
        raise UsageError(f"usage: {PROG} stop [-t SECONDS] CONTAINER...")
    timeout = _seconds(flags["time"])
    return _each_parallel(opts, refs, lambda eng, ref: (eng.stop(ref, timeout), ref)[1])


def cmd_restart(opts: Globals, args: list[str]) -> int:
    flags, refs = parse_flags(args, [Flag("-t,--time,--timeout", "value")])
    if not refs:
        raise UsageError(f"usage: {PROG} restart [-t SECONDS] CONTAINER...")
    timeout = _seconds(flags["time"])
    return _each(opts, refs, lambda eng, ref: (eng.restart(ref, timeout), ref)[1])


def _seconds(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"invalid timeout {text!r}: a whole number of seconds") from None


def cmd_kill(opts: Globals, args: list[str]) -> int:
    flags, refs = parse_flags(args, [Flag("-s,--signal", "value")])
    if not refs:
        raise UsageError(f"usage: {PROG} kill [-s SIGNAL] CONTAINER...")
    from ...linux import signals

    try:
        sig = signals.parse(flags["signal"] or "SIGKILL")
    except ValueError as e:
        raise UsageError(str(e)) from None
    return _each(opts, refs, lambda eng, ref: (eng.kill(ref, sig), ref)[1])


def cmd_rm(opts: Globals, args: list[str]) -> int:
    flags, refs = parse_flags(args, [Flag("-f,--force"), Flag("-v,--volumes"),
                                     Flag("-l,--link")])
    if not refs:
        raise UsageError(f"usage: {PROG} rm [-f] [-v] CONTAINER...")
    from ...engine.records import NoSuchContainer

    def remove(eng, ref: str) -> str | None:
        try:
            eng.remove(ref, force=flags["force"], volumes=flags["volumes"])
        except NoSuchContainer:
            if flags["force"]:  # Docker: rm -f of what is not there is no error
                return None
            raise
        return ref

    return _each(opts, refs, remove)


def cmd_pause(opts: Globals, args: list[str]) -> int:
    _, refs = parse_flags(args, [])
    if not refs:
        raise UsageError(f"usage: {PROG} pause CONTAINER...")
    return _each(opts, refs, lambda eng, ref: (eng.pause(ref), ref)[1])


def cmd_unpause(opts: Globals, args: list[str]) -> int:
    _, refs = parse_flags(args, [])
    if not refs:
        raise UsageError(f"usage: {PROG} unpause CONTAINER...")
    return _each(opts, refs, lambda eng, ref: (eng.unpause(ref), ref)[1])


def cmd_rename(opts: Globals, args: list[str]) -> int:
    _, rest = parse_flags(args, [])
    if len(rest) != 2:
        raise UsageError(f"usage: {PROG} rename CONTAINER NEW_NAME")
    with _engine(opts) as eng:
        eng.rename(rest[0], rest[1])
    return 0


def cmd_wait(opts: Globals, args: list[str]) -> int:
    _, refs = parse_flags(args, [])
    if not refs:
        raise UsageError(f"usage: {PROG} wait CONTAINER...")
    return _each(opts, refs, lambda eng, ref: eng.wait(ref))


def cmd_cleanup(opts: Globals, args: list[str]) -> int:
    """Run by the monitor after the container's init exited (docs/engine.md)."""
    _, refs = parse_flags(args, [])
    if len(refs) != 1:
        raise UsageError(f"usage: {PROG} container cleanup CONTAINER")
    with _engine(opts) as eng:
        eng.cleanup(refs[0])
    return 0


def cmd_container_prune(opts: Globals, args: list[str]) -> int:
    flags, rest = parse_flags(args, [Flag("-f,--force"), Flag("--filter", "multi")])
    if rest:
        raise UsageError(f"usage: {PROG} container prune [-f]")
    with _engine(opts) as eng:
        gone = eng.prune()
    print("Deleted Containers:")
    for cid in gone:
        print(cid)
    print()
    print("Total reclaimed space: 0B" if not gone else f"Total: {len(gone)} containers")
    return 0


# ---------------------------------------------------------------------------- ps, inspect


def cmd_ps(opts: Globals, args: list[str]) -> int:
    import time

    flags, rest = parse_flags(args, [Flag("-a,--all"), Flag("-q,--quiet"),
                                     Flag("--no-trunc"), Flag("-l,--latest"),
                                     Flag("-n,--last", "value"), Flag("-f,--filter", "multi"),
                                     Flag("--format", "value"), Flag("-s,--size")])
    if rest:
        raise UsageError(f"usage: {PROG} ps [-a] [-q] [--filter K=V] [--format json]")
    from ...engine.inspect import ps_entry

    wanted = None
    if flags["filter"]:
        from ...engine import filters as flt

        wanted = flt.parse(flags["filter"], flt.PS_KEYS)
    now = time.time()
    show_all = flags["all"] or flags["latest"] or flags["last"] is not None
    with _view(opts) as eng:
        keep = flt.ContainerFilter(eng, wanted) if wanted else None
        show_all = show_all or (keep is not None and keep.shows_stopped)
        entries = []
        for r in eng.db.all():
            e = ps_entry(eng, r, now)
            if (show_all or e["State"] in ("running", "paused")) and (
                    keep is None or keep(eng, r, e)):
                entries.append(e)
    if flags["latest"]:
        entries = entries[:1]
    if flags["last"] is not None:
        try:
            entries = entries[:int(flags["last"])]
        except ValueError:
            raise UsageError(f"invalid --last {flags['last']!r}") from None
    trunc = not flags["no_trunc"]
    if flags["quiet"]:
        for e in entries:
            print(e["ID"][:12] if trunc else e["ID"])
        return 0
    contexts = [_ps_context(e, trunc) for e in entries]
    fmt = flags["format"] or PS_TABLE
    if fmt == "json":
        from ...jsonio import dumps

        for c in contexts:
            print(dumps({k: v for k, v in c.items() if not callable(v)}))
        return 0
    from .common import format_rows

    sys.stdout.write(format_rows(PS_TABLE if fmt == "table" else fmt, contexts, PS_HEADERS))
    return 0


# Docker's `ps` table and the column titles of its fields (docker/cli formatter).
PS_TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t"
            "{{.Ports}}\t{{.Names}}")
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
              "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
              "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES",
              "Networks": "NETWORKS"}


def _go_quote(s: str) -> str:
    """strconv.Quote; plain text without the template module (ps is a hot path)."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    from ..gotemplate import go_quote

    return go_quote(s)


def _ps_context(entry: dict, trunc: bool) -> dict:
    """What a `ps --format` template sees, as Docker's container context shows it: the
    id short, the command quoted (and cut at 20 characters), "… ago", `.Label "k"`."""
    from .image_tools import ellipsis

    labels = entry["_labels"]
    c = {k: v for k, v in entry.items() if k not in ("_labels", "ImageID", "ExitCode")}
    c["ID"] = entry["ID"][:12] if trunc else entry["ID"]
    c["Command"] = _go_quote(ellipsis(entry["Command"], 20) if trunc else entry["Command"])
    c["RunningFor"] = entry["RunningFor"] + " ago"
    c["Size"] = c.get("Size", "0B")
    c["LocalVolumes"] = str(len([m for m in entry["Mounts"].split(",") if m]))
    c["Label"] = lambda key: labels.get(key, "")
    return c


def cmd_inspect(opts: Globals, args: list[str]) -> int:
    flags, refs = parse_flags(args, [Flag("-f,--format", "value"), Flag("--type", "value"),
                                     Flag("-s,--size")])
    if not refs:
        raise UsageError(f"usage: {PROG} inspect [-f FORMAT] NAME...")
    kind = flags["type"]
    if kind not in (None, "container", "image"):
        raise UsageError(f"unsupported --type {kind!r} (container or image)")
    from ...engine.inspect import container_document, image_document
    from ...engine.records import NoSuchContainer

    docs = []
    rc = 0
    with _view(opts) as eng:
        for ref in refs:
            try:
                if kind == "image":
                    raise NoSuchContainer(ref)
                docs.append(container_document(eng, eng.get(ref)))
                continue
            except NoSuchContainer:
                if kind == "container":
                    error(f"No such container: {ref}")
                    rc = 1
                    continue
            from ...image.db import ImageNotFound  # only now: the image store costs imports

            try:
                docs.append(image_document(eng.images, ref))
            except ImageNotFound:
                error(f"No such image: {ref}" if kind == "image" else f"No such object: {ref}")
                rc = 1
    return print_inspect(docs, flags["format"]) or rc


def print_inspect(docs: list[dict], fmt: str | None) -> int:
    """`docker inspect`'s output: a JSON array, or each document through the template (a
    key the document lacks is an error there, as in Docker)."""
    if not fmt:
        print_json(docs)
        return 0
    if fmt == "json":
        from ...jsonio import dumps

        for d in docs:
            print(dumps(d))
        return 0
    from .common import render_template

    for d in docs:
        print(render_template(fmt, d, missing_key_error=True))
    return 0


def cmd_port(opts: Globals, args: list[str]) -> int:
    _, rest = parse_flags(args, [])
    if not rest or len(rest) > 2:
        raise UsageError(f"usage: {PROG} port CONTAINER [PRIVATE_PORT[/PROTO]]")
    from ...engine.status import PAUSED, RUNNING, live_state
    from ...network.attach import read_state
    from ...network.report import port_lines

    with _engine(opts) as eng:
        row = eng.get(rest[0])
    running = live_state(row) in (RUNNING, PAUSED)
    state = read_state(opts.run_root, row["id"]) if running else None
    which = None
    if len(rest) == 2:
        which = rest[1] if "/" in rest[1] else rest[1] + "/tcp"
    lines = port_lines(state, which)
    if which and not lines:
        error(f"no public port '{rest[1]}' published for {rest[0]}")
        return 1
    for line in lines:
        print(line)
    return 0


# ---------------------------------------------------------------------------- top, stats


def cmd_top(opts: Globals, args: list[str]) -> int:
    _, rest = parse_flags(args, [], interspersed=False)
    if not rest:
        raise UsageError(f"usage: {PROG} top CONTAINER [ps OPTIONS]")
    from ...engine.status import RUNNING, live_state

    with _engine(opts) as eng:
        row = eng.get(rest[0])
        if live_state(row) != RUNNING:
            error(f"Container {row['id']} is not running")  # docker's words and code
            return 1
        pids = eng.runtime(row).pids(row["id"])
    ps_args = rest[1:] or ["-f"]
    import subprocess

    r = subprocess.run(["ps", *ps_args], capture_output=True, text=True)
    if r.returncode != 0:
        why = next((ln.strip() for ln in r.stderr.splitlines() if ln.strip()), "failed")
        raise UsageError(f"ps {' '.join(ps_args)}: {why}")
    lines = r.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise UsageError("the ps options must show a PID column")
    col = header.index("PID")
    wanted = set(pids)
    print(lines[0])
    for line in lines[1:]:
        fields = line.split(None, len(header) - 1)
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            print(line)
    return 0


STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
               "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}")
STATS_HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME",
                 "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                 "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


def cmd_stats(opts: Globals, args: list[str]) -> int:
    flags, refs = parse_flags(args, [Flag("--no-stream"), Flag("-a,--all"),
                                     Flag("--format", "value"), Flag("--no-trunc")])
    from ...engine.stats import sample_all
    from .common import print_listing

    with _engine(opts) as eng:
        while True:
            rows = sample_all(eng, refs, include_stopped=flags["all"])
            if not flags["no_stream"] and flags["format"] != "json":
                sys.stdout.write("\x1b[2J\x1b[H")
            print_listing(flags["format"], rows, STATS_TABLE, STATS_HEADERS)
            sys.stdout.flush()
            if flags["no_stream"]:
                return 0


# ---------------------------------------------------------------------------- attach, exec


def cmd_attach(opts: Globals, args: list[str]) -> int:
    flags, rest = parse_flags(args, [Flag("--no-stdin"), Flag("--sig-proxy"),
                                     Flag("--detach-keys", "value")])
    if len(rest) != 1:
        raise UsageError(f"usage: {PROG} attach CONTAINER")
    from ...engine.monitor import AttachClient
    from ...engine.status import RUNNING, live_state

    with _engine(opts) as eng:
        row = eng.get(rest[0])
        if live_state(row) != RUNNING:
            error("You cannot attach to a stopped container, start it first")
            return 1
        copts = eng.options(row)
        client = AttachClient(eng.paths.attach_socket(row["id"]))
        try:
            return _foreground(eng, row["id"], client, copts.tty,
                               copts.interactive and not flags["no_stdin"])
        finally:
            client.close()


def cmd_exec(opts: Globals, args: list[str]) -> int:
    flags, rest = parse_flags(args, [Flag("-i,--interactive"), Flag("-t,--tty"),
                                     Flag("-d,--detach"), Flag("-e,--env", "multi"),
                                     Flag("--env-file", "multi"), Flag("-u,--user", "value"),
                                     Flag("-w,--workdir", "value"), Flag("--privileged")],
                              interspersed=False)
    if len(rest) < 2:
        raise UsageError(f"usage: {PROG} exec [OPTIONS] CONTAINER COMMAND [ARG...]")
    if flags["tty"] and flags["interactive"] and not flags["detach"] and not os.isatty(0):
        error("the input device is not a TTY")  # Docker's words and exit code
        return 1
    from ...engine.exec import ExecOptions, exec_in_container

    env = [e if "=" in e else f"{e}={os.environ.get(e, '')}" for e in flags["env"]]
    xopts = ExecOptions(args=rest[1:], interactive=flags["interactive"], tty=flags["tty"],
                        detach=flags["detach"], env=env, user=flags["user"] or None,
                        workdir=flags["workdir"])
    sys.stdout.flush()
    with _engine(opts) as eng:
        return exec_in_container(eng, rest[0], xopts)


# ---------------------------------------------------------------------------- logs, files


def cmd_logs(opts: Globals, args: list[str]) -> int:
    flags, rest = parse_flags(args, [Flag("-f,--follow"), Flag("--since", "value"),
                                     Flag("--until", "value"), Flag("-n,--tail", "value"),
                                     Flag("-t,--timestamps"), Flag("--details")])
    if len(rest) != 1:
        raise UsageError(f"usage: {PROG} logs [-f] [--since T] [--until T] [--tail N] [-t] "
                         "CONTAINER")
    from ...engine.logs import parse_timestamp, read_logs
    from ...engine.status import PAUSED, RUNNING, live_state

    try:
        since = parse_timestamp(flags["since"]) if flags["since"] else None
        until = parse_timestamp(flags["until"]) if flags["until"] else None
    except ValueError as e:
        raise UsageError(str(e)) from None
    tail = flags["tail"]
    if tail in (None, "all"):
        tail_n = None
    else:
        try:
            tail_n = int(tail)
        except ValueError:
            raise UsageError(f"invalid --tail {tail!r}: a number or all") from None
    with _view(opts) as eng:
        row = eng.get(rest[0])
        copts = eng.options(row)
        if copts.log_driver == "none":
            error("configured logging driver does not support reading")  # docker's, exit 1
            return 1
        cid = row["id"]

        def running() -> bool:
            try:
                return live_state(eng.db.get(cid)) in (RUNNING, PAUSED)
            except Exception:  # noqa: BLE001 - removed meanwhile
                return False

        read_logs(eng.paths.log_path(cid), sys.stdout.buffer, sys.stderr.buffer, since=since,
                  until=until, tail=tail_n, timestamps=flags["timestamps"],
                  follow=flags["follow"], is_running=running)
    return 0


def cmd_cp(opts: Globals, args: list[str]) -> int:
    flags, rest = parse_flags(args, [Flag("-a,--archive"), Flag("-L,--follow-link"),
                                     Flag("-q,--quiet")])
    if len(rest) != 2:
        raise UsageError(f"usage: {PROG} cp [-a] [-L] CONTAINER:SRC DEST | SRC CONTAINER:DEST")
    src, dst = rest
    src_c = _container_path(src)
    dst_c = _container_path(dst)
    if bool(src_c) == bool(dst_c):
        raise UsageError("copying between containers or within the host is not supported: "
                         "one side must be CONTAINER:PATH")
    from ...engine import copy as cp
    from ...engine.containers import mounted_source

    with _engine(opts) as eng:
        if src_c:
            with eng.rootfs(src_c[0]) as (row, root):
                root, path = mounted_source(eng, row, root, src_c[1])
                target = sys.stdout.buffer if dst == "-" else dst
                cp.copy_out(root, path, target, archive=flags["archive"],
                            follow_link=flags["follow_link"])
        else:
            with eng.rootfs(dst_c[0]) as (row, root):
                root, path = mounted_source(eng, row, root, dst_c[1], writing=True)
                source = sys.stdin.buffer if src == "-" else src
                cp.copy_in(root, source, path, archive=flags["archive"],
                           follow_link=flags["follow_link"])
    return 0


def _container_path(arg: str) -> tuple[str, str] | None:
    """"name:/path" -> (name, "/path"); a host path (absolute, ./x, or no colon) -> None."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None
    name, _, path = arg.partition(":")
    return (name, path or "/")


def cmd_commit(opts: Globals, args: list[str]) -> int:
    flags, rest = parse_flags(args, [Flag("-a,--author", "value"), Flag("-m,--message", "value"),
                                     Flag("-c,--change", "multi"), Flag("-p,--pause", default=True),
                                     Flag("--format", "value")])
    if len(rest) not in (1, 2):
        raise UsageError(f"usage: {PROG} commit [-a AUTHOR] [-m MSG] [-c INSTR] [-p=false] "
                         "CONTAINER [REPOSITORY[:TAG]]")
    from ...engine.commit import commit_container

    with _engine(opts) as eng:
        image_id = commit_container(eng, rest[0], reference=rest[1] if len(rest) == 2 else None,
                                    changes=flags["change"], author=flags["author"] or "",
                                    message=flags["message"] or "",
                                    pause=flags["pause"])
    print(image_id)
    return 0


def cmd_export(opts: Globals, args: list[str]) -> int:
    flags, rest = parse_flags(args, [Flag("-o,--output", "value")])
    if len(rest) != 1:
        raise UsageError(f"usage: {PROG} export [-o FILE] CONTAINER")
    from ...engine.export import export_rootfs

    output = flags["output"]
    with _engine(opts) as eng:
        if not output or output == "-":
            if sys.stdout.isatty():
                raise UsageError("cowardly refusing to write a tar archive to a terminal: "
                                 "use -o FILE or redirect")
            with eng.rootfs(rest[0]) as (_, root):
                sys.stdout.flush()
                export_rootfs(root, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            return 0
        from ...output import output_file

        with eng.rootfs(rest[0]) as (_, root), output_file(output) as f:
            export_rootfs(root, f)
    return 0
