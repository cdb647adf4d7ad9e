"""``users``, ``groups``, ``user`` and ``system_info.default_user`` in normal form (pure).

cloud-init accepts many shapes (comma strings, lists of strings, lists of mappings, a mapping
by name, ``default`` standing for the distribution's default user, hyphenated key spellings);
they all become one list of :class:`UserEntry` here, so the modules deal with one shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from metaboot.errors import ConfigError
from metaboot.guest.records import dataclass

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

USER_KEYS = frozenset(
    {
        "name",
        "gecos",
        "groups",
        "homedir",
        "primary_group",
        "no_user_group",
        "no_create_home",
        "no_log_init",
        "system",
        "shell",
        "uid",
        "expiredate",
        "inactive",
        "selinux_user",
        "lock_passwd",
        "passwd",
        "hashed_passwd",
        "plain_text_passwd",
        "sudo",
        "doas",
        "ssh_authorized_keys",
        "ssh_import_id",
        "ssh_redirect_user",
        "create_groups",
        "snapuser",
    }
)
UNSUPPORTED_USER_KEYS = frozenset({"selinux_user", "doas", "ssh_import_id", "snapuser"})

_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}, "minItems": 1}
# Every key cloud-init's schema allows for a user, so that user-data valid for cloud-init is never
# refused here as a whole; the keys metaboot does not implement are warned about when used.
_USER_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string"},
    "gecos": {"type": "string"},
    "groups": {"oneOf": [{"type": "string"}, _STRINGS, {"type": "object"}]},
    "homedir": {"type": "string"},
    "primary_group": {"type": "string"},
    "no_user_group": {"type": "boolean"},
    "no_create_home": {"type": "boolean"},
    "no_log_init": {"type": "boolean"},
    "system": {"type": "boolean"},
    "shell": {"type": "string"},
    "uid": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
    "expiredate": {"type": "string"},
    "inactive": {"type": "string"},
    "lock_passwd": {"type": "boolean"},
    "lock-passwd": {"type": "boolean"},
    "passwd": {"type": "string"},
    "hashed_passwd": {"type": "string"},
    "plain_text_passwd": {"type": "string"},
    "sudo": {"oneOf": [{"type": ["string", "null"]}, {"type": "boolean"}, _STRINGS]},
    "ssh_authorized_keys": _STRINGS,
    "ssh_redirect_user": {"type": "boolean"},
    "create_groups": {"type": "boolean"},
    "selinux_user": {"type": "string"},
    "snapuser": {"type": "string"},
    "ssh_import_id": _STRINGS,
    "doas": _STRINGS,
}
USER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": _USER_PROPERTIES,
}
SCHEMA: dict[str, Any] = {
    "users": {
        "type": ["string", "array", "object"],
        "minItems": 1,
        "items": {
            "oneOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}},
                USER_SCHEMA,
            ]
        },
    },
    "user": {"oneOf": [{"type": "string"}, USER_SCHEMA]},
    "groups": {
        "type": ["string", "object", "array"],
        "minItems": 1,
        "items": {"type": ["string", "object"]},
    },
    # The agent's own config (cloud.cfg's system_info); checked in code, key by key.
    "system_info": {"type": "object"},
}


@dataclass(frozen=True)
class UserEntry:
    name: str
    config: Mapping[str, Any]  # normalised keys (underscores), ``name`` included
    is_default: bool = False


Warn = Callable[[str], None]


def _clean_keys(config: Mapping[str, Any], where: str, warn: Warn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        norm = str(key).replace("-", "_")
        if norm != key:
            warn(f"{where}: '{key}' is deprecated; use '{norm}'")
        if norm == "default":
            continue
        if norm not in USER_KEYS:
            warn(f"{where}: unknown key {key!r} ignored")
            continue
        if norm in UNSUPPORTED_USER_KEYS:
            warn(f"{where}: {norm} is not supported by metaboot; ignored")
            continue
        out[norm] = value
    return out


def default_user_config(cfg: Mapping[str, Any], warn: Warn) -> dict[str, Any] | None:
    """``system_info.default_user`` overridden by the ``user`` key; None when it has no name."""
    system_info = cfg.get("system_info") or {}
    base = system_info.get("default_user") if isinstance(system_info, Mapping) else None
    config = (
        _clean_keys(base, "system_info.default_user", warn) if isinstance(base, Mapping) else {}
    )
    override = cfg.get("user")
    if isinstance(override, str):
        config["name"] = override
    elif isinstance(override, Mapping):
        config.update(_clean_keys(override, "user", warn))
    elif override is not None:
        raise ConfigError(f"user: expected a name or a mapping, got {override!r}")
    return config if isinstance(config.get("name"), str) and config["name"] else None


def _raw_entries(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, Mapping):
        entries: list[Any] = []
        for name, config in value.items():
            if name == "default":
                if config:
                    entries.append("default")
            elif isinstance(config, Mapping):
                entries.append({**config, "name": name})
            elif config:
                entries.append(str(name))
        return entries
    if isinstance(value, list):
        flat: list[Any] = []
        for item in value:
            if isinstance(item, list):
                flat += [str(x) for x in item]
            elif isinstance(item, str):
                flat += _raw_entries(item)
            else:
                flat.append(item)
        return flat
    raise ConfigError(f"users: expected a list of users, got {value!r}")


def normalize_users(cfg: Mapping[str, Any], warn: Warn) -> list[UserEntry]:
    """The users to configure, in order; ``users`` absent means ``[default]`` (cloud.cfg's)."""
    raw = _raw_entries(
        cfg.get("users", ["default"]) if cfg.get("users") is not None else ["default"]
    )
    if cfg.get("user") is not None and "default" not in raw:
        raw.append("default")
    default = None
    if "default" in raw or any(isinstance(e, Mapping) and e.get("name") == "default" for e in raw):
        default = default_user_config(cfg, warn)
        if default is None:
            warn("users: 'default' requested but system_info.default_user has no name; skipped")
    result: dict[str, UserEntry] = {}
    for index, item in enumerate(raw):
        where = f"users[{index}]"
        if item == "default" or (isinstance(item, Mapping) and item.get("name") == "default"):
            if default is None:
                continue
            config = dict(default)
            if isinstance(item, Mapping):
                config.update(
                    _clean_keys({k: v for k, v in item.items() if k != "name"}, where, warn)
                )
            entry = UserEntry(config["name"], config, True)
        elif isinstance(item, str):
            entry = UserEntry(item, {"name": item})
        elif isinstance(item, Mapping):
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{where}: every user needs a 'name'")
            entry = UserEntry(name, _clean_keys(item, where, warn))
        else:
            raise ConfigError(f"{where}: expected a name or a mapping, got {item!r}")
        previous = result.get(entry.name)
        if previous is not None:
            merged = {**previous.config, **entry.config}
            entry = UserEntry(entry.name, merged, previous.is_default or entry.is_default)
        result[entry.name] = entry
    return list(result.values())


def default_user_name(cfg: Mapping[str, Any]) -> str | None:
    """The default user's name when ``users`` includes it (else None: no default user)."""
    for entry in normalize_users(cfg, lambda _msg: None):
        if entry.is_default:
            return entry.name
    return None


def normalize_groups(value: Any) -> dict[str, list[str]]:
    """``groups`` as {group: [members]}, from a comma string, a list or a mapping."""
    groups: dict[str, list[str]] = {}

    def add(name: Any, members: Any) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"groups: invalid group name {name!r}")
        if members is None:
            member_list: list[str] = []
        elif isinstance(members, str):
            member_list = [m.strip() for m in members.split(",") if m.strip()]
        elif isinstance(members, list) and all(isinstance(m, str) for m in members):
            member_list = [m.strip() for m in members]
        else:
            raise ConfigError(f"groups.{name}: expected a user or a list of users, got {members!r}")
        groups.setdefault(name.strip(), [])
        groups[name.strip()] += [m for m in member_list if m not in groups[name.strip()]]

    if value is None:
        return groups
    if isinstance(value, str):
        for name in value.split(","):
            if name.strip():
                add(name, None)
    elif isinstance(value, Mapping):
        for name, members in value.items():
            add(name, members)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                add(item, None)
            elif isinstance(item, Mapping):
                for name, members in item.items():
                    add(name, members)
            else:
                raise ConfigError(f"groups: expected group names or mappings, got {item!r}")
    else:
        raise ConfigError(f"groups: expected a list of groups, got {value!r}")
    return groups


def group_list(value: Any, where: str) -> list[str]:
    """A user's ``groups``: comma string, list, or (deprecated) mapping of names."""
    if value is None:
        return []
    if isinstance(value, str):
        return [g.strip() for g in value.split(",") if g.strip()]
    if isinstance(value, list) and all(isinstance(g, str) for g in value):
        return [g.strip() for g in value if g.strip()]
    if isinstance(value, Mapping):
        return [str(g) for g in value]
    raise ConfigError(f"{where}.groups: expected a list of group names, got {value!r}")
