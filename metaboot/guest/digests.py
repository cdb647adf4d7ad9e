"""SHA-256 for the agent's own bookkeeping (the network manifest, the parsed-config cache).

From CPython's own small module when it has one: ``hashlib`` first loads OpenSSL (~2.5 ms of
a boot) for digests of a few hundred bytes. Same digest either way.
"""

from __future__ import annotations

from metaboot.imports import import_module

TYPE_CHECKING = False  # mypy takes it as true; at run time typing is not imported
if TYPE_CHECKING:
    from typing import Any

_constructor: Any = None


def sha256_hex(data: bytes) -> str:
    global _constructor
    if _constructor is None:
        _constructor = _sha256()
    hexdigest: str = _constructor(data).hexdigest()
    return hexdigest


def _sha256() -> Any:
    for name in ("_sha256", "_sha2"):  # 3.11 ; 3.12 and later
        try:
            return import_module(name).sha256
        except (ImportError, AttributeError):
            continue
    import hashlib

    return hashlib.sha256
