"""Typed reads of cloud-config values, with errors that name the key and what was expected.

cloud-init's JSON schema describes these keys; the checks here are what the modules rely on, so
a wrong type fails the one module that reads it with a message, never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping

from metaboot.errors import ConfigError

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any


def _type_name(value: object) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def get_bool(cfg: Mapping[str, Any], key: str, default: bool) -> bool:
    value = cfg.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {_type_name(value)} ({value!r})")
    return value


def get_str(cfg: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    value = cfg.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {_type_name(value)} ({value!r})")
    return value


def get_str_list(cfg: Mapping[str, Any], key: str, default: list[str] | None = None) -> list[str]:
    """A list of strings; a single string counts as a one-item list."""
    value = cfg.get(key)
    if value is None:
        return list(default or [])
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
    return list(value)


def get_mapping(cfg: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = cfg.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a mapping, got {_type_name(value)}")
    return value


def unknown_keys(section: str, given: Mapping[str, Any], known: set[str]) -> list[str]:
    """Warnings for keys of ``given`` this agent does not know (reported, never fatal)."""
    return [f"{section}: unknown key {key!r} ignored" for key in given if key not in known]
