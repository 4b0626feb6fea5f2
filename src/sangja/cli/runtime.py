"""`sangja-runtime`: the OCI runtime command line, compatible with runc's.

Only parsing and output live here; every operation is in `sangja.runtime`.
"""

from __future__ import annotations

import os
import sys

from .flags import Command, Flag, HelpRequested, UsageError, parse_go_flags, to_int

PROG = "sangja-runtime"

# runc's flags and help texts; `sangja-runtime COMMAND --help` prints them as runc does.
GLOBAL = [
    Flag("--debug", help="enable debug logging"),
    Flag("--log", "value", "set the log file to write runc logs to (default is '/dev/stderr')"),
    Flag("--log-format", "value", "set the log format ('text' or 'json')",
         default="text"),
    Flag("--root", "value", "root directory for storage of container state (this should be "
         "located in tmpfs; default /run/sangja/runtime)"),
    Flag("--criu", "value", "accepted for runc compatibility: checkpoint/restore is not "
         "supported"),
    Flag("--systemd-cgroup", help="enable systemd cgroup support, expects cgroupsPath to be "
         "of form \"slice:prefix:name\" for e.g. \"system.slice:runc:434234\""),
    Flag("--rootless", "value", "ignore cgroup permission errors ('true', 'false', or 'auto')",
         default="auto"),
    Flag("-h,--help", help="show help"),
    Flag("-v,--version", help="print the version"),
]

_PRESERVE_FDS = Flag("--preserve-fds", "value", "Pass N additional file descriptors to the "
                     "container (stdio + $LISTEN_FDS + N in total)", default="0",
                     meta="int")
_CONSOLE_SOCKET = Flag("--console-socket", "value", "path to an AF_UNIX socket which will "
                       "receive a file descriptor referencing the master end of the "
                       "console's pseudoterminal")
CREATE_FLAGS = [
    Flag("-b,--bundle", "value", "path to the root of the bundle directory",
         default=".", dest="bundle"),
    _CONSOLE_SOCKET,
    Flag("--pid-file", "value", "specify the file to write the process id to"),
    Flag("--no-pivot", help="do not use pivot root to jail process inside rootfs.  This "
         "should be used whenever the rootfs is on top of a ramdisk"),
    Flag("--no-new-keyring", help="do not create a new session keyring for the container "
         "(sangja-runtime never makes one)"),
    _PRESERVE_FDS,
]
RUN_FLAGS = CREATE_FLAGS + [
    Flag("-d,--detach", help="detach from the container's process"),
    Flag("--keep", help="do not delete the container after it exits"),
    Flag("--no-subreaper", help="disable the use of the subreaper used to reap reparented "
         "processes (sangja-runtime never sets one)"),
]
EXEC_FLAGS = [
    _CONSOLE_SOCKET,
    Flag("--cwd", "value", "current working directory in the container"),
    Flag("-e,--env", "multi", "set environment variables", dest="env"),
    Flag("-t,--tty", help="allocate a pseudo-TTY"),
    Flag("-u,--user", "value", "UID (format: <uid>[:<gid>])", dest="user"),
    Flag("-g,--additional-gids", "multi", "additional gids", dest="additional_gids"),
    Flag("-p,--process", "value", "path to the process.json", dest="process"),
    Flag("-d,--detach", help="detach from the container's process"),
    Flag("--pid-file", "value", "specify the file to write the process id to"),
    Flag("--no-new-privs", help="set the no new privileges value for the process"),
    Flag("-c,--cap", "multi", "add a capability to the bounding set for the process",
         dest="cap"),
    _PRESERVE_FDS,
    Flag("--ignore-paused", help="allow exec in a paused container"),
]
KILL_FLAGS = [Flag("-a,--all", help="send the specified signal to all processes inside the "
                   "container")]
DELETE_FLAGS = [Flag("-f,--force", help="Forcibly deletes the container if it is still "
                     "running (uses SIGKILL)")]
LIST_FLAGS = [Flag("-f,--format", "value", "select one of: table or json", default="table",
                   dest="format"),
              Flag("-q,--quiet", help="display only container IDs")]
PS_FLAGS = [Flag("-f,--format", "value", "select one of: table or json", default="table",
                 dest="format")]
SPEC_FLAGS = [Flag("-b,--bundle", "value", "path to the root of the bundle directory",
                   default=".", dest="bundle"),
              Flag("--rootless", help="generate a configuration for a rootless container "
                   "(not supported yet: refused)")]
EVENTS_FLAGS = [Flag("--interval", "value", "set the stats collection interval",
                     default="5s", meta="duration"),
                Flag("--stats", help="display the container's stats then exit")]


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
    opts, pos = parse_go_flags(argv, CREATE_FLAGS, interspersed=True)
    cid = _one(pos)
    from ..runtime.create import create

    c = create(ctx.store, cid, opts["bundle"], pid_file=opts["pid_file"],
               console_socket=opts["console_socket"], no_pivot=opts["no_pivot"],
               preserve_fds=to_int(opts["preserve_fds"], "--preserve-fds"),
               systemd_cgroup=ctx.opts["systemd_cgroup"], warn=ctx.warn)
    c.unlock()
    return 0


def cmd_run(ctx: Context, argv: list[str]) -> int:
    opts, pos = parse_go_flags(argv, RUN_FLAGS, interspersed=True)
    cid = _one(pos)
    from ..runtime.run import run

    return run(ctx.store, cid, opts["bundle"], detach=opts["detach"], pid_file=opts["pid_file"],
               console_socket=opts["console_socket"], no_pivot=opts["no_pivot"],
               preserve_fds=to_int(opts["preserve_fds"], "--preserve-fds"),
               keep=opts["keep"], systemd_cgroup=ctx.opts["systemd_cgroup"], warn=ctx.warn)


def cmd_start(ctx: Context, argv: list[str]) -> int:
    _, pos = parse_go_flags(argv, [], interspersed=True)
    from ..runtime.start import start

    start(ctx.store, _one(pos), warn=ctx.warn)
    return 0


def cmd_state(ctx: Context, argv: list[str]) -> int:
    _, pos = parse_go_flags(argv, [], interspersed=True)
    from ..jsonio import dumps

    c = ctx.store.peek(_one(pos))
    print(dumps(c.oci_state(), indent=2))
    return 0


def cmd_kill(ctx: Context, argv: list[str]) -> int:
    opts, pos = parse_go_flags(argv, KILL_FLAGS, interspersed=True)
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
    opts, pos = parse_go_flags(argv, DELETE_FLAGS, interspersed=True)
    from ..runtime.delete import delete

    if not pos:
        raise UsageError("expects at least one container id")
    for cid in pos:
        delete(ctx.store, cid, opts["force"], warn=ctx.warn)
    return 0


def cmd_list(ctx: Context, argv: list[str]) -> int:
    opts, pos = parse_go_flags(argv, LIST_FLAGS, interspersed=True)
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
    opts, pos = parse_go_flags(argv, PS_FLAGS)
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
    opts, pos = parse_go_flags(argv, EXEC_FLAGS)
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
    parse_go_flags(argv, [], interspersed=True)
    from ..jsonio import dumps
    from ..runtime.features import features

    print(dumps(features(), indent=4))
    return 0


def cmd_spec(ctx: Context, argv: list[str]) -> int:
    opts, pos = parse_go_flags(argv, SPEC_FLAGS, interspersed=True)
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
    Flag("-r,--resources", "value", "path to the file containing the resources to update or "
         "'-' to read from the standard input (all other options are then ignored)",
         dest="resources"),
    Flag("--blkio-weight", "value", "Specifies per cgroup weight, range is from 10 to 1000"),
    Flag("--cpu-period", "value", "CPU CFS period to be used for hardcapping (in usecs). 0 to "
         "use system default"),
    Flag("--cpu-quota", "value", "CPU CFS hardcap limit (in usecs). Allowed cpu time in a "
         "given period"),
    Flag("--cpu-share,--cpu-shares", "value", "CPU shares (relative weight vs. other "
         "containers)"),
    Flag("--cpu-rt-period", "value", "CPU realtime period to be used for hardcapping (in "
         "usecs). 0 to use system default"),
    Flag("--cpu-rt-runtime", "value", "CPU realtime hardcap limit (in usecs). Allowed cpu time "
         "in a given period"),
    Flag("--cpuset-cpus", "value", "CPU(s) to use"),
    Flag("--cpuset-mems", "value", "Memory node(s) to use"),
    Flag("--memory", "value", "Memory limit (in bytes)"),
    Flag("--memory-reservation", "value", "Memory reservation or soft_limit (in bytes)"),
    Flag("--memory-swap", "value", "Total memory usage (memory + swap); set '-1' to enable "
         "unlimited swap"),
    Flag("--kernel-memory", "value", "Kernel memory limit (in bytes) (cgroup v1)"),
    Flag("--kernel-memory-tcp", "value", "Kernel memory limit (in bytes) for tcp buffer "
         "(cgroup v1)"),
    Flag("--pids-limit", "value", "Maximum number of pids allowed in the container"),
    Flag("--l3-cache-schema", "value", "The string of Intel RDT/CAT L3 cache schema (not "
         "supported: refused)"),
    Flag("--mem-bw-schema", "value", "The string of Intel RDT/MBA memory bandwidth schema (not "
         "supported: refused)"),
]


def cmd_update(ctx: Context, argv: list[str]) -> int:
    opts, pos = parse_go_flags(argv, UPDATE_FLAGS, interspersed=True)
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
    _, pos = parse_go_flags(argv, [], interspersed=True)
    from ..runtime.pause import pause

    pause(ctx.store, _one(pos))
    return 0


def cmd_resume(ctx: Context, argv: list[str]) -> int:
    _, pos = parse_go_flags(argv, [], interspersed=True)
    from ..runtime.pause import resume

    resume(ctx.store, _one(pos))
    return 0


def cmd_events(ctx: Context, argv: list[str]) -> int:
    opts, pos = parse_go_flags(argv, EVENTS_FLAGS, interspersed=True)
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


COMMANDS: dict[str, tuple] = {
    "create": (cmd_create, Command("[command options] <container-id>", "create a container",
                                   CREATE_FLAGS)),
    "start": (cmd_start, Command("<container-id>", "executes the user defined process in a "
                                 "created container")),
    "run": (cmd_run, Command("[command options] <container-id>", "create and run a container",
                             RUN_FLAGS)),
    "state": (cmd_state, Command("<container-id>", "output the state of a container")),
    "kill": (cmd_kill, Command("[command options] <container-id> [signal]", "kill sends the "
                               "specified signal (default: SIGTERM) to the container's init "
                               "process", KILL_FLAGS)),
    "delete": (cmd_delete, Command("[command options] <container-id>...", "delete any "
                                   "resources held by the container often used with detached "
                                   "container", DELETE_FLAGS)),
    "exec": (cmd_exec, Command("[command options] <container-id> <command> [command options]"
                               "  || -p process.json <container-id>", "execute new process "
                               "inside the container", EXEC_FLAGS, interspersed=False)),
    "ps": (cmd_ps, Command("[command options] <container-id> [ps options]", "ps displays the "
                           "processes running inside a container", PS_FLAGS,
                           interspersed=False)),
    "update": (cmd_update, Command("[command options] <container-id>", "update container "
                                   "resource constraints", UPDATE_FLAGS)),
    "pause": (cmd_pause, Command("<container-id>", "pause suspends all processes inside the "
                                 "container")),
    "resume": (cmd_resume, Command("<container-id>", "resumes all processes that have been "
                                   "previously paused")),
    "events": (cmd_events, Command("[command options] <container-id>", "display container "
                                   "events such as OOM notifications, cpu, memory, and IO usage "
                                   "statistics", EVENTS_FLAGS)),
    "list": (cmd_list, Command("[command options]", "lists containers started by runc with the "
                               "given root", LIST_FLAGS)),
    "features": (cmd_features, Command("", "show the enabled features")),
    "spec": (cmd_spec, Command("[command options]", "create a new specification file",
                               SPEC_FLAGS)),
}
ALIASES = {"ls": "list"}
# What works for any user: the rest reads or changes the state of root's containers.
NO_ROOT_NEEDED = frozenset({"spec", "features"})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    ctx = None
    try:
        gopts, rest = parse_go_flags(argv, GLOBAL)
        if gopts["version"]:
            from .. import OCI_VERSION, __version__

            print(f"{PROG} version {__version__}\nspec: {OCI_VERSION}")
            return 0
        if gopts["help"] or not rest or rest[0] in ("help", "h"):
            return _help(rest[1:] if rest and rest[0] in ("help", "h") else [])
        if gopts["rootless"] not in ("auto", "false") and os.geteuid() == 0:
            raise UsageError(f"--rootless={gopts['rootless']} is not supported yet")
        if gopts["log_format"] not in ("text", "json"):
            raise UsageError(f"invalid --log-format {gopts['log_format']!r} (text or json)")
        name = ALIASES.get(rest[0], rest[0])
        if name not in COMMANDS:
            raise UsageError(f"unknown command {rest[0]!r} (see {PROG} --help)")
        sub = rest[1:]
        if "-h" in sub or "--help" in sub or "-help" in sub:
            # only as a flag (not an exec'd command's): the parse tells
            try:
                parse_go_flags(sub, COMMANDS[name][1].flags,
                               interspersed=COMMANDS[name][1].interspersed)
            except HelpRequested:
                from .help import runtime_command_help

                print(runtime_command_help(PROG, name, COMMANDS[name][1]))
                return 0
            except UsageError:
                pass
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


def _help(topic: list[str]) -> int:
    """`sangja-runtime --help`, `help`, `h` or nothing: the overview (exit 0, as runc);
    `help COMMAND`: that command's."""
    from .help import runtime_command_help, runtime_help

    if not topic:
        print(runtime_help(PROG, COMMANDS, GLOBAL))
        return 0
    name = ALIASES.get(topic[0], topic[0])
    if name not in COMMANDS:
        raise UsageError(f"No help topic for {topic[0]!r}")
    print(runtime_command_help(PROG, name, COMMANDS[name][1]))
    return 0


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
