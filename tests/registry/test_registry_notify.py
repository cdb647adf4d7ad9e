"""Change notification: a commit by any process reaches every watcher within moments."""

from __future__ import annotations

import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from metaboot.registry import Registry
from tests.registry.specs import instance, spec

DEADLINE = 15.0  # generous: the machine is shared; the figures are printed, not asserted


class Events:
    """Collects callbacks with their arrival time."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[str | None, float]] = queue.Queue()

    def __call__(self, uuid: str | None) -> None:
        self.queue.put((uuid, time.time()))

    def next(self, timeout: float = DEADLINE) -> tuple[str | None, float]:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no change notification within {timeout} s")

    def drain(self, wait: float = 0.0) -> list[str | None]:
        time.sleep(wait)
        out = []
        while not self.queue.empty():
            out.append(self.queue.get()[0])
        return out


_WRITER = """
import json, sys, time
from metaboot.metadata.instance import parse_spec
from metaboot.registry import Registry
reg = Registry.open(sys.argv[1])
print("ready", flush=True)
for line in sys.stdin:
    op, arg = json.loads(line)
    if op == "add":
        reg.add(parse_spec(arg))
    elif op == "update":
        reg.update(parse_spec(arg))
    elif op == "password":
        reg.password_set_once(arg, "secret")
    elif op == "clear":
        reg.password_clear(arg)
    elif op == "delete":
        reg.delete(arg)
    elif op == "router":
        reg.add_router(arg, ["net-x"])
    print(repr(time.time()), flush=True)
reg.close()
"""


@pytest.fixture
def writer(db_url: str, registry: Registry) -> Iterator[Any]:
    """A separate process that performs one registry write per command and says when it
    committed. (``registry`` first, so the schema exists before the child opens it.)"""
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, db_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "ready"

    def write(op: str, arg: Any) -> float:
        import json

        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps([op, arg]) + "\n")
        proc.stdin.flush()
        return float(proc.stdout.readline())

    try:
        yield write
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_writes_by_another_process_reach_the_watcher(
    registry: Registry, writer: Any, db_url: str
) -> None:
    events = Events()
    data = spec("remote", ports=[("net-a", "10.0.0.5")])
    uuid = data["uuid"]
    latencies = []
    with registry.watch(events):
        for op, arg, expect in [
            ("add", data, uuid),
            ("update", {**data, "name": "renamed"}, uuid),
            ("password", uuid, uuid),
            ("clear", uuid, uuid),
            ("router", "r-1", None),
            ("delete", uuid, uuid),
        ]:
            committed = writer(op, arg)
            got, arrived = events.next()
            assert got == expect, op
            latencies.append(arrived - committed)
        assert events.drain(wait=0.3) == []  # one callback per write, no echoes
    backend = db_url.split(":", 1)[0]
    print(
        f"\n{backend}: cross-process notification latency over {len(latencies)} writes: "
        f"median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )


def test_every_watching_process_hears_a_write(registry: Registry, db_url: str) -> None:
    watcher = """
import sys, threading
from metaboot.registry import Registry
reg = Registry.open(sys.argv[1])
got = threading.Event()
seen = []
def cb(u):
    seen.append(u); got.set()
w = reg.watch(cb)
print("watching", flush=True)
got.wait(30)
print(seen[0] if seen else "nothing", flush=True)
w.close(); reg.close()
"""
    procs = [
        subprocess.Popen([sys.executable, "-c", watcher, db_url], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "watching"
        inst = instance("broadcast")
        registry.add(inst)
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            assert out.strip() == inst.uuid
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_own_writes_are_reported_before_the_call_returns(registry: Registry) -> None:
    events = Events()
    inst = instance("local")
    with registry.watch(events):
        registry.add(inst)
        assert events.drain() == [inst.uuid]  # synchronously, no waiting
        registry.password_set_once(inst.uuid, "pw")
        registry.password_set_once(inst.uuid, "refused")  # no write, no event
        registry.add_router("r-1", ["net-a"])
        registry.add_router("r-1", ["net-a"])  # nothing new, no event
        assert events.drain() == [inst.uuid, None]
        # And they do not come back a second time through the database.
        assert events.drain(wait=0.5) == []


def test_a_second_registry_in_the_same_process_is_heard(registry: Registry, db_url: str) -> None:
    events = Events()
    inst = instance("other-handle")
    with registry.watch(events), Registry.open(db_url) as other:
        other.add(inst)
        assert events.next()[0] == inst.uuid


def test_closed_watches_stop_and_failing_callbacks_do_not_stop_others(
    registry: Registry, db_url: str
) -> None:
    events, closed = Events(), Events()

    def broken(uuid: str | None) -> None:
        raise RuntimeError("callback bug")

    threads_before = threading.active_count()
    w_broken = registry.watch(broken)
    w_events = registry.watch(events)
    w_closed = registry.watch(closed)
    w_closed.close()
    with Registry.open(db_url) as other:
        inst = instance("x")
        other.add(inst)
        assert events.next()[0] == inst.uuid
    assert closed.drain() == []
    w_broken.close()
    w_events.close()
    w_events.close()  # closing twice is harmless
    assert threading.active_count() == threads_before  # the watcher thread has stopped


@pytest.mark.postgres
def test_postgres_listener_reconnects_and_says_anything_may_have_changed(
    pg_database: str,
) -> None:
    import psycopg

    from tests.databases import _pg_schema_url

    urls = _pg_schema_url(pg_database)
    url = next(urls)
    try:
        with Registry.open(url) as reg, Registry.open(url) as other:
            events = Events()
            with reg.watch(events):
                with psycopg.connect(pg_database, autocommit=True) as admin:
                    killed = admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
                        " AND datname = current_database()"
                    ).fetchall()
                assert killed
                assert events.next()[0] is None  # back, and unsure what it missed
                inst = instance("after-reconnect")
                other.add(inst)
                assert events.next()[0] == inst.uuid
    finally:
        next(urls, None)


def test_sqlite_watcher_that_lost_track_says_anything_may_have_changed(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with Registry.open(url) as reg:
        events = Events()
        with reg.watch(events):
            with reg.engine.begin() as conn:
                # What pruning looks like to a watcher that slept through many writes: the
                # rows after the last one it saw are gone.
                for _ in range(3):
                    conn.exec_driver_sql(
                        "INSERT INTO changes (instance_uuid, origin) VALUES ('u', 'o')"
                    )
                conn.exec_driver_sql(
                    "DELETE FROM changes WHERE seq < (SELECT max(seq) FROM changes)"
                )
            assert events.next()[0] is None
