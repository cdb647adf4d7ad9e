"""The password endpoint (nova's rules, set-once atomic in the database) and the cache (hits do
no query; admin changes are seen at once)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import event

from metaboot.registry import Registry
from tests.service.harness import Running, instance

PATH = "/openstack/latest/password"


def test_password_endpoint(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    me = instance(ips=("127.0.0.2",))
    registry.add(me)
    svc = start_service(db_url)
    src = {"source": "127.0.0.2"}
    assert svc.get(PATH, **src) == (200, b"")  # unset: empty 200
    assert svc.request("POST", PATH, body=b"x" * 1021, **src)[0] == 400
    assert svc.request("PUT", PATH, body=b"x", **src)[0] == 400
    assert svc.request("DELETE", PATH, **src)[0] == 400
    # versions before 2013-04-04 have no password endpoint
    assert svc.get("/openstack/2012-08-10/password", **src)[0] == 404
    secret = b"c2VjcmV0LWVuY3J5cHRlZA==" * 40 + b"1234567890"  # 970 bytes
    assert svc.request("POST", PATH, body=secret, **src)[0] == 200
    assert svc.get(PATH, **src) == (200, secret)
    assert svc.get("/openstack/2013-04-04/password", **src) == (200, secret)
    assert svc.request("POST", PATH, body=b"second", **src)[0] == 409
    assert svc.get(PATH, **src) == (200, secret)
    # the admin side sees it and can clear it; the guest may then post again
    assert registry.password_get(me.uuid) == secret.decode()
    registry.password_clear(me.uuid)
    assert svc.get(PATH, **src) == (200, b"")
    assert svc.request("POST", PATH, body=b"third", **src)[0] == 200


def test_password_size_is_checked_on_the_body_too(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    """A chunked body has no Content-Length: the body itself is measured."""
    registry.add(instance(ips=("127.0.0.1",)))
    svc = start_service(db_url)
    body = b"y" * 1500
    raw = (
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    with socket.create_connection((svc.host, svc.port), timeout=10) as sock:
        sock.sendall(raw)
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert svc.get(PATH) == (200, b"")


def test_concurrent_posts_store_exactly_one(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    me = instance(ips=("127.0.0.1",))
    registry.add(me)
    svc = start_service(db_url)
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda i: svc.request("POST", PATH, body=f"pw-{i}".encode())[0], range(16))
        )
    assert sorted(results) == [200] + [409] * 15
    winner = svc.get(PATH)[1]
    assert winner.startswith(b"pw-") and registry.password_get(me.uuid) == winner.decode()


def _count_queries(registry: Registry) -> list[str]:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(registry.engine, "before_cursor_execute", record)
    return statements


def test_cache_hits_make_no_database_query(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    me = instance(ips=("127.0.0.1",))
    registry.add(me)
    svc = start_service(db_url)
    statements = _count_queries(svc.service.registry)
    crawl = [
        "/openstack",
        "/openstack/latest/meta_data.json",
        "/openstack/latest/user_data",
        "/openstack/latest/network_data.json",
        "/openstack/latest/vendor_data.json",
        "/2009-04-04/meta-data/",
        "/2009-04-04/meta-data/instance-id",
        "/latest/user-data",
    ]
    for path in crawl:  # first pass renders; the instance was loaded at start
        assert svc.get(path)[0] == 200, path
    assert svc.service.cache is not None
    before = svc.call(lambda: svc.service.cache.queries)  # type: ignore[union-attr]
    assert statements == []  # even the first pass: everything was in memory
    for _ in range(20):
        for path in crawl:
            assert svc.get(path)[0] == 200
    assert statements == []
    assert svc.call(lambda: svc.service.cache.queries) == before  # type: ignore[union-attr]


def test_admin_changes_are_seen_at_once(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    """The admin writes through its own registry handle, as another process or node would; the
    service's watcher drops and re-reads only that instance."""
    me = instance(ips=("127.0.0.1",), meta={"v": "1"})
    registry.add(me)
    svc = start_service(db_url)
    assert json.loads(svc.get("/openstack/latest/meta_data.json")[1])["meta"] == {"v": "1"}
    statements = _count_queries(svc.service.registry)

    changed = instance(me.uuid, ips=("127.0.0.1",), meta={"v": "2"})
    registry.update(changed)
    deadline = time.monotonic() + 10
    seen = None
    while time.monotonic() < deadline:
        seen = json.loads(svc.get("/openstack/latest/meta_data.json")[1])["meta"]
        if seen == {"v": "2"}:
            break
        time.sleep(0.01)
    assert seen == {"v": "2"}
    assert 1 <= len(statements) <= 3  # one re-read of the changed instance
    # once seen, never the old data again
    for _ in range(20):
        assert json.loads(svc.get("/openstack/latest/meta_data.json")[1])["meta"] == {"v": "2"}

    # a moved address: the index follows
    moved = instance(me.uuid, ips=("127.0.0.4",), meta={"v": "3"})
    registry.update(moved)
    deadline = time.monotonic() + 10
    while (
        time.monotonic() < deadline and svc.get("/latest/meta-data/", source="127.0.0.4")[0] != 200
    ):
        time.sleep(0.01)
    assert svc.get("/latest/meta-data/", source="127.0.0.4")[0] == 200
    assert svc.get("/latest/meta-data/", source="127.0.0.1")[0] == 404
    # a deleted instance
    registry.delete(me.uuid)
    deadline = time.monotonic() + 10
    while (
        time.monotonic() < deadline and svc.get("/latest/meta-data/", source="127.0.0.4")[0] != 404
    ):
        time.sleep(0.01)
    assert svc.get("/latest/meta-data/", source="127.0.0.4")[0] == 404


def test_writes_through_the_services_own_registry_are_seen_immediately(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    """Through the same handle (the admin API mounted in the service) the notification is
    synchronous: the very next request sees the change."""
    me = instance(ips=("127.0.0.1",), meta={"v": "1"})
    registry.add(me)
    svc = start_service(db_url)
    assert svc.get("/openstack/latest/meta_data.json")[0] == 200
    own = svc.service.registry
    for version in range(2, 6):
        own.update(instance(me.uuid, ips=("127.0.0.1",), meta={"v": str(version)}))
        meta = json.loads(svc.get("/openstack/latest/meta_data.json")[1])["meta"]
        assert meta == {"v": str(version)}


def test_answers_name_the_instance_they_were_given_for(
    sqlite_registry: Registry, sqlite_url: str, start_service: Callable[..., Running]
) -> None:
    """A proxy logs whose request it relayed from X-Metaboot-Instance-ID; strangers get none."""
    me = instance(ips=("127.0.0.3",))
    sqlite_registry.add(me)
    svc = start_service(sqlite_url)
    src = {"source": "127.0.0.3"}
    for method, path, expected in [
        ("GET", "/openstack/latest/meta_data.json", 200),  # seeded: rendered per request
        ("GET", "/latest/meta-data/instance-id", 200),  # memoised response
        ("GET", "/latest/meta-data/nothing-here", 404),
        ("POST", "/latest/meta-data/", 405),
        ("GET", PATH, 200),
    ]:
        status, headers, _ = svc.request(method, path, **src)
        assert status == expected, path
        assert headers.get("x-metaboot-instance-id") == me.uuid, path
    status, headers, _ = svc.request("GET", "/latest/meta-data/", source="127.0.0.4")
    assert status == 404 and "x-metaboot-instance-id" not in headers
