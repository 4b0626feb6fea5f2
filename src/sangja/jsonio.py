"""JSON in and out, in one place: the runtime's start-up time matters, and the stdlib
`json` package pulls in `re` and `enum` (about 3 ms). This module uses the same C
accelerators `json` itself uses (`_json`); `json` is imported only to describe an error.

Every reading error is a `JSONError` (a ValueError) that says what is wrong and where:
the source (a file name, when the caller gives one), line and column. Documents nested
deeper than `MAX_DEPTH` are refused the same way, so no later walk over one (printing,
copying, validating) can run out of stack.
"""

from __future__ import annotations

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None  # type: ignore[assignment]  # optional module: None when it is absent

# Deeper than any real OCI or Docker document (config.json nests 6 levels), and shallow
# enough that every recursive walk over what was read stays far from Python's stack limit.
MAX_DEPTH = 100
# What a file read with load_file may hold (config.json, process.json, seccomp profiles,
# state files: all well under a megabyte).
MAX_FILE_BYTES = 16 << 20


class JSONError(ValueError):
    """A document that is not valid JSON (or too large or too deep to read).

    str(): ``SOURCE: invalid JSON: WHY at line L column C``; ``source`` and ``pos`` may be
    None. ``why`` is the bare reason."""

    def __init__(self, why: str, source: str | None = None, text: str | None = None,
                 pos: int | None = None):
        self.why, self.source, self.pos = why, source, pos
        self.lineno = self.colno = None
        if text is not None and pos is not None:
            self.lineno = text.count("\n", 0, pos) + 1
            self.colno = pos - text.rfind("\n", 0, pos)
        super().__init__(why)

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        at = f" at line {self.lineno} column {self.colno}" if self.lineno is not None else ""
        return f"{where}invalid JSON: {self.why}{at}"


def _constant(name: str):
    raise ValueError(f"JSON constant {name} is not allowed")


class _ScanContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)
    memo: dict[str, str] = {}


# typeshed asks for a make_scanner as context; the C code only reads these attributes
# (json.decoder passes a JSONDecoder), as typeshed's own TODO says.
_scan = _json.make_scanner(_ScanContext()) if _json else None  # type: ignore[arg-type]
_WS = " \t\n\r"


def loads(text: str | bytes, *, source: str | None = None, max_depth: int = MAX_DEPTH):
    """Parse one JSON document; JSONError (a ValueError) naming `source` on bad input."""
    openers = None
    if isinstance(text, (bytes, bytearray)):
        data = bytes(text)
        openers = data.count(b"[") + data.count(b"{")
        try:
            text = data.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as e:
            raise JSONError(f"not UTF-8 (byte {e.start})", source) from None
    if _scan is None:  # pragma: no cover
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = _scan(text, start)
    except (StopIteration, ValueError, SystemError, RecursionError):
        # Without json.decoder imported the C scanner cannot say what went wrong (it
        # raises SystemError): scan again with it, for the reason and the position.
        raise _describe(text, start, source) from None
    if end < len(text) and text[end:].strip(_WS):
        raise JSONError("extra data after the document", source, text,
                        len(text) - len(text[end:].lstrip(_WS)))
    if openers is None:
        openers = text.count("[") + text.count("{")
    if openers > max_depth and _too_deep(obj, max_depth):
        raise JSONError(f"nested deeper than {max_depth} levels", source)
    return obj


def _describe(text: str, start: int, source: str | None) -> JSONError:
    import json.decoder  # noqa: F401 - the C scanner reports through json.decoder's class

    assert _scan is not None  # only loads calls this, after it used _scan
    try:
        _scan(text, start)
    except StopIteration as e:
        return JSONError("expecting a value", source, text, e.value)
    except json.decoder.JSONDecodeError as e:
        why = e.msg.removesuffix(" at")  # "Unterminated string starting at"
        return JSONError(why[:1].lower() + why[1:], source, text, e.pos)
    except RecursionError:
        return JSONError(f"nested deeper than {MAX_DEPTH} levels", source)
    except ValueError as e:  # NaN, Infinity
        return JSONError(str(e), source)
    return JSONError("cannot be parsed", source)  # pragma: no cover - it failed before


def _too_deep(obj, max_depth: int) -> bool:
    stack = [(obj, 1)]
    while stack:
        o, depth = stack.pop()
        if depth > max_depth:
            return True
        for v in (o.values() if isinstance(o, dict) else o):
            if isinstance(v, (dict, list)):
                stack.append((v, depth + 1))
    return False


def _enc_str(s: str) -> str:
    return _json.encode_basestring_ascii(s) if _json else __import__("json").dumps(s)


def _cannot_encode(obj):
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


# The compact form goes through the C encoder json itself uses (state files and config.json
# are written on every container start); the indented form, for people, through _encode.
_compact = (_json.make_encoder(None, _cannot_encode, _json.encode_basestring_ascii, None,
                               ":", ",", False, False, False) if _json else None)


def dumps(obj, *, indent: int | None = None) -> str:
    if indent is None and _compact is not None:
        try:
            return "".join(_compact(obj, 0))
        except ValueError as e:  # NaN or infinity
            raise ValueError("JSON cannot hold NaN or infinity") from e
    out: list[str] = []
    _encode(obj, out, indent, 0)
    return "".join(out)


def _encode(obj, out: list[str], indent: int | None, level: int) -> None:
    if isinstance(obj, str):
        out.append(_enc_str(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        if obj != obj or obj in (float("inf"), float("-inf")):
            raise ValueError("JSON cannot hold NaN or infinity")
        out.append(float.__repr__(obj))
    elif isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        pad, sep, end = _layout(indent, level)
        out.append("{" + pad)
        first = True
        for k, v in obj.items():
            if not first:
                out.append(sep)
            first = False
            out.append(_enc_str(str(k)) + (": " if indent is not None else ":"))
            _encode(v, out, indent, level + 1)
        out.append(end + "}")
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        pad, sep, end = _layout(indent, level)
        out.append("[" + pad)
        for i, v in enumerate(obj):
            if i:
                out.append(sep)
            _encode(v, out, indent, level + 1)
        out.append(end + "]")
    else:
        raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def _layout(indent: int | None, level: int) -> tuple[str, str, str]:
    if indent is None:
        return "", ",", ""
    inner = "\n" + " " * (indent * (level + 1))
    return inner, "," + inner, "\n" + " " * (indent * level)


def load_file(path: str, *, source: str | None = None, max_bytes: int = MAX_FILE_BYTES):
    """Read and parse a JSON file; JSONError naming the file (or `source`) on bad content
    or a file larger than max_bytes, OSError when it cannot be read."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise JSONError(f"larger than {max_bytes} bytes", source or path)
    return loads(data, source=source or path)
