"""sangja.records: the lean dataclass stand-in behaves like dataclasses where we use it."""

import pytest

from sangja.records import asdict, dataclass, field, fields, replace


@dataclass
class Inner:
    a: int
    b: list = field(default_factory=list)


@dataclass
class Outer:
    name: str
    inner: Inner = field(default_factory=lambda: Inner(1))
    n: int = 3
    tags: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Frozen:
    x: int
    y: str = "y"


@dataclass
class Child(Outer):
    extra: bool = False


def test_defaults_and_factories_are_per_instance():
    a, b = Outer("a"), Outer("b")
    a.inner.b.append(1)
    assert b.inner.b == []
    assert a.n == 3 and a.tags == {} and a.tags is not b.tags


def test_positional_keyword_and_missing():
    assert Outer("x", Inner(2), 4).n == 4
    assert Outer(name="x", n=5).n == 5
    with pytest.raises(TypeError):
        Outer()
    with pytest.raises(TypeError):
        Outer("x", nosuch=1)


def test_eq_repr_asdict_replace_fields():
    o = Outer("x", Inner(2, [1]))
    assert o == Outer("x", Inner(2, [1]))
    assert o != Outer("y")
    assert repr(o) == "Outer(name='x', inner=Inner(a=2, b=[1]), n=3, tags={})"
    assert asdict(o) == {"name": "x", "inner": {"a": 2, "b": [1]}, "n": 3, "tags": {}}
    assert replace(o, n=9).n == 9 and o.n == 3
    assert [f.name for f in fields(o)] == ["name", "inner", "n", "tags"]


def test_frozen_is_immutable_and_hashable():
    f = Frozen(1)
    with pytest.raises(AttributeError):
        f.x = 2
    assert hash(f) == hash(Frozen(1)) and {f, Frozen(1)} == {f}


def test_inheritance_puts_base_fields_first():
    c = Child("c", extra=True)
    assert [f.name for f in fields(c)] == ["name", "inner", "n", "tags", "extra"]
    assert c.extra and c.n == 3


def test_non_default_after_default_is_refused():
    with pytest.raises(TypeError):
        @dataclass
        class Bad:
            a: int = 1
            b: int


@dataclass(frozen=True, slots=True)
class Slotted:
    a: str
    b: int = 2
    c: list = field(default_factory=list)


def test_slots_leave_no_instance_dict():
    s = Slotted("x")
    assert not hasattr(s, "__dict__")
    assert (s.a, s.b, s.c) == ("x", 2, [])
    assert s == Slotted("x", 2, []) and repr(s) == "Slotted(a='x', b=2, c=[])"
    with pytest.raises(AttributeError):
        s.a = "y"
