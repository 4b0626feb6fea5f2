"""Containerfile syntax: lines become instructions, as Docker's parser reads them.

- Parser directives (``# escape=`` and ``# syntax=``) count only at the very top, before
  any comment, blank line or instruction; ``escape`` may be ``\\`` (the default) or a
  backtick.
- A line ending with the escape character (spaces or tabs may follow it) continues on the
  next one; comment lines and blank lines inside a continued instruction are skipped.
- Lines whose first non-blank character is ``#`` are comments.
- ``RUN``, ``COPY`` and ``ADD`` take heredocs: ``<<EOF`` (or ``<<-EOF``, leading tabs
  stripped; ``<<"EOF"``/``<<'EOF'``, no variable expansion) reads the lines after the
  instruction up to the terminator.
- Leading ``--name=value`` words are the instruction's flags; a rest that parses as a JSON
  array of strings is the exec form (``json``), any other rest is the shell form.

Instructions are checked against Docker's list here (an unknown one is an error naming its
line); what each means is the executor's business.
"""

from __future__ import annotations

from ..records import dataclass, field
from .errors import BuildError
from .lexer import split_words

__all__ = ["INSTRUCTIONS", "Containerfile", "Heredoc", "Instruction", "parse"]

INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
    "WORKDIR",
})
_HEREDOC_INSTRUCTIONS = ("RUN", "COPY", "ADD")
_JSON_INSTRUCTIONS = ("RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME")
# plain string tests, no `re`: the parse is on every build's path, a cached one's too
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HEREDOC_NAME = _ALNUM | frozenset("_.-")


def _directive(line: str) -> tuple[str, str] | None:
    """``# key = value`` (key: a letter then letters or digits; value not empty)."""
    if not line.startswith("#"):
        return None
    key, eq, value = line[1:].partition("=")
    key, value = key.strip(" \t"), value.strip(" \t")
    if not eq or not value or not key or not key[0].isascii() or not key[0].isalpha() \
            or not set(key) <= _ALNUM or "\n" in value:
        return None
    return key, value


def _flag(word: str) -> tuple[str, str | None] | None:
    """``--name`` or ``--name=value`` (name: a letter, then letters, digits or '-')."""
    name, eq, value = word[2:].partition("=")
    if not name or not name[0].isascii() or not name[0].isalpha() \
            or not set(name) <= _ALNUM | {"-"}:
        return None
    return name, value if eq else None


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str
    expand: bool  # the terminator was not quoted: variables are substituted
    fd: int | None = None  # "3<<EOF": the descriptor it is for (RUN)


@dataclass
class Instruction:
    cmd: str  # upper case
    line: int  # where it starts (1-based)
    original: str  # the instruction as written, continuations joined
    flags: list[tuple[str, str | None]] = field(default_factory=list)
    rest: str = ""  # after the command word and the flags
    json: list[str] | None = None  # the exec form, when `rest` is a JSON array of strings
    heredocs: list[Heredoc] = field(default_factory=list)

    def flag(self, name: str) -> str | None:
        """The last value of --name (None when absent; "" for a bare --name)."""
        value = None
        for n, v in self.flags:
            if n == name:
                value = "" if v is None else v
        return value

    def flag_values(self, name: str) -> list[str]:
        return ["" if v is None else v for n, v in self.flags if n == name]


@dataclass
class Containerfile:
    path: str  # as the user named it (error messages)
    instructions: list[Instruction]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)

    def where(self, ins: Instruction) -> str:
        return f"{self.path}:{ins.line}"


def _directives(lines: list[str], path: str) -> tuple[dict[str, str], int]:
    """The parser directives at the top and the index of the first line after them."""
    found: dict[str, str] = {}
    for i, line in enumerate(lines):
        m = _directive(line)
        if m is None:
            return found, i
        key = m[0].lower()
        if key in found:
            raise BuildError(f"only one {key} parser directive can be used", f"{path}:{i + 1}")
        found[key] = m[1]
    return found, len(lines)


def _continues(line: str, escape: str) -> str | None:
    """The line without its trailing escape (and spaces), or None if it does not continue."""
    stripped = line.rstrip(" \t")
    if stripped.endswith(escape):
        return stripped[:-1]
    return None


def _is_comment(line: str) -> bool:
    return line.lstrip(" \t").startswith("#")


def _heredoc_names(rest: str, escape: str) -> list[tuple[str, bool, bool, int | None]]:
    """(terminator, expand, strip tabs, fd) of each heredoc a line asks for."""
    out = []
    for word in split_words(rest, escape):
        fd, sep, name = word.partition("<<")  # DIGITS<<[-]NAME
        if not sep or not (fd == "" or fd.isascii() and fd.isdigit()):
            continue
        strip_tabs = name.startswith("-")
        name = name[1:] if strip_tabs else name
        quoted = len(name) >= 2 and name[0] == name[-1] and name[0] in "'\""
        if quoted:
            name = name[1:-1]
        if not name or not set(name) <= _HEREDOC_NAME:
            continue  # "<<" as data, e.g. an echo with a bit shift
        out.append((name, not quoted, strip_tabs, int(fd) if fd else None))
    return out


def _split_flags(text: str) -> tuple[list[tuple[str, str | None]], str]:
    flags: list[tuple[str, str | None]] = []
    rest = text.lstrip()
    while rest.startswith("--"):
        word, _, after = rest.partition(" ")
        word2, _, after2 = rest.partition("\t")
        if len(word2) < len(word):
            word, after = word2, after2
        if word == "--":
            rest = after.lstrip()
            break
        m = _flag(word)
        if m is None:
            break
        flags.append((m[0].lower(), m[1]))
        rest = after.lstrip()
    return flags, rest


def _json_form(rest: str) -> list[str] | None:
    text = rest.strip()
    if not text.startswith("[") or not text.endswith("]"):
        return None
    from ..jsonio import loads

    try:
        value = loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def parse_line(text: str, line: int, escape: str = "\\", path: str = "Containerfile",
               heredocs: list[Heredoc] | None = None) -> Instruction:
    """One logical instruction (continuations already joined)."""
    body = text.strip()
    cmd, _, rest = body.partition(" ")
    cmd2, _, rest2 = body.partition("\t")
    if len(cmd2) < len(cmd):
        cmd, rest = cmd2, rest2
    upper = cmd.upper()
    if upper not in INSTRUCTIONS:
        raise BuildError(f"unknown instruction: {cmd}", f"{path}:{line}")
    flags, rest = _split_flags(rest)
    rest = rest.strip()
    ins = Instruction(cmd=upper, line=line, original=body, flags=flags, rest=rest,
                      heredocs=list(heredocs or []))
    if upper in _JSON_INSTRUCTIONS:
        ins.json = _json_form(rest)
    return ins


def parse(text: str, path: str = "Containerfile") -> Containerfile:
    """Parse a whole Containerfile; BuildError (naming the line) on bad syntax."""
    lines = text.replace("\r\n", "\n").split("\n")
    directives, start = _directives(lines, path)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise BuildError(f"invalid escape token {escape!r} does not match ` or \\", f"{path}:1")
    out: list[Instruction] = []
    i = start
    while i < len(lines):
        line = lines[i]
        if not line.strip() or _is_comment(line):
            i += 1
            continue
        first = i + 1
        parts: list[str] = []
        cont = _continues(line, escape)
        parts.append(line if cont is None else cont)
        i += 1
        while cont is not None and i < len(lines):
            line = lines[i]
            i += 1
            if _is_comment(line) or not line.strip():
                continue
            cont = _continues(line, escape)
            parts.append(line if cont is None else cont)
        logical = "".join(parts)
        cmd = logical.strip().split(None, 1)[0].upper()
        docs: list[Heredoc] = []
        if cmd in _HEREDOC_INSTRUCTIONS:
            for name, expand, strip_tabs, fd in _heredoc_names(logical.strip()[len(cmd):],
                                                              escape):
                body: list[str] = []
                while True:
                    if i >= len(lines):
                        raise BuildError(f"unterminated heredoc {name!r}", f"{path}:{first}")
                    raw = lines[i]
                    i += 1
                    check = raw.lstrip("\t") if strip_tabs else raw
                    if check == name:
                        break
                    body.append(check)
                docs.append(Heredoc(name, "".join(b + "\n" for b in body), expand, fd))
        out.append(parse_line(logical, first, escape, path, docs))
    return Containerfile(path=path, instructions=out, escape=escape, directives=directives)
