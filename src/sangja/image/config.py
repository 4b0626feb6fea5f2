"""The image config document (OCI image-spec "config", Docker's image JSON): the shape of
every field sangja reads, checked once.

An archive or a registry can hand us any JSON. ``check`` refuses a config whose known
fields have the wrong type (as ``docker load`` does: Go's decoder fails on them), with one
line naming the field: ``config sha256:...: config.Env: expected an array of strings, got
a string``. ``run_config`` is what the engine runs from: the checked ``config`` section,
with Docker's string forms normalized (``"Cmd": "sh"`` is ``["sh"]``, as Docker's
StrSlice reads it). Unknown fields are left alone.
"""

from __future__ import annotations

from typing import Any

from sangja.errors import SangjaError
from sangja.oci.validate import kind_of

__all__ = ["ImageConfigError", "check", "run_config"]


class ImageConfigError(SangjaError, ValueError):
    """An image config of the wrong shape: one line, the engine's exit code 125."""

    exit_code = 125
    engine_exit_code = 125


_STRING, _BOOL, _INT = "a string", "a boolean", "an integer"
_STRINGS = "an array of strings"
_STRING_OR_STRINGS = "a string or an array of strings"
_OBJECT = "an object"
_STRING_MAP = "an object of strings"
_SET = "an object (of empty objects)"

# the "config" section: field -> expected shape
_RUN_FIELDS: dict[str, str] = {
    "User": _STRING, "ExposedPorts": _SET, "Env": _STRINGS, "Entrypoint": _STRING_OR_STRINGS,
    "Cmd": _STRING_OR_STRINGS, "Volumes": _SET, "WorkingDir": _STRING, "Labels": _STRING_MAP,
    "StopSignal": _STRING, "ArgsEscaped": _BOOL, "OnBuild": _STRINGS,
    "Shell": _STRING_OR_STRINGS, "StopTimeout": _INT, "Healthcheck": _OBJECT,
    "Hostname": _STRING, "Domainname": _STRING,
}
_HEALTHCHECK_FIELDS = {"Test": _STRING_OR_STRINGS, "Interval": _INT, "Timeout": _INT,
                       "StartPeriod": _INT, "StartInterval": _INT, "Retries": _INT}
_TOP_FIELDS = {"created": _STRING, "author": _STRING, "architecture": _STRING, "os": _STRING,
               "variant": _STRING, "os.version": _STRING, "os.features": _STRINGS,
               "config": _OBJECT, "rootfs": _OBJECT, "history": "an array of objects"}
_HISTORY_FIELDS = {"created": _STRING, "created_by": _STRING, "author": _STRING,
                   "comment": _STRING, "empty_layer": _BOOL}


def _fits(value: Any, shape: str) -> bool:
    if shape == _STRING:
        return isinstance(value, str)
    if shape == _BOOL:
        return isinstance(value, bool)
    if shape == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if shape == _STRINGS:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if shape == _STRING_OR_STRINGS:
        return isinstance(value, str) or _fits(value, _STRINGS)
    if shape == _OBJECT:
        return isinstance(value, dict)
    if shape == _STRING_MAP:
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if shape == _SET:
        return isinstance(value, dict) and all(v is None or isinstance(v, dict)
                                               for v in value.values())
    if shape == "an array of objects":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    raise AssertionError(shape)


def _check_fields(doc: dict, fields: dict[str, str], prefix: str, where: str) -> None:
    for key, shape in fields.items():
        value = doc.get(key)
        if value is not None and not _fits(value, shape):
            raise ImageConfigError(f"{where}: {prefix}{key}: expected {shape}, got "
                                   f"{_found(value, shape)}")


def _found(value: Any, shape: str) -> str:
    """What is wrong: the value's kind, or (for a collection) its first bad item's."""
    if isinstance(value, list) and shape in (_STRINGS, _STRING_OR_STRINGS):
        for i, v in enumerate(value):
            if not isinstance(v, str):
                return f"{kind_of(v)} at [{i}]"
    if isinstance(value, dict) and shape in (_STRING_MAP, _SET):
        for k, v in value.items():
            if not _fits({k: v}, shape):
                return f"{kind_of(v)} for {k!r}"
    return kind_of(value)


def check(doc: Any, where: str = "image config") -> dict[str, Any]:
    """Refuse a config document whose known fields have the wrong type; return it."""
    if not isinstance(doc, dict):
        raise ImageConfigError(f"{where}: expected a JSON object, got {kind_of(doc)}")
    _check_fields(doc, _TOP_FIELDS, "", where)
    run = doc.get("config") or {}
    _check_fields(run, _RUN_FIELDS, "config.", where)
    if run.get("Healthcheck"):
        _check_fields(run["Healthcheck"], _HEALTHCHECK_FIELDS, "config.Healthcheck.", where)
    for i, h in enumerate(doc.get("history") or []):
        _check_fields(h, _HISTORY_FIELDS, f"history[{i}].", where)
    rootfs = doc.get("rootfs") or {}
    _check_fields(rootfs, {"type": _STRING, "diff_ids": _STRINGS}, "rootfs.", where)
    return doc


def run_config(doc: Any, where: str = "image config") -> dict[str, Any]:
    """The checked ``config`` section, Entrypoint/Cmd/Shell as lists (a copy)."""
    run = dict(check(doc, where).get("config") or {})
    for key in ("Entrypoint", "Cmd", "Shell"):
        if isinstance(run.get(key), str):
            run[key] = [run[key]]
    return run
