"""Accounts changed with shadow-utils aimed at the root keep all four files consistent."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from metaboot.errors import ConfigError
from metaboot.guest.os import accounts
from metaboot.guest.os.passwords import hash_password
from metaboot.guest.os.tools import ToolError
from metaboot.guest.system import Root

# Every assertion holds for the Python editor and for shadow-utils alike.
pytestmark = pytest.mark.usefixtures("account_way")


def rows(root: Root, table: str) -> dict[str, list[str]]:
    return {r.split(":")[0]: r.split(":") for r in root.read_text(f"/etc/{table}").splitlines()}


def test_group_and_user_land_in_every_table(guest_root: Root) -> None:
    accounts.add_group(guest_root, "devs")
    accounts.add_user(
        guest_root,
        accounts.NewUser("alice", gecos="Alice A", groups=("devs", "adm"), login_shell="/bin/sh"),
    )
    passwd, group, shadow, gshadow = (
        rows(guest_root, t) for t in ("passwd", "group", "shadow", "gshadow")
    )
    uid, gid = int(passwd["alice"][2]), int(passwd["alice"][3])
    assert passwd["alice"][4] == "Alice A" and passwd["alice"][5] == "/home/alice"
    assert passwd["alice"][6] == "/bin/sh"
    assert group["alice"][2] == str(gid)  # her own group, made by useradd
    assert "alice" in group["devs"][3].split(",") and "alice" in group["adm"][3].split(",")
    assert "alice" in gshadow["devs"][3].split(",")
    assert shadow["alice"][1].startswith("!")  # no password yet: locked
    home = guest_root.path("/home/alice")
    assert (home.stat().st_uid, home.stat().st_gid) == (uid, gid)
    assert (home / ".bashrc").exists()  # from the root's skel
    # The host's own account files are untouched.
    assert "alice" not in Path("/etc/passwd").read_text()


def test_system_user_without_home(guest_root: Root) -> None:
    accounts.add_user(
        guest_root, accounts.NewUser("svc", system=True, login_shell="/usr/sbin/nologin")
    )
    uid = int(rows(guest_root, "passwd")["svc"][2])
    assert uid < 1000
    assert not guest_root.exists("/home/svc")


def test_argv_never_contains_passwords_and_ends_options(guest_root: Root) -> None:
    argv = accounts.useradd_argv(guest_root, accounts.NewUser("bob", uid=4242, no_create_home=True))
    assert argv[:3] == ["useradd", "--root", str(guest_root.base)]
    assert argv[-2:] == ["--", "bob"]
    assert "--no-create-home" in argv and argv[argv.index("--uid") : argv.index("--uid") + 2] == [
        "--uid",
        "4242",
    ]


@pytest.mark.parametrize(
    "name", ["-rf", "a:b", "", "x" * 40, "a b", "../x", ".hidden", "alice\n", "$", "a$$", "é"]
)
def test_bad_names_are_refused_before_any_tool_runs(guest_root: Root, name: str) -> None:
    with pytest.raises(ConfigError, match="invalid user name"):
        accounts.add_user(guest_root, accounts.NewUser(name))


def test_password_hash_lock_and_expire(guest_root: Root) -> None:
    accounts.add_user(guest_root, accounts.NewUser("carol"))
    hashed = hash_password("correct horse")
    accounts.set_password_hashes(guest_root, [("carol", hashed)])
    assert accounts.shadow_password(guest_root, "carol") == hashed
    accounts.lock_password(guest_root, "carol")
    assert accounts.shadow_password(guest_root, "carol") == "!" + hashed
    accounts.expire_password(guest_root, "carol")
    assert rows(guest_root, "shadow")["carol"][2] == "0"


def test_unknown_user_error_names_the_tool(guest_root: Root) -> None:
    with pytest.raises(ToolError, match="chpasswd"):
        accounts.set_password_hashes(guest_root, [("nobody-here", hash_password("x"))])


def test_shadow_files_pass_pwck(guest_root: Root) -> None:
    accounts.add_group(guest_root, "ops")
    accounts.add_user(guest_root, accounts.NewUser("dave", groups=("ops",)))
    accounts.set_password_hashes(guest_root, [("dave", hash_password("pw"))])
    # pwck/grpck -r only read; they check passwd<->shadow and group<->gshadow agree.
    for tool in ("pwck", "grpck"):
        proc = subprocess.run(
            [tool, "-r", "-R", str(guest_root.base)], capture_output=True, text=True, check=False
        )
        problems = [
            line
            for line in (proc.stdout + proc.stderr).splitlines()
            if ("dave" in line or "ops" in line)
            # pwck/grpck ask "add user 'x' in /etc/shadow?" for a missing twin entry.
            and any(w in line for w in ("?", "no group", "no matching", "duplicate", "invalid"))
        ]
        assert problems == []


def test_files_keep_their_modes(guest_root: Root) -> None:
    accounts.add_user(guest_root, accounts.NewUser("erin"))
    assert oct(os.stat(guest_root.path("/etc/shadow")).st_mode & 0o777) == oct(0o640)
    assert oct(os.stat(guest_root.path("/etc/passwd")).st_mode & 0o777) == oct(0o644)


@pytest.mark.parametrize("name", ["a", "_svc", "web-1.app", "x" * 31, "host$", "Alice_2"])
def test_good_names_pass_the_check(name: str) -> None:
    assert accounts.check_name(name) == name
