"""Go's text/template, as `docker --format` runs it, over JSON-shaped Python values.

Everything `--format` users write works as in Docker: actions with pipelines, fields
(`.A.B`, on dicts; a missing key prints `<no value>`), variables (`$`, `$x := ...`,
`range $i, $v := ...`), `if`/`else if`/`else`, `range` (with `else`, `break`, `continue`),
`with`, `define`/`template`/`block`, comments, `{{-`/`-}}` trimming, and the functions: Go's
(`and or not len index slice print printf println eq ne lt le gt ge html js urlquery`) and
Docker's (`json split join title lower upper pad truncate`). Values print as Go's `%v`
does (`[a b]`, `map[k:v]`, floats as `1e+06`). Errors read like Go's (`template: :1:9:
...`). A dict value that is callable is a method: `{{.Label "k"}}`.
"""

from __future__ import annotations

import math
import re

__all__ = ["TemplateError", "Template", "render"]


class TemplateError(ValueError):
    pass


class _Missing:
    """A map key that is not there: prints `<no value>`, is false, compares to nothing."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# ------------------------------------------------------------------------------- lexing

_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break",
             "continue", "nil", "true", "false"}
_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n]+)
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\\n]|\\.)+')
  | (?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|
                       (?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))
  | (?P<field>(?:\.[A-Za-z_]\w*)+)
  | (?P<variable>\$\w*(?:\.[A-Za-z_]\w*)*)
  | (?P<dot>\.)
  | (?P<ident>[A-Za-z_]\w*)
""", re.X)


class _Tok:
    __slots__ = ("kind", "text", "pos", "spaced")

    def __init__(self, kind: str, text: str, pos: int, spaced: bool):
        self.kind, self.text, self.pos, self.spaced = kind, text, pos, spaced

    def __repr__(self) -> str:
        return f"{self.kind}:{self.text}"


def _lex(src: str) -> list:
    """Text pieces (str) and actions (lists of _Tok, with the action's offset)."""
    out: list = []
    i = 0
    trim_next = False
    while i < len(src):
        j = src.find("{{", i)
        text = src[i:] if j < 0 else src[i:j]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        if j >= 0 and src.startswith("{{- ", j) or j >= 0 and src[j + 2:j + 3] == "-" and \
                src[j + 3:j + 4] in (" ", "\t", "\r", "\n"):
            text = text.rstrip(" \t\r\n")
        if text:
            out.append(text)
        if j < 0:
            break
        start = j + 2
        if src[start:start + 1] == "-" and src[start + 1:start + 2] in (" ", "\t", "\r", "\n"):
            start += 1
        k, trim_next = _action_end(src, start)
        body = src[start:k]
        end = k + (3 if trim_next else 2)
        stripped = body.strip(" \t\r\n")
        if stripped.startswith("/*"):
            if not stripped.endswith("*/"):
                raise TemplateError(f"template: :{_line(src, j)}: unclosed comment")
            i = end
            continue
        out.append((_tokens(body, start, src), j))
        i = end
    return out


def _action_end(src: str, start: int) -> tuple[int, bool]:
    """Where the action starting at `start` ends (the `}}`), skipping quoted text."""
    i = start
    while i < len(src):
        c = src[i]
        if c in "\"'`":
            close = src.find(c, i + 1) if c == "`" else _close_quote(src, i)
            if close < 0:
                raise TemplateError(f"template: :{_line(src, i)}: unterminated quoted string")
            i = close + 1
            continue
        if src.startswith("}}", i):
            trim = i > start and src[i - 1] == "-" and i - 2 >= start and \
                src[i - 2] in (" ", "\t", "\r", "\n")
            return (i - 1 if trim else i), trim
        if src.startswith("/*", i):
            close = src.find("*/", i + 2)
            if close < 0:
                raise TemplateError(f"template: :{_line(src, i)}: unclosed comment")
            i = close + 2
            continue
        i += 1
    raise TemplateError(f"template: :{_line(src, start)}: unclosed action")


def _close_quote(src: str, i: int) -> int:
    q = src[i]
    i += 1
    while i < len(src) and src[i] != "\n":
        if src[i] == "\\":
            i += 2
            continue
        if src[i] == q:
            return i
        i += 1
    return -1


def _tokens(body: str, offset: int, src: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    spaced = True
    while i < len(body):
        m = _TOKEN.match(body, i)
        if not m:
            raise TemplateError(f"template: :{_line(src, offset + i)}: unexpected "
                                f"{body[i]!r} in command")
        kind = m.lastgroup
        assert kind is not None  # every alternative of _TOKEN is a named group
        if kind == "space":
            spaced = True
        else:
            text = m.group()
            if kind == "ident" and text in _KEYWORDS:
                kind = text
            toks.append(_Tok(kind, text, offset + i, spaced))
            spaced = False
        i = m.end()
    return toks


def _line(src: str, pos: int) -> int:
    return src.count("\n", 0, pos) + 1


# ------------------------------------------------------------------------------- parsing

class _Node:
    pos = 0


class _Text(_Node):
    def __init__(self, text: str):
        self.text = text


class _Pipe(_Node):
    def __init__(self, decl: list[str], assign: bool, cmds: list, pos: int):
        self.decl, self.assign, self.cmds, self.pos = decl, assign, cmds, pos


class _Action(_Node):
    def __init__(self, pipe: _Pipe):
        self.pipe = pipe


class _Branch(_Node):
    """if / range / with: a pipe, what runs, what runs otherwise."""

    def __init__(self, kind: str, pipe: _Pipe, body: list, other: list | None):
        self.kind, self.pipe, self.body, self.other = kind, pipe, body, other


class _Call(_Node):
    """{{template "name" pipeline}}"""

    def __init__(self, name: str, pipe: _Pipe | None):
        self.name, self.pipe = name, pipe


class _Jump(_Node):
    def __init__(self, kind: str):
        self.kind = kind


class _Arg:
    """An operand: kind in field, var, dot, ident, const, pipe, chain."""

    def __init__(self, kind: str, value=None, path: tuple[str, ...] = (), node=None,
                 text: str = ""):
        self.kind, self.value, self.path, self.node, self.text = kind, value, path, node, text


class _Parser:
    def __init__(self, src: str, funcs: dict):
        self.src = src
        self.funcs = funcs
        self.items = _lex(src)
        self.i = 0
        self.defines: dict[str, list] = {}

    def error(self, pos: int, msg: str) -> TemplateError:
        return TemplateError(f"template: :{_line(self.src, pos)}: {msg}")

    def parse(self) -> list:
        nodes, end = self.list_until(())
        if end is not None:
            raise self.error(end[1], f"unexpected {{{{{end[0]}}}}}")
        return nodes

    def list_until(self, stops: tuple[str, ...]):
        """Nodes up to an action whose first token is in `stops` (returned with it)."""
        nodes: list = []
        while self.i < len(self.items):
            item = self.items[self.i]
            self.i += 1
            if isinstance(item, str):
                nodes.append(_Text(item))
                continue
            toks, pos = item
            if not toks:
                raise self.error(pos, "missing value for command")
            head = toks[0].kind
            if head in ("end", "else"):
                if head not in stops:
                    raise self.error(pos, f"unexpected {{{{{head}}}}}")
                return nodes, (head, pos, toks)
            nodes.append(self.action(toks, pos))
        if stops:
            raise self.error(len(self.src), "unexpected EOF")
        return nodes, None

    def action(self, toks: list[_Tok], pos: int):
        head = toks[0].kind
        if head in ("if", "range", "with"):
            return self.branch(head, toks[1:], pos)
        if head in ("break", "continue"):
            if len(toks) > 1:
                raise self.error(pos, f"unexpected {toks[1].text} in {head}")
            return _Jump(head)
        if head == "define":
            name = self.name_of(toks, pos, "define")
            body, end = self.list_until(("end",))
            if end[0] != "end" or len(end[2]) > 1:
                raise self.error(end[1], "unexpected {{else}} in define")
            self.defines[name] = body
            return _Text("")
        if head in ("template", "block"):
            name = self.name_of(toks, pos, head)
            rest = toks[2:]
            pipe = self.pipeline(rest, pos, head) if rest else None
            if head == "block":
                body, end = self.list_until(("end",))
                self.defines.setdefault(name, body)
            return _Call(name, pipe)
        return _Action(self.pipeline(toks, pos, "command"))

    def name_of(self, toks: list[_Tok], pos: int, what: str) -> str:
        if len(toks) < 2 or toks[1].kind not in ("string", "raw"):
            raise self.error(pos, f"unexpected token in {what} clause")
        return _unquote(toks[1].text)

    def branch(self, kind: str, toks: list[_Tok], pos: int):
        pipe = self.pipeline(toks, pos, kind, ranging=kind == "range")
        body, end = self.list_until(("end", "else"))
        other = None
        if end[0] == "else":
            rest = end[2][1:]
            if rest and rest[0].kind in ("if", "with"):  # else if / else with: a chain
                other = [self.branch(rest[0].kind, rest[1:], end[1])]
                return _Branch(kind, pipe, body, other)
            if rest:
                raise self.error(end[1], f"unexpected {rest[0].text} in else")
            other, end = self.list_until(("end",))
            if end[0] != "end":
                raise self.error(end[1], "expected end; found {{else}}")
        elif len(end[2]) > 1:
            raise self.error(end[1], f"unexpected {end[2][1].text} in end")
        return _Branch(kind, pipe, body, other)

    def pipeline(self, toks: list[_Tok], pos: int, context: str,
                 ranging: bool = False) -> _Pipe:
        decl: list[str] = []
        assign = False
        # $x := ... | $x = ... | $i, $v := ... (range only)
        if toks and toks[0].kind == "variable" and "." not in toks[0].text:
            if len(toks) > 1 and toks[1].kind in ("declare", "assign"):
                decl, assign, toks = [toks[0].text], toks[1].kind == "assign", toks[2:]
            elif ranging and len(toks) > 3 and toks[1].kind == "comma" and \
                    toks[2].kind == "variable" and toks[3].kind in ("declare", "assign"):
                decl, assign = [toks[0].text, toks[2].text], toks[3].kind == "assign"
                toks = toks[4:]
        if not toks:
            raise self.error(pos, f"missing value for {context}")
        cmds: list[list[_Tok]] = [[]]
        depth = 0
        for t in toks:
            if t.kind == "lparen":
                depth += 1
            elif t.kind == "rparen":
                depth -= 1
            if t.kind == "pipe" and depth == 0:
                cmds.append([])
                continue
            cmds[-1].append(t)
        parsed = []
        for c in cmds:
            if not c:
                raise self.error(pos, "missing command")
            parsed.append(self.command(c, pos))
        return _Pipe(decl, assign, parsed, pos)

    def command(self, toks: list[_Tok], pos: int) -> list[_Arg]:
        args: list[_Arg] = []
        i = 0
        while i < len(toks):
            t = toks[i]
            if t.kind == "lparen":
                depth, j = 1, i + 1
                while j < len(toks) and depth:
                    depth += {"lparen": 1, "rparen": -1}.get(toks[j].kind, 0)
                    j += 1
                if depth:
                    raise self.error(t.pos, "unclosed left paren")
                arg = _Arg("pipe", node=self.pipeline(toks[i + 1:j - 1], t.pos, "parenthesized"
                                                                              " pipeline"))
                i = j
                if i < len(toks) and toks[i].kind == "field" and not toks[i].spaced:
                    arg = _Arg("chain", node=arg, path=_path(toks[i].text))
                    i += 1
                args.append(arg)
                continue
            if t.kind == "rparen":
                raise self.error(t.pos, "unexpected right paren")
            if args and not t.spaced and t.kind in ("field", "dot", "variable", "string",
                                                   "number", "ident"):
                raise self.error(t.pos, f"unexpected {t.text!r} in operand")
            args.append(self.operand(t))
            i += 1
        return args

    def operand(self, t: _Tok) -> _Arg:
        k = t.kind
        if k == "field":
            return _Arg("field", path=_path(t.text), text=t.text)
        if k == "variable":
            name, _, rest = t.text.partition(".")
            return _Arg("var", value=name, path=_path("." + rest) if rest else (), text=t.text)
        if k == "dot":
            return _Arg("dot", text=".")
        if k == "ident":
            if t.text not in self.funcs:
                raise self.error(t.pos, f'function "{t.text}" not defined')
            return _Arg("ident", value=t.text, text=t.text)
        if k in ("string", "raw"):
            return _Arg("const", value=_unquote(t.text), text=t.text)
        if k == "char":
            return _Arg("const", value=ord(_unquote('"' + t.text[1:-1] + '"')), text=t.text)
        if k == "number":
            return _Arg("const", value=_number(t.text, self, t.pos), text=t.text)
        if k in ("true", "false"):
            return _Arg("const", value=k == "true", text=t.text)
        if k == "nil":
            return _Arg("nil", text="nil")
        raise self.error(t.pos, f"unexpected {t.text} in operand")


def _path(text: str) -> tuple[str, ...]:
    return tuple(p for p in text.split(".") if p)


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    body = text[1:-1]
    out, i = [], 0
    simple = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
              "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        n = body[i + 1:i + 2]
        if n in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[n]
            out.append(chr(int(body[i + 2:i + 2 + width], 16)))
            i += 2 + width
        elif n.isdigit() and body[i + 1:i + 4].isdigit():
            out.append(chr(int(body[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(simple.get(n, n))
            i += 2
    return "".join(out)


def _number(text: str, parser: _Parser, pos: int):
    t = text.replace("_", "")
    try:
        if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]+|[+-]?0[bB][01]+|[+-]?0[oO][0-7]+", t):
            return int(t, 0)
        if re.fullmatch(r"[+-]?\d+", t):
            return int(t, 8) if len(t.lstrip("+-")) > 1 and t.lstrip("+-")[0] == "0" \
                else int(t)
        return float(t)
    except ValueError:
        raise parser.error(pos, f"bad number syntax: {text!r}") from None


# ------------------------------------------------------------------------------- printing

def go_str(v) -> str:
    """Go's %v (fmt.Sprint) of a JSON-shaped value."""
    if v is MISSING or v is None:
        return "<no value>" if v is MISSING else "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, dict):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(x)}" for k, x in
                                 sorted(v.items(), key=lambda kv: str(kv[0]))) + "]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(go_str(x) for x in v) + "]"
    return str(v)


def _go_float(f: float, exp_from: int = 6) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64): the shortest digits, exponent form from 1e+06
    and below 1e-04 (Go prints 1073741824.0 as 1.073741824e+09)."""
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if math.isnan(f):
        return "NaN"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    digits, exp = _shortest(f)
    sign = "-" if f < 0 else ""
    if exp < -4 or exp >= exp_from:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    point = exp + 1
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _shortest(f: float) -> tuple[str, int]:
    """The shortest decimal digits that read back as `f`, and the decimal exponent of the
    first digit."""
    r = repr(abs(f))  # Python's repr is the shortest round-trip form
    if "e" in r:
        m, _, ex = r.partition("e")
        digits = m.replace(".", "").rstrip("0") or "0"
        return digits.lstrip("0") or "0", int(ex)
    whole, _, frac = r.partition(".")
    frac = frac.rstrip("0")
    if whole != "0":
        digits = (whole + frac).rstrip("0")
        return digits, len(whole) - 1
    lead = len(frac) - len(frac.lstrip("0"))
    return frac.lstrip("0"), -(lead + 1)


def go_quote(s: str) -> str:
    """strconv.Quote."""
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch in "\a\b\f\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\v": "\\v"}[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _go_type(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        return "[]interface {}"
    if isinstance(v, dict):
        return "map[string]interface {}"
    return "<nil>" if v is None or v is MISSING else type(v).__name__


_VERB = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?([a-zA-Z%])")


def go_sprintf(fmt: str, args: list) -> str:
    """fmt.Sprintf for the verbs templates use: v s q d x X o b c U f F e E g G t %."""
    out: list[str] = []
    n = 0
    i = 0
    while True:
        m = _VERB.search(fmt, i)
        if not m:
            out.append(fmt[i:])
            break
        out.append(fmt[i:m.start()])
        i = m.end()
        flags, width, prec, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        w = p = None
        if width == "*":
            w, n = (args[n] if n < len(args) else 0), n + 1
        elif width:
            w = int(width)
        if prec == "*":
            p, n = (args[n] if n < len(args) else 0), n + 1
        elif prec is not None:
            p = int(prec or 0)
        if n >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_one(verb, flags, w, p, args[n]))
        n += 1
    if n < len(args):
        extra = ", ".join(f"{_go_type(a)}={go_str(a)}" for a in args[n:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format_one(verb: str, flags: str, width: int | None, prec: int | None, a) -> str:
    minus, plus, zero, sharp = "-" in flags, "+" in flags, "0" in flags, "#" in flags
    bad = f"%!{verb}({_go_type(a)}={go_str(a)})"
    numeric = False
    if verb == "v":
        if isinstance(a, float):
            s = format(a, f".{prec}g") if prec is not None else _go_float(a)
        elif isinstance(a, str):
            s = go_quote(a) if sharp else (a[:prec] if prec is not None else a)
        else:
            s = go_str(a)
        if plus and isinstance(a, int | float) and not isinstance(a, bool) and a >= 0:
            s = "+" + s
        numeric = isinstance(a, int | float) and not isinstance(a, bool)
    elif verb == "s":
        if isinstance(a, list | tuple):
            s = "[" + " ".join(go_str(x) for x in a) + "]"
        elif isinstance(a, int | float) and not isinstance(a, bool):
            return f"%!s({_go_type(a)}={go_str(a)})"
        else:
            s = go_str(a)
        if prec is not None:
            s = s[:prec]
    elif verb == "q":
        if isinstance(a, str):
            s = go_quote(a[:prec] if prec is not None else a)
        elif isinstance(a, list | tuple):
            s = "[" + " ".join(go_quote(x) if isinstance(x, str) else go_str(x)
                               for x in a) + "]"
        elif isinstance(a, int) and not isinstance(a, bool):
            s = "'" + go_quote(chr(a))[1:-1].replace("'", "\\'") + "'"
        else:
            return bad
    elif verb in "dxXobcU":
        if isinstance(a, str) and verb in "xX":
            s = a.encode().hex()
            s = s.upper() if verb == "X" else s
        elif isinstance(a, bool) or not isinstance(a, int):
            return bad
        elif verb == "d":
            s, numeric = str(abs(a)), True
            s = ("-" if a < 0 else "+" if plus else "") + s
        elif verb == "c":
            s = chr(a)
        elif verb == "U":
            s = f"U+{a:04X}"
        else:
            base = {"x": "x", "X": "X", "o": "o", "b": "b"}[verb]
            s, numeric = format(abs(a), base), True
            if sharp:
                s = {"x": "0x", "X": "0X", "o": "0", "b": "0b"}[verb] + s
            s = ("-" if a < 0 else "+" if plus else "") + s
    elif verb in "fFeEgG":
        if isinstance(a, bool) or not isinstance(a, int | float):
            return bad
        if isinstance(a, int):
            return f"%!{verb}(int={a})"
        numeric = True
        if verb in "gG" and prec is None:
            s = _go_float(a)
            s = s.upper() if verb == "G" else s
        else:
            py = {"F": "f"}.get(verb, verb)
            s = format(a, f".{6 if prec is None else prec}{py}")
        if plus and a >= 0:
            s = "+" + s
    elif verb == "t":
        if not isinstance(a, bool):
            return bad
        s = "true" if a else "false"
    else:
        return f"%!{verb}({_go_type(a)}={go_str(a)})"
    if " " in flags and numeric and not plus and s[:1] not in "+-":
        s = " " + s
    if width is not None and len(s) < width:
        if minus:
            s = s.ljust(width)
        elif zero and numeric:
            sign = s[0] if s[:1] in "+-" else ""
            s = sign + s[len(sign):].rjust(width - len(sign), "0")
        else:
            s = s.rjust(width)
    return s


# ------------------------------------------------------------------------------- functions

def _truth(v) -> bool:
    if v is MISSING or v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str | list | tuple | dict):
        return len(v) > 0
    return True


def _f_len(x) -> int:
    if isinstance(x, str):
        return len(x.encode())
    if isinstance(x, list | tuple | dict):
        return len(x)
    raise _FuncError(f"len of type {_go_type(x)}")


def _f_index(x, *keys):
    for k in keys:
        if isinstance(x, dict):
            x = x.get(k, MISSING) if isinstance(k, str) else MISSING
        elif isinstance(x, list | tuple | str):
            if isinstance(k, bool) or not isinstance(k, int):
                raise _FuncError(f"cannot index slice/array with type {_go_type(k)}")
            if not 0 <= k < len(x):
                raise _FuncError(f"index out of range: {k}")
            x = x[k] if not isinstance(x, str) else x.encode()[k]
        elif x is None or x is MISSING:
            raise _FuncError("index of untyped nil")
        else:
            raise _FuncError(f"can't index item of type {_go_type(x)}")
    return x


def _f_slice(x, *idx):
    if not isinstance(x, str | list | tuple):
        raise _FuncError(f"can't slice item of type {_go_type(x)}")
    if len(idx) > 2:
        raise _FuncError("too many slice indexes")
    lo = idx[0] if idx else 0
    hi = idx[1] if len(idx) > 1 else len(x)
    if not 0 <= lo <= hi <= len(x):
        raise _FuncError(f"index out of range: {hi}")
    return x[lo:hi]


def _f_print(*args) -> str:
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_str(a))
    return "".join(out)


def _cmp_args(a, b):
    for v in (a, b):
        if v is MISSING or v is None or isinstance(v, list | dict | tuple):
            raise _FuncError("invalid type for comparison")
    if isinstance(a, str) != isinstance(b, str) or isinstance(a, bool) != isinstance(b, bool):
        raise _FuncError("incompatible types for comparison")
    return a, b


def _f_eq(a, *bs) -> bool:
    if not bs:
        raise _FuncError("missing argument for comparison")
    for b in bs:
        if a is MISSING or a is None or b is MISSING or b is None:
            if (a is None or a is MISSING) and (b is None or b is MISSING):
                return True
            continue
        x, y = _cmp_args(a, b)
        if x == y:
            return True
    return False


def _f_lt(a, b) -> bool:
    x, y = _cmp_args(a, b)
    if isinstance(x, bool):
        raise _FuncError("invalid type for comparison")
    return x < y


def _f_html(*args) -> str:
    s = _f_print(*args)
    return (s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;")
            .replace(">", "&gt;").replace('"', "&#34;").replace("\0", "\uFFFD"))


def _f_js(*args) -> str:
    out = []
    for ch in _f_print(*args):
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch in "<>&=":
            out.append(f"\\u{ord(ch):04X}")
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _f_urlquery(*args) -> str:
    from urllib.parse import quote_plus

    return quote_plus(_f_print(*args), safe="-_.~")


def _f_json(v) -> str:
    from ..jsonio import dumps

    return dumps(None if v is MISSING else v)


def _f_title(s: str) -> str:
    """strings.Title: the first letter of each word upper case (words: letters and digits
    after anything else)."""
    out, prev = [], " "
    for ch in s:
        out.append(ch.upper() if not (prev.isalnum() or prev in "_'") else ch)
        prev = ch
    return "".join(out)


def _f_truncate(s: str, n: int) -> str:
    return s[:n] if len(s) > n else s


def _f_pad(s: str, prefix: int, suffix: int) -> str:
    return " " * prefix + s + " " * suffix


def _f_split(s: str, sep: str) -> list[str]:
    return list(s) if sep == "" else s.split(sep)


def _f_join(items, sep: str) -> str:
    if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
        raise _FuncError("wrong type for value; expected []string")
    return sep.join(items)


class _FuncError(Exception):
    pass


FUNCS = {
    "and": None, "or": None,  # evaluated lazily, in _Exec
    "not": lambda a: not _truth(a),
    "len": _f_len, "index": _f_index, "slice": _f_slice,
    "print": _f_print, "printf": lambda f, *a: go_sprintf(f, list(a)),
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "eq": _f_eq, "ne": lambda a, b: not _f_eq(a, b),
    "lt": _f_lt, "le": lambda a, b: _f_lt(a, b) or _f_eq(a, b),
    "gt": lambda a, b: not (_f_lt(a, b) or _f_eq(a, b)), "ge": lambda a, b: not _f_lt(a, b),
    "html": _f_html, "js": _f_js, "urlquery": _f_urlquery,
    # Docker's (docker/cli templates)
    "json": _f_json, "split": _f_split, "join": _f_join, "title": _f_title,
    "lower": lambda s: s.lower(), "upper": lambda s: s.upper(),
    "pad": _f_pad, "truncate": _f_truncate,
}


# ------------------------------------------------------------------------------- execution

class Template:
    """A parsed template; `render(data)` executes it."""

    def __init__(self, src: str, funcs: dict | None = None, *, missing_key_error: bool = False):
        self.src = src
        # Go's Option("missingkey=error"), as `docker inspect -f` runs its templates
        self.missing_key_error = missing_key_error
        self.funcs = dict(FUNCS, **(funcs or {}))
        parser = _Parser(src, self.funcs)
        self.root = parser.parse()
        self.defines = parser.defines

    def render(self, data) -> str:
        ex = _Exec(self, data)
        out: list[str] = []
        try:
            ex.run(self.root, data, [{"$": data}], out)
        except (_Break, _Continue):
            pass
        return "".join(out)


def render(src: str, data, funcs: dict | None = None) -> str:
    return Template(src, funcs).render(data)


class _Exec:
    def __init__(self, tmpl: Template, root):
        self.t = tmpl
        self.root = root
        self.depth = 0

    def error(self, node: _Node, at: str, msg: str) -> TemplateError:
        line = _line(self.t.src, node.pos)
        col = node.pos - (self.t.src.rfind("\n", 0, node.pos) + 1) + 1
        return TemplateError(f'template: :{line}:{col}: executing "" at <{at}>: {msg}')

    def lookup(self, scopes: list[dict], name: str, node: _Node):
        for s in reversed(scopes):
            if name in s:
                return s[name]
        raise TemplateError(f"template: :{_line(self.t.src, node.pos)}: undefined variable: "
                            f"{name}")

    def run(self, nodes: list, dot, scopes: list[dict], out: list[str]) -> None:
        for n in nodes:
            if isinstance(n, _Text):
                out.append(n.text)
            elif isinstance(n, _Action):
                v = self.pipe(n.pipe, dot, scopes)
                if not n.pipe.decl:
                    out.append(_print_value(v))
            elif isinstance(n, _Branch):
                self.branch(n, dot, scopes, out)
            elif isinstance(n, _Call):
                body = self.t.defines.get(n.name)
                if body is None:
                    raise TemplateError(f'template: no such template "{n.name}"')
                self.depth += 1
                if self.depth > 100:
                    raise TemplateError("template: exceeded maximum template depth (100)")
                d = self.pipe(n.pipe, dot, scopes) if n.pipe else None
                self.run(body, d, [{"$": d}], out)
                self.depth -= 1
            elif isinstance(n, _Jump):
                raise _Break() if n.kind == "break" else _Continue()

    def branch(self, n: _Branch, dot, scopes: list[dict], out: list[str]) -> None:
        inner = scopes + [{}]
        v = self.pipe(n.pipe, dot, inner)
        if n.kind == "range":
            items: list = []
            if isinstance(v, dict):
                items = [(k, v[k]) for k in sorted(v)]
            elif isinstance(v, list | tuple):
                items = list(enumerate(v))
            elif isinstance(v, int) and not isinstance(v, bool):
                items = [(i, i) for i in range(v)]
            elif v is not None and v is not MISSING:
                raise self.error(n, "range", f"range can't iterate over {go_str(v)}")
            if not items:
                if n.other is not None:
                    self.run(n.other, dot, scopes + [{}], out)
                return
            for k, item in items:
                loop = inner + [{}]
                if len(n.pipe.decl) == 2:
                    loop[-1][n.pipe.decl[0]], loop[-1][n.pipe.decl[1]] = k, item
                elif n.pipe.decl:
                    loop[-1][n.pipe.decl[0]] = item
                try:
                    self.run(n.body, item, loop, out)
                except _Break:
                    break
                except _Continue:
                    continue
            return
        if _truth(v):
            self.run(n.body, v if n.kind == "with" else dot, inner, out)
        elif n.other is not None:
            self.run(n.other, dot, scopes + [{}], out)

    def pipe(self, p: _Pipe, dot, scopes: list[dict]):
        v = _NONE
        for cmd in p.cmds:
            v = self.command(cmd, dot, scopes, v, p)
        for name in p.decl[:1] if len(p.decl) < 2 else ():
            if p.assign:
                for s in reversed(scopes):
                    if name in s:
                        s[name] = v
                        break
                else:
                    raise TemplateError(f"template: :{_line(self.t.src, p.pos)}: undefined "
                                        f"variable: {name}")
            else:
                scopes[-1][name] = v
        return v

    def command(self, args: list[_Arg], dot, scopes, final, p: _Pipe):
        first = args[0]
        rest = args[1:]
        if first.kind == "ident":
            return self.call(first.value, rest, dot, scopes, final, p)
        if first.kind in ("field", "chain", "var"):
            if first.kind == "field":
                recv, path = dot, first.path
            elif first.kind == "chain":
                recv, path = self.arg(first.node, dot, scopes), first.path
            else:
                recv, path = self.lookup(scopes, first.value, p), first.path
            if not path:
                if rest or final is not _NONE:
                    raise self.error(p, first.text, f"can't give argument to non-function "
                                                    f"{first.text}")
                return recv
            return self.field(recv, path, rest, dot, scopes, final, p, first.text)
        if rest or final is not _NONE:
            raise self.error(p, first.text, f"can't give argument to non-function "
                                            f"{first.text}")
        if first.kind == "nil":
            raise TemplateError(f"template: :{_line(self.t.src, p.pos)}: nil is not a "
                                "command")
        return self.arg(first, dot, scopes)

    def arg(self, a: _Arg, dot, scopes):
        if a.kind == "const":
            return a.value
        if a.kind == "dot":
            return dot
        if a.kind == "nil":
            return None
        if a.kind == "pipe":
            return self.pipe(a.node, dot, scopes)
        if a.kind == "ident":
            return self.call(a.value, [], dot, scopes, _NONE, _Pipe([], False, [], 0))
        if a.kind == "var":
            v = self.lookup(scopes, a.value, _Pipe([], False, [], 0))
            return self.field(v, a.path, [], dot, scopes, _NONE, _Pipe([], False, [], 0),
                              a.text) if a.path else v
        if a.kind == "field":
            return self.field(dot, a.path, [], dot, scopes, _NONE, _Pipe([], False, [], 0),
                              a.text)
        if a.kind == "chain":
            return self.field(self.arg(a.node, dot, scopes), a.path, [], dot, scopes, _NONE,
                              _Pipe([], False, [], 0), a.text)
        raise TemplateError(f"template: cannot evaluate {a.text}")

    def field(self, recv, path, rest, dot, scopes, final, p, text):
        for i, name in enumerate(path):
            last = i == len(path) - 1
            if recv is None or recv is MISSING:
                raise self.error(p, text, f"nil pointer evaluating interface {{}}.{name}")
            if isinstance(recv, dict):
                v = recv.get(name, MISSING)
                if v is MISSING and self.t.missing_key_error:
                    raise self.error(p, text, f'map has no entry for key "{name}"')
            else:
                v = getattr(recv, name, MISSING)
                if v is MISSING:
                    raise self.error(p, text, f"can't evaluate field {name} in type "
                                              f"{_go_type(recv)}")
            if callable(v):
                args = [self.arg(a, dot, scopes) for a in rest] if last else []
                if last and final is not _NONE:
                    args.append(final)
                try:
                    v = v(*args)
                except TypeError as e:
                    raise self.error(p, text, f"wrong number of args for {name}: {e}") \
                        from None
            elif last and (rest or final is not _NONE):
                raise self.error(p, text, f"{name} has arguments but cannot be invoked as "
                                          "function")
            recv = v
        return recv

    def call(self, name: str, rest: list[_Arg], dot, scopes, final, p: _Pipe):
        if name in ("and", "or"):
            args = list(rest) + ([None] if final is not _NONE else [])
            if not args:
                raise self.error(p, name, f"wrong number of args for {name}: want at least "
                                          "1 got 0")
            v = None
            for a in args:
                v = final if a is None else self.arg(a, dot, scopes)  # None: the piped value
                if _truth(v) == (name == "or"):
                    return v
            return v
        fn = self.t.funcs[name]
        args = [self.arg(a, dot, scopes) for a in rest]
        if final is not _NONE:
            args.append(final)
        try:
            return fn(*args)
        except _FuncError as e:
            raise self.error(p, name, f"error calling {name}: {e}") from None
        except TypeError:
            raise self.error(p, name, f"wrong number or type of args for {name}") from None
        except (AttributeError, ValueError) as e:
            raise self.error(p, name, f"error calling {name}: {e}") from None


class _NoValue:
    pass


_NONE = _NoValue()  # "no value from a previous command" (not the same as nil)


def _print_value(v) -> str:
    if v is MISSING or v is None:
        return "<no value>"
    return go_str(v)
