"""The one flag parser of both command lines, and the tables it reads.

A command is a ``Command``: its usage line, one line of description and a table of
``Flag``s (names, kind, help text, default). `sangja` parses with Docker's rules (pflag:
`--flag=value`, `--flag value`, `-abc` short bundles, `-eVALUE`, `--bool=true|false`, `--`,
repeated flags) and `sangja-runtime` with runc's (Go's flag package under urfave/cli:
`-flag` and `--flag` alike, no bundles). Help (``sangja.cli.help``), shell completion and man
pages are made from the same tables, so a flag cannot be parsed without being documented.

Lean on purpose (argparse alone costs more start-up time than a container start should):
building the tables costs a few microseconds, and the help texts are only read by the help
module, which is imported when help is asked for."""

from __future__ import annotations


class UsageError(Exception):
    """A command line the user can fix: one line on stderr (exit 125 for `sangja`, 1 for
    `sangja-runtime`)."""


class FlagError(UsageError):
    """A flag the parser refuses, in pflag's (or Go flag's) words; the command line adds
    where to find the command's help."""


class HelpRequested(Exception):  # noqa: N818 - a request, not an error
    """`--help` or `-h` among a command's flags: print its help, exit 0."""

    def __init__(self, command: Command | None, flags: list[Flag]):
        super().__init__("help requested")
        self.command = command
        self.flags = flags


class Flag:
    """One flag of a command's table.

    `names`: "-a,--all" (the first long name names the option: ``all``; "--net" style
    aliases may follow). `kind`: "bool", "value" (the last one given wins), "multi" (a
    list of every one given) or "optional" (a long flag whose value is optional: `--pull`
    gives True, `--pull=never` "never"; the next argument is never taken). `help`: the one
    line `--help` shows. `default`: the value when the flag is not given (False, None or
    []); also shown in help as pflag does. `meta`: the value's type word in help ("string",
    "list", "int", "duration", ...). `hidden`: parsed, not shown (deprecated spellings)."""

    __slots__ = ("names", "kind", "help", "_dest", "default", "meta", "hidden")

    def __init__(self, names: str, kind: str = "bool", help: str = "", *,  # noqa: A002
                 dest: str | None = None, default=None, meta: str | None = None,
                 hidden: bool = False):
        self.names = names.split(",")
        self.kind = kind
        self.help = help
        self._dest = dest
        self.default = default
        self.meta = meta
        self.hidden = hidden

    @property
    def dest(self) -> str:
        """The option's name in the parsed dict: the first long name, `-` as `_` (worked
        out when first asked: most tables are built and never parsed)."""
        if self._dest is None:
            long = [n for n in self.names if n.startswith("--")]
            self._dest = (long[0] if long else self.names[0]).lstrip("-").replace("-", "_")
        return self._dest

    @property
    def takes_value(self) -> bool:
        return self.kind != "bool"

    def initial(self):
        if self.kind == "multi":
            return list(self.default or ())
        if self.default is None and self.kind == "bool":
            return False
        return self.default

    @property
    def long(self) -> str:
        return next((n for n in self.names if n.startswith("--")), self.names[0])

    @property
    def short(self) -> str | None:
        return next((n for n in self.names if len(n) == 2 and n[0] == "-" and n[1] != "-"),
                    None)


class Command:
    """A command's table: ``usage`` (what follows the command's name: "[OPTIONS] CONTAINER
    [CONTAINER...]"), ``help`` (one line), ``flags``. Without ``interspersed`` the first
    operand ends the flags (`run IMAGE CMD --flag`: the flag is the command's). A `hidden`
    command answers --help but is not listed, completed or given a man page."""

    __slots__ = ("usage", "help", "flags", "interspersed", "hidden")

    def __init__(self, usage: str, help: str, flags: list[Flag] | None = None, *,  # noqa: A002
                 interspersed: bool = True, hidden: bool = False):
        self.usage = usage
        self.help = help
        self.flags = flags or []
        self.interspersed = interspersed
        self.hidden = hidden  # internal (the monitor's `container cleanup`): not listed

    def parse(self, args: list[str]) -> tuple[dict, list[str]]:
        return parse_flags(args, self.flags, interspersed=self.interspersed, command=self)


# strconv.ParseBool, which both pflag and Go's flag package use
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _bool(value: str) -> bool | None:
    return True if value in _TRUE else False if value in _FALSE else None


def parse_flags(args: list[str], flags: list[Flag], *, interspersed: bool = True,
                command: Command | None = None) -> tuple[dict, list[str]]:
    """Docker's (pflag's) rules: `-it` (short booleans bundled), `-eFOO=1`, `-e FOO=1`,
    `--env=FOO=1`, `--rm=false`, repeated flags, `--`. `--help`, and `-h` where no flag of
    the table has it, raise ``HelpRequested`` once the whole line parsed. Return
    (options by key, operands)."""
    table: dict[str, Flag] = {}
    for flag in flags:
        for n in flag.names:
            table[n] = flag
    opts = {f.dest: f.initial() for f in flags}
    rest: list[str] = []
    help_asked = False
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            rest.extend(args[i:])
            break
        if not a.startswith("-") or a == "-":
            rest.append(a)
            if not interspersed:
                rest.extend(args[i:])
                break
            continue
        if a.startswith("--"):
            name, eq, value = a.partition("=")
            f = table.get(name)
            if f is None:
                if name == "--help":
                    help_asked = _bool(value) is not False if eq else True
                    continue
                raise FlagError(f"unknown flag: {name}")
            if f.kind == "bool":
                opts[f.dest] = _bool_value(f, value) if eq else True
                continue
            if f.kind == "optional":  # pflag's NoOptDefVal: `--pull` or `--pull=always`
                opts[f.dest] = value if eq else True
                continue
            if not eq:
                if i >= len(args):
                    raise FlagError(f"flag needs an argument: {name}")
                value = args[i]
                i += 1
            _store(opts, f, value)
            continue
        # short flags: -d, -it, -e VALUE, -eVALUE, -p=80, -d=false
        j = 1
        while j < len(a):
            c = a[j]
            f = table.get("-" + c)
            j += 1
            if f is None:
                if c == "h":
                    help_asked = True
                    continue
                raise FlagError(f"unknown shorthand flag: '{c}' in {a}")
            value = a[j:]
            if f.kind == "bool":
                if value.startswith("="):
                    opts[f.dest] = _bool_value(f, value[1:])
                    break
                opts[f.dest] = True
                continue
            if value.startswith("="):
                value = value[1:]
            elif not value:
                if i >= len(args):
                    raise FlagError(f"flag needs an argument: '{c}' in {a}")
                value = args[i]
                i += 1
            _store(opts, f, value)
            break
    if help_asked:
        raise HelpRequested(command, flags)
    return opts, rest


def _bool_value(f: Flag, value: str) -> bool:
    b = _bool(value)
    if b is None:
        raise FlagError(f'invalid argument "{value}" for "{", ".join(f.names)}" flag: '
                        f'strconv.ParseBool: parsing "{value}": invalid syntax')
    return b


def _store(opts: dict, f: Flag, value: str) -> None:
    if f.kind == "multi":
        opts[f.dest].append(value)
    else:
        opts[f.dest] = value


def parse_go_flags(args: list[str], flags: list[Flag], *, interspersed: bool = False
                   ) -> tuple[dict, list[str]]:
    """runc's rules (Go's flag package as urfave/cli runs it): `-flag` and `--flag` alike,
    `-flag=value`, `-flag value`, `-bool=false`, repeated flags, `--`; no short bundles.
    Without ``interspersed`` the first operand ends the flags (runc exec's command).
    `-h`/`--help` where the table has no such flag raise ``HelpRequested``."""
    table: dict[str, Flag] = {}
    for flag in flags:
        for n in flag.names:
            table[n.lstrip("-")] = flag
    opts = {f.dest: f.initial() for f in flags}
    pos: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            pos.extend(args[i:])
            break
        if arg.startswith("-") and arg != "-" and (interspersed or not pos):
            name, eq, val = arg.lstrip("-").partition("=")
            f = table.get(name)
            if f is None:
                if name in ("h", "help"):
                    raise HelpRequested(None, flags)
                raise FlagError(f"flag provided but not defined: -{name}")
            if f.takes_value:
                if not eq:
                    if i >= len(args):
                        raise FlagError(f"flag needs an argument: -{name}")
                    val = args[i]
                    i += 1
                _store(opts, f, val)
            elif eq:
                b = _bool(val)
                if b is None:
                    raise FlagError(f'invalid boolean value "{val}" for -{name}: parse error')
                opts[f.dest] = b
            else:
                opts[f.dest] = True
            continue
        pos.append(arg)
        if not interspersed:
            pos.extend(args[i:])
            break
    return opts, pos


def to_int(value: str, flag: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"invalid value {value!r} for {flag}: not an integer") from None
