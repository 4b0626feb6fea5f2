"""Shared pieces of the `sangja` command line: the global options, Docker-style flag
parsing, and output formatting (tables, sizes, durations). No engine logic lives here."""

from __future__ import annotations

import os
import sys

from sangja.errors import SangjaError
from sangja.records import dataclass, field

# the human-readable figures are shared with the engine's documents (inspect, ps, stats)
from ...humanize import human_duration, human_size, parse_time, since  # noqa: F401

# the flag tables and their parser are shared with sangja-runtime (sangja.cli.flags)
from ..flags import Command, Flag, FlagError, UsageError, parse_flags  # noqa: F401

PROG = "sangja"


@dataclass
class Globals:
    """Options given before the command (`sangja --root DIR COMMAND ...`)."""

    root: str | None = None
    runroot: str | None = None
    debug: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def storage_root(self) -> str:
        return self.root or os.environ.get("SANGJA_ROOT") or "/var/lib/sangja"

    @property
    def run_root(self) -> str:
        return self.runroot or os.environ.get("SANGJA_RUNROOT") or "/run/sangja"

    # dict-style access kept for the image commands written against a plain dict
    def get(self, key: str, default=None):
        return getattr(self, key, default)


def store(opts: Globals):
    from ...image.store import ImageStore

    return ImageStore(opts.storage_root, opts.run_root)


# ---------------------------------------------------------------------------- formatting


def table(header: list[str], rows: list[list[str]]) -> None:
    """Docker's table output: the header and the rows through tabwrite."""
    lines = ["\t".join(r) for r in [header, *rows]]
    sys.stdout.write(tabwrite(lines))


def tabwrite(lines: list[str], minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter as Docker's formatter sets it up (minwidth 10, padding 3,
    spaces): a cell ends at a tab; each column is as wide as its widest cell plus the
    padding (at least `minwidth`) over each run of consecutive lines that have it; what
    follows a line's last tab is not aligned."""
    cells = [line.split("\t") for line in lines]
    widths: list[list[int]] = [[0] * (len(c) - 1) for c in cells]
    col = 0
    while True:
        runs, start = [], None
        for i, c in enumerate(cells):
            has = len(c) - 1 > col
            if has and start is None:
                start = i
            if not has and start is not None:
                runs.append((start, i))
                start = None
        if start is not None:
            runs.append((start, len(cells)))
        if not runs:
            break
        for a, b in runs:
            w = max(max(len(cells[i][col]) for i in range(a, b)) + padding, minwidth)
            for i in range(a, b):
                widths[i][col] = w
        col += 1
    out = []
    for c, ws in zip(cells, widths, strict=True):
        out.append("".join(cell.ljust(w) for cell, w in zip(c[:-1], ws, strict=True)) + c[-1])
    return "".join(line.rstrip(" ") + "\n" for line in out) if out else ""


def format_rows(fmt: str, rows: list, headers: dict[str, str]) -> str:
    """Rows through a --format template; `table TEMPLATE` adds a header row (the template
    rendered with each field's column title, as Docker does) and aligns the columns."""
    if fmt.startswith("table"):
        body = fmt[len("table"):].strip() or "\t".join(f"{{{{.{k}}}}}" for k in headers)
        lines = [render_template(body, headers), *(render_template(body, r) for r in rows)]
        return tabwrite(lines)
    return "".join(render_template(fmt, r) + "\n" for r in rows)


def print_json(value) -> None:
    from ...jsonio import dumps

    print(dumps(value, indent=4))


def error(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------- --format


class TemplateFailed(SangjaError):
    """A --format template that cannot run on the data (Docker: exit 1)."""

    engine_exit_code = 1


class TemplateUnparsable(TemplateFailed):
    """A --format template that does not parse (Docker's CLI: exit 64)."""

    engine_exit_code = 64


_parsed: dict[tuple[str, bool], object] = {}


def render_template(template: str, value, *, missing_key_error: bool = False) -> str:
    """Go's text/template with Docker's functions (sangja.cli.gotemplate), as every
    `--format` runs it; `\\t` and `\\n` written in the template are a tab and a newline, as
    in Docker. Errors read as Docker's ("template parsing error: ...")."""
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    parts = _plain_fields(template)
    if parts is not None and isinstance(value, dict) and not missing_key_error:
        # only {{.Field}}s of strings (the default tables): no need for the template engine
        out = []
        for text, name in parts:
            out.append(text)
            v = value.get(name) if name else ""
            if not isinstance(v, str):
                break
            out.append(v)
        else:
            return "".join(out)
    from ..gotemplate import Template, TemplateError

    parsed = _parsed.get((template, missing_key_error))
    if parsed is None:
        try:
            parsed = _parsed[(template, missing_key_error)] = Template(
                template, missing_key_error=missing_key_error)
        except TemplateError as e:
            raise TemplateUnparsable(f"template parsing error: {e}") from None
    try:
        return parsed.render(value)  # type: ignore[attr-defined]
    except TemplateError as e:
        raise TemplateFailed(f"template parsing error: {e}") from None


def _plain_fields(template: str) -> list[tuple[str, str]] | None:
    """(text, field) pairs when every action is a plain `{{.Field}}`, else None."""
    out: list[tuple[str, str]] = []
    rest = template
    while True:
        i = rest.find("{{")
        if i < 0:
            if "}}" in rest:
                return None
            out.append((rest, ""))
            return out
        j = rest.find("}}", i)
        if j < 0:
            return None
        name = rest[i + 2:j]
        if not (name.startswith(".") and name[1:].isidentifier()) or "}}" in rest[:i]:
            return None
        out.append((rest[:i], name[1:]))
        rest = rest[j + 2:]


# ---------------------------------------------------------------------------- help texts

# Docker's (cli/command/formatter): the --format help of listing and of inspecting commands
FORMAT_HELP = """Format output using a custom template:
'table':            Print output in table format with column headers (default)
'table TEMPLATE':   Print output in table format using the given Go template
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template.
Refer to https://docs.docker.com/go/formatting/ for more information about formatting \
output with templates"""
INSPECT_FORMAT_HELP = """Format output using a custom template:
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template.
Refer to https://docs.docker.com/go/formatting/ for more information about formatting \
output with templates"""
DETACH_KEYS_HELP = "Override the key sequence for detaching a container"


def print_listing(fmt: str | None, rows: list[dict], default: str,
                  headers: dict[str, str]) -> None:
    """Every listing's --format as Docker's: none or "table" = the default table,
    `table TEMPLATE` = a header row and aligned columns, "json" = one object per line, a
    template = one rendered line per row (the one template module for all of them)."""
    if fmt == "json":
        from ...jsonio import dumps

        for r in rows:
            print(dumps({k: v for k, v in r.items() if not callable(v)}))
        return
    if not fmt or fmt == "table":
        fmt = default
    sys.stdout.write(format_rows(fmt, rows, headers))


def print_inspect(docs: list[dict], fmt: str | None) -> int:
    """`docker inspect`'s output: a JSON array, or each document through the template (a
    key the document lacks is an error there, as in Docker)."""
    if not fmt:
        print_json(docs)
        return 0
    if fmt == "json":
        from ...jsonio import dumps

        for d in docs:
            print(dumps(d))
        return 0
    for d in docs:
        print(render_template(fmt, d, missing_key_error=True))
    return 0
