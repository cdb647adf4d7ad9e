"""Static and dynamic vendor data: nova's fields, timeouts, failures as {}, per-instance cache,
single-flight, and a slow target never holding up other instances."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from metaboot.registry import Registry
from metaboot.service.config import DynamicTarget
from tests.service.harness import Running, instance

V2 = "/openstack/latest/vendor_data2.json"


class Target:
    """A DynamicJSON target on loopback that records what it was sent."""

    def __init__(self, answer: bytes = b'{"ok": true}', delay: float = 0.0, status: int = 200):
        self.answer = answer
        self.delay = delay
        self.status = status
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                target.bodies.append(json.loads(self.rfile.read(length)))
                target.headers.append(dict(self.headers))
                time.sleep(target.delay)
                try:
                    self.send_response(target.status)
                    self.send_header("Content-Length", str(len(target.answer)))
                    self.end_headers()
                    self.wfile.write(target.answer)
                except OSError:
                    pass  # the service gave up waiting (the read-timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/vendor"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def targets() -> Iterator[Callable[..., Target]]:
    made: list[Target] = []

    def make(**kwargs: Any) -> Target:
        made.append(Target(**kwargs))
        return made[-1]

    yield make
    for target in made:
        target.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_static_and_dynamic_vendor_data(
    registry: Registry,
    db_url: str,
    start_service: Callable[..., Running],
    targets: Callable[..., Target],
    caplog: pytest.LogCaptureFixture,
) -> None:
    me = instance(
        ips=("127.0.0.1",),
        image_id="img-1",
        meta={"role": "db"},
        user_data="#!/bin/sh\necho hi\n",
        boot_roles=["member", "reader"],
    )
    registry.add(me)
    good = targets(answer=b'{"join": {"realm": "EXAMPLE"}}')
    bad_json = targets(answer=b"<html>not json</html>")
    down = f"http://127.0.0.1:{_closed_port()}/"
    svc = start_service(
        db_url,
        static_vendor_data={"motd": "hello"},
        dynamic_targets=(
            DynamicTarget("novajoin", good.url),
            DynamicTarget("broken", bad_json.url),
            DynamicTarget("down", down),
        ),
        vendor_connect_timeout=2.0,
        vendor_read_timeout=2.0,
    )
    assert json.loads(svc.get("/openstack/latest/vendor_data.json")[1]) == {"motd": "hello"}
    with caplog.at_level(logging.WARNING, logger="metaboot.service.vendordata"):
        status, body = svc.get(V2)
    assert status == 200
    assert json.loads(body) == {
        "static": {"motd": "hello"},
        "novajoin": {"join": {"realm": "EXAMPLE"}},
        "broken": {},
        "down": {},
    }
    failures = [r.getMessage() for r in caplog.records]
    assert any("broken" in m for m in failures) and any("down" in m for m in failures)
    # nova's request fields
    sent = good.bodies[0]
    assert sent == {
        "project-id": me.project_id,
        "instance-id": me.uuid,
        "image-id": "img-1",
        "user-data": base64.b64encode(b"#!/bin/sh\necho hi\n").decode(),
        "hostname": me.hostname,
        "metadata": {"role": "db"},
        "boot-roles": "member,reader",
    }
    assert good.headers[0]["Content-Type"] == "application/json"
    # cached per instance: a second read does not call the targets again
    assert json.loads(svc.get(V2)[1])["novajoin"] == {"join": {"realm": "EXAMPLE"}}
    assert len(good.bodies) == 1
    # older versions have no vendor_data2.json
    assert svc.get("/openstack/2016-06-30/vendor_data2.json")[0] == 404


def test_cache_expiry_and_invalidation(
    registry: Registry,
    db_url: str,
    start_service: Callable[..., Running],
    targets: Callable[..., Target],
) -> None:
    me = instance(ips=("127.0.0.1",))
    registry.add(me)
    target = targets()
    svc = start_service(
        db_url, dynamic_targets=(DynamicTarget("t", target.url),), vendor_cache_seconds=0.5
    )
    svc.get(V2)
    svc.get(V2)
    assert len(target.bodies) == 1
    time.sleep(0.6)
    svc.get(V2)
    assert len(target.bodies) == 2
    # an admin change drops the cached answer for that instance
    svc.service.registry.update(instance(me.uuid, ips=("127.0.0.1",), meta={"new": "x"}))
    svc.get(V2)
    assert len(target.bodies) == 3 and target.bodies[-1]["metadata"] == {"new": "x"}


def test_single_flight_and_slow_target_blocks_no_one_else(
    registry: Registry,
    db_url: str,
    start_service: Callable[..., Running],
    targets: Callable[..., Target],
) -> None:
    slow_vm = instance(ips=("127.0.0.2",))
    other_vm = instance(ips=("127.0.0.3",))
    registry.add(slow_vm)
    registry.add(other_vm)
    target = targets(delay=1.5)
    svc = start_service(
        db_url, dynamic_targets=(DynamicTarget("slow", target.url),), vendor_read_timeout=5.0
    )
    finished: dict[str, float] = {}

    def slow_read(i: int) -> int:
        status = svc.get(V2, source="127.0.0.2")[0]
        finished[f"slow-{i}"] = time.monotonic()
        return status

    with ThreadPoolExecutor(6) as pool:
        slow = [pool.submit(slow_read, i) for i in range(5)]
        time.sleep(0.3)  # the five are waiting on the one fetch
        status, body = svc.get("/openstack/latest/meta_data.json", source="127.0.0.3")
        other_done = time.monotonic()
        # the slow VM's other paths are not held up either
        assert svc.get("/latest/meta-data/", source="127.0.0.2")[0] == 200
        assert [f.result() for f in slow] == [200] * 5
    assert status == 200 and json.loads(body)["uuid"] == other_vm.uuid
    assert other_done < min(finished.values())  # answered while the fetch was still running
    assert len(target.bodies) == 1  # five concurrent readers, one fetch


def test_read_timeout_gives_empty_answer(
    registry: Registry,
    db_url: str,
    start_service: Callable[..., Running],
    targets: Callable[..., Target],
) -> None:
    registry.add(instance(ips=("127.0.0.1",)))
    target = targets(delay=3.0)
    svc = start_service(
        db_url, dynamic_targets=(DynamicTarget("late", target.url),), vendor_read_timeout=0.5
    )
    status, body = svc.get(V2)
    assert status == 200 and json.loads(body)["late"] == {}
