from __future__ import annotations

from collections.abc import Iterator

import pytest

from metaboot.admin.api import AdminApp
from metaboot.registry import Registry
from tests.admin.harness import TOKEN, Api, serve
from tests.databases import db_url, pg_database

__all__ = ["api", "app", "base_url", "db_url", "pg_database", "registry"]


@pytest.fixture
def registry(db_url: str) -> Iterator[Registry]:
    reg = Registry.open(db_url)
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture
def app(registry: Registry) -> AdminApp:
    return AdminApp(registry, TOKEN)


@pytest.fixture
def api(app: AdminApp) -> Api:
    return Api(app)


@pytest.fixture
def base_url(app: AdminApp) -> Iterator[str]:
    with serve(app) as url:
        yield url
