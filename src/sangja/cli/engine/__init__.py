"""`sangja`: the Docker-style engine command line.

Each command lives in a module of this package and is imported only when it runs (start-up
time matters). A command is ``def cmd_NAME(opts: Globals, args: list[str]) -> int``; add it
to ``COMMANDS`` (and to ``SUBCOMMANDS`` when Docker also spells it `sangja GROUP VERB`)."""

from __future__ import annotations

import os
import sys

from .common import PROG, Globals, UsageError

HELP = f"""usage: {PROG} [--root DIR] [--runroot DIR] [--debug] COMMAND [ARG...]

Global options:
  --root DIR      storage root (default: $SANGJA_ROOT or /var/lib/sangja)
  --runroot DIR   run-time state (default: $SANGJA_RUNROOT or /run/sangja)
  --debug         show tracebacks of engine errors

Containers:
  run [OPTIONS] IMAGE [COMMAND [ARG...]]
                             create and start a container (-d detached, -it a
                             terminal, --rm, --name, -e, -v, --memory, --cap-drop, ...)
  create [OPTIONS] IMAGE [COMMAND [ARG...]]
                             create a container without starting it
  start [-a] [-i] C...       start containers (-a: attach and wait)
  stop [-t SECONDS] C...     stop: the stop signal, then SIGKILL after the timeout
  restart [-t SECONDS] C...  stop, then start
  kill [-s SIGNAL] C...      send a signal (default SIGKILL)
  rm [-f] [-v] C...          remove containers (-f: even running; -v: their
                             anonymous volumes)
  ps [-a] [-q] [-n N] [-l] [--no-trunc] [--filter K=V] [--format json|TEMPLATE]
                             list containers
  logs [-f] [--since T] [--until T] [-n N] [-t] C
                             show a container's output
  exec [-i] [-t] [-d] [-e K=V] [-u USER] [-w DIR] C COMMAND [ARG...]
                             run a command in a running container
  attach C                   connect to a running container's stdio
  inspect [-f TEMPLATE] [--type container|image] NAME...
                             low-level details as JSON (or a Go-style template)
  wait C...                  wait for containers to stop; print their exit codes
  top C [ps OPTIONS]         the container's processes
  stats [--no-stream] [C...] CPU, memory, block I/O and pids per container
  cp [-a] [-L] C:SRC DEST | SRC C:DEST
                             copy files out of / into a container ('-': a tar stream)
  commit [-a A] [-m MSG] [-c INSTR] C [NAME[:TAG]]
                             make an image from a container's changes
  export [-o FILE] C         a container's filesystem as a tar archive
  rename C NEW_NAME          give a container another name
  pause C... | unpause C...  freeze / thaw every process of containers
  port C [PORT[/PROTO]]      the container's published ports
  container prune [-f]       remove every stopped container
  update [--cpus N] [-m SIZE] [--memory-swap SIZE] [--memory-reservation SIZE]
         [-c SHARES] [--cpuset-cpus LIST] [--pids-limit N] [--blkio-weight N]
         [--restart POLICY] C...
                             change the limits of containers (running ones at once)
  diff C                     what the container changed: A added, C changed, D deleted
  healthcheck run C          run the container's healthcheck once (exit 1: unhealthy)

Volumes:
  volume create [--label K=V] [NAME]
  volume ls [-q] [--filter dangling=true|name=N|label=K] [--format json]
  volume inspect NAME...     volume rm [-f] NAME...     volume prune [-a] [-f]

Networks:
  network create [--subnet CIDR [--gateway IP] [--ip-range CIDR]] [--internal] [--ipv6]
                 [-d bridge|macvlan] [-o K=V] [--label K=V] NAME
  network ls [-q] [--filter K=V]    network inspect NETWORK...   network rm NETWORK...
  network prune [-f]         network connect [--alias A] [--ip IP] NETWORK C
  network disconnect NETWORK C
  (run/create: --network bridge|NAME|none|host|container:C|ns:PATH, -p [IP:][HOST:]PORT[/PROTO],
   -P, --ip, --mac-address, --network-alias, --dns, --dns-search, --dns-option, --add-host)

Images:
  bootstrap busybox [NAME]   build an image from the host's static busybox
                             (default name localhost/busybox:latest)
  bootstrap debian [--suite S] [--variant V] [--include P,..] [--mirror URL] [NAME]
                             build a Debian image with mmdebstrap/debootstrap
                             (default localhost/debian:bookworm)
  images [-q] [--digests] [--format json]
                             list images
  image inspect NAME...      show images as a JSON array
  image ls|rm|tag            same as images, rmi, tag
  tag SOURCE TARGET          give an image another name
  rmi [-f] NAME...           remove images (untag; delete when the last tag goes)
  save [-o FILE] [--format docker-archive|oci-archive] NAME...
                             write images to a tar archive (stdout without -o)
  load [-i FILE|DIR]         load images from a tar archive (stdin without -i) or an
                             OCI layout directory (also oci:DIR[:NAME], docker-archive:FILE)
  import [-c INSTRUCTION]... [-m MESSAGE] [--platform OS/ARCH] FILE|URL|- [NAME[:TAG]]
                             make a one-layer image from a tarball (plain, gzip, zstd,
                             xz, bzip2); -c: CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE,
                             LABEL, VOLUME, STOPSIGNAL, ONBUILD
  build [-t NAME]... [-f FILE] [--build-arg K=V]... [--target STAGE] [--no-cache]
        [--pull[=WHEN]] [--label K=V] [--network none|host] [-q] [--iidfile FILE]
        [--secret id=ID,src=FILE] CONTEXT|-
                             build an image from a Containerfile (multi-stage, cached,
                             reproducible with SOURCE_DATE_EPOCH)
  builder prune [-a] [-f]    remove unused build cache (-a: all of it)
  pull [--platform OS/ARCH] [-a] [-q] [--tls-verify=false] [--format json] NAME
                             fetch an image from a registry (or oci:DIR[:NAME],
                             docker-archive:FILE); prints its id
  push [--digestfile FILE] [-q] [--tls-verify=false] IMAGE [DESTINATION]
                             send an image to a registry
  login [-u USER] [-p PASS | --password-stdin] [REGISTRY]
                             check and keep credentials (podman's auth.json)
  logout [-a | REGISTRY]     forget them
  search [--limit N] [--format json] [REGISTRY/]TERM
                             find repositories in a registry (or the search
                             registries of the registries config)
  history [--no-trunc] [-q] [--format json] NAME
                             show the layers of an image and what made them
  image prune [-a] [-f]      remove dangling images (-a: every image no container
                             uses) and whatever no image references any more

System:
  info                       show host and engine facts
  version                    print the version
  system df [-v] [--format json]
                             show the space images, containers and volumes use
  system prune [-a] [-f] [--volumes]
                             remove stopped containers, dangling (-a: unused) images,
                             unreferenced blobs and layers, temp files
  events [--filter type=|event=|container=|image=...] [--since T] [--until T]
         [--format TEMPLATE]  what happened (without --until: and what happens next)
  completion bash|zsh|fish   a shell completion script (bash: source <(sangja completion bash))
  system check [--repair [-f]] [--rebuild]
                             find damaged or leftover store and container parts (exit 1
                             if any); --repair fixes them, -f also removes broken images;
                             --rebuild recreates a lost images.db/containers.db
  system service [--time N] [unix:///PATH]
                             serve the Docker Engine API on a unix socket (default
                             /run/sangja/docker.sock, root only; docs/api.md)

Run '{PROG} COMMAND --help' for more on a command."""

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


def _dispatch(argv: list[str]) -> int:
    opts, argv = _globals(argv)
    if argv[:1] in (["--version"], ["-v"]):
        argv = ["version"]
    if argv[:1] in ([], ["--help"], ["-h"], ["help"]):
        if argv[1:2] and argv[0] == "help":  # `sangja help ps`: `sangja ps --help`
            return _dispatch([*argv[1:], "--help"])
        print(HELP)
        return 0 if argv else 1
    cmd, args = argv[0], argv[1:]
    name = cmd
    if cmd in SUBCOMMANDS:
        verbs = SUBCOMMANDS[cmd]
        if not args or args[0] in ("--help", "-h"):
            from ..help import engine_group_help

            print(engine_group_help(PROG, cmd))
            return 0
        if args[0] not in verbs:
            raise UsageError(f"unknown command: {PROG} {cmd} {args[0]} "
                             f"(see '{PROG} {cmd} --help')")
        target, name, args = verbs[args[0]], f"{cmd} {args[0]}", args[1:]
    elif cmd in COMMANDS:
        target = COMMANDS[cmd]
    else:
        raise UsageError(f"unknown command {cmd!r} (see {PROG} --help)")
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
        return 125
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
