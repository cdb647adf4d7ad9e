"""JSON-schema fragments shared by several modules (no ``$ref``: each fragment stands alone).

The fragments accept everything cloud-init's schema accepts for the same keys, and are looser in
one way on purpose: no ``additionalProperties: false``. An unknown key inside a mapping (a typo
in a ``write_files`` entry, say) is warned about by the module, which still does the rest, rather
than making the whole module invalid: unknown keys are never fatal.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

COMMAND_LIST: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {
        "oneOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}},
            {"type": "null"},
        ]
    },
}

WRITE_FILES: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["path"],
        "properties": {
            "path": {"type": "string"},
            "content": {"type": "string"},
            "owner": {"type": "string"},
            "permissions": {"type": "string"},
            "encoding": {
                "type": "string",
                "enum": [
                    "gz",
                    "gzip",
                    "gz+base64",
                    "gzip+base64",
                    "gz+b64",
                    "gzip+b64",
                    "b64",
                    "base64",
                    "text/plain",
                ],
            },
            "append": {"type": "boolean"},
            "defer": {"type": "boolean"},
        },
    },
}


# How user commands run on a root that is not the live system (see metaboot.guest.os.commands).
ROOT_COMMANDS: dict[str, Any] = {"root_commands": {"type": "string", "enum": ["chroot", "skip"]}}


def top(properties: dict[str, Any]) -> dict[str, Any]:
    """A module's fragment: the top-level cloud-config object restricted to its keys."""
    return {"type": "object", "properties": properties}
