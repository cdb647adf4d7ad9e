"""users_groups: groups, then users, with cloud-init's keys and defaults.

As with cloud-init, a user that already exists is not re-created: it only gets
``hashed_passwd`` / ``plain_text_passwd``, ``lock_passwd``, ``sudo``, ``ssh_authorized_keys``
and ``ssh_redirect_user``. ``lock_passwd`` defaults to true. One user failing does not stop the
others; the module reports every failure at the end.
"""

from __future__ import annotations

from collections.abc import Mapping

from metaboot.errors import ConfigError, MetabootError
from metaboot.guest.modules import _users
from metaboot.guest.modules._schemas import top
from metaboot.guest.modules._ssh import disable_user_options
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage
from metaboot.guest.os import accounts, sshd, sudoers

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any


def _flag(config: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = config.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: expected true or false, got {value!r}")
    return value


def _text(config: Mapping[str, Any], key: str, where: str) -> str | None:
    value = config.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: expected a string, got {value!r}")
    return value


def create_groups(ctx: ModuleContext, acc: accounts.Accounts) -> list[str]:
    failures: list[str] = []
    for group, members in _users.normalize_groups(ctx.cfg.get("groups")).items():
        try:
            if acc.group_exists(group):
                ctx.report.changed(f"group {group} already exists")
            else:
                acc.add_group(group)
                ctx.report.changed(f"created group {group}")
            for member in members:
                if not acc.user_exists(member):
                    ctx.report.warn(f"groups.{group}: user {member} does not exist; not added")
                elif member not in acc.group_members(group):
                    acc.add_to_groups(member, [group])
                    ctx.report.changed(f"added {member} to group {group}")
        except MetabootError as err:
            failures.append(str(err))
    return failures


def _new_user(
    ctx: ModuleContext, acc: accounts.Accounts, name: str, config: Mapping[str, Any], where: str
) -> None:
    groups = _users.group_list(config.get("groups"), where)
    primary = _text(config, "primary_group", where)
    if _flag(config, "create_groups", True, where):
        for group in groups:
            if not acc.group_exists(group):
                acc.add_group(group)
                ctx.report.changed(f"created group {group} for {name}")
    else:
        missing = [g for g in groups if not acc.group_exists(g)]
        if missing:
            ctx.report.warn(
                f"{where}: groups {', '.join(missing)} do not exist (create_groups false)"
            )
            groups = [g for g in groups if g not in missing]
    no_user_group = _flag(config, "no_user_group", False, where)
    if primary and not acc.group_exists(primary):
        if primary == name and not no_user_group:
            primary = None  # useradd creates the user's own group itself
        else:
            acc.add_group(primary)
            ctx.report.changed(f"created group {primary} for {name}")
    uid = config.get("uid")
    if uid is not None and not (isinstance(uid, int) or (isinstance(uid, str) and uid.isdigit())):
        raise ConfigError(f"{where}.uid: expected a number, got {uid!r}")
    if isinstance(uid, bool):
        raise ConfigError(f"{where}.uid: expected a number, got {uid!r}")
    acc.add_user(
        accounts.NewUser(
            name=name,
            gecos=_text(config, "gecos", where),
            homedir=_text(config, "homedir", where),
            primary_group=primary,
            groups=tuple(groups),
            login_shell=_text(config, "shell", where),
            uid=int(uid) if uid is not None else None,
            system=_flag(config, "system", False, where),
            no_user_group=no_user_group,
            no_create_home=_flag(config, "no_create_home", False, where),
            no_log_init=_flag(config, "no_log_init", False, where),
            expiredate=_text(config, "expiredate", where),
            inactive=str(config["inactive"]) if config.get("inactive") is not None else None,
        ),
    )
    ctx.report.changed(f"created user {name}" + (f" in {', '.join(groups)}" if groups else ""))
    passwd = _text(config, "passwd", where)
    if passwd:
        from metaboot.guest.os.passwords import looks_hashed  # only for a user with a password

        if not looks_hashed(passwd):
            raise ConfigError(
                f"{where}.passwd: expected a crypt hash (e.g. from 'mkpasswd -m sha-512'); "
                "use plain_text_passwd for a clear-text password"
            )
        acc.set_password_hashes([(name, passwd)])


def _sudo_rules(value: Any, where: str) -> list[str]:
    if value is None or value is False:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(r, str) for r in value):
        return list(value)
    raise ConfigError(f"{where}.sudo: expected a sudo rule or a list of rules, got {value!r}")


def configure_account(
    ctx: ModuleContext, acc: accounts.Accounts, entry: _users.UserEntry, where: str
) -> None:
    """The account itself: created if new, its password set and locked as configured."""
    name = accounts.check_name(entry.name)
    config = entry.config
    if acc.user_exists(name):
        ctx.report.changed(f"user {name} already exists; not re-created")
    else:
        _new_user(ctx, acc, name, config, where)
    hashed = _text(config, "hashed_passwd", where)
    plain = _text(config, "plain_text_passwd", where)
    if hashed:
        acc.set_password_hashes([(name, hashed)])
        ctx.report.changed(f"set the password of {name} (hash)")
    if plain:
        from metaboot.guest.os.passwords import hash_password  # only for a clear-text one

        acc.set_password_hashes([(name, hash_password(plain))])
        ctx.report.changed(f"set the password of {name}")
    if _flag(config, "lock_passwd", True, where):
        # A new account without a password is already locked ("!"): nothing to change.
        current = acc.shadow_password(name) or ""
        if not current.startswith("!"):
            acc.lock_password(name)
        ctx.report.changed(f"password login disabled for {name}")


def configure_access(ctx: ModuleContext, entry: _users.UserEntry, where: str) -> None:
    """sudo rules and SSH keys, once the account is on disk (they are owned by it)."""
    name = entry.name
    config = entry.config
    if config.get("sudo") is False:
        ctx.report.warn(f"{where}.sudo: false is deprecated; leave sudo out or use null")
    rules = _sudo_rules(config.get("sudo"), where)
    if rules:
        for warning in sudoers.write_rules(ctx.root, name, rules):
            ctx.report.warn(warning)
        ctx.report.changed(f"sudo rules for {name} in {sudoers.RULES_FILE}")
    keys = config.get("ssh_authorized_keys")
    redirect = _flag(config, "ssh_redirect_user", False, where)
    if keys is not None and redirect:
        raise ConfigError(f"{where}: ssh_authorized_keys and ssh_redirect_user exclude each other")
    if keys is not None:
        if isinstance(keys, str):
            keys = [keys]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ConfigError(f"{where}.ssh_authorized_keys: expected a list of keys")
        _install(ctx, name, keys, None)
    if redirect:
        if not ctx.instance.public_keys:
            ctx.report.warn(f"{where}.ssh_redirect_user: the instance has no public keys")
        else:
            target = _users.default_user_name(ctx.cfg) or "NONE"
            _install(
                ctx, name, ctx.instance.public_keys, disable_user_options(ctx.cfg, target, name)
            )


def _install(ctx: ModuleContext, name: str, keys: list[str], options: str | None) -> None:
    result = sshd.install_keys(ctx.root, name, keys, options)
    for line in result.rejected:
        ctx.report.warn(f"{name}: not an SSH public key, ignored: {line!r}…")
    ctx.report.changed(f"{result.added} key(s) added to {result.path}")


def handle(ctx: ModuleContext) -> None:
    # Every group and account first, written in one go; then what needs the accounts on disk.
    done: list[tuple[_users.UserEntry, str]] = []
    with accounts.batch(ctx.root) as acc:
        failures = create_groups(ctx, acc)
        for index, entry in enumerate(_users.normalize_users(ctx.cfg, ctx.report.warn)):
            where = f"users[{index}] ({entry.name})"
            try:
                configure_account(ctx, acc, entry, where)
                done.append((entry, where))
            except (MetabootError, KeyError, OSError) as err:
                failures.append(str(err))
    for entry, where in done:
        try:
            configure_access(ctx, entry, where)
        except (MetabootError, KeyError, OSError) as err:
            failures.append(str(err))
    if failures:
        raise ConfigError(f"{len(failures)} user/group change(s) failed: " + "; ".join(failures))


MODULE = Module(
    name="users_groups",
    stage=Stage.NETWORK,
    frequency=Frequency.INSTANCE,
    keys=(),
    handle=handle,
    schema=top(_users.SCHEMA),
)
