"""Tell every process that caches instances that one has changed, within a fraction of a second.

The service keeps each instance's rendered documents in memory and answers from there without a
query, so it must learn about an admin change made by *any* process on *any* node:

- PostgreSQL: every write sends ``NOTIFY`` in its own transaction (delivered only if it commits);
  a dedicated connection in a background thread ``LISTEN``s, and after losing the connection it
  reconnects and reports ``None`` ("anything may have changed"), since notifications sent while
  it was away are gone.
- SQLite: every write appends its uuid to the ``changes`` table; a background thread asks
  ``PRAGMA data_version`` (a few microseconds: it moves when another connection commits) and
  reads only the new rows when it moves.

Writes made through the same ``Registry`` object are reported synchronously right after the
commit (so a process reads its own writes at once) and skipped when they come back through the
database, using the writer's ``origin`` tag.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

Callback = Callable[[str | None], None]
ANYTHING = "*"  # NOTIFY payload / change row meaning "anything may have changed"


class Closeable(Protocol):
    def close(self) -> None: ...


class Dispatcher:
    """The set of callbacks of one registry; a failing callback is logged and skipped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callback] = {}
        self._next = 0

    def add(self, callback: Callback) -> int:
        with self._lock:
            self._next += 1
            self._callbacks[self._next] = callback
            return self._next

    def remove(self, key: int) -> int:
        """Forget a callback; returns how many remain."""
        with self._lock:
            self._callbacks.pop(key, None)
            return len(self._callbacks)

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def fire(self, uuid: str | None) -> None:
        with self._lock:
            callbacks = list(self._callbacks.values())
        for callback in callbacks:
            try:
                callback(uuid)
            except Exception:
                log.exception("registry change callback %r failed", callback)


class _Thread:
    """A daemon thread with a stop event; subclasses implement ``run``."""

    name = "metaboot-registry-watch"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self.started = threading.Event()

    def start(self) -> None:
        self._thread.start()
        self.started.wait(timeout=10)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _main(self) -> None:
        try:
            self.run()
        except Exception:  # pragma: no cover - a bug; keep the process alive and say so
            log.exception("registry watcher thread stopped")
        finally:
            self.started.set()

    def run(self) -> None:
        raise NotImplementedError


class SQLitePoller(_Thread):
    """Watches one SQLite database file for commits by other connections."""

    name = "metaboot-registry-sqlite-watch"

    def __init__(self, path: str, origin: str, dispatcher: Dispatcher, interval: float) -> None:
        super().__init__()
        self._path = path
        self._origin = origin
        self._dispatcher = dispatcher
        self._interval = interval

    def run(self) -> None:
        conn: sqlite3.Connection | None = None
        last_seq = 0
        version = -1
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = sqlite3.connect(self._path, isolation_level=None, timeout=5)
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                    last_seq = conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[
                        0
                    ]
                    if self.started.is_set():
                        # Reopened after an error: whatever happened meanwhile is unknown.
                        self._dispatcher.fire(None)
                    self.started.set()
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                if now != version:
                    version = now
                    last_seq = self._read_changes(conn, last_seq)
            except sqlite3.Error as err:
                log.warning("registry watcher: %s: %s; retrying", self._path, err)
                if conn is not None:
                    conn.close()
                conn = None
                self.started.set()
                self._stop.wait(1.0)
                continue
            self._stop.wait(self._interval)
        if conn is not None:
            conn.close()

    def _read_changes(self, conn: sqlite3.Connection, last_seq: int) -> int:
        rows = conn.execute(
            "SELECT seq, instance_uuid, origin FROM changes WHERE seq > ? ORDER BY seq", (last_seq,)
        ).fetchall()
        if not rows:
            return last_seq
        if rows[0][0] != last_seq + 1:
            # Writers pruned rows this watcher never saw: it cannot say which instances changed.
            self._dispatcher.fire(None)
        else:
            seen: set[str | None] = set()
            for _, uuid, origin in rows:
                if origin != self._origin and uuid not in seen:
                    seen.add(uuid)
                    self._dispatcher.fire(None if uuid in (None, ANYTHING) else uuid)
        last: int = rows[-1][0]
        return last


class PostgresListener(_Thread):
    """LISTENs on a dedicated connection, reconnecting with backoff."""

    name = "metaboot-registry-pg-listen"

    def __init__(self, conninfo: str, channel: str, origin: str, dispatcher: Dispatcher) -> None:
        super().__init__()
        self._conninfo = conninfo
        self._channel = channel
        self._origin = origin
        self._dispatcher = dispatcher

    def run(self) -> None:
        import psycopg  # here: a SQLite registry never needs it
        from psycopg import sql

        backoff = 0.1
        connected_before = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    if connected_before:
                        self._dispatcher.fire(None)
                    connected_before = True
                    backoff = 0.1
                    self.started.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._deliver(note.payload)
                            if self._stop.is_set():
                                break
            except psycopg.Error as err:
                if self._stop.is_set():
                    break
                log.warning("registry watcher: PostgreSQL connection lost (%s); reconnecting", err)
                self.started.set()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _deliver(self, payload: str) -> None:
        origin, _, uuid = payload.partition(" ")
        if origin == self._origin:
            return
        self._dispatcher.fire(None if uuid in ("", ANYTHING) else uuid)


def pg_payload(origin: str, uuid: str | None) -> str:
    return f"{origin} {uuid or ANYTHING}"


def pg_channel(schema: str) -> str:
    """One channel per schema, so registries sharing a database do not wake each other."""
    name = "metaboot_registry" if schema == "public" else f"metaboot_registry_{schema}"
    return name[:63]
