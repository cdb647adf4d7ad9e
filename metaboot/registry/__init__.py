"""Instance storage for the metadata service: SQLite by default, PostgreSQL for several nodes.

``Registry.open(url)`` migrates the database and returns a thread-safe handle; see ``store``.
Names are imported on first use, so that ``metaboot instance … --api URL`` (which lives in this
package) does not pay for SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metaboot.registry.paths import default_db_url
    from metaboot.registry.store import (
        PASSWORD_MAX_BYTES,
        GenerationMismatch,
        Record,
        Registry,
        Watch,
        Written,
    )

_WHERE = {
    "default_db_url": "metaboot.registry.paths",
    "PASSWORD_MAX_BYTES": "metaboot.registry.store",
    "GenerationMismatch": "metaboot.registry.store",
    "Record": "metaboot.registry.store",
    "Registry": "metaboot.registry.store",
    "Watch": "metaboot.registry.store",
    "Written": "metaboot.registry.store",
}

__all__ = [
    "PASSWORD_MAX_BYTES",
    "GenerationMismatch",
    "Record",
    "Registry",
    "Watch",
    "Written",
    "default_db_url",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
