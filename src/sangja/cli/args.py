"""A small parser for runc-style command lines (Go `flag`/urfave-cli conventions):
`-f`, `--flag`, `-flag`, `--flag=value`, `--flag value`, repeated flags, and flags anywhere
before the positional arguments of a command. Lean on purpose: argparse alone costs more
start-up time than a container start should."""

from __future__ import annotations


class UsageError(Exception):
    pass


class Flag:
    __slots__ = ("names", "dest", "takes_value", "multi", "default", "help")

    def __init__(self, names: str, dest: str | None = None, value: bool = False,
                 multi: bool = False, default=None, help: str = ""):
        self.names = names.split(",")
        self.dest = dest or self.names[0].lstrip("-").replace("-", "_")
        self.takes_value = value or multi
        self.multi = multi
        self.default = [] if multi else (default if default is not None or value else False)
        self.help = help


def parse(flags: list[Flag], argv: list[str], *, interspersed: bool = False,
          stop_at_positional: bool = True) -> tuple[dict, list[str]]:
    """Parse `argv`; return (options, positional). Without `interspersed` the first
    positional ends flag parsing (everything after it is positional, as runc's exec args)."""
    table: dict[str, Flag] = {}
    for f in flags:
        for n in f.names:
            table[n.lstrip("-")] = f
    opts = {f.dest: (list(f.default) if f.multi else f.default) for f in flags}
    pos: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            pos.extend(argv[i:])
            break
        if arg.startswith("-") and arg != "-" and (interspersed or not pos):
            name, eq, val = arg.lstrip("-").partition("=")
            f = table.get(name)
            if f is None:
                raise UsageError(f"flag provided but not defined: -{name}")
            if f.takes_value:
                if not eq:
                    if i >= len(argv):
                        raise UsageError(f"flag needs an argument: -{name}")
                    val = argv[i]
                    i += 1
                if f.multi:
                    opts[f.dest].append(val)
                else:
                    opts[f.dest] = val
            else:
                if eq:
                    low = val.lower()
                    if low not in ("true", "false", "1", "0", "t", "f"):
                        raise UsageError(f"invalid boolean value {val!r} for -{name}")
                    opts[f.dest] = low in ("true", "1", "t")
                else:
                    opts[f.dest] = True
            continue
        pos.append(arg)
        if stop_at_positional and not interspersed:
            pos.extend(argv[i:])
            break
    return opts, pos


def to_int(value: str, flag: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"invalid value {value!r} for {flag}: not an integer") from None


def usage(prog: str, cmd: str, args: str, flags: list[Flag]) -> str:
    lines = [f"usage: {prog} {cmd} [options] {args}".rstrip(), ""]
    for f in flags:
        names = ", ".join(("-" if len(n.lstrip("-")) == 1 else "--") + n.lstrip("-")
                          for n in f.names)
        lines.append(f"  {names}{' VALUE' if f.takes_value else ''}\t{f.help}")
    return "\n".join(lines)
