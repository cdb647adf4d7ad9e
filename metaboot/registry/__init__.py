"""Instance storage for the metadata service: SQLite by default, PostgreSQL for several nodes.

``Registry.open(url)`` migrates the database and returns a thread-safe handle; see ``store``.
"""

from metaboot.registry.paths import default_db_url
from metaboot.registry.store import (
    PASSWORD_MAX_BYTES,
    GenerationMismatch,
    Record,
    Registry,
    Watch,
    Written,
)

__all__ = [
    "PASSWORD_MAX_BYTES",
    "GenerationMismatch",
    "Record",
    "Registry",
    "Watch",
    "Written",
    "default_db_url",
]
