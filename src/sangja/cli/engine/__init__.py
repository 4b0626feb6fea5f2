"""`sangja`: the Docker-style engine command line.

Each command lives in a module of this package and is imported only when it runs (start-up
time matters). A command is ``def cmd_NAME(opts: Globals, args: list[str]) -> int``; add it
to ``COMMANDS`` (and to ``SUBCOMMANDS`` when Docker also spells it `sangja GROUP VERB`)."""

from __future__ import annotations

import os
import sys

from .common import PROG, Globals, UsageError

# name -> "module:function" inside this package
COMMANDS: dict[str, str] = {
    # images
    "bootstrap": "images:cmd_bootstrap",
    "images": "images:cmd_images",
    "tag": "images:cmd_tag",
    "rmi": "images:cmd_rmi",
    "save": "images:cmd_save",
    "load": "images:cmd_load",
    "import": "image_tools:cmd_import",
    "history": "image_tools:cmd_history",
    "build": "build:cmd_build",
    "pull": "registry:cmd_pull",
    "push": "registry:cmd_push",
    "login": "registry:cmd_login",
    "logout": "registry:cmd_logout",
    "search": "registry:cmd_search",
    # containers
    "run": "containers:cmd_run",
    "create": "containers:cmd_create",
    "start": "containers:cmd_start",
    "stop": "containers:cmd_stop",
    "restart": "containers:cmd_restart",
    "kill": "containers:cmd_kill",
    "rm": "containers:cmd_rm",
    "ps": "containers:cmd_ps",
    "inspect": "containers:cmd_inspect",
    "wait": "containers:cmd_wait",
    "rename": "containers:cmd_rename",
    "pause": "containers:cmd_pause",
    "unpause": "containers:cmd_unpause",
    "port": "containers:cmd_port",
    "top": "containers:cmd_top",
    "stats": "containers:cmd_stats",
    "attach": "containers:cmd_attach",
    "exec": "containers:cmd_exec",
    "logs": "containers:cmd_logs",
    "cp": "containers:cmd_cp",
    "commit": "containers:cmd_commit",
    "export": "containers:cmd_export",
    "update": "update:cmd_update",
    "diff": "diff:cmd_diff",
    "events": "events:cmd_events",
    # system
    "completion": "completion:cmd_completion",
    "info": "system:cmd_info",
    "version": "system:cmd_version",
}
_CONTAINER_VERBS = ["run", "create", "start", "stop", "restart", "kill", "rm", "inspect", "wait",
                    "rename", "pause", "unpause", "port", "top", "stats", "attach", "exec", "logs",
                    "cp", "commit", "export", "update", "diff"]
SUBCOMMANDS: dict[str, dict[str, str]] = {
    "image": {
        "inspect": "images:cmd_inspect",
        "ls": "images:cmd_images",
        "list": "images:cmd_images",
        "rm": "images:cmd_rmi",
        "tag": "images:cmd_tag",
        "save": "images:cmd_save",
        "load": "images:cmd_load",
        "import": "image_tools:cmd_import",
        "history": "image_tools:cmd_history",
        "prune": "image_tools:cmd_image_prune",
        "pull": "registry:cmd_pull",
        "push": "registry:cmd_push",
    },
    "container": {
        **{v: COMMANDS[v] for v in _CONTAINER_VERBS},
        "ls": "containers:cmd_ps",
        "list": "containers:cmd_ps",
        "ps": "containers:cmd_ps",
        "prune": "containers:cmd_container_prune",
        "cleanup": "containers:cmd_cleanup",
    },
    "volume": {
        "create": "volumes:cmd_volume_create",
        "ls": "volumes:cmd_volume_ls",
        "list": "volumes:cmd_volume_ls",
        "inspect": "volumes:cmd_volume_inspect",
        "rm": "volumes:cmd_volume_rm",
        "prune": "volumes:cmd_volume_prune",
    },
    "builder": {
        "build": "build:cmd_build",
        "prune": "build:cmd_builder_prune",
    },
    "network": {
        "create": "networks:cmd_network_create",
        "ls": "networks:cmd_network_ls",
        "list": "networks:cmd_network_ls",
        "inspect": "networks:cmd_network_inspect",
        "rm": "networks:cmd_network_rm",
        "remove": "networks:cmd_network_rm",
        "prune": "networks:cmd_network_prune",
        "connect": "networks:cmd_network_connect",
        "disconnect": "networks:cmd_network_disconnect",
    },
    "system": {
        "info": "system:cmd_info",
        "df": "system:cmd_df",
        "prune": "system:cmd_system_prune",
        "check": "system:cmd_check",
        "service": "service:cmd_service",
        "events": "events:cmd_events",
    },
    "healthcheck": {
        "run": "health:cmd_healthcheck_run",
    },
}


# What works for any user (login and logout keep credentials in that user's own auth.json;
# search reads no store);
# everything else reads or changes the store, mounts or makes
# containers, and needs root until rootless mode comes.
NO_ROOT_NEEDED = frozenset({"version", "info", "login", "logout", "completion", "search"})


def _command(target: str):
    from importlib import import_module

    module, _, func = target.partition(":")
    return getattr(import_module(f"{__name__}.{module}"), func)


def _globals(argv: list[str]) -> tuple[Globals, list[str]]:
    opts = Globals()
    while argv and argv[0].startswith("--"):
        name, eq, value = argv[0].partition("=")
        if name == "--debug":
            opts.debug = True
            argv = argv[1:]
            continue
        if name not in ("--root", "--runroot"):
            break
        if eq:
            argv = argv[1:]
        elif len(argv) > 1:
            value, argv = argv[1], argv[2:]
        else:
            raise UsageError(f"{name} needs a directory")
        if not value:
            raise UsageError(f"{name} needs a directory")
        setattr(opts, name[2:], value)
    return opts, argv


class UnknownCommand(UsageError):
    """A command or a group's verb sangja does not have: Docker's words, and its exit 1."""

    exit_code = 1


def _not_a_flag(arg: str, where: str) -> UsageError:
    """An option sangja does not have before the command (or a group's verb): pflag's
    words, Docker's pointer to the help, on one line."""
    what = (f"unknown flag: {arg.partition('=')[0]}" if arg.startswith("--")
            else f"unknown shorthand flag: {arg[1:2]!r} in {arg}")
    return UsageError(f"{what} (see '{where} --help')")


def _print_version() -> int:
    """`sangja --version`: Docker's one line ("Docker version 28.2.2, build e6534b4")."""
    from ... import __version__
    from ...engine.sysinfo import build_commit

    print(f"{PROG} version {__version__}, build {build_commit() or 'unknown'}")
    return 0


def _dispatch(argv: list[str]) -> int:
    opts, argv = _globals(argv)
    if argv[:1] in (["--version"], ["-v"]):
        return _print_version()
    if argv[:1] in ([], ["--help"], ["-h"], ["help"]):
        if argv[1:2] and argv[0] == "help":  # `sangja help ps`: `sangja ps --help`
            if argv[1] not in COMMANDS and argv[1] not in SUBCOMMANDS:
                raise UnknownCommand(f"unknown help topic: {argv[1]}")
            return _dispatch([*argv[1:], "--help"])
        from ..help import engine_top_help

        # as Docker: asked for, on stdout; `sangja` alone, on stderr (both exit 0)
        print(engine_top_help(PROG), file=sys.stdout if argv else sys.stderr)
        return 0
    cmd, args = argv[0], argv[1:]
    if cmd.startswith("-"):
        raise _not_a_flag(cmd, PROG)
    name = cmd
    if cmd in SUBCOMMANDS:
        verbs = SUBCOMMANDS[cmd]
        if not args or args[0] in ("--help", "-h"):
            from ..help import engine_group_help

            # as Docker: `sangja network --help` on stdout, `sangja network` on stderr
            print(engine_group_help(PROG, cmd), file=sys.stdout if args else sys.stderr)
            return 0
        if args[0].startswith("-"):
            raise _not_a_flag(args[0], f"{PROG} {cmd}")
        if args[0] not in verbs:
            raise UnknownCommand(f"unknown command: {PROG} {cmd} {args[0]} "
                                 f"(see '{PROG} {cmd} --help')")
        target, name, args = verbs[args[0]], f"{cmd} {args[0]}", args[1:]
    elif cmd in COMMANDS:
        target = COMMANDS[cmd]
    else:
        raise UnknownCommand(f"unknown command: {PROG} {cmd} (see '{PROG} --help')")
    from ..flags import FlagError, HelpRequested

    try:
        if cmd not in NO_ROOT_NEEDED and os.geteuid() != 0:
            _help_without_root(target, args)
            raise UsageError(f"{name} needs root: run {PROG} as root (rootless mode is not "
                             "supported yet)")
        return _command(target)(opts, args)
    except HelpRequested as e:
        from ..help import engine_help

        print(engine_help(PROG, name, target, e.command, e.flags))
        return 0
    except FlagError as e:  # Docker's words, and its pointer to the help, on one line
        raise UsageError(f"{e} (see '{PROG} {name} --help')") from None


def _help_without_root(target: str, args: list[str]) -> None:
    """A user without root may still read a command's help: raise HelpRequested if asked."""
    if "--help" not in args and not any(a.startswith("-") and "h" in a for a in args):
        return
    from ..flags import UsageError as FlagsUsageError
    from ..help import engine_spec

    spec = engine_spec(target)
    if spec is not None:
        try:
            spec.parse(args)
        except FlagsUsageError:
            pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv[:3]
    try:
        return _dispatch(argv)
    except UsageError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 125)
    except BrokenPipeError:
        from .. import stdout_gone

        return stdout_gone()
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        from ...errors import SangjaError
        from ...jsonio import JSONError

        if not debug and (isinstance(e, SangjaError | OSError | JSONError)
                          or type(e).__module__ == "sqlite3"):
            code = getattr(e, "engine_exit_code", 125)
            print(f"{PROG}: {e}", file=sys.stderr)
            return code
        raise
