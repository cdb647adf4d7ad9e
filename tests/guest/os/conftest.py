"""Fixtures for the OS helper tests: realistic roots (see guestroots.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from metaboot.guest.system import Root
from tests.guest.os.accountways import account_way  # noqa: F401 - a fixture
from tests.guest.os.guestroots import build_root


@pytest.fixture
def guest_root(tmp_path: Path) -> Root:
    return build_root(tmp_path / "root")


@pytest.fixture
def chroot_root(tmp_path: Path) -> Root:
    if os.geteuid() != 0:
        pytest.skip("entering a root with chroot needs root")
    return build_root(tmp_path / "root", chrootable=True)
