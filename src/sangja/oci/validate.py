"""Small typed accessors for JSON objects: every error names the field (`$.process.cwd`)."""

from __future__ import annotations

from ..errors import ConfigError

_KIND_NAMES = {str: "a string", bool: "a boolean", int: "an integer", list: "an array",
               dict: "an object", float: "a number"}


def get(d: dict, key: str, kind: type, where: str, required: bool = False, default=None):
    if key not in d or d[key] is None:
        if required:
            raise ConfigError(f"{where}.{key} is required")
        return default
    val = d[key]
    ok = isinstance(val, kind) and not (kind is int and isinstance(val, bool))
    if kind is float and isinstance(val, int) and not isinstance(val, bool):
        ok = True
    if not ok:
        raise ConfigError(f"{where}.{key} must be {_KIND_NAMES.get(kind, kind.__name__)}")
    return val


def obj(d: dict, key: str, where: str, required: bool = False) -> dict:
    return get(d, key, dict, where, required, {})


def str_list(d: dict, key: str, where: str, required: bool = False) -> list[str]:
    val = get(d, key, list, where, required, [])
    for i, item in enumerate(val):
        if not isinstance(item, str):
            raise ConfigError(f"{where}.{key}[{i}] must be a string")
    return val


def int_list(d: dict, key: str, where: str) -> list[int]:
    val = get(d, key, list, where, False, [])
    for i, item in enumerate(val):
        if not isinstance(item, int) or isinstance(item, bool):
            raise ConfigError(f"{where}.{key}[{i}] must be an integer")
    return val


def obj_list(d: dict, key: str, where: str) -> list[dict]:
    val = get(d, key, list, where, False, [])
    for i, item in enumerate(val):
        if not isinstance(item, dict):
            raise ConfigError(f"{where}.{key}[{i}] must be an object")
    return val


def uint(d: dict, key: str, where: str, required: bool = False, default=None, bits: int = 32):
    val = get(d, key, int, where, required, default)
    if val is not None and not 0 <= val < (1 << bits):
        raise ConfigError(f"{where}.{key} must be between 0 and {(1 << bits) - 1}")
    return val
