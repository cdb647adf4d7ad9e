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


def reference_path(base: Path, guest_path: str, follow: bool = False) -> Path:
    """The mapping as the agent first wrote it, with pathlib: the yardstick for Root.path."""
    from pathlib import PurePosixPath

    parts = [p for p in PurePosixPath("/", guest_path).parts[1:] if p != "."]
    resolved: list[str] = []
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = base.joinpath(*resolved, part)
        if (parts or follow) and candidate.is_symlink():
            target = os.readlink(candidate)
            new = [p for p in PurePosixPath(target).parts if p not in ("", ".")]
            if target.startswith("/"):
                resolved = []
                new = new[1:]
            parts = new + parts
            continue
        resolved.append(part)
    return base.joinpath(*resolved)


def test_path_mapping_matches_the_pathlib_reference(tree: Path) -> None:
    (tree / "etc/ssh").mkdir()
    (tree / "file").write_text("x")
    os.symlink("../etc/ssh", tree / "etc/relative")  # relative, climbing
    os.symlink("/nowhere/at/all", tree / "dangling")
    os.symlink("ssh/../ssh/./", tree / "etc/dotted")
    os.symlink("loop-b", tree / "loop-a")
    os.symlink("loop-a", tree / "loop-b")
    paths = [
        "/",
        "",
        ".",
        "//etc//hostname",
        "/etc/./hostname/",
        "/conf/hostname",
        "/conf/../conf/hostname",
        "/etc/relative/sshd_config",
        "/etc/dotted/x",
        "/missing/dir/../../conf/hostname",  # back out of a missing directory into a link
        "/missing/../conf/name-link",
        "/file/below/a/file",
        "/dangling/x",
        "/dangling",
        "/etc/escape",
        "../../../etc/hostname",
        "relative/etc",
    ]
    root = Root(tree)
    for _ in ("the walk", "the directories it remembered"):
        for guest in paths:
            for follow in (False, True):
                expected = reference_path(tree, guest, follow)
                assert root.path(guest, follow=follow) == expected, guest
                host = root.host_path(guest, follow=follow)  # the same mapping, as a str
                assert isinstance(host, str) and Path(host) == root.path(guest, follow=follow)
    with pytest.raises(OSError, match="too many levels"):
        root.path("/loop-a/x")
    assert Root("/").path("/etc//hostname") == Path("/etc/hostname")
    assert Root("/").path("/") == Path("/")


def test_temporary_files_are_private_unique_and_refuse_planted_links(tmp_path: Path) -> None:
    from metaboot.guest.system import temporary_file

    target = tmp_path / "motd"
    names = set()
    for _ in range(20):
        fd, name = temporary_file(target)
        os.close(fd)
        assert os.path.dirname(name) == str(tmp_path)
        assert os.path.basename(name).startswith(".motd.")
        assert stat.S_IMODE(os.lstat(name).st_mode) == 0o600
        names.add(name)
    assert len(names) == 20
    root = Root(tmp_path)
    root.write_file("/motd", "hello\n")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".motd.")) == ["motd"]


def test_reads_through_the_string_mapping_behave_like_pathlibs(tree: Path) -> None:
    """exists/read_text/read_bytes/listdir map to a plain string (no Path per call) and keep
    pathlib's answers: links followed inside the tree, a missing file per its default."""
    root = Root(tree)
    assert root.exists("/conf/hostname") and not root.exists("/conf/missing")
    assert not root.exists("/etc/hostname/below")  # ENOTDIR is "not there", as for pathlib
    assert root.read_text("/etc/name-link") == "inside\n"
    assert root.read_bytes("/conf/hostname") == b"inside\n"
    assert root.read_text("/etc/missing", default="") == ""
    with pytest.raises(FileNotFoundError):
        root.read_text("/etc/missing")
    assert root.listdir("/conf") == sorted(os.listdir(tree / "etc"))
    assert root.listdir("/missing") == []
    (tree / "etc/crlf").write_bytes(b"a\r\nb\r\n")
    assert root.read_text("/etc/crlf") == (tree / "etc/crlf").read_text(encoding="utf-8")


def test_a_directory_turned_into_a_link_is_followed_once_paths_are_forgotten(tree: Path) -> None:
    """Root remembers directories seen free of links (no lstat for paths in them again);
    forget_paths() — called after each command — drops that."""
    (tree / "etc/ssh").mkdir()
    (tree / "srv/ssh").mkdir(parents=True)
    root = Root(tree)
    assert root.path("/etc/ssh/sshd_config") == tree / "etc/ssh/sshd_config"
    (tree / "etc/ssh").rmdir()
    os.symlink("/srv/ssh", tree / "etc/ssh")  # absolute: the tree's /srv/ssh
    root.forget_paths()
    assert root.path("/etc/ssh/sshd_config") == tree / "srv/ssh/sshd_config"
    assert root.path("/etc/ssh", follow=True) == tree / "srv/ssh"
    assert root.path("/etc/ssh") == tree / "etc/ssh"  # the link itself, not followed


def test_a_last_component_link_is_followed_even_in_a_remembered_directory(tree: Path) -> None:
    root = Root(tree)
    assert root.path("/etc/hostname", follow=True) == tree / "etc/hostname"  # /etc remembered
    os.symlink("/etc/hostname", tree / "etc/other")
    assert root.path("/etc/other", follow=True) == tree / "etc/hostname"
    assert root.path("/etc/other") == tree / "etc/other"


def test_an_instance_id_becomes_one_safe_path_component() -> None:
    from metaboot.guest.layout import instance_dirname

    assert instance_dirname("i-0a1B.c_d") == "i-0a1B.c_d"
    assert instance_dirname("a/b c\né") == "a_b_c__"
    assert instance_dirname("..") == "_.." and instance_dirname(".x") == "_.x"
    assert instance_dirname("") == "_"
