"""JSON in and out, in one place: the runtime's start-up time matters, and the stdlib
`json` package pulls in `re` and `enum` (about 3 ms). This module uses the same C
accelerators `json` itself uses (`_json`) and falls back to `json` for error reports.
"""

from __future__ import annotations

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None


def _constant(name: str):
    raise ValueError(f"JSON constant {name} is not allowed")


class _ScanContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)
    memo: dict = {}


_scan = _json.make_scanner(_ScanContext()) if _json else None
_WS = " \t\n\r"


def loads(text: str | bytes):
    """Parse one JSON document; ValueError (json.JSONDecodeError) on bad input."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8").removeprefix("\ufeff")
    if _scan is None:
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = _scan(text, start)
    except StopIteration:
        import json

        return json.loads(text)  # raises the precise JSONDecodeError
    if text[end:].strip(_WS):
        import json

        return json.loads(text)  # "Extra data" with its position
    return obj


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


def load_file(path: str):
    with open(path, "rb") as f:
        return loads(f.read())
