"""Container commands: run, create, start, stop, restart, kill, rm, ps, inspect, wait,
rename, pause, unpause, port, top, stats, attach, exec, logs, cp, commit, export,
container prune, and the monitor's `container cleanup`. Parsing and printing only: the
work is in sangja.engine."""

from __future__ import annotations

import os
import sys

from .common import (
    DETACH_KEYS_HELP,
    FORMAT_HELP,
    INSPECT_FORMAT_HELP,
    PROG,
    Command,
    Flag,
    Globals,
    UsageError,
    error,
    print_inspect,
)

TYPE_CHECKING = False  # annotations only: progress is imported when a pull needs it
if TYPE_CHECKING:
    from .progress import Progress


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
        self.view: Progress | None = None

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

    def __exit__(self, kind, e, tb) -> None:
        from ...errors import SangjaError

        if isinstance(e, SangjaError) and getattr(e, "engine_exit_code", 125) == 1:
            e.engine_exit_code = 125


def cmd_create(opts: Globals, args: list[str]) -> int:
    from .run_flags import parse_run_args

    copts = parse_run_args(args, command="create")
    with _engine(opts) as eng, _RunExitCodes():
        print(eng.create(copts, progress=_PullProgress()))
    return 0


def cmd_run(opts: Globals, args: list[str]) -> int:
    from .run_flags import parse_run_args

    fg: dict = {}
    copts = parse_run_args(args, command="run", foreground=fg)
    keys = detach_keys(fg["detach_keys"])
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
        size = None
        if copts.tty and os.isatty(0):
            from ...linux.pty import get_winsize

            size = get_winsize(0)  # the program sees its terminal's size from the start
        try:
            client = eng.start(cid, attach=True, console_size=size)
        except BaseException:
            if copts.rm:
                _quietly(eng.remove, cid, force=True, volumes=True)
            raise
        try:
            code = _foreground(eng, cid, client, copts.tty, copts.interactive,
                               sig_proxy=fg["sig_proxy"], detach=keys,
                               streams=copts.attach or ("stdout", "stderr"))
            if code is None:  # detached: the monitor cleans up when the container exits
                return 0
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


DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def detach_keys(spec: str | None) -> bytes:
    """Docker's --detach-keys: comma-separated keys, each a single character or `ctrl-X`
    (X one of a-z @ [ \\ ] ^ _); empty or None: ctrl-p,ctrl-q."""
    out = bytearray()
    for key in (spec or DEFAULT_DETACH_KEYS).split(","):
        if len(key) == 1:
            out.append(ord(key))
            continue
        low = key.lower()
        c = low[5:] if low.startswith("ctrl-") else ""
        if len(c) == 1 and ("a" <= c <= "z" or c in "@[\\]^_"):
            out.append(ord(c.upper()) & 0x1F)
        elif key == "DEL":
            out.append(127)
        else:
            raise UsageError(f"Invalid detach keys ({spec}) provided: unknown key {key!r} "
                             "(a character or ctrl-<a-z, @, [, \\, ], ^, _>)")
    return bytes(out)


def _foreground(eng, cid: str, client, tty: bool, interactive: bool, *,
                sig_proxy: bool = True, detach: bytes = b"",
                streams: tuple | list = ("stdout", "stderr")) -> int | None:
    """Relay the container's stdio until it exits; return its exit code, or None when the
    user typed the `detach` keys (with a tty and stdin), the container left running.
    Without a tty and with `sig_proxy`, signals to us go to the container; with a tty, ^C
    travels through the terminal as a byte. Only the output `streams` named are shown
    (`run -a stdout`)."""
    from ...engine.monitor import Detached
    from ...linux import signals
    from ...runtime.console import RawMode

    row = eng.get(cid)
    runtime = eng.runtime(row)
    handlers = {}
    if tty:
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
    elif sig_proxy:  # else signals are ours: ^C ends the attach, not the container
        def forward(sig, _frame):
            try:
                runtime.kill(cid, sig)
            except Exception:  # noqa: BLE001 - it may be gone already
                pass

        for s in (signals.SIGINT, signals.SIGTERM, signals.SIGHUP, signals.SIGQUIT,
                  signals.SIGUSR1, signals.SIGUSR2):
            handlers[s] = signals.signal(s, forward)
    stdin_fd = 0 if interactive else None
    out = sys.stdout.buffer if "stdout" in streams else None
    err = sys.stderr.buffer if "stderr" in streams else None
    try:
        with RawMode(0) if (tty and interactive) else _Nothing():
            code = client.relay(stdin_fd, out, err, tty, detach_keys=detach)
    except Detached:
        return None
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


START = Command("[OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers", [
    Flag("-a,--attach", help="Attach STDOUT/STDERR and forward signals"),
    Flag("--detach-keys", "value", DETACH_KEYS_HELP),
    Flag("-i,--interactive", help="Attach container's STDIN"),
])


def cmd_start(opts: Globals, args: list[str]) -> int:
    flags, refs = START.parse(args)
    if not refs:
        raise UsageError(f"usage: {PROG} start [-a] [-i] CONTAINER...")
    if not (flags["attach"] or flags["interactive"]):
        return _each(opts, refs, lambda eng, ref: (eng.start(ref), ref)[1])
    if len(refs) > 1:
        raise UsageError("you cannot start and attach multiple containers at once")
    with _engine(opts) as eng:
        row = eng.get(refs[0])
        copts = eng.options(row)
        keys = detach_keys(flags["detach_keys"])
        client = eng.start(refs[0], attach=True)
        if client is None:
            raise UsageError(f"container {refs[0]} is already running: use attach")
        try:
            code = _foreground(eng, row["id"], client, copts.tty,
                               flags["interactive"] and copts.interactive, detach=keys)
            if code is None:  # detached
                return 0
            eng.cleanup(row["id"])
        finally:
            client.close()
        return code


STOP = Command("[OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers", [
    Flag("-s,--signal", "value", "Signal to send to the container"),
    Flag("-t,--timeout,--time", "value", "Seconds to wait before killing the container",
         dest="time", meta="int"),
])


def cmd_stop(opts: Globals, args: list[str]) -> int:
    flags, refs = STOP.parse(args)
    if not refs:
        raise UsageError(f"usage: {PROG} stop [-t SECONDS] CONTAINER...")
    timeout = _seconds(flags["time"])
    sig = _signal(flags["signal"]) if flags["signal"] else None
    return _each_parallel(opts, refs,
                          lambda eng, ref: (eng.stop(ref, timeout, signal=sig), ref)[1])


def _signal(text: str) -> int:
    from ...linux import signals

    try:
        return signals.parse(text)
    except ValueError as e:
        raise UsageError(str(e)) from None


RESTART = Command("[OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers", [
    Flag("-t,--timeout,--time", "value", "Seconds to wait before killing the container",
         dest="time", meta="int"),
])


def cmd_restart(opts: Globals, args: list[str]) -> int:
    flags, refs = RESTART.parse(args)
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


KILL = Command("[OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers", [
    Flag("-s,--signal", "value", "Signal to send to the container", default="KILL"),
])


def cmd_kill(opts: Globals, args: list[str]) -> int:
    flags, refs = KILL.parse(args)
    if not refs:
        raise UsageError(f"usage: {PROG} kill [-s SIGNAL] CONTAINER...")
    sig = _signal(flags["signal"])
    return _each(opts, refs, lambda eng, ref: (eng.kill(ref, sig), ref)[1])


RM = Command("[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers", [
    Flag("-f,--force", help="Force the removal of a running container (uses SIGKILL)"),
    Flag("-l,--link", help="Remove the specified link (container links are not supported: "
         "refused)"),
    Flag("-v,--volumes", help="Remove anonymous volumes associated with the container"),
])


def cmd_rm(opts: Globals, args: list[str]) -> int:
    flags, refs = RM.parse(args)
    if not refs:
        raise UsageError(f"usage: {PROG} rm [-f] [-v] CONTAINER...")
    if flags["link"]:
        raise UsageError("rm --link: container links are not supported")
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


PAUSE = Command("CONTAINER [CONTAINER...]",
                "Pause all processes within one or more containers")


def cmd_pause(opts: Globals, args: list[str]) -> int:
    _, refs = PAUSE.parse(args)
    if not refs:
        raise UsageError(f"usage: {PROG} pause CONTAINER...")
    return _each(opts, refs, lambda eng, ref: (eng.pause(ref), ref)[1])


UNPAUSE = Command("CONTAINER [CONTAINER...]",
                  "Unpause all processes within one or more containers")


def cmd_unpause(opts: Globals, args: list[str]) -> int:
    _, refs = UNPAUSE.parse(args)
    if not refs:
        raise UsageError(f"usage: {PROG} unpause CONTAINER...")
    return _each(opts, refs, lambda eng, ref: (eng.unpause(ref), ref)[1])


RENAME = Command("CONTAINER NEW_NAME", "Rename a container")


def cmd_rename(opts: Globals, args: list[str]) -> int:
    _, rest = RENAME.parse(args)
    if len(rest) != 2:
        raise UsageError(f"usage: {PROG} rename CONTAINER NEW_NAME")
    with _engine(opts) as eng:
        eng.rename(rest[0], rest[1])
    return 0


WAIT = Command("CONTAINER [CONTAINER...]",
               "Block until one or more containers stop, then print their exit codes")


def cmd_wait(opts: Globals, args: list[str]) -> int:
    _, refs = WAIT.parse(args)
    if not refs:
        raise UsageError(f"usage: {PROG} wait CONTAINER...")
    return _each(opts, refs, lambda eng, ref: eng.wait(ref))


CLEANUP = Command("CONTAINER", "Record the exit of a container and release what it held "
                  "(run by its monitor)", hidden=True)


def cmd_cleanup(opts: Globals, args: list[str]) -> int:
    """Run by the monitor after the container's init exited (docs/engine.md)."""
    _, refs = CLEANUP.parse(args)
    if len(refs) != 1:
        raise UsageError(f"usage: {PROG} container cleanup CONTAINER")
    with _engine(opts) as eng:
        eng.cleanup(refs[0])
    return 0


CONTAINER_PRUNE = Command("[OPTIONS]", "Remove all stopped containers", [
    Flag("--filter", "multi", 'Provide filter values (e.g. "until=<timestamp>")',
         meta="filter"),
    Flag("-f,--force", help="Do not prompt for confirmation"),
])


def cmd_container_prune(opts: Globals, args: list[str]) -> int:
    flags, rest = CONTAINER_PRUNE.parse(args)
    if rest:
        raise UsageError(f"usage: {PROG} container prune [-f] [--filter until=T|label=K[=V]]")
    from ...engine.filters import PruneFilter, prune_filters
    from ...engine.usage import prune_containers
    from .image_tools import confirm, human_size4, print_deleted

    keep = PruneFilter("container", prune_filters(flags["filter"]))
    if not flags["force"] and not confirm("WARNING! This will remove all stopped containers."):
        return 0
    with _engine(opts) as eng:
        gone, size = prune_containers(eng, keep or None)
    print_deleted("Deleted Containers:", [("", c) for c in gone])
    print(f"Total reclaimed space: {human_size4(size)}")
    return 0


# ---------------------------------------------------------------------------- ps, inspect


PS = Command("[OPTIONS]", "List containers", [
    Flag("-a,--all", help="Show all containers (default shows just running)"),
    Flag("-f,--filter", "multi", "Filter output based on conditions provided", meta="filter"),
    Flag("--format", "value", FORMAT_HELP),
    Flag("-n,--last", "value", "Show n last created containers (includes all states)",
         default="-1", meta="int"),
    Flag("-l,--latest", help="Show the latest created container (includes all states)"),
    Flag("--no-trunc", help="Don't truncate output"),
    Flag("-q,--quiet", help="Only display container IDs"),
    Flag("-s,--size", help="Display total file sizes"),
])


def cmd_ps(opts: Globals, args: list[str]) -> int:
    flags, rest = PS.parse(args)
    if rest:
        raise UsageError(f"usage: {PROG} ps [-a] [-q] [--filter K=V] [--format json]")
    from ...engine.listing import list_containers

    wanted = None
    if flags["filter"]:
        from ...engine import filters as flt

        wanted = flt.parse(flags["filter"], flt.PS_KEYS)
    try:
        n = int(flags["last"])
    except ValueError:
        raise UsageError(f'invalid argument "{flags["last"]}" for "-n, --last" flag: '
                         "not an integer") from None
    last = 1 if flags["latest"] else (None if n == -1 else n)  # -n 0: every state, no limit
    with _view(opts) as eng:
        entries = [e for _, e in list_containers(eng, all_states=flags["all"],
                                                 filters=wanted, last=last)]
    trunc = not flags["no_trunc"]
    if flags["quiet"]:
        for e in entries:
            print(e["ID"][:12] if trunc else e["ID"])
        return 0
    fmt = flags["format"] or (PS_TABLE_SIZE if flags["size"] else PS_TABLE)
    if fmt == "table":
        fmt = PS_TABLE_SIZE if flags["size"] else PS_TABLE
    if flags["size"] or ".Size" in fmt:  # Docker asks for sizes when the format shows them
        _add_sizes(opts, entries)
    contexts = [_ps_context(e, trunc) for e in entries]
    if fmt == "json":
        from ...jsonio import dumps

        for c in contexts:
            print(dumps({k: v for k, v in c.items() if not callable(v)}))
        return 0
    from .common import format_rows

    sys.stdout.write(format_rows(fmt, contexts, PS_HEADERS))
    return 0


def _add_sizes(opts: Globals, entries: list[dict]) -> None:
    """`ps -s`: each entry's Size, "0B (virtual 4.26MB)" as Docker prints it."""
    from ...engine.usage import container_sizes
    from ...humanize import human_size

    with _engine(opts) as eng:
        for e in entries:
            rw, total = container_sizes(eng, eng.db.get(e["ID"]))
            e["Size"] = f"{human_size(rw)} (virtual {human_size(total)})"


# Docker's `ps` table and the column titles of its fields (docker/cli formatter).
PS_TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t"
            "{{.Ports}}\t{{.Names}}")
PS_TABLE_SIZE = PS_TABLE + "\t{{.Size}}"
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


INSPECT = Command("[OPTIONS] NAME|ID [NAME|ID...]",
                  "Return low-level information on Docker objects", [
    Flag("-f,--format", "value", INSPECT_FORMAT_HELP),
    Flag("-s,--size", help="Display total file sizes if the type is container"),
    Flag("--type", "value", "Only inspect objects of the given type"),
])


def cmd_inspect(opts: Globals, args: list[str]) -> int:
    flags, refs = INSPECT.parse(args)
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
                row = eng.get(ref)
                docs.append(container_document(eng, row))
                if flags["size"]:
                    from ...engine.usage import container_sizes

                    docs[-1]["SizeRw"], docs[-1]["SizeRootFs"] = container_sizes(eng, row)
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


PORT = Command("CONTAINER [PRIVATE_PORT[/PROTO]]",
               "List port mappings or a specific mapping for the container")


def cmd_port(opts: Globals, args: list[str]) -> int:
    _, rest = PORT.parse(args)
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


TOP = Command("CONTAINER [ps OPTIONS]", "Display the running processes of a container",
              interspersed=False)


def cmd_top(opts: Globals, args: list[str]) -> int:
    _, rest = TOP.parse(args)
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


STATS = Command("[OPTIONS] [CONTAINER...]",
                "Display a live stream of container(s) resource usage statistics", [
    Flag("-a,--all", help="Show all containers (default shows just running)"),
    Flag("--format", "value", FORMAT_HELP),
    Flag("--no-stream", help="Disable streaming stats and only pull the first result"),
    Flag("--no-trunc", help="Do not truncate output"),
])


STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
               "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}")
STATS_HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME",
                 "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                 "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


def cmd_stats(opts: Globals, args: list[str]) -> int:
    flags, refs = STATS.parse(args)
    from ...engine.stats import sample_all
    from .common import print_listing

    with _engine(opts) as eng:
        while True:
            rows = sample_all(eng, refs, include_stopped=flags["all"])
            if not flags["no_trunc"]:
                for r in rows:
                    r["ID"] = r["ID"][:12]
            if not flags["no_stream"] and flags["format"] != "json":
                sys.stdout.write("\x1b[2J\x1b[H")
            print_listing(flags["format"], rows, STATS_TABLE, STATS_HEADERS)
            sys.stdout.flush()
            if flags["no_stream"]:
                return 0


# ---------------------------------------------------------------------------- attach, exec


ATTACH = Command("[OPTIONS] CONTAINER", "Attach local standard input, output, and error "
                 "streams to a running container", [
    Flag("--detach-keys", "value", DETACH_KEYS_HELP),
    Flag("--no-stdin", help="Do not attach STDIN"),
    Flag("--sig-proxy", help="Proxy all received signals to the process", default=True),
])


def cmd_attach(opts: Globals, args: list[str]) -> int:
    flags, rest = ATTACH.parse(args)
    if len(rest) != 1:
        raise UsageError(f"usage: {PROG} attach CONTAINER")
    from ...engine.monitor import AttachClient
    from ...engine.status import RUNNING, live_state

    keys = detach_keys(flags["detach_keys"])
    with _engine(opts) as eng:
        row = eng.get(rest[0])
        if live_state(row) != RUNNING:
            error("You cannot attach to a stopped container, start it first")
            return 1
        copts = eng.options(row)
        client = AttachClient(eng.paths.attach_socket(row["id"]))
        try:
            code = _foreground(eng, row["id"], client, copts.tty,
                               copts.interactive and not flags["no_stdin"],
                               sig_proxy=flags["sig_proxy"], detach=keys)
            return 0 if code is None else code
        finally:
            client.close()


EXEC = Command("[OPTIONS] CONTAINER COMMAND [ARG...]", "Execute a command in a running "
               "container", [
    Flag("-d,--detach", help="Detached mode: run command in the background"),
    Flag("--detach-keys", "value", DETACH_KEYS_HELP),
    Flag("-e,--env", "multi", "Set environment variables"),
    Flag("--env-file", "multi", "Read in a file of environment variables"),
    Flag("-i,--interactive", help="Keep STDIN open even if not attached"),
    Flag("--privileged", help="Give extended privileges to the command (not supported yet: "
         "refused)"),
    Flag("-t,--tty", help="Allocate a pseudo-TTY"),
    Flag("-u,--user", "value", 'Username or UID (format: "<name|uid>[:<group|gid>]")'),
    Flag("-w,--workdir", "value", "Working directory inside the container"),
], interspersed=False)


def cmd_exec(opts: Globals, args: list[str]) -> int:
    flags, rest = EXEC.parse(args)
    if len(rest) < 2:
        raise UsageError(f"usage: {PROG} exec [OPTIONS] CONTAINER COMMAND [ARG...]")
    if flags["tty"] and flags["interactive"] and not flags["detach"] and not os.isatty(0):
        error("the input device is not a TTY")  # Docker's words and exit code
        return 1
    from ...engine.exec import ExecOptions, exec_in_container

    if flags["privileged"]:
        raise UsageError("exec --privileged is not supported yet")
    if flags["detach_keys"] is not None:
        raise UsageError("exec --detach-keys: detaching from exec is not supported (the "
                         "process ends with the exec)")
    from .run_flags import _env  # run's rules for -e and --env-file, as Docker's exec

    env = _env(flags["env_file"], flags["env"])
    xopts = ExecOptions(args=rest[1:], interactive=flags["interactive"], tty=flags["tty"],
                        detach=flags["detach"], env=env, user=flags["user"] or None,
                        workdir=flags["workdir"])
    sys.stdout.flush()
    with _engine(opts) as eng:
        return exec_in_container(eng, rest[0], xopts)


# ---------------------------------------------------------------------------- logs, files


LOGS = Command("[OPTIONS] CONTAINER", "Fetch the logs of a container", [
    Flag("--details", help="Show extra details provided to logs"),
    Flag("-f,--follow", help="Follow log output"),
    Flag("--since", "value", 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or '
         'relative (e.g. "42m" for 42 minutes)'),
    Flag("-n,--tail", "value", "Number of lines to show from the end of the logs",
         default="all"),
    Flag("-t,--timestamps", help="Show timestamps"),
    Flag("--until", "value", 'Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or '
         'relative (e.g. "42m" for 42 minutes)'),
])


def cmd_logs(opts: Globals, args: list[str]) -> int:
    flags, rest = LOGS.parse(args)
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


CP = Command("[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tsangja cp [OPTIONS] SRC_PATH|- "
             "CONTAINER:DEST_PATH", "Copy files/folders between a container and the local "
             "filesystem", [
    Flag("-a,--archive", help="Archive mode (copy all uid/gid information)"),
    Flag("-L,--follow-link", help="Always follow symbol link in SRC_PATH"),
    Flag("-q,--quiet", help="Suppress progress output during copy. Progress output is "
         "automatically suppressed if no terminal is attached"),
])


def cmd_cp(opts: Globals, args: list[str]) -> int:
    flags, rest = CP.parse(args)
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
            assert dst_c is not None  # exactly one side is a container (checked above)
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


COMMIT = Command("[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
                 "Create a new image from a container's changes", [
    Flag("-a,--author", "value", 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'),
    Flag("-c,--change", "multi", "Apply Dockerfile instruction to the created image"),
    Flag("-m,--message", "value", "Commit message"),
    Flag("-p,--pause", help="Pause container during commit", default=True),
])


def cmd_commit(opts: Globals, args: list[str]) -> int:
    flags, rest = COMMIT.parse(args)
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


EXPORT = Command("[OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive", [
    Flag("-o,--output", "value", "Write to a file, instead of STDOUT"),
])


def cmd_export(opts: Globals, args: list[str]) -> int:
    flags, rest = EXPORT.parse(args)
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
