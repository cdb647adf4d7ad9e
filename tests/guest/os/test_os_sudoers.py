"""Sudo rules go to one file under sudoers.d, one block per user, replaced not duplicated."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from metaboot.errors import ConfigError
from metaboot.guest.os import sudoers
from metaboot.guest.system import Root


def test_rules_written_once_per_user(guest_root: Root) -> None:
    assert sudoers.write_rules(guest_root, "alice", ["ALL=(ALL) NOPASSWD:ALL"]) == []
    sudoers.write_rules(guest_root, "bob", ["ALL=(ALL) ALL", "ALL=(root) /usr/bin/true"])
    sudoers.write_rules(guest_root, "alice", ["ALL=(ALL) ALL"])
    text = guest_root.read_text(sudoers.RULES_FILE)
    assert text.count("# User rules for alice") == 1
    assert "alice ALL=(ALL) ALL\n" in text and "NOPASSWD" not in text
    assert "bob ALL=(ALL) ALL\nbob ALL=(root) /usr/bin/true\n" in text
    info = os.stat(guest_root.path(sudoers.RULES_FILE))
    assert info.st_mode & 0o777 == 0o440 and info.st_uid == 0
    visudo = shutil.which("visudo")
    assert visudo, "sudo (setup/apt/modules.list) provides visudo, the independent checker"
    check = subprocess.run(
        [visudo, "-c", "-f", str(guest_root.path(sudoers.RULES_FILE))],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # The root's sudoers already includes the directory: left alone.
    assert guest_root.read_text("/etc/sudoers").count("includedir") == 1


def test_include_added_when_missing(guest_root: Root) -> None:
    guest_root.write_file("/etc/sudoers", "root ALL=(ALL:ALL) ALL\n", mode=0o440)
    sudoers.write_rules(guest_root, "alice", ["ALL=(ALL) ALL"])
    text = guest_root.read_text("/etc/sudoers")
    assert text.startswith("root ALL=(ALL:ALL) ALL\n") and "#includedir /etc/sudoers.d" in text
    assert os.stat(guest_root.path("/etc/sudoers")).st_mode & 0o777 == 0o440


def test_without_sudo_installed_no_sudoers_is_invented(guest_root: Root) -> None:
    guest_root.remove("/etc/sudoers")
    warnings = sudoers.write_rules(guest_root, "alice", ["ALL=(ALL) ALL"])
    assert warnings and "not installed" in warnings[0]
    assert not guest_root.exists("/etc/sudoers") and guest_root.exists(sudoers.RULES_FILE)


@pytest.mark.parametrize("rule", ["ALL\nroot ALL=(ALL) ALL", "", 5])
def test_bad_rules_refused(guest_root: Root, rule: object) -> None:
    with pytest.raises(ConfigError, match="invalid sudo rule"):
        sudoers.write_rules(guest_root, "alice", [rule])  # type: ignore[list-item]
