"""metaboot.guest.records behaves as dataclasses does for every form the agent uses.

Each check builds the same class twice, once with the standard ``dataclasses`` and once with
the agent's runtime records, and compares what they do.
"""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from metaboot.guest import _records

REPO = pathlib.Path(__file__).resolve().parents[2]


def make(impl: Any, *, frozen: bool) -> Any:
    @impl.dataclass(frozen=frozen)
    class Thing:
        name: str
        size: int = 3
        tags: list[str] = impl.field(default_factory=list)
        note: str | None = impl.field(default=None)

    return Thing


@pytest.mark.parametrize("frozen", [False, True])
def test_construction_repr_and_equality_match_dataclasses(frozen: bool) -> None:
    ours, theirs = make(_records, frozen=frozen), make(dataclasses, frozen=frozen)
    for args, kwargs in [
        (("a",), {}),
        (("a", 5), {"tags": ["x"]}),
        ((), {"name": "b", "note": "n"}),
        (("a", 1, ["t"], "n"), {}),  # every field by position
        ((), {"note": "n", "tags": ["t"], "size": 2, "name": "c"}),  # every field by keyword
    ]:
        mine, real = ours(*args, **kwargs), theirs(*args, **kwargs)
        assert repr(mine) == repr(real)
        assert vars(mine) == vars(real)
        assert mine == ours(*args, **kwargs)
        assert mine != ours("other")
        assert (mine == real) is False  # different classes never compare equal
    assert ours("a").tags is not ours("a").tags  # a fresh default each time
    assert ours.size == theirs.size == 3  # plain defaults stay class attributes
    assert ours.note is None and theirs.note is None
    assert not hasattr(ours, "tags") and not hasattr(theirs, "tags")
    assert ours.__match_args__ == theirs.__match_args__


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), (("a", 1, [], None, "extra"), {}), (("a",), {"name": "b"}), (("a",), {"bad": 1})],
)
def test_bad_calls_raise_type_error_like_dataclasses(args: tuple[Any, ...], kwargs: Any) -> None:
    for impl in (_records, dataclasses):
        with pytest.raises(TypeError):
            make(impl, frozen=False)(*args, **kwargs)


def test_hashing_follows_dataclasses_rules() -> None:
    for impl in (_records, dataclasses):
        frozen, mutable = make(impl, frozen=True), make(impl, frozen=False)
        assert hash(frozen("a", 1, ())) == hash(frozen("a", 1, ()))
        assert {frozen("a", 1, ()), frozen("a", 1, ())} == {frozen("a", 1, ())}
        with pytest.raises(TypeError):
            hash(mutable("a"))


def test_frozen_records_refuse_assignment() -> None:
    thing = make(_records, frozen=True)("a")
    with pytest.raises(AttributeError, match="cannot assign to field 'size'"):
        thing.size = 4
    with pytest.raises(AttributeError):
        del thing.name
    mutable = make(_records, frozen=False)("a")
    mutable.size = 4
    assert mutable.size == 4


def test_replace_fields_and_asdict() -> None:
    ours, theirs = make(_records, frozen=True), make(dataclasses, frozen=True)
    mine, real = ours("a", 2, ["x"]), theirs("a", 2, ["x"])
    assert vars(_records.replace(mine, size=9)) == vars(dataclasses.replace(real, size=9))
    assert [f.name for f in _records.fields(ours)] == [f.name for f in dataclasses.fields(theirs)]
    assert [f.name for f in _records.fields(mine)] == ["name", "size", "tags", "note"]
    assert _records.asdict(mine) == dataclasses.asdict(real)
    copied = _records.asdict(mine)
    assert copied["tags"] is not mine.tags  # a deep copy, as dataclasses.asdict makes
    with pytest.raises(TypeError):
        _records.replace(mine, colour="red")
    with pytest.raises(TypeError):
        _records.asdict({"not": "a record"})
    with pytest.raises(TypeError):
        _records.fields(object())


def test_nested_records_become_nested_dicts() -> None:
    @_records.dataclass(frozen=True)
    class Inner:
        value: int

    @_records.dataclass
    class Outer:
        inner: Inner
        many: tuple[Inner, ...] = ()
        by_name: dict[str, Inner] = _records.field(default_factory=dict)

    outer = Outer(Inner(1), (Inner(2),), {"x": Inner(3)})
    assert _records.asdict(outer) == {
        "inner": {"value": 1},
        "many": ({"value": 2},),
        "by_name": {"x": {"value": 3}},
    }


def test_methods_written_in_the_class_are_kept() -> None:
    @_records.dataclass(frozen=True)
    class Custom:
        a: int

        def __repr__(self) -> str:
            return "custom"

        def __hash__(self) -> int:
            return 7

    assert repr(Custom(1)) == "custom"
    assert hash(Custom(1)) == 7


def test_unsupported_forms_are_refused() -> None:
    with pytest.raises(ValueError, match="mutable default"):

        @_records.dataclass
        class Bad:
            items: list[int] = []  # noqa: RUF012

    with pytest.raises(TypeError, match="follows default"):

        @_records.dataclass
        class Order:
            a: int = 1
            b: int  # type: ignore[misc]

    with pytest.raises(ValueError):
        _records.field(default=1, default_factory=list)

    @_records.dataclass
    class Base:
        a: int

    with pytest.raises(TypeError, match="inheriting"):

        @_records.dataclass
        class Child(Base):
            b: int


def test_guest_code_never_imports_dataclasses() -> None:
    """The agent's records all go through metaboot.guest.records (mypy still sees dataclasses)."""
    offenders = []
    for path in (REPO / "metaboot" / "guest").rglob("*.py"):
        if path.name in ("records.py", "_records.py"):  # mypy's view; the on-demand bridge
            continue
        text = path.read_text(encoding="utf-8")
        if "import dataclasses" in text or "from dataclasses import" in text:
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_a_first_boot_import_chain_loads_neither_dataclasses_nor_inspect() -> None:
    code = (
        "import sys; import metaboot.guest.runner, metaboot.guest.sources.openstack; "
        "print(sorted(m for m in ('dataclasses', 'inspect', 'typing') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "dataclasses" not in out and "inspect" not in out


def test_the_standard_dataclasses_functions_work_on_records() -> None:
    """Other parts call dataclasses.asdict/fields/replace on the agent's records (InstanceData
    is a contract between the parts); records answer them, building the standard field
    objects only when asked."""
    from metaboot.guest.sources.base import InstanceData

    ours, theirs = make(_records, frozen=True), make(dataclasses, frozen=True)
    mine, real = ours("a", 2, ["x"]), theirs("a", 2, ["x"])
    assert dataclasses.is_dataclass(mine) and dataclasses.is_dataclass(ours)
    assert dataclasses.asdict(mine) == dataclasses.asdict(real)
    assert [f.name for f in dataclasses.fields(mine)] == [f.name for f in dataclasses.fields(real)]
    assert vars(dataclasses.replace(mine, size=9)) == vars(dataclasses.replace(real, size=9))
    assert dataclasses.astuple(mine) == dataclasses.astuple(real)
    data = InstanceData(source="OpenStack", instance_id="i-1", user_data=b"x")
    out = dataclasses.asdict(data)
    assert out["instance_id"] == "i-1" and out["user_data"] == b"x"
    assert out == _records.asdict(data)
    assert dataclasses.replace(data, instance_id="i-2").instance_id == "i-2"


def test_post_init_runs_however_the_fields_are_given() -> None:
    for impl in (_records, dataclasses):

        @impl.dataclass
        class Sized:
            name: str
            size: int = 0

            def __post_init__(self) -> None:
                self.label = f"{self.name}:{self.size}"

        assert Sized("a", 2).label == "a:2"  # every field by position
        assert Sized(size=3, name="b").label == "b:3"  # every field by keyword
        assert Sized("c").label == "c:0"  # a default filled in
