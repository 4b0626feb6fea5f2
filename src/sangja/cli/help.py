"""`--help` of both command lines, made from the flag tables (sangja.cli.flags).

`sangja COMMAND --help` is laid out as Docker's CLI (cobra's usage template, pflag's
wrapped flag usages), `sangja-runtime COMMAND --help` as runc's (urfave/cli). Imported only
when help is asked for, by completion and by the man page generator."""

from __future__ import annotations

import os

from .flags import Command, Flag

# --------------------------------------------------------------------------- pflag layout


def type_word(f: Flag) -> str:
    """The word after the flag's name ("--name string"): pflag's type name."""
    if f.meta is not None:
        return f.meta
    return {"bool": "", "value": "string", "multi": "list", "optional": ""}[f.kind]


def _default_text(f: Flag) -> str:
    d = f.default
    if d is None or d is False or d == "" or d == []:
        return ""
    if d is True:
        return " (default true)"
    if f.kind == "bool":  # a tri-state's "not given" is not a default to show
        return ""
    if type_word(f) == "string":
        return f' (default "{d}")'
    return f" (default {d})"


def flag_usages(flags: list[Flag], cols: int) -> str:
    """pflag's FlagUsagesWrapped: flags sorted by name, "  -a, --all" or "      --name",
    the type word, the help text aligned after the longest and wrapped at `cols`."""
    lines = []
    maxlen = 0
    for f in sorted((f for f in flags if not f.hidden), key=lambda f: f.long.lstrip("-")):
        short = f.short
        line = f"  {short}, {f.long}" if short else f"      {f.long}"
        word = type_word(f)
        if word.startswith("["):  # an optional value: "--pull[=WHEN]"
            line += word
        elif word:
            line += " " + word
        maxlen = max(maxlen, len(line) + 1)
        lines.append((line, f.help + _default_text(f)))
    out = []
    for line, usage in lines:
        out.append(line + " " * (maxlen - len(line) + 2) + _wrap(maxlen + 2, cols, usage))
    return "\n".join(out)


def _wrap(i: int, w: int, s: str) -> str:
    """pflag's wrap: `s` wrapped to width `w` with an indent of `i` after the first line."""
    if w == 0:
        return s.replace("\n", "\n" + " " * i)
    width = w - i
    r = ""
    if width < 24:
        i = 16
        width = w - i
        r += "\n" + " " * i
    if width < 24:
        return s.replace("\n", r)
    slop = 5
    width -= slop
    line, s = _wrap_n(width, slop, s)
    r += line.replace("\n", "\n" + " " * i)
    while s:
        line, s = _wrap_n(width, slop, s)
        r += "\n" + " " * i + line.replace("\n", "\n" + " " * i)
    return r


def _wrap_n(i: int, slop: int, s: str) -> tuple[str, str]:
    if i + slop > len(s):
        return s, ""
    w = max(s.rfind(c, 0, i) for c in " \t\n")
    if w <= 0:
        return s, ""
    nl = s.rfind("\n", 0, i)
    if 0 < nl < w:
        return s[:nl], s[nl + 1:]
    return s[:w], s[w + 1:]


def columns() -> int:
    """Docker wraps at the width of the terminal on stdin, less one; 80 when there is none."""
    try:
        width = os.get_terminal_size(0).columns
    except OSError:
        width = 80
    return width - 1


def docker_help(prog: str, path: str, cmd: Command, aliases: list[str] | None = None) -> str:
    """cobra's usage template as Docker sets it up: Usage, the description, Aliases (every
    name the command answers to, when more than one), Options."""
    usage = f"{prog} {path} {cmd.usage}".rstrip()
    parts = [f"Usage:  {usage}", "", cmd.help or ""]
    if aliases and len(aliases) > 1:
        parts += ["", "Aliases:", "  " + ", ".join(f"{prog} {a}" for a in aliases)]
    if any(not f.hidden for f in cmd.flags):
        parts += ["", "Options:", flag_usages(cmd.flags, columns()).rstrip()]
    return "\n".join(parts)


def command_rows(rows: list[tuple[str, str]], longest: int = 0) -> list[str]:
    """cobra's command lines: the name padded to the longest of the parent's commands (at
    least 11), a space, the summary."""
    width = max([len(name) for name, _ in rows] + [longest, 11])
    return [f"  {name:<{width}} {text}".rstrip() for name, text in rows]


def group_help(prog: str, group: str, description: str, verbs: list[tuple[str, str]]) -> str:
    """`sangja volume --help`: the group's commands, one line each."""
    lines = [f"Usage:  {prog} {group} COMMAND", "", description, "", "Commands:"]
    lines += command_rows(verbs)
    lines += ["", f"Run '{prog} {group} COMMAND --help' for more information on a command."]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the engine


# Command tables that are not where the naming rule looks for them (see `engine_spec`).
_SPEC_AT = {
    "containers:cmd_run": "run_flags:RUN",
    "containers:cmd_create": "run_flags:CREATE",
}

# The management commands (the groups of ``engine.SUBCOMMANDS``): Docker's summaries.
GROUPS = {
    "builder": "Manage builds",
    "container": "Manage containers",
    "healthcheck": "Run containers' healthchecks",
    "image": "Manage images",
    "network": "Manage networks",
    "system": "Manage sangja",
    "volume": "Manage volumes",
}

# Docker's "Common Commands", in its order (cobra's category-top annotation and its rank).
COMMON = ("run", "exec", "ps", "build", "pull", "push", "images", "login", "logout", "search",
          "version", "info")

DESCRIPTION = "A daemonless container engine"


def global_flags() -> list[Flag]:
    """The options before the command (the dispatcher's `_globals` reads them; a unit test
    holds the two together), their defaults as this environment makes them."""
    return [
        Flag("--debug", help="Enable debug mode: show the traceback of an engine error"),
        Flag("--root", "value", "Root directory of images, containers and volumes "
             "($SANGJA_ROOT)", default=os.environ.get("SANGJA_ROOT") or "/var/lib/sangja"),
        Flag("--runroot", "value", "Directory of run-time state ($SANGJA_RUNROOT)",
             default=os.environ.get("SANGJA_RUNROOT") or "/run/sangja"),
        Flag("-v,--version", help="Print version information and quit"),
        Flag("-h,--help", help="Print usage", hidden=True),
    ]


def summary(spec: Command) -> str:
    """A command's line in a list: its description as cobra's Short (no closing period:
    `login`'s "Authenticate to a registry." is listed as "Authenticate to a registry")."""
    return spec.help.removesuffix(".")


def engine_spec(target: str) -> Command | None:
    """The table of the command that runs as `target` ("containers:cmd_ps"): the module's
    attribute named after the function without its `cmd_`, upper case (``PS``)."""
    from importlib import import_module

    target = _SPEC_AT.get(target, target)
    module, _, func = target.partition(":")
    mod = import_module(f"sangja.cli.engine.{module}")
    name = func[4:].upper() if func.startswith("cmd_") else func
    spec = getattr(mod, name, None)
    return spec if isinstance(spec, Command) else None


def engine_names() -> list[tuple[str, str]]:
    """(name as typed, target) of every command: top-level ones, then "group verb"."""
    from .engine import COMMANDS, SUBCOMMANDS

    out = list(COMMANDS.items())
    for group, verbs in SUBCOMMANDS.items():
        out += [(f"{group} {v}", t) for v, t in verbs.items()]
    return out


def aliases(target: str) -> list[str]:
    """Every name that runs `target`, as Docker lists them: the group forms first, then
    the top-level one."""
    names = [n for n, t in engine_names() if t == target]
    return [n for n in names if " " in n] + [n for n in names if " " not in n]


def engine_help(prog: str, name: str, target: str, spec: Command | None,
                flags: list[Flag] | None = None) -> str:
    if spec is None:
        spec = engine_spec(target) or Command("[OPTIONS]", "", flags or [])
    return docker_help(prog, name, spec, aliases(target))


def engine_group_help(prog: str, group: str) -> str:
    from .engine import SUBCOMMANDS

    verbs = SUBCOMMANDS[group]
    first: dict[str, str] = {}  # aliases ("ls", "list") are listed once, under the first
    for verb, target in verbs.items():
        first.setdefault(target, verb)
    rows = []
    for target, verb in sorted(first.items(), key=lambda tv: tv[1]):
        spec = engine_spec(target)
        if spec is None or not spec.hidden:
            rows.append((verb, summary(spec) if spec else ""))
    return group_help(prog, group, GROUPS.get(group, ""), rows)


def top_sections() -> list[tuple[str, list[tuple[str, str]]]]:
    """`sangja --help`'s lists, as Docker sorts its commands: the common ones in Docker's
    order, the groups (management commands), then every other command by name. Made from
    the dispatcher's tables and the commands' own, as completion and the man pages are."""
    from .engine import COMMANDS, SUBCOMMANDS

    def row(name: str) -> tuple[str, str] | None:
        spec = engine_spec(COMMANDS[name])
        if spec is not None and spec.hidden:
            return None
        return name, summary(spec) if spec is not None else ""

    common = [row(n) for n in COMMON if n in COMMANDS]
    groups = [(g, GROUPS.get(g, "")) for g in sorted(SUBCOMMANDS)]
    others = [row(n) for n in sorted(COMMANDS) if n not in COMMON]
    return [("Common Commands", [r for r in common if r]),
            ("Management Commands", groups),
            ("Commands", [r for r in others if r])]


def engine_top_help(prog: str) -> str:
    """`sangja --help`, laid out as `docker --help` (Docker 28; no swarm commands)."""
    sections = top_sections()
    longest = max(len(name) for _, rows in sections for name, _ in rows)
    lines = [f"Usage:  {prog} [OPTIONS] COMMAND", "", DESCRIPTION]
    for heading, rows in sections:
        lines += ["", f"{heading}:", *command_rows(rows, longest)]
    lines += ["", "Global Options:", flag_usages(global_flags(), columns()).rstrip(), "",
              f"Run '{prog} COMMAND --help' for more information on a command.", "",
              f"For more help on how to use {prog}, read docs/engine.md and the man pages "
              "(make man)."]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the runtime


# runc's order of its commands (urfave/cli lists them as registered); ours that runc lacks
# follow in the table's order.
_RUNC_ORDER = ("checkpoint", "create", "delete", "events", "exec", "kill", "list", "pause",
               "ps", "restore", "resume", "run", "spec", "start", "state", "update",
               "features")

_RUNTIME_ABOUT = """{prog} is a command line client for running applications packaged according to
the Open Container Initiative (OCI) format and is a compliant implementation of the
Open Container Initiative specification.

{prog} integrates well with existing process supervisors to provide a production
container runtime environment for applications. It can be used with your
existing process monitoring tools and the container will be spawned as a
direct child of the process supervisor.

Containers are configured using bundles. A bundle for a container is a directory
that includes a specification file named "config.json" and a root filesystem.
The root filesystem contains the contents of the container.

To start a new instance of a container:

    # {prog} run [ -b bundle ] <container-id>

Where "<container-id>" is your name for the instance of the container that you
are starting. The name you provide for the container instance must be unique on
your host. Providing the bundle directory using "-b" is optional. The default
value for "bundle" is the current directory."""


def runtime_version() -> str:
    """What follows "VERSION:" in the help and "sangja-runtime version " in --version."""
    from .. import OCI_VERSION, __version__

    return f"{__version__}\nspec: {OCI_VERSION}"


def runtime_help(prog: str, commands: dict, global_flags: list[Flag]) -> str:
    """`sangja-runtime --help`, laid out as urfave/cli prints runc's: NAME, what it is,
    USAGE, VERSION, COMMANDS (in runc's order, `help` last), GLOBAL OPTIONS."""
    rank = {name: i for i, name in enumerate(_RUNC_ORDER)}
    names = sorted(commands, key=lambda n: rank.get(n, len(rank)))
    rows = [(name, commands[name][1].help) for name in names]
    rows.append(("help, h", "Shows a list of commands or help for one command"))
    width = max(len(n) for n, _ in rows) + 2
    lines = ["NAME:", f"   {prog} - Open Container Initiative runtime", "",
             _RUNTIME_ABOUT.format(prog=prog), "", "USAGE:",
             f"   {prog} [global options] command [command options] [arguments...]", "",
             "VERSION:", f"   {runtime_version()}", "", "COMMANDS:"]
    lines += [f"   {name:<{width}}{text}" for name, text in rows]
    lines += ["", "GLOBAL OPTIONS:", _urfave_flags(global_flags)]
    return "\n".join(lines).rstrip()


def runtime_command_help(prog: str, name: str, spec: Command) -> str:
    lines = ["NAME:", f"   {prog} {name} - {spec.help}", "", "USAGE:",
             f"   {prog} {name} {spec.usage}".rstrip()]
    if spec.flags:
        lines += ["", "OPTIONS:", _urfave_flags(spec.flags)]
    return "\n".join(lines).rstrip()


def _urfave_flags(flags: list[Flag]) -> str:
    """urfave/cli v1: "--bundle value, -b value" then the help text, tab-aligned."""
    rows = []
    for f in flags:
        names = [f.long] + [n for n in f.names if n != f.long and not n.startswith("--")]
        suffix = " value" if f.takes_value else ""
        text = f.help
        if f.default not in (None, False, "", []):
            quoted = f.meta not in ("int", "duration")
            text += f' (default: "{f.default}")' if quoted else f" (default: {f.default})"
        rows.append((", ".join(n + suffix for n in names), text))
    width = max(len(a) for a, _ in rows) + 2
    return "\n".join(f"   {a:<{width}}{b}".rstrip() for a, b in rows)
