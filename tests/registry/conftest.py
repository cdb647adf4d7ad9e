from __future__ import annotations

from collections.abc import Iterator

import pytest

from metaboot.registry import Registry
from tests.databases import db_url, pg_database

__all__ = ["db_url", "pg_database", "registry"]


@pytest.fixture
def registry(db_url: str) -> Iterator[Registry]:
    reg = Registry.open(db_url)
    try:
        yield reg
    finally:
        reg.close()
