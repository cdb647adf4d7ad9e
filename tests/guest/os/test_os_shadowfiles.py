"""The account editor against the real shadow-utils: the same changes on two copies of one
realistic root, one through useradd/groupadd/usermod/chpasswd/chage, one through
metaboot.guest.os.shadowfiles, must leave the same files, byte for byte, and the same homes."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from metaboot.guest.os import accounts, shadowfiles
from metaboot.guest.os.accounts import NewUser
from metaboot.guest.system import Root
from tests.guest.os.guestroots import build_root

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="useradd --root needs root")

TABLES = ("passwd", "shadow", "group", "gshadow", "subuid", "subgid")
Step = Callable[[accounts.Accounts], None]


def realistic_root(base: Path) -> Root:
    root = build_root(base)
    skel = root.path("/etc/skel")
    (skel / ".config").mkdir()
    (skel / ".config" / "app.conf").write_text("colour = blue\n")
    os.chmod(skel / ".config", 0o700)
    (skel / "bin").mkdir()
    (skel / "bin" / "hello").write_text("#!/bin/sh\necho hello\n")
    os.chmod(skel / "bin" / "hello", 0o755)  # noqa: S103 - a script in the skeleton
    (skel / ".secret").write_text("x\n")
    os.chmod(skel / ".secret", 0o600)
    os.utime(skel / ".secret", ns=(1_600_000_000_123_456_789, 1_600_000_000_987_654_321))
    for made in (skel / ".config" / "app.conf", skel / "bin" / "hello"):
        os.utime(made, ns=(1_500_000_000_000_000_001, 1_500_000_000_000_000_002))
    os.symlink(".bashrc", skel / "relative-link")
    os.symlink("/etc/skel/.profile", skel / "into-skel")  # becomes /home/NAME/.profile
    os.symlink("/etc/skeleton-not", skel / "prefix-only")  # the same plain prefix test
    os.symlink("/usr/share/doc", skel / "elsewhere")
    return root


class ToolsRoot(Root):
    """A root whose tools see a /proc, as on a live system: useradd --root copies a skeleton
    subdirectory through /proc/self/fd and silently stops copying where there is none (Debian
    12's shadow-utils 4.13). Each tool runs in a private mount namespace (unshare) with the
    host's /proc bound into the tree; nothing leaks out of it."""

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        script = 'mount --bind /proc "$0/proc" && exec "$@"'
        wrapped = ["unshare", "--mount", "sh", "-c", script, str(self.base), *argv]
        return super().run(wrapped, **kwargs)


def twins(tmp_path: Path, prepare: Callable[[Root], None] | None = None) -> tuple[Root, Root]:
    pair = []
    for name in ("tools", "editor"):
        root = realistic_root(tmp_path / name)
        root.makedirs("/proc")
        if prepare is not None:
            prepare(root)
        pair.append(ToolsRoot(root.base))
    return pair[0], pair[1]


def snapshot(root: Root, homes: list[str]) -> dict[str, object]:
    seen: dict[str, object] = {}
    for name in TABLES:
        path = root.path(f"/etc/{name}")
        if path.exists():
            info = path.stat()
            seen[name] = (path.read_text(), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
    for home in homes:
        top = root.path(home)
        if not top.exists():
            seen[home] = None
            continue
        for path in sorted([top, *top.rglob("*")]):
            info = path.lstat()
            entry: tuple[object, ...] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode))
            entry += (info.st_uid, info.st_gid)
            if path.is_symlink():
                entry += (os.readlink(path),)
            elif path.is_file():
                entry += (path.read_bytes(), info.st_mtime_ns)
            seen[str(path.relative_to(root.base))] = entry
    for parent in ("/srv", "/srv/deep"):
        path = root.path(parent)
        if path.exists():
            info = path.stat()
            seen[parent] = (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
    seen["locks left"] = stray_locks(root)
    return seen


def stray_locks(root: Root) -> list[str]:
    """Lock files and their PID-named makings (.pwd.lock, lckpwdf's, stays, as with the tools)."""
    names = (p.name for p in root.path("/etc").iterdir() if p.name != ".pwd.lock")
    return sorted(n for n in names if n.endswith(".lock") or n.rsplit(".", 1)[-1].isdigit())


def apply(root: Root, steps: list[Step], *, editor: bool) -> accounts.Accounts:
    acc = accounts.Accounts(root, editor=editor)
    try:
        for step in steps:
            step(acc)
    finally:
        acc.commit()
    return acc


def compare(
    tmp_path: Path,
    steps: list[Step],
    homes: list[str],
    prepare: Callable[[Root], None] | None = None,
) -> tuple[Root, accounts.Accounts]:
    tools, editor = twins(tmp_path, prepare)
    for step in steps:  # the tools one change at a time, as before
        apply(tools, [step], editor=False)
    acc = apply(editor, steps, editor=True)
    assert snapshot(editor, homes) == snapshot(tools, homes)
    return editor, acc


def test_a_first_boot_worth_of_accounts_matches_the_tools(tmp_path: Path) -> None:
    steps: list[Step] = [
        lambda a: a.add_group("devs"),
        lambda a: a.add_group("sysgrp", system=True),
        lambda a: a.add_user(
            NewUser("debian", gecos="Debian", groups=("adm", "sudo"), login_shell="/bin/bash")
        ),
        lambda a: a.add_user(NewUser("deploy", groups=("devs",))),
        lambda a: a.add_user(NewUser("svc", system=True, login_shell="/usr/sbin/nologin")),
        lambda a: a.add_user(NewUser("x", uid=1500, homedir="/srv/deep/x", gecos="X Y")),
        lambda a: a.add_user(NewUser("nohome", no_create_home=True)),
        lambda a: a.add_user(NewUser("prim", primary_group="devs", groups=("adm",))),
        lambda a: a.add_to_groups("deploy", ["adm", "devs"]),
        lambda a: a.set_password_hashes([("deploy", "$6$salt$hash"), ("x", "$6$s2$h2")]),
        lambda a: a.lock_password("deploy"),
        lambda a: a.lock_password("x"),
        lambda a: a.lock_password("x"),
        lambda a: a.expire_password("x"),
    ]
    homes = ["/home/debian", "/home/deploy", "/srv/deep/x", "/home/nohome", "/home/svc"]
    editor, acc = compare(tmp_path, steps, homes)
    assert acc.fallbacks == []  # all of it was the editor's
    assert os.readlink(editor.path("/home/debian/into-skel")) == "/home/debian/.profile"


def test_subordinate_ids_and_crowded_ids_match_the_tools(tmp_path: Path) -> None:
    def prepare(root: Root) -> None:
        # Unsorted subordinate ranges with a hole; GID 1000-1001 taken by plain groups, so
        # user groups cannot take their user's ID; an existing home directory.
        root.write_file("/etc/subuid", "zed:300000:65536\nold:100000:65536\n")
        root.write_file("/etc/subgid", "old:100000:65536\n")
        group = root.read_text("/etc/group")
        gshadow = root.read_text("/etc/gshadow")
        root.write_file("/etc/group", group + "first:x:1000:\nsecond:x:1001:\n")
        root.write_file("/etc/gshadow", gshadow + "first:!::\nsecond:!::\n", mode=None)
        root.makedirs("/home/exists")

    steps: list[Step] = [
        lambda a: a.add_user(NewUser("alpha")),
        lambda a: a.add_user(NewUser("beta", groups=("first",))),
        lambda a: a.add_user(NewUser("exists")),
        lambda a: a.add_user(NewUser("high", uid=59999)),
        lambda a: a.add_user(NewUser("outside", uid=70000)),
        lambda a: a.add_user(NewUser("sys1", system=True)),
        lambda a: a.add_user(NewUser("sys2", system=True)),
        lambda a: a.add_group("g2"),
    ]
    homes = ["/home/alpha", "/home/beta", "/home/exists", "/home/high", "/home/outside"]
    _, acc = compare(tmp_path, steps, homes, prepare)
    assert acc.fallbacks == []


def test_one_change_at_a_time_leaves_the_same_backups(tmp_path: Path) -> None:
    tools, editor = twins(tmp_path)
    step: Step = lambda a: a.add_user(NewUser("solo", groups=("adm",)))  # noqa: E731
    apply(tools, [step], editor=False)
    acc = apply(editor, [step], editor=True)
    assert acc.fallbacks == []
    for name in ("passwd", "shadow", "group", "gshadow"):
        mine, theirs = editor.path(f"/etc/{name}-"), tools.path(f"/etc/{name}-")
        assert mine.read_bytes() == theirs.read_bytes()
        assert stat.S_IMODE(mine.stat().st_mode) == stat.S_IMODE(theirs.stat().st_mode)
        assert int(mine.stat().st_mtime) == int(theirs.stat().st_mtime)
    assert editor.path("/etc/.pwd.lock").exists()


@pytest.mark.parametrize(
    ("prepare", "reason"),
    [
        (lambda r: r.remove("/etc/login.defs"), "no"),
        (lambda r: r.write_file("/etc/login.defs", "MAX_MEMBERS_PER_GROUP 10\n"), "login.defs"),
        (lambda r: r.write_file("/etc/login.defs", "USERGROUPS_ENAB no\n"), "USERGROUPS_ENAB"),
        (lambda r: r.write_file("/etc/default/useradd", "GROUP=100\n"), "SHELL"),
        (
            lambda r: r.write_file(
                "/etc/default/useradd", "SHELL=/bin/sh\nCREATE_MAIL_SPOOL=yes\n"
            ),
            "MAIL",
        ),
        (lambda r: r.write_file("/usr/sbin/nscd", ""), "nscd"),
        (
            lambda r: r.write_file("/etc/passwd", r.read_text("/etc/passwd") + "+@netgroup\n"),
            "NIS",
        ),
        (lambda r: r.write_file("/var/log/lastlog", b"\0" * 400_000), "lastlog"),
        (lambda r: os.link(r.path("/etc/skel/.bashrc"), r.path("/etc/skel/.bashrc2")), "hard"),
    ],
)
def test_what_the_editor_cannot_reproduce_goes_to_the_tools(
    tmp_path: Path, prepare: Callable[[Root], None], reason: str
) -> None:
    steps: list[Step] = [lambda a: a.add_user(NewUser("someone", groups=("adm",)))]
    homes = ["/home/someone"]
    _, acc = compare(tmp_path, steps, homes, prepare)
    assert acc.fallbacks and reason in acc.fallbacks[0]


def test_unsupported_options_and_errors_are_the_tools_own(tmp_path: Path) -> None:
    steps: list[Step] = [
        lambda a: a.add_user(NewUser("first")),
        lambda a: a.add_user(NewUser("nogroup", no_user_group=True)),
        lambda a: a.add_user(NewUser("later", groups=("adm",))),
    ]
    _, acc = compare(tmp_path, steps, ["/home/first", "/home/nogroup", "/home/later"])
    assert len(acc.fallbacks) == 1 and "no_user_group" in acc.fallbacks[0]
    root = realistic_root(tmp_path / "errors")
    with pytest.raises(accounts.ToolError, match="useradd"):
        apply(
            root, [lambda a: a.add_user(NewUser("first", groups=("no-such-group",)))], editor=True
        )
    with pytest.raises(accounts.ToolError, match="chpasswd"):
        apply(root, [lambda a: a.set_password_hashes([("nobody-here", "$6$a$b")])], editor=True)
    assert stray_locks(root) == []


def test_a_held_lock_is_respected_and_a_stale_one_removed(tmp_path: Path) -> None:
    root = realistic_root(tmp_path / "root")
    lock = root.path("/etc/passwd.lock")
    lock.write_bytes(f"{os.getpid()}\0".encode())  # a live process holds it
    with pytest.raises(shadowfiles.LockError, match="locked by process"):
        shadowfiles.AccountFiles(root)
    assert lock.exists()
    assert stray_locks(root) == ["passwd.lock"]  # the holder's, untouched; none of ours
    lock.write_bytes(b"999999999\0")  # no such process: stale
    files = shadowfiles.AccountFiles(root)
    files.add_user(NewUser("after"))
    files.commit()
    assert not lock.exists()
    assert "\nafter:" in root.read_text("/etc/passwd")


def test_id_choices_follow_find_new_id() -> None:
    assert shadowfiles.find_new_id({0, 1000, 1001, 1005}, 1000, 60000, system=False) == 1006
    assert shadowfiles.find_new_id({0, 60000}, 1000, 60000, system=False) == 1000
    assert (
        shadowfiles.find_new_id(set(range(1000, 60001)) - {4242}, 1000, 60000, system=False) == 4242
    )
    assert shadowfiles.find_new_id({0, 999, 998}, 101, 999, system=True) == 997
    assert shadowfiles.find_new_id({0, 500}, 101, 999, system=True) == 499
    assert shadowfiles.find_new_id({101}, 101, 999, system=True) == 999
    with pytest.raises(shadowfiles.Unsupported):
        shadowfiles.find_new_id(set(range(101, 1000)), 101, 999, system=True)


def test_a_lock_without_a_valid_pid_is_not_broken(tmp_path: Path) -> None:
    root = realistic_root(tmp_path / "root")
    root.path("/etc/group.lock").write_bytes(b"not a pid\0")
    with pytest.raises(shadowfiles.LockError, match="no valid process ID"):
        shadowfiles.AccountFiles(root)
    assert stray_locks(root) == ["group.lock"]


def test_a_group_line_the_editor_would_rewrite_differently_goes_to_the_tools(
    tmp_path: Path,
) -> None:
    def prepare(root: Root) -> None:
        group = root.read_text("/etc/group")
        root.write_file("/etc/group", group + "odd:x:4242:a,,b\n")  # an empty member
        root.write_file("/etc/gshadow", root.read_text("/etc/gshadow") + "odd:!::\n", mode=None)

    steps: list[Step] = [lambda a: a.add_user(NewUser("joiner", groups=("adm", "odd")))]
    _, acc = compare(tmp_path, steps, ["/home/joiner"], prepare)
    assert acc.fallbacks and "canonical" in acc.fallbacks[0]


@pytest.mark.parametrize(
    ("step", "tool"),
    [
        (lambda a: a.add_to_groups("nobody-here", ["adm"]), "usermod"),
        (lambda a: a.add_user(NewUser("gidless", primary_group="4321")), "useradd"),
        (lambda a: a.add_user(NewUser("root")), "useradd"),
        (lambda a: a.add_group("adm"), "groupadd"),
    ],
)
def test_errors_come_from_the_tools_and_change_nothing(
    tmp_path: Path, step: Step, tool: str
) -> None:
    root = realistic_root(tmp_path / "root")
    before = {name: root.read_text(f"/etc/{name}") for name in TABLES[:4]}
    with pytest.raises(accounts.ToolError, match=tool):
        apply(root, [step], editor=True)
    assert {name: root.read_text(f"/etc/{name}") for name in TABLES[:4]} == before
    assert stray_locks(root) == []


def test_backups_are_the_old_files_themselves_with_no_copy_written(tmp_path: Path) -> None:
    """FILE- is the old FILE's own inode under a second name: its bytes, owner, mode and times
    exactly, with nothing copied or fsynced for it; the new FILE is a new inode."""
    root = realistic_root(tmp_path / "root")
    before = {n: os.stat(root.path(f"/etc/{n}")) for n in ("passwd", "shadow", "group", "gshadow")}
    texts = {n: root.read_bytes(f"/etc/{n}") for n in before}
    fsynced: list[int] = []
    real_fsync = os.fsync
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: fsynced.append(fd) or real_fsync(fd))
        acc = apply(root, [lambda a: a.add_user(NewUser("solo", groups=("adm",)))], editor=True)
    assert acc.fallbacks == []
    assert len(fsynced) == 4  # FILE+ only, one per file
    for name, old in before.items():
        backup = os.stat(root.path(f"/etc/{name}-"))
        assert backup.st_ino == old.st_ino and backup.st_nlink == 1
        assert (backup.st_mtime_ns, backup.st_mode, backup.st_uid) == (
            old.st_mtime_ns,
            old.st_mode,
            old.st_uid,
        )
        assert root.read_bytes(f"/etc/{name}-") == texts[name]
        assert os.stat(root.path(f"/etc/{name}")).st_ino != old.st_ino
        assert b"solo" in root.read_bytes(f"/etc/{name}")
    leftovers = [p.name for p in root.path("/etc").iterdir() if p.name.startswith(".")]
    assert leftovers == [".pwd.lock"]


def test_every_new_file_is_written_before_any_replaces_its_old_one(tmp_path: Path) -> None:
    """All FILE+ are written (and their writeback started) before the first fsync, so one
    journal commit carries them: the four fsyncs come after the four writes, and a FILE+ that
    cannot be written leaves every account file as it was, with no FILE+ behind."""
    root = realistic_root(tmp_path / "root")
    events: list[str] = []
    real_fsync, real_open = os.fsync, os.open

    def opening(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        if str(path).endswith("+"):
            events.append(f"write {os.path.basename(path)}")
        return real_open(path, flags, mode, **kw)

    def syncing(fd: int) -> None:
        events.append(f"fsync {os.path.basename(os.readlink(f'/proc/self/fd/{fd}'))}")
        real_fsync(fd)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "open", opening)
        patch.setattr(os, "fsync", syncing)
        apply(root, [lambda a: a.add_user(NewUser("solo"))], editor=True)
    writes = [e for e in events if e.startswith("write")]
    assert writes == ["write passwd+", "write shadow+", "write group+", "write gshadow+"]
    assert events[:4] == writes and len(events) == 8

    before = {name: root.read_bytes(f"/etc/{name}") for name in ("passwd", "shadow", "group")}
    root.path("/etc/group+").mkdir()  # group+ cannot be written: EISDIR
    with pytest.raises(accounts.ToolError):
        apply(root, [lambda a: a.add_user(NewUser("other"))], editor=True)
    assert {name: root.read_bytes(f"/etc/{name}") for name in before} == before
    assert not root.path("/etc/passwd+").exists() and not root.path("/etc/shadow+").exists()
    assert stray_locks(root) == []


def test_a_file_with_another_name_is_backed_up_by_copy(tmp_path: Path) -> None:
    """A FILE that also has another name (a hard link kept elsewhere) is copied, as
    shadow-utils copies it: the other name must not become the backup's."""
    root = realistic_root(tmp_path / "root")
    os.link(root.path("/etc/group"), tmp_path / "group-elsewhere")
    old = root.read_bytes("/etc/group")
    mtime = os.stat(root.path("/etc/group")).st_mtime
    apply(root, [lambda a: a.add_user(NewUser("solo"))], editor=True)
    backup = os.stat(root.path("/etc/group-"))
    assert backup.st_ino != os.stat(tmp_path / "group-elsewhere").st_ino
    assert root.read_bytes("/etc/group-") == old == (tmp_path / "group-elsewhere").read_bytes()
    assert int(backup.st_mtime) == int(mtime)
