"""Checking merged cloud-config against what the modules accept.

Shared by the runner (which skips a module whose settings are invalid, and warns about keys no
module reads) and by ``metaboot schema`` (which reports the same findings before a boot).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from metaboot.guest.modules.base import Module
from metaboot.guest.schema import SchemaProblem, validate

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

# Keys the agent itself consumes from cloud-config; never "unknown".
AGENT_KEYS = frozenset(
    {
        "datasource_list",
        "datasource",
        "cloud_init_modules",
        "cloud_config_modules",
        "cloud_final_modules",
        "system_info",
        "network",
        "user_data",
        "vendor_data",
        "merge_how",
        "merge_type",
        "_doc",
    }
)
_SCHEMA_WORDS = {"type", "properties", "oneOf", "anyOf", "allOf", "items", "required", "enum"}


def object_schema(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """A module schema given either as an object schema or as ``{key: schema}``."""
    if not schema:
        return {}
    if _SCHEMA_WORDS & set(schema):
        return schema
    return {"type": "object", "properties": dict(schema)}


def schema_keys(schema: Mapping[str, Any]) -> list[str]:
    props = object_schema(schema).get("properties", {})
    return list(props) if isinstance(props, Mapping) else []


def known_keys(modules: Iterable[Module]) -> set[str]:
    known = set(AGENT_KEYS)
    for module in modules:
        known.update(module.keys)
        known.update(schema_keys(module.schema))
    return known


def unknown_keys(config: Mapping[str, Any], modules: Iterable[Module]) -> list[str]:
    known = known_keys(modules)
    return [key for key in config if key not in known]


def module_problems(module: Module, cfg: Mapping[str, Any]) -> list[SchemaProblem]:
    """What is wrong with the settings ``module`` reads (only keys present are checked)."""
    schema = object_schema(module.schema)
    if not schema:
        return []
    relevant = {k: cfg[k] for k in schema_keys(schema) if k in cfg}
    return validate(relevant, schema)


Describe = Callable[[SchemaProblem], str]
