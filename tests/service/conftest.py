"""Fixtures for the service tests: a registry on SQLite or PostgreSQL, and the service running
in-process (its own uvloop loop in a thread) on loopback port 0 and a UNIX socket, so tests can
talk HTTP to it and still look inside (query counters, the cache).

PostgreSQL: the machine's server at 127.0.0.1:5432 (trust auth, database ``test``) or
``$METABOOT_TEST_PG``; one throwaway database per session, one random schema per test.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from metaboot.registry import Registry
from metaboot.service.config import Endpoint, ServiceConfig
from metaboot.service.server import Service, bind_endpoint, new_loop
from tests.databases import db_url, pg_database
from tests.service.harness import Running

__all__ = ["db_url", "pg_database"]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture
def sqlite_registry(sqlite_url: str) -> Iterator[Registry]:
    """For tests of the HTTP layer, where the database does not matter."""
    reg = Registry.open(sqlite_url)
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture
def registry(db_url: str) -> Iterator[Registry]:
    """The admin's handle on the registry (the service opens its own, as another process would)."""
    reg = Registry.open(db_url)
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """``start_service(db_url, **config)`` → a running service; stopped at teardown."""
    started: list[tuple[Running, Registry]] = []

    def start(
        db: str, *, unix: bool = True, v6: bool = False, admin: bool = False, **overrides: Any
    ) -> Running:
        config = replace(ServiceConfig(rate_limit_requests=0), **overrides)
        data = bind_endpoint(Endpoint("127.0.0.1", 0), 1)
        port = data[0].getsockname()[1]
        unix_path = None
        if unix:
            unix_path = str(tmp_path / f"md-{secrets.token_hex(3)}.sock")
            data += bind_endpoint(Endpoint(path=unix_path), 1)
        v6_port = None
        if v6:
            six = bind_endpoint(Endpoint("::1", 0), 1)
            v6_port = six[0].getsockname()[1]
            data += six
        admin_sockets = bind_endpoint(Endpoint("127.0.0.1", 0), 1) if admin else []
        registry = Registry.open(db)
        service = Service(config, registry, secrets.token_bytes(32), data, admin_sockets)
        loop = new_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(service.start())
            except BaseException as err:
                failure.append(err)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=run, name="metaboot-service", daemon=True)
        thread.start()
        ready.wait(30)
        if failure:
            registry.close()
            raise failure[0]
        admin_port = admin_sockets[0].getsockname()[1] if admin_sockets else None
        running = Running(
            service,
            f"http://127.0.0.1:{port}",
            "127.0.0.1",
            port,
            unix_path,
            v6_port,
            loop,
            thread,
            admin_port,
        )
        started.append((running, registry))
        return running

    yield start
    for running, registry in started:
        fut = asyncio.run_coroutine_threadsafe(running.service.close(), running.loop)
        try:
            fut.result(10)
        finally:
            running.loop.call_soon_threadsafe(running.loop.stop)
            running.thread.join(10)
            running.loop.close()
            registry.close()
