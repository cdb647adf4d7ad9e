"""Symlinks through the root and bounded gzip."""

from __future__ import annotations

import gzip
import os

import pytest

from metaboot.errors import ConfigError
from metaboot.guest.os.files import gunzip_bounded, symlink
from metaboot.guest.system import Root


def test_symlink_replaces_atomically(guest_root: Root) -> None:
    assert symlink(guest_root, "/etc/localtime", "/usr/share/zoneinfo/Europe/Berlin")
    assert os.readlink(guest_root.path("/etc/localtime")) == "/usr/share/zoneinfo/Europe/Berlin"
    assert not symlink(guest_root, "/etc/localtime", "/usr/share/zoneinfo/Europe/Berlin")
    assert not [n for n in os.listdir(guest_root.path("/etc")) if "metaboot-tmp" in n]


def test_gunzip_multi_member_and_limits() -> None:
    data = gzip.compress(b"hello ") + gzip.compress(b"world")
    assert gunzip_bounded(data, 100, "x") == b"hello world"
    bomb = gzip.compress(b"\0" * 10_000_000)
    assert len(bomb) < 20_000
    with pytest.raises(ConfigError, match="more than 1000000 bytes"):
        gunzip_bounded(bomb, 1_000_000, "write_files[0].content")
    with pytest.raises(ConfigError, match="not valid gzip"):
        gunzip_bounded(b"plain text", 100, "x")
    with pytest.raises(ConfigError, match="truncated"):
        gunzip_bounded(gzip.compress(b"abc" * 100)[:-12], 1000, "x")
