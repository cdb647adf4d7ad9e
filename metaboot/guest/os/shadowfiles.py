"""passwd, shadow, group, gshadow, subuid and subgid edited the way shadow-utils edits them.

``useradd`` per user cost a first boot ~10-15 ms of process and eight fsyncs (more under a
busy disk): each run rewrites all four files with a backup each. Here a whole batch of changes
(every user and group of ``users_groups``) is made in memory and written once, following
shadow-utils' own protocol step for step, so that nothing can tell the difference:

- the lock: ``/etc/.pwd.lock`` with an fcntl write lock (what ``lckpwdf`` takes; waited for up
  to 15 s), then ``FILE.lock`` hard-linked from ``FILE.PID`` for every file, a stale lock (its
  PID gone) removed, a live one an error;
- the write: ``FILE-`` the old file (same content, owner, mode and times: shadow-utils
  writes and fsyncs a copy, the editor gives the old file's own inode that second name, the
  same bytes already on disk; a copy where a link will not do), then ``FILE+`` with the new
  content (same owner and mode, fsynced) renamed over ``FILE``; lines not changed are
  written back byte for byte;
- the values: IDs chosen as shadow-utils' ``find_new_uid``/``find_new_gid`` choose them from
  ``login.defs`` (a user group takes the user's ID when free), shadow fields from
  ``PASS_*_DAYS``/``PASS_WARN_AGE`` and ``default/useradd``, subordinate IDs as
  ``find_free_range`` finds them, home directories made and filled from the skeleton as
  ``create_home``/``copy_tree`` do (mode from ``HOME_MODE`` or ``UMASK``, owner the new user);
- on a live system, the same syslog lines (``new user: name=…``) for the audit trail.

Anything this module does not reproduce exactly — NIS ``+``/``-`` lines, a ``login.defs``
setting it does not know, ``nscd``/``sss_cache`` to flush, SELinux, a lastlog/faillog record to
clear, options such as ``--no-user-group`` — raises :class:`Unsupported` before anything is
changed, and :mod:`metaboot.guest.os.accounts` runs the system's tools instead.
``tests/guest/os/test_os_shadowfiles.py`` compares the two, file by file, against the real
``useradd``, ``groupadd``, ``usermod``, ``chpasswd`` and ``chage``.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from metaboot.guest.system import Root

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from collections.abc import Iterable

    from metaboot.guest.os.accounts import NewUser

TABLES = ("passwd", "shadow", "group", "gshadow", "subuid", "subgid")
LOCK_WAIT = 15.0  # seconds, as lckpwdf
# login.defs settings the editor applies, with shadow-utils' defaults (login.defs(5)).
_NUMBERS = {
    "UID_MIN": 1000,
    "UID_MAX": 60000,
    "GID_MIN": 1000,
    "GID_MAX": 60000,
    "SYS_UID_MIN": 101,
    "SYS_GID_MIN": 101,
    "PASS_MAX_DAYS": -1,
    "PASS_MIN_DAYS": -1,
    "PASS_WARN_AGE": -1,
    "UMASK": 0o022,
    "SUB_UID_MIN": 100000,
    "SUB_UID_MAX": 600100000,
    "SUB_UID_COUNT": 65536,
    "SUB_GID_MIN": 100000,
    "SUB_GID_MAX": 600100000,
    "SUB_GID_COUNT": 65536,
}
_APPLIED = {*_NUMBERS, "SYS_UID_MAX", "SYS_GID_MAX", "HOME_MODE", "USERGROUPS_ENAB"}
# Settings useradd, groupadd, usermod -aG/-L, chpasswd -e and chage -d do not read at all
# (login, su, passwd, PAM and the like), or read only for options the editor never takes.
_IRRELEVANT = frozenset(
    """MAIL_DIR MAIL_FILE FAILLOG_ENAB LOG_UNKFAIL_ENAB LOG_OK_LOGINS LASTLOG_ENAB
    LASTLOG_UID_MAX SYSLOG_SU_ENAB SYSLOG_SG_ENAB FTMP_FILE SULOG_FILE SU_NAME HUSHLOGIN_FILE
    ENV_SUPATH ENV_PATH ENV_TZ ENV_HZ TTYGROUP TTYPERM TTYTYPE_FILE ERASECHAR KILLCHAR ULIMIT
    LOGIN_RETRIES LOGIN_TIMEOUT LOGIN_STRING FAIL_DELAY CHFN_RESTRICT CHFN_AUTH CHSH_AUTH
    DEFAULT_HOME ENCRYPT_METHOD SHA_CRYPT_MIN_ROUNDS SHA_CRYPT_MAX_ROUNDS YESCRYPT_COST_FACTOR
    BCRYPT_MIN_ROUNDS BCRYPT_MAX_ROUNDS MD5_CRYPT_ENAB NONEXISTENT PREVENT_NO_AUTH ISSUE_FILE
    MOTD_FILE NOLOGINS_FILE ENVIRON_FILE CONSOLE CONSOLE_GROUPS PASS_MIN_LEN PASS_MAX_LEN
    OBSCURE_CHECKS_ENAB PASS_CHANGE_TRIES PASS_ALWAYS_WARN CRACKLIB_DICTPATH PORTTIME_CHECKS_ENAB
    QUOTAS_ENAB MAIL_CHECK_ENAB CLOSE_SESSIONS LOGIN_PLAIN_PROMPT SU_WHEEL_ONLY
    USERDEL_CMD CREATE_HOME""".split()  # noqa: SIM905 - a list of 60 names reads better so
)
_DEFAULTS_KNOWN = frozenset({"GROUP", "HOME", "INACTIVE", "EXPIRE", "SHELL", "SKEL", "LOG_INIT"})
# Where a lastlog/faillog record could start: the smallest record of either (faillog's 32
# bytes on 64-bit Linux, 16 on 32-bit) times the UID. useradd clears the record it finds there.
_LOG_RECORD_MIN = 16


class Unsupported(Exception):
    """This change is not one the editor reproduces exactly; use the system's tools."""


class LockError(Exception):
    """The account files are locked by another process (or cannot be locked)."""


# ---- settings ----------------------------------------------------------------------------


def _number(text: str) -> int:
    """shadow-utils reads numbers with strtol(..., 0): 0x… hex, 0… octal, else decimal."""
    value = text.strip()
    sign = -1 if value.startswith("-") else 1
    digits = value.lstrip("+-")
    if digits.lower().startswith("0x"):
        return sign * int(digits[2:], 16)
    if len(digits) > 1 and digits.startswith("0"):
        return sign * int(digits, 8)
    return sign * int(digits, 10)


class Policy:
    """What login.defs and default/useradd make of a new account."""

    def __init__(self, defs: dict[str, str], defaults: dict[str, str]) -> None:
        try:
            num = {k: _number(defs[k]) if k in defs else v for k, v in _NUMBERS.items()}
            self.uid_min, self.uid_max = num["UID_MIN"], num["UID_MAX"]
            self.gid_min, self.gid_max = num["GID_MIN"], num["GID_MAX"]
            self.sys_uid_min, self.sys_gid_min = num["SYS_UID_MIN"], num["SYS_GID_MIN"]
            self.sys_uid_max = _number(defs.get("SYS_UID_MAX", str(self.uid_min - 1)))
            self.sys_gid_max = _number(defs.get("SYS_GID_MAX", str(self.gid_min - 1)))
            umask = num["UMASK"]
            self.home_mode = _number(defs["HOME_MODE"]) if "HOME_MODE" in defs else ~umask & 0o777
            self.inactive = int(defaults.get("INACTIVE", "-1") or "-1")
        except ValueError as err:
            raise Unsupported(f"unreadable setting ({err})") from None
        self.pass_min, self.pass_max = num["PASS_MIN_DAYS"], num["PASS_MAX_DAYS"]
        self.pass_warn = num["PASS_WARN_AGE"]
        self.sub_uid = (num["SUB_UID_MIN"], num["SUB_UID_MAX"], num["SUB_UID_COUNT"])
        self.sub_gid = (num["SUB_GID_MIN"], num["SUB_GID_MAX"], num["SUB_GID_COUNT"])
        if defs.get("USERGROUPS_ENAB", "no").lower() != "yes":
            raise Unsupported("USERGROUPS_ENAB is not yes")
        if self.sys_uid_min == 0 or self.sys_gid_min == 0:
            raise Unsupported("SYS_UID_MIN or SYS_GID_MIN is 0")
        self.home_base = defaults.get("HOME", "/home")
        self.shell = defaults["SHELL"]
        self.skel = defaults.get("SKEL", "/etc/skel")
        self.no_log_init = defaults.get("LOG_INIT", "yes").lower() == "no"
        if defaults.get("EXPIRE", ""):
            raise Unsupported("default/useradd sets EXPIRE")


def _read_settings(root: Root, path: str, separator: str | None) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in root.read_text(path).splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if separator is None:
            name, _, value = line.partition(" ")
            if "\t" in name:
                name, _, rest = line.partition("\t")
                value = rest
        else:
            name, _, value = line.partition(separator)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        values[name.strip()] = value
    return values


def read_policy(root: Root) -> Policy:
    try:
        defs = _read_settings(root, "/etc/login.defs", None)
        defaults = _read_settings(root, "/etc/default/useradd", "=")
    except FileNotFoundError as err:
        raise Unsupported(
            f"no {err.filename}: the built-in defaults differ between versions"
        ) from None
    unknown = sorted(k for k in defs if k not in _APPLIED and k not in _IRRELEVANT)
    if unknown:
        raise Unsupported(f"login.defs sets {', '.join(unknown)}")
    unknown = sorted(k for k in defaults if k not in _DEFAULTS_KNOWN and k != "CREATE_MAIL_SPOOL")
    if unknown or defaults.get("CREATE_MAIL_SPOOL", "no").lower() != "no":
        raise Unsupported(f"default/useradd sets {', '.join(unknown) or 'CREATE_MAIL_SPOOL'}")
    if "SHELL" not in defaults:
        raise Unsupported("default/useradd sets no SHELL (the built-in default varies)")
    return Policy(defs, defaults)


def check_system(root: Root) -> None:
    """Raise Unsupported when the tools would do more than edit files on this system."""
    for tool in ("/usr/sbin/nscd", "/usr/sbin/sss_cache", "/sbin/nscd", "/sbin/sss_cache"):
        if root.exists(tool):
            raise Unsupported(f"{tool} is installed (its caches must be flushed by the tools)")
    if root.exists("/etc/shadow-maint"):
        raise Unsupported("/etc/shadow-maint holds hooks the tools run")
    if os.path.exists("/sys/fs/selinux/enforce"):
        raise Unsupported("SELinux is enabled (the tools label what they create)")


# ---- one table ---------------------------------------------------------------------------


class Table:
    """A colon-separated file as shadow-utils' commonio keeps it: a line per entry, changed
    entries re-written, the rest byte for byte."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.original = text
        self.lines = text.split("\n")
        if text.endswith("\n"):
            self.lines.pop()
        self.changed = False
        self.index: dict[str, int] = {}
        for number, line in enumerate(self.lines):
            if line.startswith(("+", "-")):
                raise Unsupported(f"/etc/{name} has NIS compat entries")
            key = line.split(":", 1)[0]
            if not line or line.startswith("#"):
                continue
            if key in self.index:
                raise Unsupported(f"/etc/{name} names {key!r} twice")
            self.index[key] = number

    def get(self, key: str) -> list[str] | None:
        number = self.index.get(key)
        return None if number is None else self.lines[number].split(":")

    def rows(self) -> Iterable[list[str]]:
        for number in self.index.values():
            yield self.lines[number].split(":")

    def set(self, key: str, fields: list[str]) -> None:
        line = ":".join(fields)
        if "\n" in line:
            raise ValueError("a newline in an account field")
        if key in self.index:
            self.lines[self.index[key]] = line
        else:
            self.index[key] = len(self.lines)
            self.lines.append(line)
        self.changed = True

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


def _ids(table: Table, column: int) -> set[int]:
    found = set()
    for fields in table.rows():
        if len(fields) > column and fields[column].isdigit():
            found.add(int(fields[column]))
    return found


def find_new_id(used: set[int], low: int, high: int, *, system: bool) -> int:
    """shadow-utils' find_new_uid/find_new_gid: above the highest ID in use in [low, high]
    for a regular account, below the lowest for a system one, else the first gap."""
    usable = [i for i in used if low <= i <= high]
    unusable = {65535, 4294967295}
    if system:
        start = min(usable) - 1 if usable else high
        if start < low:
            start = high
        order: Iterable[int] = range(start, low - 1, -1)
        retry: Iterable[int] = range(high, low - 1, -1) if start != high else ()
    else:
        start = max(usable) + 1 if usable else low
        if start > high:
            start = low
        order = range(start, high + 1)
        retry = range(low, high + 1) if start != low else ()
    for candidates in (order, retry):
        for candidate in candidates:
            if candidate not in used and candidate not in unusable:
                return candidate
    raise Unsupported(f"no free ID in {low}-{high}")


def _find_free_range(ranges: list[tuple[int, int]], low: int, high: int, count: int) -> int:
    """shadow-utils' find_free_range over the sorted subordinate ranges."""
    if count == 0 or high < low:
        raise Unsupported("no subordinate ID range can be allocated")
    for start, size in ranges:
        top = min(start, high + 1)
        if top > low and top - low >= count:
            return low
        low = max(low, start + size)
        if low > high:
            raise Unsupported("no free subordinate ID range")
    if high - low + 1 >= count:
        return low
    raise Unsupported("no free subordinate ID range")


# ---- the batch ---------------------------------------------------------------------------


class Home:
    def __init__(self, path: str, uid: int, gid: int) -> None:
        self.path, self.uid, self.gid = path, uid, gid


class AccountFiles:
    """The account files of a Root, locked, loaded, changed in memory, written on commit."""

    def __init__(self, root: Root) -> None:
        self.root = root
        self.policy = read_policy(root)
        check_system(root)
        self.tables: dict[str, Table] = {}
        self._locks: list[str] = []
        self._pwd_lock: int | None = None
        self._homes: list[Home] = []
        self._messages: list[str] = []
        self.today = _today()
        for name in ("passwd", "shadow", "group", "gshadow"):
            try:
                plain = stat.S_ISREG(os.lstat(self._host(name)).st_mode)
            except FileNotFoundError:
                plain = False
            if not plain:
                raise Unsupported(f"/etc/{name} is missing or not a plain file")
        self._skeleton_checked = False
        self._lock()
        try:
            for name in TABLES:
                try:
                    with open(self._host(name), "rb") as handle:
                        text = handle.read().decode("utf-8", "surrogateescape")
                except FileNotFoundError:
                    continue
                self.tables[name] = Table(name, text)
        except BaseException:
            self.release()
            raise

    def _host(self, name: str) -> str:
        return self.root.host_path(f"/etc/{name}")

    # ---- locking -------------------------------------------------------------------------

    def _lock(self) -> None:
        import fcntl

        path = self.root.host_path("/etc/.pwd.lock")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    os.close(fd)
                    raise LockError(f"cannot lock /etc/.pwd.lock: {err.strerror}") from None
                time.sleep(0.05)
        self._pwd_lock = fd
        try:
            for name in TABLES:
                if os.path.exists(self._host(name)):
                    self._lock_file(self._host(name), f"/etc/{name}")
        except BaseException:
            self.release()
            raise

    def _lock_file(self, path: str, shown: str) -> None:
        pid = os.getpid()
        mine, lock = f"{path}.{pid}", f"{path}.lock"
        fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, f"{pid}\0".encode())
        finally:
            os.close(fd)
        try:
            for _ in range(2):
                try:
                    os.link(mine, lock)
                except FileExistsError:
                    holder = _lock_holder(lock)
                    if holder is None:
                        raise LockError(f"{shown}.lock holds no valid process ID") from None
                    if _alive(holder):
                        raise LockError(f"{shown} is locked by process {holder}") from None
                    os.unlink(lock)  # stale: its process is gone
                    continue
                if os.stat(mine).st_nlink != 2:
                    os.unlink(lock)
                    raise LockError(f"cannot lock {shown}: the lock file did not link")
                self._locks.append(lock)
                return
            raise LockError(f"cannot lock {shown}: its lock keeps coming back")
        finally:
            os.unlink(mine)

    def release(self) -> None:
        for lock in reversed(self._locks):
            try:  # noqa: SIM105 - contextlib is not otherwise loaded on a boot
                os.unlink(lock)
            except FileNotFoundError:
                pass
        self._locks.clear()
        if self._pwd_lock is not None:
            os.close(self._pwd_lock)  # releases the fcntl lock
            self._pwd_lock = None

    # ---- reading -------------------------------------------------------------------------

    def table(self, name: str) -> Table:
        return self.tables[name]

    def user_exists(self, name: str) -> bool:
        return name in self.tables["passwd"].index

    def group_exists(self, name: str) -> bool:
        return name in self.tables["group"].index

    def group_members(self, name: str) -> list[str]:
        fields = self.tables["group"].get(name)
        if fields is None or len(fields) < 4:
            return []
        return [m for m in fields[3].split(",") if m]

    def shadow_password(self, name: str) -> str | None:
        fields = self.tables["shadow"].get(name)
        return fields[1] if fields is not None and len(fields) > 1 else None

    # ---- changes (each checks everything before it changes anything) ---------------------

    def add_group(self, name: str, *, system: bool = False) -> None:
        if self.group_exists(name) or name in self.tables["gshadow"].index:
            raise Unsupported(f"group {name} exists")  # the tool reports it
        _check_name(name)
        policy = self.policy
        low, high = (
            (policy.sys_gid_min, policy.sys_gid_max) if system else (policy.gid_min, policy.gid_max)
        )
        gid = find_new_id(_ids(self.tables["group"], 2), low, high, system=system)
        self._new_group(name, gid)
        self._messages.append(f"new group: name={name}, GID={gid}")

    def _new_group(self, name: str, gid: int) -> None:
        self.tables["group"].set(name, [name, "x", str(gid), ""])
        self.tables["gshadow"].set(name, [name, "!", "", ""])

    def add_user(self, user: NewUser) -> None:
        unsupported = [
            option
            for option, used in (
                ("no_user_group", user.no_user_group),
                ("expiredate", user.expiredate),
                ("inactive", user.inactive),
                ("extra", user.extra),
            )
            if used
        ]
        if unsupported:
            raise Unsupported(f"useradd options {', '.join(unsupported)}")
        _check_name(user.name)
        policy = self.policy
        passwd, group = self.tables["passwd"], self.tables["group"]
        if self.user_exists(user.name) or user.name in self.tables["shadow"].index:
            raise Unsupported(f"user {user.name} exists")  # the tool reports it
        self._check_groups(user.groups)
        used_uids = _ids(passwd, 2)
        if user.uid is not None:
            if user.uid in used_uids:
                raise Unsupported(f"UID {user.uid} is taken")
            uid = user.uid
        else:
            low, high = (
                (policy.sys_uid_min, policy.sys_uid_max)
                if user.system
                else (policy.uid_min, policy.uid_max)
            )
            uid = find_new_id(used_uids, low, high, system=user.system)
        new_group = None
        if user.primary_group:
            gid = self._gid_of(user.primary_group)
        else:
            if self.group_exists(user.name) or user.name in self.tables["gshadow"].index:
                raise Unsupported(f"group {user.name} exists")  # useradd refuses, saying so
            used_gids = _ids(group, 2)
            low, high = (
                (policy.sys_gid_min, policy.sys_gid_max)
                if user.system
                else (policy.gid_min, policy.gid_max)
            )
            preferred_low = 1 if user.system else low
            if preferred_low <= uid <= high and uid not in used_gids and uid not in (65535,):
                gid = uid
            else:
                gid = find_new_id(used_gids, low, high, system=user.system)
            new_group = gid
        home = user.homedir or f"{policy.home_base.rstrip('/')}/{user.name}"
        shell = user.login_shell or policy.shell
        fields = [user.name, "x", str(uid), str(gid), user.gecos or "", home, shell]
        if any(":" in f or "\n" in f for f in fields):
            raise Unsupported("a ':' or newline in a field")
        creates_home = not (user.no_create_home or user.system)
        if not (user.no_log_init or self.policy.no_log_init):
            self._check_logs(uid)
        if creates_home and not self._skeleton_checked:
            self.check_skeleton()
            self._skeleton_checked = True
        subids = self._subid_plans(user, uid)
        # Everything checked: change.
        if new_group is not None:
            self._new_group(user.name, new_group)
            self._messages.append(f"new group: name={user.name}, GID={new_group}")
        passwd.set(user.name, fields)
        self.tables["shadow"].set(user.name, self._new_shadow(user))
        for table, start, count, ordered in subids:
            if ordered != table.lines:
                table.lines = ordered
                table.index = {line.split(":", 1)[0]: i for i, line in enumerate(ordered)}
            table.set(user.name, [user.name, str(start), str(count)])
        self._messages.append(
            f"new user: name={user.name}, UID={uid}, GID={gid}, home={home}, "
            f"shell={shell}, from=metaboot"
        )
        self._join(user.name, list(user.groups))
        if creates_home:
            self._homes.append(Home(home, uid, gid))

    def _gid_of(self, group: str) -> int:
        if group.isdigit():
            if int(group) not in _ids(self.tables["group"], 2):
                raise Unsupported(f"no group with GID {group}")
            return int(group)
        fields = self.tables["group"].get(group)
        if fields is None or len(fields) < 3 or not fields[2].isdigit():
            raise Unsupported(f"group {group} does not exist")
        return int(fields[2])

    def _new_shadow(self, user: NewUser) -> list[str]:
        p = self.policy
        if user.system:
            aging = ["", "", "", "", ""]
        else:
            aging = [
                _field(p.pass_min),
                _field(p.pass_max),
                _field(p.pass_warn),
                _field(p.inactive),
                "",
            ]
        return [user.name, "!", _field(self.today), *aging, ""]

    def _check_logs(self, uid: int) -> None:
        for log in ("/var/log/lastlog", "/var/log/faillog"):
            try:
                size = os.stat(self.root.host_path(log, follow=True)).st_size
            except FileNotFoundError:
                continue
            if size > uid * _LOG_RECORD_MIN:
                raise Unsupported(f"{log} may hold a record for UID {uid} (useradd clears it)")

    def _subid_plans(self, user: NewUser, uid: int) -> list[tuple[Table, int, int, list[str]]]:
        """Where the user's subordinate IDs go (only when /etc/subuid or /etc/subgid exists,
        for a regular account in the UID_MIN-UID_MAX range), and each file's new line order:
        find_free_range sorts the file by (start, count, owner); the new range goes last."""
        plans = []
        policy = self.policy
        if user.system or not policy.uid_min <= uid <= policy.uid_max:
            return []
        for name, (low, high, count) in (("subuid", policy.sub_uid), ("subgid", policy.sub_gid)):
            table = self.tables.get(name)
            if table is None or count == 0:
                continue
            for number, line in enumerate(table.lines):
                fields = line.split(":")
                if len(fields) != 3 or not (fields[1].isdigit() and fields[2].isdigit()):
                    raise Unsupported(f"/etc/{name} line {number + 1} is not owner:start:count")
            if user.name in table.index:
                raise Unsupported(f"/etc/{name} already names {user.name}")
            ordered = sorted(table.lines, key=_range_key)
            ranges = [_range_key(line)[:2] for line in ordered]
            start = _find_free_range(ranges, low, high, count)
            plans.append((table, start, count, ordered))
        return plans

    def add_to_groups(self, name: str, groups: Iterable[str]) -> None:
        wanted = list(groups)
        if not self.user_exists(name):
            raise Unsupported(f"user {name} does not exist")
        self._check_groups(wanted)
        self._join(name, wanted)

    def _check_groups(self, wanted: Iterable[str]) -> None:
        for group in wanted:
            fields = self.tables["group"].get(group)
            if fields is None:
                raise Unsupported(f"group {group} does not exist")
            if len(fields) != 4 or not _canonical_members(fields[3]):
                raise Unsupported(f"/etc/group entry {group} is not in canonical form")
            shadow = self.tables["gshadow"].get(group)
            if shadow is not None and (len(shadow) != 4 or not _canonical_members(shadow[3])):
                raise Unsupported(f"/etc/gshadow entry {group} is not in canonical form")

    def _join(self, name: str, wanted: list[str]) -> None:
        for group in wanted:
            fields = self.tables["group"].get(group)
            assert fields is not None
            members = [m for m in fields[3].split(",") if m]
            if name not in members:
                fields[3] = ",".join([*members, name])
                self.tables["group"].set(group, fields)
                self._messages.append(f"add '{name}' to group '{group}'")
            shadow = self.tables["gshadow"].get(group)
            if shadow is not None:
                members = [m for m in shadow[3].split(",") if m]
                if name not in members:
                    shadow[3] = ",".join([*members, name])
                    self.tables["gshadow"].set(group, shadow)
                    self._messages.append(f"add '{name}' to shadow group '{group}'")

    def _shadow_entry(self, name: str) -> list[str]:
        fields = self.tables["shadow"].get(name)
        if fields is None or not self.user_exists(name) or len(fields) != 9:
            raise Unsupported(f"no standard shadow entry for {name}")
        return fields

    def set_password_hashes(self, pairs: list[tuple[str, str]]) -> None:
        """``chpasswd -e``: each hash, and today as the last change; all or none."""
        entries = [(name, hashed, self._shadow_entry(name)) for name, hashed in pairs]
        for name, hashed, fields in entries:
            fields[1], fields[2] = hashed, _field(self.today)
            self.tables["shadow"].set(name, fields)
            self._messages.append(f"password changed for '{name}'")

    def lock_password(self, name: str) -> None:
        """``usermod --lock``: a '!' before the hash, unless there is one already."""
        fields = self._shadow_entry(name)
        if not fields[1].startswith("!"):
            fields[1] = "!" + fields[1]
            self.tables["shadow"].set(name, fields)
        self._messages.append(f"lock user '{name}' password")

    def expire_password(self, name: str) -> None:
        """``chage --lastday 0``."""
        fields = self._shadow_entry(name)
        fields[2] = "0"
        self.tables["shadow"].set(name, fields)
        self._messages.append(f"changed password expiry for {name}")

    # ---- commit --------------------------------------------------------------------------

    def commit(self) -> list[str]:
        """Write the changed files (shadow-utils' order), release the locks, make the homes.
        Returns the warnings useradd would have printed."""
        try:
            changed = [
                (self._host(name), table)
                for name in TABLES
                if (table := self.tables.get(name)) is not None and table.changed
            ]
            # Each FILE+ is durable before it replaces FILE, as with shadow-utils; all are
            # written, and their writeback started, before the first fsync, so that one
            # journal commit carries them all (four files cost one commit, not four).
            staged: list[tuple[str, int]] = []
            try:
                for path, table in changed:
                    staged.append(_stage(path, table.original, table.text()))
            except BaseException:  # nothing replaced yet: leave every file as it was
                for path, fd in staged:
                    os.close(fd)
                    try:  # noqa: SIM105 - contextlib is not otherwise loaded on a boot
                        os.unlink(path + "+")
                    except OSError:
                        pass
                raise
            try:
                while staged:
                    _settle(*staged.pop(0))
            finally:
                for _, fd in staged:  # after a failure: the files not replaced stay as they were
                    os.close(fd)
            for _, table in changed:
                table.original = table.text()
                table.changed = False
        finally:
            self.release()
        warnings = []
        for home in self._homes:
            warning = self._make_home(home)
            if warning:
                warnings.append(warning)
        self._homes.clear()
        if self.root.is_live and self._messages:
            _syslog(self._messages)
        self._messages.clear()
        return warnings

    def _make_home(self, home: Home) -> str | None:
        target = self.root.host_path(home.path)
        if os.path.lexists(target):
            return (
                f"the home directory {home.path} already exists; "
                "no file was copied from the skeleton into it"
            )
        parents = []
        probe = os.path.dirname(target)
        top = self.root.base_dir
        while probe != top and probe != "/" and not os.path.exists(probe):
            parents.append(probe)
            probe = os.path.dirname(probe)
        for directory in reversed(parents):
            os.mkdir(directory, 0)
            os.chown(directory, 0, 0)
            os.chmod(directory, 0o755)  # noqa: S103 - what useradd gives a home's parents
        os.mkdir(target, 0)
        os.chown(target, home.uid, home.gid)
        os.chmod(target, self.policy.home_mode)
        skel = self.root.host_path(self.policy.skel, follow=True)
        if os.path.isdir(skel):
            _copy_tree(skel, target, self.policy.skel, home, check_only=False)
        return None

    def check_skeleton(self) -> None:
        skel = self.root.host_path(self.policy.skel, follow=True)
        if not os.path.isdir(skel):
            raise Unsupported(f"no skeleton directory {self.policy.skel}")
        _copy_tree(skel, "", self.policy.skel, Home("", 0, 0), check_only=True)


def _range_key(line: str) -> tuple[int, int, str]:
    owner, start, count = line.split(":")
    return int(start), int(count), owner


def _canonical_members(text: str) -> bool:
    return text == "" or all(m and m.strip() == m for m in text.split(","))


def _field(value: int) -> str:
    return "" if value < 0 else str(value)


def _today() -> int:
    """Days since the epoch, as shadow-utils counts them (SOURCE_DATE_EPOCH honoured)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = int(epoch) if epoch and epoch.isdigit() else int(time.time())
    return now // 86400


def _check_name(name: str) -> None:
    # shadow-utils refuses some names ours accepts (all digits, for one): let it say so.
    if name.isdigit() or name in (".", ".."):
        raise Unsupported(f"name {name!r}")


def _lock_holder(lock: str) -> int | None:
    try:
        with open(lock, "rb") as handle:
            text = handle.read(32).split(b"\0", 1)[0].strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stage(path: str, old: str, new: str) -> tuple[str, int]:
    """``FILE-`` (the old content, owner, mode and times), then ``FILE+`` written, its
    writeback started; returns FILE and FILE+'s descriptor, for :func:`_settle`."""
    info = os.stat(path)
    mode = stat.S_IMODE(info.st_mode)
    previous = old.encode("utf-8", "surrogateescape")
    if not _backup_by_link(path, info, len(previous)):
        os.close(_write_file(path + "-", previous, info, mode, sync=True))
        os.utime(path + "-", (int(info.st_atime), int(info.st_mtime)))
    fd = _write_file(path + "+", new.encode("utf-8", "surrogateescape"), info, mode, sync=False)
    # Starts the writeback now (and drops the pages once written: nothing reads FILE+).
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    return path, fd


def _settle(path: str, fd: int) -> None:
    """FILE+ durable, then renamed over FILE."""
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(path + "+", path)


def _write_file(target: str, payload: bytes, info: os.stat_result, mode: int, *, sync: bool) -> int:
    """Write ``target`` (fsynced if ``sync``); returns its open descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(target, flags, 0o600)
    try:
        os.fchown(fd, info.st_uid, info.st_gid)
        os.fchmod(fd, mode)
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _backup_by_link(path: str, info: os.stat_result, size: int) -> bool:
    """``FILE-`` as a second name for FILE's own inode, which FILE+ is about to replace: the
    old content, owner, mode and times exactly (the times to the nanosecond, where a copy keeps
    whole seconds), and already on disk — no copy to write and fsync, four fewer fsyncs per
    account change. Only for a file with one name whose size is what the editor read under
    the locks (else, or where links fail, the copy shadow-utils makes)."""
    if info.st_nlink != 1 or info.st_size != size:
        return False
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}-.{os.urandom(6).hex()}")
    try:
        os.link(path, temporary)
    except OSError:
        return False
    try:
        os.rename(temporary, path + "-")
    except OSError:
        try:  # noqa: SIM105 - contextlib is not otherwise loaded on a boot
            os.unlink(temporary)
        except OSError:
            pass
        return False
    return True


def _copy_tree(source: str, target: str, skel: str, home: Home, *, check_only: bool) -> None:
    """copy_tree as useradd runs it: directories and files keep their modes, files their
    times, everything belongs to the new user, and a symlink whose target starts with the
    skeleton's path points into the home instead (the same plain prefix test). Anything else
    (devices, sockets, hard links) is left to the tool."""
    for entry in sorted(os.listdir(source)):
        src = os.path.join(source, entry)
        info = os.lstat(src)
        mode = info.st_mode
        dst = os.path.join(target, entry)
        if stat.S_ISDIR(mode):
            if not check_only:
                os.mkdir(dst, 0)
                os.chown(dst, home.uid, home.gid)
                os.chmod(dst, stat.S_IMODE(mode))
            _copy_tree(src, dst, skel, home, check_only=check_only)
        elif stat.S_ISLNK(mode):
            if check_only:
                continue
            link = os.readlink(src)
            if link.startswith(skel):
                link = home.path + link[len(skel) :]
            os.symlink(link, dst)
            os.lchown(dst, home.uid, home.gid)
        elif stat.S_ISREG(mode):
            if info.st_nlink > 1:
                raise Unsupported(f"{src} has hard links")
            if check_only:
                continue
            with open(src, "rb") as handle:
                data = handle.read()
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(dst, flags, 0)
            try:
                os.fchown(fd, home.uid, home.gid)
                os.fchmod(fd, stat.S_IMODE(mode))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.utime(dst, ns=(info.st_atime_ns, info.st_mtime_ns))  # the source's times
        else:
            raise Unsupported(f"{src} is not a file, directory or symlink")


def _syslog(messages: list[str]) -> None:
    import syslog

    syslog.openlog("metaboot", 0, syslog.LOG_AUTHPRIV)
    for message in messages:
        syslog.syslog(syslog.LOG_INFO, message)
    syslog.closelog()
