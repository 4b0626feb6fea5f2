"""`sangja-runtime`: the OCI runtime command line, compatible with runc's.

Only parsing and output live here; every operation is in `sangja.runtime`.
"""

from __future__ import annotations

import os
import sys

from .args import Flag, UsageError, parse, to_int, usage

PROG = "sangja-runtime"

GLOBAL = [
    Flag("--root", value=True, help="state directory (default /run/sangja/runtime)"),
    Flag("--log", value=True, help="log file (default: stderr only)"),
    Flag("--log-format", value=True, default="text", help="text or json"),
    Flag("--debug", help="show tracebacks and debug messages"),
    Flag("--systemd-cgroup", help="cgroupsPath is systemd-style (slice:prefix:name)"),
    Flag("--criu", value=True, help="(accepted for runc compatibility; unused)"),
    Flag("--rootless", value=True, default="auto", help="auto or false"),
    Flag("-h,--help", dest="help", help="show help"),
    Flag("-v,--version", dest="version", help="print the version"),
]

CREATE_FLAGS = [
    Flag("-b,--bundle", dest="bundle", value=True, default=".", help="bundle directory"),
    Flag("--console-socket", value=True, help="unix socket to send the pty master to"),
    Flag("--pid-file", value=True, help="write the init's pid here"),
    Flag("--no-pivot", help="chroot instead of pivot_root (ramdisk roots)"),
    Flag("--no-new-keyring", help="(accepted: no session keyring is made)"),
    Flag("--preserve-fds", value=True, default="0", help="pass fds 3..3+N-1 through"),
]
RUN_FLAGS = CREATE_FLAGS + [
    Flag("-d,--detach", dest="detach", help="do not wait for the container"),
    Flag("--keep", help="do not delete the container after it exits"),
    Flag("--no-subreaper", help="(accepted for runc compatibility)"),
]
EXEC_FLAGS = [
    Flag("-p,--process", dest="process", value=True, help="process.json to run"),
    Flag("-t,--tty", dest="tty", help="allocate a terminal"),
    Flag("-e,--env", dest="env", multi=True, help="set an environment variable"),
    Flag("--cwd", value=True, help="working directory"),
    Flag("-u,--user", dest="user", value=True, help="uid[:gid]"),
    Flag("-g,--additional-gids", dest="additional_gids", multi=True, help="extra group"),
    Flag("-d,--detach", dest="detach", help="do not wait for the process"),
    Flag("--pid-file", value=True, help="write the process pid here"),
    Flag("--console-socket", value=True, help="unix socket to send the pty master to"),
    Flag("--preserve-fds", value=True, default="0", help="pass fds 3..3+N-1 through"),
    Flag("--cap", dest="cap", multi=True, help="add a capability"),
    Flag("--no-new-privs", help="set no_new_privs"),
    Flag("--ignore-paused", help="(accepted for runc compatibility)"),
]


class Context:
    def __init__(self, opts: dict):
        from ..runtime.store import Store

        self.opts = opts
        self.store = Store(opts["root"])
        self.debug = opts["debug"]
        self.log_path = opts["log"]
        self.log_json = opts["log_format"] == "json"

    def log(self, level: str, msg: str) -> None:
        if not self.log_path:
            return
        import time

        if self.log_json:
            from ..jsonio import dumps

            line = dumps({"level": level, "msg": msg,
                          "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        else:
            line = f'time="{time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}" ' \
                   f'level={level} msg="{msg}"'
        try:
            with open(self.log_path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass

    def warn(self, msg: str) -> None:
        self.log("warning", msg)
        print(f"{PROG}: warning: {msg}", file=sys.stderr)


def _one(pos: list[str], what: str = "container id") -> str:
    if len(pos) != 1:
        raise UsageError(f"expects exactly one argument: {what}" if not pos
                         else f"unexpected arguments: {' '.join(pos[1:])}")
    return pos[0]


def _check_preserve_fds(argv: list[str]) -> None:
    """Before this process opens anything: the preserved fds must all be the caller's."""
    n = "0"
    for i, a in enumerate(argv):
        if a.lstrip("-") == "preserve-fds" and i + 1 < len(argv):
            n = argv[i + 1]
        elif a.lstrip("-").startswith("preserve-fds="):
            n = a.split("=", 1)[1]
    from ..runtime.process_setup import check_preserved_fds

    check_preserved_fds(to_int(n, "--preserve-fds"))


def _prime() -> None:
    from ..linux.cgroups import prime_migration

    prime_migration()


def cmd_create(ctx: Context, argv: list[str]) -> int:
    opts, pos = parse(CREATE_FLAGS, argv, interspersed=True)
    cid = _one(pos)
    from ..runtime.create import create

    c = create(ctx.store, cid, opts["bundle"], pid_file=opts["pid_file"],
               console_socket=opts["console_socket"], no_pivot=opts["no_pivot"],
               preserve_fds=to_int(opts["preserve_fds"], "--preserve-fds"),
               systemd_cgroup=ctx.opts["systemd_cgroup"], warn=ctx.warn)
    c.unlock()
    return 0


def cmd_run(ctx: Context, argv: list[str]) -> int:
    opts, pos = parse(RUN_FLAGS, argv, interspersed=True)
    cid = _one(pos)
    from ..runtime.run import run

    return run(ctx.store, cid, opts["bundle"], detach=opts["detach"], pid_file=opts["pid_file"],
               console_socket=opts["console_socket"], no_pivot=opts["no_pivot"],
               preserve_fds=to_int(opts["preserve_fds"], "--preserve-fds"),
               keep=opts["keep"], systemd_cgroup=ctx.opts["systemd_cgroup"], warn=ctx.warn)


def cmd_start(ctx: Context, argv: list[str]) -> int:
    _, pos = parse([], argv)
    from ..runtime.start import start

    start(ctx.store, _one(pos), warn=ctx.warn)
    return 0


def cmd_state(ctx: Context, argv: list[str]) -> int:
    _, pos = parse([], argv)
    from ..jsonio import dumps

    c = ctx.store.peek(_one(pos))
    print(dumps(c.oci_state(), indent=2))
    return 0


def cmd_kill(ctx: Context, argv: list[str]) -> int:
    opts, pos = parse([Flag("-a,--all", dest="all")], argv, interspersed=True)
    if not 1 <= len(pos) <= 2:
        raise UsageError("expects a container id and an optional signal")
    from ..linux.signals import parse as parse_signal
    from ..runtime.kill import kill

    try:
        sig = parse_signal(pos[1] if len(pos) == 2 else "SIGTERM")
    except ValueError as e:
        raise UsageError(str(e)) from None
    kill(ctx.store, pos[0], sig, opts["all"])
    return 0


def cmd_delete(ctx: Context, argv: list[str]) -> int:
    opts, pos = parse([Flag("-f,--force", dest="force")], argv, interspersed=True)
    from ..runtime.delete import delete

    if not pos:
        raise UsageError("expects at least one container id")
    for cid in pos:
        delete(ctx.store, cid, opts["force"], warn=ctx.warn)
    return 0


def cmd_list(ctx: Context, argv: list[str]) -> int:
    opts, pos = parse([Flag("-f,--format", dest="format", value=True, default="table"),
                       Flag("-q,--quiet", dest="quiet")], argv)
    if pos:
        raise UsageError(f"unexpected arguments: {' '.join(pos)}")
    rows = []
    for cid in ctx.store.ids():
        try:
            c = ctx.store.peek(cid)
        except Exception:  # noqa: BLE001 - a container removed while we list it
            continue
        st = c.oci_state()
        rows.append({"ociVersion": st["ociVersion"], "id": cid, "pid": st["pid"],
                     "status": st["status"], "bundle": st["bundle"],
                     "rootfs": c.record.get("rootfs", ""), "created": c.record.get("created", ""),
                     "owner": c.record.get("owner", ""),
                     **({"annotations": st["annotations"]} if "annotations" in st else {})})
    if opts["quiet"]:
        for r in rows:
            print(r["id"])
    elif opts["format"] == "json":
        from ..jsonio import dumps

        print(dumps(rows))
    elif opts["format"] == "table":
        _table(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
               [[r["id"], r["pid"], r["status"], r["bundle"], r["created"], r["owner"]]
                for r in rows])
    else:
        raise UsageError(f"invalid format {opts['format']!r} (table or json)")
    return 0


def _table(header: list[str], rows: list[list]) -> None:
    cells = [header] + [[str(x) for x in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for r in cells:
        print("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def cmd_ps(ctx: Context, argv: list[str]) -> int:
    opts, pos = parse([Flag("-f,--format", dest="format", value=True, default="table")], argv)
    if not pos:
        raise UsageError("expects a container id")
    from ..runtime.kill import container_pids

    c = ctx.store.peek(pos[0])
    pids = container_pids(c.record)
    if opts["format"] == "json":
        from ..jsonio import dumps

        print(dumps(pids))
        return 0
    if opts["format"] != "table":
        raise UsageError(f"invalid format {opts['format']!r} (table or json)")
    import subprocess

    ps_args = pos[1:] or ["-ef"]
    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True)
    if out.returncode != 0:
        raise UsageError(f"ps {' '.join(ps_args)} failed: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise UsageError("ps output has no PID column")
    col = header.index("PID")
    print(lines[0])
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            print(line)
    return 0


def cmd_exec(ctx: Context, argv: list[str]) -> int:
    opts, pos = parse(EXEC_FLAGS, argv)
    if not pos:
        raise UsageError("expects a container id and a command (or --process)")
    from ..runtime.exec import exec_process

    return exec_process(ctx.store, pos[0], pos[1:], process_file=opts["process"],
                        tty=opts["tty"], env=opts["env"], cwd=opts["cwd"], user=opts["user"],
                        additional_gids=opts["additional_gids"], detach=opts["detach"],
                        pid_file=opts["pid_file"], console_socket=opts["console_socket"],
                        preserve_fds=to_int(opts["preserve_fds"], "--preserve-fds"),
                        caps=opts["cap"], no_new_privs=opts["no_new_privs"])


def cmd_features(ctx: Context, argv: list[str]) -> int:
    parse([], argv)
    from ..jsonio import dumps
    from ..runtime.features import features

    print(dumps(features(), indent=4))
    return 0


def cmd_spec(ctx: Context, argv: list[str]) -> int:
    opts, pos = parse([Flag("-b,--bundle", dest="bundle", value=True, default="."),
                       Flag("--rootless")], argv)
    if opts["rootless"]:
        raise UsageError("--rootless specs are not supported yet")
    from ..jsonio import dumps
    from ..runtime.default_spec import default_spec

    path = os.path.join(opts["bundle"], "config.json")
    if os.path.exists(path):
        raise UsageError(f"File {path} exists. Remove it first")
    with open(path, "w") as f:
        f.write(dumps(default_spec(), indent=4) + "\n")
    return 0


UPDATE_FLAGS = [
    Flag("-r,--resources", dest="resources", value=True,
         help="linux.resources JSON file, '-' for stdin (other flags are then ignored)"),
    Flag("--memory", value=True, help="memory limit in bytes (64m, 1g; -1 unlimited)"),
    Flag("--memory-swap", value=True, help="memory+swap limit in bytes (-1 unlimited)"),
    Flag("--memory-reservation", value=True, help="memory soft limit in bytes"),
    Flag("--kernel-memory", value=True, help="kernel memory limit (v1)"),
    Flag("--kernel-memory-tcp", value=True, help="kernel TCP buffer limit (v1)"),
    Flag("--cpu-share,--cpu-shares", dest="cpu_share", value=True, help="CPU shares"),
    Flag("--cpu-quota", value=True, help="CFS quota in microseconds per period"),
    Flag("--cpu-period", value=True, help="CFS period in microseconds"),
    Flag("--cpu-rt-runtime", value=True, help="realtime runtime in microseconds"),
    Flag("--cpu-rt-period", value=True, help="realtime period in microseconds"),
    Flag("--cpuset-cpus", value=True, help="CPUs to use (0-3,5)"),
    Flag("--cpuset-mems", value=True, help="memory nodes to use"),
    Flag("--pids-limit", value=True, help="maximum number of pids"),
    Flag("--blkio-weight", value=True, help="block IO weight (10-1000)"),
    Flag("--l3-cache-schema", value=True, help="(Intel RDT: not supported)"),
    Flag("--mem-bw-schema", value=True, help="(Intel RDT: not supported)"),
]


def cmd_update(ctx: Context, argv: list[str]) -> int:
    opts, pos = parse(UPDATE_FLAGS, argv, interspersed=True)
    cid = _one(pos)
    from ..runtime.update import FLAG_FIELDS, load_resources, resources_from_flags, update

    if opts["resources"]:
        resources = load_resources(opts["resources"])
    else:
        if opts["l3_cache_schema"] or opts["mem_bw_schema"]:
            raise UsageError("Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported")
        resources = resources_from_flags({f: opts[f.replace("-", "_")] for f in FLAG_FIELDS})
    update(ctx.store, cid, resources)
    return 0


def cmd_pause(ctx: Context, argv: list[str]) -> int:
    _, pos = parse([], argv)
    from ..runtime.pause import pause

    pause(ctx.store, _one(pos))
    return 0


def cmd_resume(ctx: Context, argv: list[str]) -> int:
    _, pos = parse([], argv)
    from ..runtime.pause import resume

    resume(ctx.store, _one(pos))
    return 0


def cmd_events(ctx: Context, argv: list[str]) -> int:
    opts, pos = parse([Flag("--stats", help="print the stats once and exit"),
                       Flag("--interval", value=True, default="5s",
                            help="stats interval (Go duration, default 5s)")],
                      argv, interspersed=True)
    cid = _one(pos)
    from ..jsonio import dumps
    from ..runtime import events

    if opts["stats"]:
        print(dumps(events.stats_event(ctx.store, cid)))
        return 0
    try:
        interval = events.parse_duration(opts["interval"])
    except ValueError as e:
        raise UsageError(f"invalid --interval: {e}") from None

    def emit(ev: dict) -> None:
        sys.stdout.write(dumps(ev) + "\n")
        sys.stdout.flush()

    return events.stream(ctx.store, cid, interval, emit)


COMMANDS = {
    "create": (cmd_create, "create a container", "ID"),
    "start": (cmd_start, "start a created container", "ID"),
    "run": (cmd_run, "create and start a container, wait for it", "ID"),
    "state": (cmd_state, "print a container's state as JSON", "ID"),
    "kill": (cmd_kill, "send a signal to a container", "ID [SIGNAL]"),
    "delete": (cmd_delete, "delete a container", "ID..."),
    "exec": (cmd_exec, "run a new process in a container", "ID [COMMAND [ARG...]]"),
    "ps": (cmd_ps, "list the processes of a container", "ID [PS ARGS]"),
    "update": (cmd_update, "change a running container's resource limits", "ID"),
    "pause": (cmd_pause, "freeze every process of a container", "ID"),
    "resume": (cmd_resume, "thaw a paused container", "ID"),
    "events": (cmd_events, "print a container's stats and OOM events as JSON", "ID"),
    "list": (cmd_list, "list containers", ""),
    "features": (cmd_features, "print the features of this runtime as JSON", ""),
    "spec": (cmd_spec, "write a default config.json", ""),
}
ALIASES = {"ls": "list"}
# What works for any user: the rest reads or changes the state of root's containers.
NO_ROOT_NEEDED = frozenset({"spec", "features"})


def _help() -> str:
    lines = [f"usage: {PROG} [global options] COMMAND [options] [ARGS]", "",
             "An OCI runtime (runc-compatible command line).", "", "Commands:"]
    for name, (_, text, _) in COMMANDS.items():
        lines.append(f"  {name:<10}{text}")
    lines += ["", usage(PROG, "", "", GLOBAL).split("\n", 2)[2].replace("\t", "  ")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    ctx = None
    try:
        gopts, rest = parse(GLOBAL, argv)
        if gopts["version"]:
            from .. import OCI_VERSION, __version__

            print(f"{PROG} version {__version__}\nspec: {OCI_VERSION}")
            return 0
        if gopts["help"] or not rest:
            print(_help())
            return 0 if gopts["help"] else 1
        if gopts["rootless"] not in ("auto", "false") and os.geteuid() == 0:
            raise UsageError(f"--rootless={gopts['rootless']} is not supported yet")
        if gopts["log_format"] not in ("text", "json"):
            raise UsageError(f"invalid --log-format {gopts['log_format']!r} (text or json)")
        name = ALIASES.get(rest[0], rest[0])
        if name not in COMMANDS:
            raise UsageError(f"unknown command {rest[0]!r} (see {PROG} --help)")
        sub = rest[1:]
        if "-h" in sub[:1] or "--help" in sub[:1]:
            print(f"usage: {PROG} {name} [options] {COMMANDS[name][2]}")
            return 0
        if name not in NO_ROOT_NEEDED and os.geteuid() != 0:
            raise UsageError(f"{name} needs root: run {PROG} as root (rootless containers "
                             "are not supported yet)")
        if name in ("create", "run"):
            _prime()  # first: its wait overlaps everything below
        if name in ("create", "run", "exec"):
            _check_preserve_fds(sub)
        ctx = Context(gopts)
        return COMMANDS[name][0](ctx, sub)
    except BrokenPipeError:
        from . import stdout_gone

        return stdout_gone()
    except KeyboardInterrupt:
        return 130
    except BaseException as e:  # noqa: BLE001 - the one place errors become a line
        return _report(e, ctx, debug)


def _report(e: BaseException, ctx: Context | None, debug: bool) -> int:
    from ..errors import SangjaError
    from ..jsonio import JSONError

    if isinstance(e, SystemExit):
        raise e
    if isinstance(e, UsageError):
        msg, code = str(e), 1
    elif isinstance(e, SangjaError | JSONError):
        msg, code = str(e), getattr(e, "exit_code", 1)
    elif isinstance(e, OSError):
        msg = e.strerror or str(e)
        if e.filename and str(e.filename) not in msg:
            msg += f": {e.filename}"
        code = 1
    else:
        msg, code = f"internal error: {e.__class__.__name__}: {e}", 1
    if debug:
        import traceback

        traceback.print_exception(e)
    if ctx is not None:
        ctx.log("error", msg)
    print(f"{PROG}: {msg}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
