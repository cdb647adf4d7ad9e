"""Account changes go through the Python editor where it applies, else through shadow-utils;
tests that assert what accounts look like run both ways against the same assertions."""

from __future__ import annotations

import pytest

from metaboot.guest.os import accounts


@pytest.fixture(params=["editor", "tools"])
def account_way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    way: str = request.param
    monkeypatch.setattr(accounts, "USE_EDITOR", way == "editor")
    return way
