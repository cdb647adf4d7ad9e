"""Users, groups and their passwords, changed with shadow-utils aimed at the root.

``useradd``, ``groupadd``, ``usermod``, ``chpasswd`` and ``chage`` all take ``--root DIR``: they
chroot into DIR themselves and use its ``login.defs``, ``skel`` and account files, so passwd,
shadow, group and gshadow stay consistent (locks, backups, next free id) exactly as on a live
system. Nothing secret is ever put on a command line: hashes reach ``chpasswd -e`` on stdin.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from metaboot.errors import ConfigError
from metaboot.guest.os.tools import run_tool
from metaboot.guest.records import dataclass, field
from metaboot.guest.system import Root

# Conservative enough that nothing can be mistaken for an option or break a colon-separated file;
# useradd applies the distribution's own, possibly stricter, rule after this.
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}\$?$")


def check_name(name: object, what: str = "user") -> str:
    """Return ``name`` if it can be a login or group name, else raise ConfigError saying why."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            f"invalid {what} name {name!r}: use 1-32 letters, digits, '_', '.' or '-', "
            "not starting with '-' or '.'"
        )
    return name


def _rows(root: Root, table: str) -> list[list[str]]:
    text = root.read_text(f"/etc/{table}", default="")
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def user_exists(root: Root, name: str) -> bool:
    return any(row[0] == name for row in _rows(root, "passwd"))


def group_exists(root: Root, name: str) -> bool:
    return any(row[0] == name for row in _rows(root, "group"))


def group_members(root: Root, name: str) -> list[str]:
    for row in _rows(root, "group"):
        if row[0] == name and len(row) > 3:
            return [m for m in row[3].split(",") if m]
    return []


def shadow_password(root: Root, name: str) -> str | None:
    """The password field of ``name`` in the root's shadow file (None: no such entry)."""
    for row in _rows(root, "shadow"):
        if row[0] == name and len(row) > 1:
            return row[1]
    return None


def add_group(root: Root, name: str, *, system: bool = False) -> None:
    check_name(name, "group")
    argv = ["groupadd", "--root", str(root.base)]
    if system:
        argv.append("--system")
    run_tool(root, [*argv, name], purpose=f"create group {name}")


@dataclass(frozen=True)
class NewUser:
    """What ``useradd`` needs for a new account (cloud-init's user keys that apply at creation)."""

    name: str
    gecos: str | None = None
    homedir: str | None = None
    primary_group: str | None = None
    groups: tuple[str, ...] = ()
    login_shell: str | None = None
    uid: int | None = None
    system: bool = False
    no_user_group: bool = False
    no_create_home: bool = False
    no_log_init: bool = False
    expiredate: str | None = None
    inactive: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def useradd_argv(root: Root, user: NewUser) -> list[str]:
    """The ``useradd`` command line for ``user`` (pure, so tests can read it)."""
    argv = ["useradd", "--root", str(root.base)]
    options = (
        ("--comment", user.gecos),
        ("--home-dir", user.homedir),
        ("--gid", user.primary_group),
        ("--groups", ",".join(user.groups) if user.groups else None),
        ("--shell", user.login_shell),
        ("--uid", str(user.uid) if user.uid is not None else None),
        ("--expiredate", user.expiredate),
        ("--inactive", user.inactive),
    )
    for option, value in options:
        if value:
            if "\n" in value or ":" in value:
                raise ConfigError(f"user {user.name}: invalid value {value!r} for {option}")
            argv += [option, value]
    if user.system:
        argv.append("--system")
    if user.no_user_group:
        argv.append("--no-user-group")
    if user.no_log_init:
        argv.append("--no-log-init")
    # A system user gets no home directory, as with cloud-init.
    argv.append("--no-create-home" if user.no_create_home or user.system else "--create-home")
    return [*argv, "--", user.name]


def add_user(root: Root, user: NewUser) -> None:
    check_name(user.name)
    for group in (*user.groups, *([user.primary_group] if user.primary_group else [])):
        check_name(group, "group")
    if user.gecos and (":" in user.gecos or "\n" in user.gecos):
        raise ConfigError(f"user {user.name}: gecos cannot contain ':' or a newline")
    run_tool(root, useradd_argv(root, user), purpose=f"create user {user.name}")


def add_to_groups(root: Root, name: str, groups: Iterable[str]) -> None:
    wanted = [check_name(g, "group") for g in groups]
    if wanted:
        argv = ["usermod", "--root", str(root.base), "--append", "--groups", ",".join(wanted)]
        run_tool(root, [*argv, "--", name], purpose=f"add {name} to {', '.join(wanted)}")


def set_password_hashes(root: Root, pairs: Sequence[tuple[str, str]]) -> None:
    """Set crypt hashes for several users in one ``chpasswd -e`` (the pairs go through stdin)."""
    if not pairs:
        return
    lines = []
    for name, hashed in pairs:
        if ":" in hashed or "\n" in hashed:
            raise ConfigError(f"user {name}: a password hash cannot contain ':' or a newline")
        lines.append(f"{check_name(name)}:{hashed}\n")
    names = ", ".join(name for name, _ in pairs)
    run_tool(
        root,
        ["chpasswd", "--root", str(root.base), "--encrypted"],
        input="".join(lines).encode("utf-8"),
        purpose=f"set the password of {names}",
    )


def lock_password(root: Root, name: str) -> None:
    """Disable password login (a ``!`` before the hash); key logins still work."""
    run_tool(
        root, ["usermod", "--root", str(root.base), "--lock", "--", name], purpose=f"lock {name}"
    )


def expire_password(root: Root, name: str) -> None:
    """Force a password change at next login (``passwd --expire``: last change = day 0)."""
    run_tool(
        root,
        ["chage", "--root", str(root.base), "--lastday", "0", "--", name],
        purpose=f"expire the password of {name}",
    )
