"""Root resolves paths as chroot would: symlinks stay inside the tree, writes are atomic."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from metaboot.guest.system import Root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hostname").write_text("inside\n")
    (tmp_path / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
    )
    (tmp_path / "etc/group").write_text("root:x:0:\nalice:x:1000:\nadm:x:4:\n")
    os.symlink("/etc", tmp_path / "conf")  # absolute: must mean the tree's /etc
    os.symlink("/etc/hostname", tmp_path / "etc/name-link")
    os.symlink("../../../../etc/hostname", tmp_path / "etc/escape")
    return tmp_path


def test_absolute_symlinks_resolve_inside_the_root(tree: Path) -> None:
    root = Root(tree)
    assert root.path("/conf/hostname") == tree / "etc/hostname"
    assert root.read_text("/conf/hostname") == "inside\n"
    # The last component is followed for reads, inside the tree, never to the host's file.
    assert root.read_text("/etc/name-link") == "inside\n"
    assert root.read_text("/etc/escape") == "inside\n"
    assert root.path("/../../etc/hostname") == tree / "etc/hostname"
    assert root.path("/etc/name-link") == tree / "etc/name-link"  # writes see the link itself


def test_write_replaces_a_symlink_instead_of_writing_through_it(tree: Path) -> None:
    root = Root(tree)
    root.write_file("/etc/name-link", "replaced\n", mode=0o600)
    assert (tree / "etc/hostname").read_text() == "inside\n"
    assert not (tree / "etc/name-link").is_symlink()
    assert stat.S_IMODE((tree / "etc/name-link").stat().st_mode) == 0o600


def test_write_file_modes_append_and_parents(tree: Path) -> None:
    root = Root(tree)
    root.write_file("/var/lib/x/state", b"a", mode=0o640)
    root.write_file("/var/lib/x/state", b"b", mode=None, append=True)
    path = tree / "var/lib/x/state"
    assert path.read_bytes() == b"ab"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in path.parent.iterdir()] == ["state"]  # no temporary files left


def test_identities_come_from_the_roots_own_files(tree: Path) -> None:
    root = Root(tree)
    assert root.uid_of("alice") == 1000
    assert root.gid_of("adm") == 4
    assert root.primary_gid_of("alice") == 1000
    assert root.home_of("alice") == "/home/alice"
    with pytest.raises(KeyError, match="no user 'bob'"):
        root.uid_of("bob")
