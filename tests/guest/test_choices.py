"""The agent's string enumerations behave as ``enum.StrEnum`` does wherever the agent uses them
(metaboot.guest.choices), checked member by member against a StrEnum with the same body."""

from __future__ import annotations

import copy
import enum
import json
import pickle
from typing import Any

import pytest

from metaboot.guest.choices import Choices
from metaboot.guest.modules.base import Frequency, Stage
from metaboot.guest.network.model import IPv6Mode
from metaboot.guest.os.commands import RootCommands

AGENT_CHOICES = [Frequency, Stage, IPv6Mode, RootCommands]


def twin(cls: Any) -> Any:
    """A StrEnum with the same members as ``cls``."""
    return enum.StrEnum(cls.__name__, [(m.name, m.value) for m in cls])  # type: ignore[misc]


@pytest.mark.parametrize("cls", AGENT_CHOICES, ids=lambda c: c.__name__)
def test_each_choice_behaves_as_the_same_strenum(cls: Any) -> None:
    real = twin(cls)
    assert [(m.name, m.value) for m in cls] == [(m.name, m.value) for m in real]
    assert len(cls) == len(real)
    for mine, theirs in zip(cls, real, strict=True):
        assert isinstance(mine, cls) and isinstance(mine, str) and type(mine) is cls
        assert mine == theirs == theirs.value and hash(mine) == hash(theirs)
        assert cls(theirs.value) is mine is getattr(cls, theirs.name)
        assert (str(mine), f"{mine}", f"{mine:>20}") == (str(theirs), f"{theirs}", f"{theirs:>20}")
        assert repr(mine) == repr(theirs)
        assert json.dumps({mine: [mine]}) == json.dumps({theirs: [theirs]})
        assert type(mine.value) is str and mine.value == theirs.value
        assert {mine: 1}[theirs.value] == 1
        assert copy.copy(mine) is mine
        assert pickle.loads(pickle.dumps(mine)) is mine  # noqa: S301 - our own bytes
    for bad in ("nope", "", None, 3, ["local"]):
        with pytest.raises(ValueError) as mine_error:
            cls(bad)
        with pytest.raises(ValueError) as real_error:
            real(bad)
        assert str(mine_error.value) == str(real_error.value).replace(
            real.__name__, cls.__qualname__
        )


def test_a_repeated_value_is_an_alias_as_in_enum() -> None:
    class Colour(Choices):
        RED = "red"
        CRIMSON = "red"
        BLUE = "blue"

    class Real(enum.StrEnum):
        RED = "red"
        CRIMSON = "red"
        BLUE = "blue"

    assert [m.name for m in Colour] == [m.name for m in Real] == ["RED", "BLUE"]
    assert Colour("red") is Colour.RED and Real("red") is Real.RED


def test_guest_code_takes_its_enumerations_from_choices() -> None:
    """``enum``'s classes are what cost a boot; its module is loaded by ``re`` anyway."""
    from pathlib import Path

    guest = Path(__file__).resolve().parents[2] / "metaboot" / "guest"
    offenders = [
        str(path.relative_to(guest))
        for path in guest.rglob("*.py")
        if "StrEnum)" in path.read_text() or "(Enum)" in path.read_text()
    ]
    assert offenders == []
