"""Man pages (groff, section 1) made from the commands' flag tables: sangja(1), one
sangja-COMMAND(1) per command as Docker names them (sangja-container-ls(1), with
sangja-ps(1) for the shortcut), and sangja-runtime(1).

    python -m sangja.cli.help_man DIR     (`make man`: DIR is docs/man)
"""

from __future__ import annotations

import os
import sys

from .flags import Command, Flag


def _esc(text: str) -> str:
    """Text safe in a groff line: backslashes and hyphens escaped, no leading dot or quote."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + ln if ln.startswith((".", "'")) else ln)
                     for ln in out.splitlines())


def _head(name: str, title: str) -> list[str]:
    from .. import __version__

    return [f'.TH "{name.upper()}" "1" "" "sangja {__version__}" "sangja manual"',
            ".SH NAME", f"{_esc(name)} \\- {_esc(title)}"]


def _options(flags: list[Flag], type_word, heading: str = "OPTIONS") -> list[str]:
    from .help import _default_text

    out: list[str] = []
    shown = [f for f in flags if not f.hidden]
    if not shown:
        return out
    out.append(f".SH {heading}")
    for f in sorted(shown, key=lambda f: f.long.lstrip("-")):
        names = ", ".join(f"\\fB{_esc(n)}\\fR" for n in ([f.short] if f.short else []) +
                          [f.long])
        word = type_word(f)
        if word:
            names += f" \\fI{_esc(word)}\\fR" if not word.startswith("[") else _esc(word)
        out += [".TP", names, _esc(f.help + _default_text(f)).replace("\n", "\n.br\n")]
    return out


def command_page(prog: str, name: str, spec: Command, aliases: list[str]) -> str:
    from .help import type_word

    page = f"{prog}-{name.replace(' ', '-')}"
    lines = _head(page, spec.help or name)
    lines += [".SH SYNOPSIS", f"\\fB{_esc(prog)} {_esc(name)}\\fR {_esc(spec.usage)}",
              ".SH DESCRIPTION", _esc(spec.help)]
    if len(aliases) > 1:
        lines += [".SH ALIASES", _esc(", ".join(f"{prog} {a}" for a in aliases))]
    lines += _options(spec.flags, type_word)
    lines += [".SH SEE ALSO", f"\\fB{prog}\\fR(1)"]
    return "\n".join(lines) + "\n"


def engine_pages(prog: str = "sangja") -> dict[str, str]:
    """File name -> page, for every command of `sangja` and the overview (sangja(1): the
    sections of `sangja --help`)."""
    from .help import (
        DESCRIPTION,
        aliases,
        engine_names,
        engine_spec,
        global_flags,
        top_sections,
        type_word,
    )

    pages: dict[str, str] = {}
    for name, target in engine_names():
        spec = engine_spec(target)
        if spec is None or spec.hidden:
            continue
        page = f"{prog}-{name.replace(' ', '-')}"
        pages[f"{page}.1"] = command_page(prog, name, spec, aliases(target))
    overview = _head(prog, "a daemonless container engine with Docker's command line")
    overview += [".SH SYNOPSIS", f"\\fB{prog}\\fR [\\fIOPTIONS\\fR] \\fICOMMAND\\fR "
                 "[\\fIARG\\fR...]", ".SH DESCRIPTION", _esc(DESCRIPTION)]
    for heading, rows in top_sections():
        overview.append(f".SH {heading.upper()}")
        for name, text in rows:
            page = f"{prog}-{name}"
            ref = (f"\\fB{_esc(page)}\\fR(1)" if f"{page}.1" in pages
                   else f"\\fB{_esc(prog)} {_esc(name)}\\fR")
            overview += [".TP", ref, _esc(text)]
    overview += _options(global_flags(), type_word, "GLOBAL OPTIONS")
    overview += [".SH SEE ALSO", "\\fBsangja\\-runtime\\fR(1)"]
    pages[f"{prog}.1"] = "\n".join(overview) + "\n"
    return pages


def runtime_pages() -> dict[str, str]:
    from .runtime import COMMANDS, GLOBAL, PROG

    def word(f: Flag) -> str:
        return "value" if f.takes_value else ""

    lines = _head(PROG, "an OCI container runtime with runc's command line")
    lines += [".SH SYNOPSIS", f"\\fB{_esc(PROG)}\\fR [\\fIglobal options\\fR] \\fICOMMAND\\fR "
              "[\\fIcommand options\\fR] [\\fIARG\\fR...]", ".SH COMMANDS"]
    for name, (_, spec) in COMMANDS.items():
        lines += [".TP", f"\\fB{name}\\fR {_esc(spec.usage)}", _esc(spec.help)]
        for f in spec.flags:
            names = ", ".join(_esc(n) for n in f.names)
            lines += [".RS", ".TP", f"\\fB{names}\\fR" + (" \\fIvalue\\fR" if word(f) else ""),
                      _esc(f.help), ".RE"]
    lines += _options(GLOBAL, word)
    return {f"{PROG}.1": "\n".join(lines) + "\n"}


def write_pages(directory: str) -> list[str]:
    os.makedirs(directory, exist_ok=True)
    written = []
    for name, text in {**engine_pages(), **runtime_pages()}.items():
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(text)
        written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m sangja.cli.help_man DIR")
    print(f"{len(write_pages(sys.argv[1]))} man pages in {sys.argv[1]}")
