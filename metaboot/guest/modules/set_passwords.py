"""set_passwords: ``ssh_pwauth``, ``chpasswd`` (``users`` and the older ``list``), ``password``,
and ``publish_password`` (metaboot's: a generated password sent back to the platform encrypted).

Clear-text passwords are hashed here (SHA-512 crypt) and set with ``chpasswd -e``; RANDOM ones
are shown once on the console and never logged or reported. ``expire`` (true) makes the users
change them at first login.
"""

from __future__ import annotations

from collections.abc import Mapping

from metaboot.errors import ConfigError, MetabootError
from metaboot.guest.modules._cfg import get_bool, get_mapping, get_str, unknown_keys
from metaboot.guest.modules._schemas import top
from metaboot.guest.modules._users import default_user_name
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage
from metaboot.guest.os import accounts, sshd
from metaboot.guest.os.passwords import hash_password, looks_hashed, random_password
from metaboot.guest.records import dataclass, field

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any


@dataclass
class PasswordPlan:
    """Which password each user gets (pure result of reading the config)."""

    hashed: dict[str, str] = field(default_factory=dict)  # user -> crypt hash as given
    clear: dict[str, str] = field(default_factory=dict)  # user -> clear text (incl. random)
    random: list[str] = field(default_factory=list)  # users whose clear text was generated


def plan(cfg: Mapping[str, Any], warn: Any = lambda _m: None) -> PasswordPlan:
    """Read ``chpasswd`` and ``password`` the way cloud-init does."""
    result = PasswordPlan()
    chpasswd = get_mapping(cfg, "chpasswd")
    for message in unknown_keys("chpasswd", chpasswd, {"expire", "users", "list"}):
        warn(message)

    def add(user: str, password: str, kind: str, where: str) -> None:
        accounts.check_name(user)
        if kind == "RANDOM":
            result.clear[user] = random_password()
            result.random.append(user)
        elif kind == "text":
            if not password or "\n" in password or "\0" in password:
                raise ConfigError(f"{where}: a password must be one non-empty line of text")
            result.clear[user] = password
        elif kind == "hash":
            if not looks_hashed(password):
                raise ConfigError(f"{where}: type is hash but the password is not a crypt hash")
            result.hashed[user] = password
        else:
            raise ConfigError(f"{where}.type: expected hash, text or RANDOM, got {kind!r}")

    users = chpasswd.get("users")
    if users is not None:
        if not isinstance(users, list):
            raise ConfigError(f"chpasswd.users: expected a list, got {users!r}")
        for index, item in enumerate(users):
            where = f"chpasswd.users[{index}]"
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                raise ConfigError(f"{where}: expected a mapping with a name")
            for message in unknown_keys(where, item, {"name", "password", "type"}):
                warn(message)
            password = item.get("password")
            kind = item.get("type", "hash" if password is not None else "RANDOM")
            if kind != "RANDOM" and not isinstance(password, str):
                raise ConfigError(f"{where}.password: expected a string")
            add(item["name"], password or "", kind, where)
    entries = chpasswd.get("list")
    if entries:
        warn("chpasswd.list is deprecated; use chpasswd.users")
        if isinstance(entries, str):
            entries = entries.splitlines()
        if not isinstance(entries, list):
            raise ConfigError(f"chpasswd.list: expected a list of 'user:password', got {entries!r}")
        for index, line in enumerate(entries):
            where = f"chpasswd.list[{index}]"
            if not isinstance(line, str) or ":" not in line:
                raise ConfigError(f"{where}: expected 'user:password'")
            user, password = line.split(":", 1)
            if password in ("R", "RANDOM"):
                add(user, "", "RANDOM", where)
            else:
                add(user, password, "hash" if looks_hashed(password) else "text", where)
    password = get_str(cfg, "password")
    if password and not (users or entries):
        default = default_user_name(cfg)
        if default is None:
            warn("password: there is no default user to give it to")
        elif password in ("R", "RANDOM"):
            add(default, "", "RANDOM", "password")
        else:
            add(default, password, "hash" if looks_hashed(password) else "text", "password")
    return result


def apply_passwords(ctx: ModuleContext, wanted: PasswordPlan, expire: bool) -> list[str]:
    errors: list[str] = []
    with accounts.batch(ctx.root) as acc:
        missing = [u for u in {**wanted.hashed, **wanted.clear} if not acc.user_exists(u)]
        for user in missing:
            errors.append(f"user {user} does not exist; password not set")
        pairs = [(u, h) for u, h in wanted.hashed.items() if u not in missing]
        pairs += [(u, hash_password(p)) for u, p in wanted.clear.items() if u not in missing]
        if not pairs:
            return errors
        try:
            acc.set_password_hashes(pairs)
        except MetabootError as err:
            return [*errors, str(err)]
        ctx.report.changed(f"set the password of {', '.join(u for u, _ in pairs)}")
        if expire:
            for user, _ in pairs:
                try:
                    acc.expire_password(user)
                except MetabootError as err:
                    errors.append(str(err))
            users = ", ".join(u for u, _ in pairs)
            ctx.report.changed(f"passwords expire at first login for {users}")
    # Shown once the passwords are on disk.
    shown = [f"{u}:{wanted.clear[u]}" for u in wanted.random if u not in missing]
    if shown:
        ctx.console("Set the following 'random' passwords\n" + "\n".join(shown) + "\n")
        ctx.report.changed(f"random password(s) shown on the console for {len(shown)} user(s)")
    return errors


def apply_ssh_pwauth(ctx: ModuleContext) -> None:
    value = ctx.cfg.get("ssh_pwauth")
    if value is None:
        return
    if isinstance(value, str):
        ctx.report.warn("ssh_pwauth: a string value is deprecated; use true or false")
        lowered = value.strip().lower()
        value = {"yes": True, "true": True, "no": False, "false": False}.get(lowered, lowered)
    if value == "unchanged":
        return
    if not isinstance(value, bool):
        ctx.report.warn(f"ssh_pwauth: unrecognised value {value!r}; sshd left unchanged")
        return
    setting = "yes" if value else "no"
    if not ctx.root.exists(sshd.SSHD_CONFIG):
        # As cloud-init: no SSH server, nothing to configure (not an error of the user-data).
        ctx.report.warn(f"ssh_pwauth ignored: {sshd.SSHD_CONFIG} does not exist")
        return
    change = sshd.set_options(ctx.root, {"PasswordAuthentication": setting})
    if change.changed:
        ctx.report.changed(f"PasswordAuthentication {setting} in {change.path}")
        service = get_str(get_mapping(ctx.cfg, "system_info"), "ssh_svcname", "ssh") or "ssh"
        from metaboot.guest.os import services  # on use: most boots leave ssh_pwauth alone

        try:
            ctx.report.changed(services.reload_if_running(ctx.root, service))
        except MetabootError as err:
            ctx.report.warn(f"the new setting applies when sshd next starts: {err}")
    winner = sshd.effective(ctx.root, "PasswordAuthentication")
    if winner is not None and winner.value.lower() != setting:
        ctx.report.warn(
            f"ssh_pwauth: {winner.path} line {winner.lineno} sets PasswordAuthentication "
            f"{winner.value} and is read first, so it still applies"
        )


def publish_settings(cfg: Mapping[str, Any], warn: Any) -> tuple[bool, str | None]:
    value = cfg.get("publish_password", False)
    if isinstance(value, bool):
        return value, None
    if not isinstance(value, Mapping):
        raise ConfigError(f"publish_password: expected true, false or a mapping, got {value!r}")
    for message in unknown_keys("publish_password", value, {"enabled", "user"}):
        warn(message)
    return get_bool(value, "enabled", True), get_str(value, "user")


def publish_password(ctx: ModuleContext, wanted: PasswordPlan) -> None:
    """Give the user a random password and POST it, encrypted to the first SSH key, to the
    metadata service; the local password changes only once the platform has accepted it."""
    enabled, user = publish_settings(ctx.cfg, ctx.report.warn)
    if not enabled:
        return
    user = user or default_user_name(ctx.cfg)
    service = ctx.instance.service_url
    if user is None:
        raise ConfigError("publish_password: no user given and there is no default user")
    if not accounts.user_exists(ctx.root, user):
        raise ConfigError(f"publish_password: user {user} does not exist")
    if not service:
        ctx.report.warn(
            "publish_password: the instance data did not come from a metadata "
            "service, so there is nowhere to send a password; none set"
        )
        return
    if not ctx.instance.public_keys:
        ctx.report.warn("publish_password: the instance has no SSH key to encrypt with; none set")
        return
    # On use: a boot that publishes no password (most) need not load the HTTP POST or the
    # RSA encryption.
    from metaboot.guest.modules import _platform_password
    from metaboot.guest.os.keycrypt import encrypt_to_ssh_key

    if _platform_password.platform_holds_password(service):
        ctx.report.changed("publish_password: the platform already holds a password; none set")
        return
    password = wanted.clear[user] if user in wanted.random else random_password()
    ciphertext = encrypt_to_ssh_key(ctx.instance.public_keys[0], password)
    _platform_password.post_password(service, ciphertext)
    accounts.set_password_hashes(ctx.root, [(user, hash_password(password))])
    ctx.report.changed(f"set a random password for {user} and sent it, encrypted, to the platform")


def handle(ctx: ModuleContext) -> None:
    errors: list[str] = []
    wanted = PasswordPlan()
    try:
        wanted = plan(ctx.cfg, ctx.report.warn)
        expire = get_bool(get_mapping(ctx.cfg, "chpasswd"), "expire", True)
        errors += apply_passwords(ctx, wanted, expire)
    except MetabootError as err:
        errors.append(str(err))
    for step in (apply_ssh_pwauth, lambda c: publish_password(c, wanted)):
        try:
            step(ctx)
        except MetabootError as err:
            errors.append(str(err))
    if errors:
        raise ConfigError("; ".join(errors))


MODULE = Module(
    name="set_passwords",
    stage=Stage.NETWORK,
    frequency=Frequency.INSTANCE,
    keys=("ssh_pwauth", "password", "chpasswd", "publish_password"),
    handle=handle,
    schema=top(
        {
            "ssh_pwauth": {"oneOf": [{"type": "boolean"}, {"type": "string"}]},
            "password": {"type": "string"},
            "chpasswd": {
                "type": "object",
                "properties": {
                    "expire": {"type": "boolean"},
                    "users": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": {"type": "string"},
                                "type": {"enum": ["hash", "text", "RANDOM"]},
                                "password": {"type": "string"},
                            },
                        },
                    },
                    "list": {
                        "oneOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"type": "string"}},
                        ]
                    },
                },
            },
            "publish_password": {
                "oneOf": [
                    {"type": "boolean"},
                    {
                        "type": "object",
                        "properties": {"enabled": {"type": "boolean"}, "user": {"type": "string"}},
                    },
                ]
            },
        }
    ),
)
