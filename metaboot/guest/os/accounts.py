"""Users, groups and their passwords, changed as shadow-utils changes them, in the root.

Two ways, one result. :mod:`metaboot.guest.os.shadowfiles` edits passwd, shadow, group,
gshadow, subuid and subgid itself — shadow-utils' locks, backups, ID choices and home
skeleton, every change of a batch written once — wherever it reproduces the tools exactly
(a standard Debian or Ubuntu image). Everything else goes to ``useradd``, ``groupadd``,
``usermod``, ``chpasswd`` and ``chage`` with ``--root DIR``: they chroot into DIR and use its
``login.defs``, ``skel`` and account files. Nothing secret is ever put on a command line:
hashes reach ``chpasswd -e`` on stdin.

:func:`batch` groups changes (``users_groups`` makes all its users in one); the module-level
functions change one thing each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from metaboot.errors import ConfigError
from metaboot.guest import log as logger
from metaboot.guest.charsets import ASCII_ALNUM
from metaboot.guest.os.tools import ToolError, run_tool
from metaboot.guest.records import dataclass, field
from metaboot.guest.system import Root

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable

    from metaboot.guest.os.shadowfiles import AccountFiles

# The editor is used wherever it applies; tests switch it off to hold both ways to the same
# assertions (tests/guest/os/test_os_accounts.py, tests/guest/modules/test_module_users.py).
USE_EDITOR = True
log = logger.get("metaboot.accounts")

# Conservative enough that nothing can be mistaken for an option or break a colon-separated file;
# useradd applies the distribution's own, possibly stricter, rule after this.
# 1-31 of these (the first neither '.' nor '-'), then an optional '$' (a machine account).
_NAME_FIRST = frozenset(ASCII_ALNUM + "_")
_NAME_CHARS = _NAME_FIRST | {".", "-"}


def _valid_name(name: str) -> bool:
    """What ``^[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}\\$?$`` meant, without its ``$`` also taking a
    name that ends in a line break (which would split a line of /etc/passwd), and without a
    pattern to compile on every boot."""
    body = name[:-1] if name.endswith("$") else name
    return (
        0 < len(body) <= 31 and body[0] in _NAME_FIRST and all(c in _NAME_CHARS for c in body[1:])
    )


def check_name(name: object, what: str = "user") -> str:
    """Return ``name`` if it can be a login or group name, else raise ConfigError saying why."""
    if not isinstance(name, str) or not _valid_name(name):
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
    argv = ["useradd", "--root", root.base_dir]
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


def _check_user(user: NewUser) -> None:
    check_name(user.name)
    for group in (*user.groups, *([user.primary_group] if user.primary_group else [])):
        check_name(group, "group")
    if user.gecos and (":" in user.gecos or "\n" in user.gecos):
        raise ConfigError(f"user {user.name}: gecos cannot contain ':' or a newline")


def _check_hashes(pairs: Sequence[tuple[str, str]]) -> None:
    for name, hashed in pairs:
        if ":" in hashed or "\n" in hashed:
            raise ConfigError(f"user {name}: a password hash cannot contain ':' or a newline")
        check_name(name)


class Accounts:
    """A batch of account changes on a Root.

    Through :mod:`~metaboot.guest.os.shadowfiles` they are made in memory under the account
    files' locks and written by :meth:`commit`; a change the editor does not reproduce first
    commits what is pending, then runs the tool. Reads see the pending changes."""

    def __init__(self, root: Root, *, editor: bool | None = None) -> None:
        self.root = root
        self._use_editor = USE_EDITOR if editor is None else editor
        self._files: AccountFiles | None = None
        self.fallbacks: list[str] = []  # why a tool ran instead of the editor

    # ---- the editor ------------------------------------------------------------------------

    def _editor(self) -> AccountFiles | None:
        if self._files is None and self._use_editor:
            from metaboot.guest.os import shadowfiles

            try:
                self._files = shadowfiles.AccountFiles(self.root)
            except shadowfiles.Unsupported as err:
                self._use_editor = False  # this system is the tools' for the whole batch
                self._fell_back(str(err))
            except (shadowfiles.LockError, OSError) as err:
                raise ToolError(f"cannot open the account files: {err}") from None
        return self._files

    def _fell_back(self, reason: str) -> None:
        log.debug("accounts: using the system's tools (%s)", reason)
        self.fallbacks.append(reason)
        self.commit()

    def __enter__(self) -> Accounts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.commit()

    def commit(self) -> None:
        """Write what is pending (nothing to do when the tools made the changes)."""
        files, self._files = self._files, None
        if files is None:
            return
        try:
            warnings = files.commit()
        except OSError as err:
            raise ToolError(f"cannot write the account files: {err}") from None
        for warning in warnings:
            log.info("accounts: %s", warning)

    def _edit(self, change: Callable[[AccountFiles], None]) -> bool:
        """Make ``change`` with the editor; False when the tool must make it instead."""
        files = self._editor()
        if files is None:
            return False
        from metaboot.guest.os.shadowfiles import Unsupported

        try:
            change(files)
        except Unsupported as err:
            self._fell_back(str(err))
            return False
        return True

    # ---- reading ---------------------------------------------------------------------------

    def user_exists(self, name: str) -> bool:
        if self._files is not None:
            return self._files.user_exists(name)
        return user_exists(self.root, name)

    def group_exists(self, name: str) -> bool:
        if self._files is not None:
            return self._files.group_exists(name)
        return group_exists(self.root, name)

    def group_members(self, name: str) -> list[str]:
        if self._files is not None:
            return self._files.group_members(name)
        return group_members(self.root, name)

    def shadow_password(self, name: str) -> str | None:
        if self._files is not None:
            return self._files.shadow_password(name)
        return shadow_password(self.root, name)

    # ---- changes ---------------------------------------------------------------------------

    def add_group(self, name: str, *, system: bool = False) -> None:
        check_name(name, "group")
        if self._edit(lambda f: f.add_group(name, system=system)):
            return
        argv = ["groupadd", "--root", self.root.base_dir]
        if system:
            argv.append("--system")
        run_tool(self.root, [*argv, name], purpose=f"create group {name}")

    def add_user(self, user: NewUser) -> None:
        _check_user(user)
        if self._edit(lambda f: f.add_user(user)):
            return
        run_tool(self.root, useradd_argv(self.root, user), purpose=f"create user {user.name}")

    def add_to_groups(self, name: str, groups: Iterable[str]) -> None:
        wanted = [check_name(g, "group") for g in groups]
        if not wanted or self._edit(lambda f: f.add_to_groups(name, wanted)):
            return
        argv = ["usermod", "--root", self.root.base_dir, "--append", "--groups", ",".join(wanted)]
        run_tool(self.root, [*argv, "--", name], purpose=f"add {name} to {', '.join(wanted)}")

    def set_password_hashes(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Set crypt hashes for several users at once, all or none (as ``chpasswd -e``)."""
        if not pairs:
            return
        _check_hashes(pairs)
        if self._edit(lambda f: f.set_password_hashes(list(pairs))):
            return
        lines = [f"{name}:{hashed}\n" for name, hashed in pairs]
        names = ", ".join(name for name, _ in pairs)
        run_tool(
            self.root,
            ["chpasswd", "--root", self.root.base_dir, "--encrypted"],
            input="".join(lines).encode("utf-8"),
            purpose=f"set the password of {names}",
        )

    def lock_password(self, name: str) -> None:
        """Disable password login (a ``!`` before the hash); key logins still work."""
        if self._edit(lambda f: f.lock_password(name)):
            return
        run_tool(
            self.root,
            ["usermod", "--root", self.root.base_dir, "--lock", "--", name],
            purpose=f"lock {name}",
        )

    def expire_password(self, name: str) -> None:
        """Force a password change at next login (``passwd --expire``: last change = day 0)."""
        if self._edit(lambda f: f.expire_password(name)):
            return
        run_tool(
            self.root,
            ["chage", "--root", self.root.base_dir, "--lastday", "0", "--", name],
            purpose=f"expire the password of {name}",
        )


def batch(root: Root) -> Accounts:
    """Account changes made together, for a ``with`` block, and written once at its end —
    also when the block raises, as each change would have been made at once by the tools."""
    return Accounts(root)


def add_group(root: Root, name: str, *, system: bool = False) -> None:
    with batch(root) as accounts:
        accounts.add_group(name, system=system)


def add_user(root: Root, user: NewUser) -> None:
    with batch(root) as accounts:
        accounts.add_user(user)


def add_to_groups(root: Root, name: str, groups: Iterable[str]) -> None:
    with batch(root) as accounts:
        accounts.add_to_groups(name, groups)


def set_password_hashes(root: Root, pairs: Sequence[tuple[str, str]]) -> None:
    """Set crypt hashes for several users at once (all or none)."""
    with batch(root) as accounts:
        accounts.set_password_hashes(pairs)


def lock_password(root: Root, name: str) -> None:
    with batch(root) as accounts:
        accounts.lock_password(name)


def expire_password(root: Root, name: str) -> None:
    with batch(root) as accounts:
        accounts.expire_password(name)
