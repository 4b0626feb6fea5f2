"""Small typed accessors for JSON objects: every error names the field and says what was
expected and what was found (``process.args: expected an array, got a string``)."""

from __future__ import annotations

from ..errors import ConfigError

_KIND_NAMES = {str: "a string", bool: "a boolean", int: "an integer", list: "an array",
               dict: "an object", float: "a number"}


def kind_of(val) -> str:
    """What a JSON value is, for an error message."""
    if val is None:
        return "null"
    if isinstance(val, bool):
        return "a boolean"
    if isinstance(val, int):
        return "an integer"
    return _KIND_NAMES.get(type(val), type(val).__name__)


def field_name(where: str, key: str) -> str:
    return key if where in ("", "$") else f"{where}.{key}"


def wrong_type(name: str, expected: str, val) -> ConfigError:
    return ConfigError(f"{name}: expected {expected}, got {kind_of(val)}")


def get(d: dict, key: str, kind: type, where: str, required: bool = False, default=None):
    if key not in d or d[key] is None:
        if required:
            raise ConfigError(f"{field_name(where, key)}: is required")
        return default
    val = d[key]
    ok = isinstance(val, kind) and not (kind is int and isinstance(val, bool))
    if kind is float and isinstance(val, int) and not isinstance(val, bool):
        ok = True
    if not ok:
        raise wrong_type(field_name(where, key), _KIND_NAMES.get(kind, kind.__name__), val)
    return val


def obj(d: dict, key: str, where: str, required: bool = False) -> dict:
    return get(d, key, dict, where, required, {})


def _items(d: dict, key: str, where: str, required: bool, kind: type) -> list:
    val = get(d, key, list, where, required, [])
    for i, item in enumerate(val):
        if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
            raise wrong_type(f"{field_name(where, key)}[{i}]", _KIND_NAMES[kind], item)
    return val


def str_list(d: dict, key: str, where: str, required: bool = False) -> list[str]:
    return _items(d, key, where, required, str)


def int_list(d: dict, key: str, where: str) -> list[int]:
    return _items(d, key, where, False, int)


def obj_list(d: dict, key: str, where: str) -> list[dict]:
    return _items(d, key, where, False, dict)


def uint(d: dict, key: str, where: str, required: bool = False, default=None, bits: int = 32):
    val = get(d, key, int, where, required, default)
    if val is not None and not 0 <= val < (1 << bits):
        raise ConfigError(f"{field_name(where, key)}: expected an integer from 0 to "
                          f"{(1 << bits) - 1}, got {val}")
    return val
