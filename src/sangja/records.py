"""A lean stand-in for the parts of `dataclasses` sangja uses: `@dataclass` (with
`frozen`/`slots` accepted), `field(default=..., default_factory=...)`, `asdict`, `fields`,
`replace`.

Why: importing `dataclasses` pulls in `inspect`, `ast`, `dis` and `tokenize` (about 10 ms),
which every `sangja` command would pay before doing anything; the container start path is
a product feature. Generated classes get `__init__`, `__repr__`, `__eq__` (and `__hash__`
when frozen), from the class annotations, in definition order, with base classes' fields
first. Annotations are only read as names (`from __future__ import annotations` style), so
`ClassVar` fields must not be annotated here."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import dataclass_transform
else:
    def dataclass_transform(**_kw):
        return lambda f: f

_MISSING = object()


class Field:
    __slots__ = ("name", "default", "default_factory")

    def __init__(self, default=_MISSING, default_factory=_MISSING):
        self.name = ""
        self.default = default
        self.default_factory = default_factory


if TYPE_CHECKING:  # to the checker, field(...) is a value of the field's own type
    from collections.abc import Callable
    from typing import Any, TypeVar, overload

    _T = TypeVar("_T")

    @overload
    def field(*, default: _T) -> _T: ...
    @overload
    def field(*, default_factory: Callable[[], _T]) -> _T: ...
    def field(*, default: Any = _MISSING, default_factory: Any = _MISSING) -> Any: ...
else:
    def field(*, default=_MISSING, default_factory=_MISSING):
        return Field(default, default_factory)


def _own_fields(cls) -> list[Field]:
    out = []
    slotted = cls.__dict__.get("__record_defaults__")  # slotted: names are slot descriptors
    for name in cls.__dict__.get("__annotations__", {}):
        if slotted is not None:
            value = slotted.get(name, _MISSING)
        else:
            value = cls.__dict__.get(name, _MISSING)
        f = value if isinstance(value, Field) else Field(default=value)
        f.name = name
        out.append(f)
    return out


@dataclass_transform(field_specifiers=(field,))
def dataclass(cls=None, /, *, frozen: bool = False, slots: bool = False, eq: bool = True,
              order: bool = False):
    def wrap(c):
        if slots:
            c = _with_slots(c)
        return _process(c, frozen)

    return wrap if cls is None else wrap(cls)


def _with_slots(cls):
    """The class again, with __slots__ for its fields (so instances have no __dict__)."""
    names = tuple(cls.__dict__.get("__annotations__", {}))
    body = {k: v for k, v in cls.__dict__.items()
            if k not in names and k not in ("__dict__", "__weakref__")}
    body["__slots__"] = names
    body["__record_defaults__"] = {k: cls.__dict__[k] for k in names if k in cls.__dict__}
    return type(cls)(cls.__name__, cls.__bases__, body)


def _process(cls, frozen: bool):
    inherited: list[Field] = []
    for base in reversed(cls.__mro__[1:]):
        inherited.extend(getattr(base, "__record_fields__", ()))
    own = _own_fields(cls)
    names = {f.name for f in own}
    all_fields = [f for f in inherited if f.name not in names] + own
    cls.__record_fields__ = tuple(all_fields)
    for f in own:  # class attributes that were Field objects become plain defaults
        if "__record_defaults__" in cls.__dict__:
            continue  # slotted: the names are slot descriptors, defaults live in __init__
        if f.default is not _MISSING:
            setattr(cls, f.name, f.default)
        elif f.name in cls.__dict__:
            delattr(cls, f.name)

    params, body, env = [], [], {"_MISSING": _MISSING}
    setter = "object.__setattr__(self, {n!r}, {v})" if frozen else "self.{n} = {v}"
    for i, f in enumerate(all_fields):
        if f.default_factory is not _MISSING:
            env[f"_f{i}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            value = f"_f{i}() if {f.name} is _MISSING else {f.name}"
        elif f.default is not _MISSING:
            env[f"_d{i}"] = f.default
            params.append(f"{f.name}=_d{i}")
            value = f.name
        else:
            if any(p.endswith("_MISSING") or "=_d" in p for p in params):
                raise TypeError(f"non-default argument {f.name!r} follows default argument")
            params.append(f.name)
            value = f.name
        body.append(setter.format(n=f.name, v=value))
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    src = f"def __init__(self, {', '.join(params)}):\n    " + "\n    ".join(body or ["pass"])
    exec(src, env)  # noqa: S102 - generated from field names only
    cls.__init__ = env["__init__"]
    cls.__init__.__qualname__ = f"{cls.__qualname__}.__init__"

    def __repr__(self):
        inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in all_fields)
        return f"{type(self).__qualname__}({inner})"

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in all_fields)

    cls.__repr__ = __repr__
    cls.__eq__ = __eq__
    if frozen:
        def __setattr__(self, name, value):
            raise AttributeError(f"cannot assign to field {name!r} of a frozen record")

        def __hash__(self):
            return hash(tuple(getattr(self, f.name) for f in all_fields))

        cls.__setattr__ = __setattr__
        cls.__delattr__ = __setattr__
        cls.__hash__ = __hash__
    else:
        cls.__hash__ = None
    return cls


def fields(obj) -> tuple[Field, ...]:
    return obj.__record_fields__


def is_record(obj) -> bool:
    return hasattr(type(obj), "__record_fields__") and not isinstance(obj, type)


def asdict(obj):
    if is_record(obj):
        return {f.name: asdict(getattr(obj, f.name)) for f in obj.__record_fields__}
    if isinstance(obj, list | tuple):
        return type(obj)(asdict(x) for x in obj)
    if isinstance(obj, dict):
        return {k: asdict(v) for k, v in obj.items()}
    return obj


def replace(obj, **changes):
    values = {f.name: getattr(obj, f.name) for f in obj.__record_fields__}
    values.update(changes)
    return type(obj)(**values)
