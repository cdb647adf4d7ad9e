"""The instance registry: what the metadata service serves and the admin API edits.

One ``Registry`` per process is enough (it is thread-safe: every operation takes a pooled
connection for one transaction). Writes are short transactions that also announce the change
(see ``notify``); SQLite writes start with ``BEGIN IMMEDIATE`` so that concurrent writers queue
on the busy timeout instead of failing half-way.
"""

from __future__ import annotations

import builtins
import ipaddress
import json
import logging
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import OperationalError as SAOperationalError

from metaboot.errors import ConfigError, ConflictError, MetabootError, NotFoundError
from metaboot.metadata.instance import PASSWORD_LIMIT, Instance, instance_to_spec, parse_spec
from metaboot.registry import migrate, notify
from metaboot.registry.paths import default_db_url, sqlalchemy_url
from metaboot.registry.schema import addresses, changes, instances, routers

log = logging.getLogger(__name__)

# Nova keeps the guest's password in four 255-character chunks: 1020 bytes at most.
PASSWORD_MAX_BYTES = PASSWORD_LIMIT
# How many change rows SQLite writers keep for watchers in other processes.
_CHANGES_KEPT = 1000
# Stored specs were validated when written; reading them back must not apply today's limit.
_NO_LIMIT = sys.maxsize


class GenerationMismatch(ConflictError):
    """An update named a generation that is no longer current (someone else wrote first)."""


@dataclass(frozen=True)
class Record:
    """An instance together with what the registry knows about the stored row."""

    instance: Instance
    generation: int
    created_at: str
    updated_at: str
    password_set: bool


@dataclass(frozen=True)
class Written:
    """The outcome of ``add``/``update``: the new generation and any warnings for the operator."""

    uuid: str
    generation: int
    warnings: tuple[str, ...] = ()


class Watch:
    """Handle returned by ``Registry.watch``; ``close()`` stops the callbacks."""

    def __init__(self, close: Callable[[], None]) -> None:
        self._close: Callable[[], None] | None = close

    def close(self) -> None:
        if self._close is not None:
            close, self._close = self._close, None
            close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def normalise_ip(ip: str) -> str | None:
    """The one spelling stored and looked up; IPv4-mapped IPv6 is the IPv4 address it maps."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0].strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.compressed


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _spec_json(instance: Instance) -> str:
    return json.dumps(instance_to_spec(instance), sort_keys=True, separators=(",", ":"))


def _decode(spec: str) -> Instance:
    return parse_spec(json.loads(spec), user_data_limit=_NO_LIMIT)


def _address_rows(instance: Instance) -> list[dict[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for network_id, ip in instance.addresses():
        norm = normalise_ip(ip)
        if norm is not None:
            seen[(network_id, norm)] = None
    return [{"instance_uuid": instance.uuid, "network_id": net, "ip": ip} for net, ip in seen]


class Registry:
    """Instances, their addresses, routers and guest passwords in SQLite or PostgreSQL.

    Engines are made with ``hide_parameters``: a database error must not carry user-data or a
    password into a log line.
    """

    def __init__(self, engine: Engine, display_url: str, *, poll_interval: float = 0.05) -> None:
        self.engine = engine
        self.url = display_url
        self.dialect = engine.dialect.name
        self.origin = secrets.token_hex(8)
        self._dispatcher = notify.Dispatcher()
        self._watcher: notify.SQLitePoller | notify.PostgresListener | None = None
        self._poll_interval = poll_interval
        self._channel = ""
        self._watch_lock = threading.Lock()

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str | None = None, *, poll_interval: float = 0.05) -> Registry:
        """Open (creating if need be) and migrate the registry at ``url`` (default:
        ``default_db_url()``, the same as the service's).

        ``url`` is a SQLAlchemy-style URL (``sqlite:///path``, ``postgresql://…``) or a bare path
        to a SQLite file. A SQLite file and its directory are created private to the owner:
        the registry holds user-data and guest passwords.
        """
        sa_url = make_url(sqlalchemy_url(url or default_db_url()))
        display = sa_url.render_as_string(hide_password=True)
        if sa_url.get_backend_name() == "sqlite":
            engine = _sqlite_engine(sa_url.database or "", display)
        elif sa_url.get_backend_name() == "postgresql":
            engine = create_engine(sa_url, pool_pre_ping=True, hide_parameters=True)
        else:
            raise ConfigError(f"{display}: unsupported database (use sqlite:/// or postgresql://)")
        registry = cls(engine, display, poll_interval=poll_interval)
        try:
            migrate.upgrade(engine, display)
            if registry.dialect == "postgresql":
                with engine.connect() as conn:
                    schema = conn.execute(text("SELECT current_schema()")).scalar_one()
                registry._channel = notify.pg_channel(schema)
        except SAOperationalError as err:
            engine.dispose()
            raise ConfigError(f"{display}: cannot open the registry: {err.orig}") from None
        except BaseException:
            engine.dispose()
            raise
        return registry

    def close(self) -> None:
        with self._watch_lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()
        self.engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _write(self) -> Iterator[tuple[Connection, builtins.list[str | None]]]:
        """A write transaction; the caller lists the uuids it changed (None = anything).

        The change is announced inside the transaction (so it is seen exactly when the write
        is) and, after the commit, to this process's own watchers.
        """
        changed: builtins.list[str | None] = []
        with self.engine.connect() as conn:
            conn.execution_options(metaboot_write=True)
            with conn.begin():
                yield conn, changed
                for uuid in dict.fromkeys(changed):
                    self._announce(conn, uuid)
        if self._dispatcher:
            for uuid in dict.fromkeys(changed):
                self._dispatcher.fire(uuid)

    def _announce(self, conn: Connection, uuid: str | None) -> None:
        if self.dialect == "postgresql":
            conn.execute(
                select(func.pg_notify(self._channel, notify.pg_payload(self.origin, uuid)))
            )
            return
        seq = conn.execute(
            insert(changes).values(instance_uuid=uuid, origin=self.origin).returning(changes.c.seq)
        ).scalar_one()
        if seq % 100 == 0:
            conn.execute(delete(changes).where(changes.c.seq <= seq - _CHANGES_KEPT))

    # -- instances -------------------------------------------------------------------------

    def add(self, instance: Instance) -> Written:
        """Store a new instance; ``ConflictError`` if its uuid is taken."""
        spec = _spec_json(instance)
        rows = _address_rows(instance)
        now = _now()
        try:
            with self._write() as (conn, changed):
                exists = conn.execute(
                    select(instances.c.uuid).where(instances.c.uuid == instance.uuid)
                ).first()
                if exists:
                    raise ConflictError(f"instance {instance.uuid} already exists")
                conn.execute(
                    insert(instances).values(
                        uuid=instance.uuid,
                        name=instance.name,
                        project_id=instance.project_id,
                        spec=spec,
                        password="",
                        generation=1,
                        created_at=now,
                        updated_at=now,
                    )
                )
                if rows:
                    conn.execute(insert(addresses), rows)
                warnings = self._duplicate_warnings(conn, instance.uuid, rows)
                changed.append(instance.uuid)
        except IntegrityError:
            # Another writer inserted the same uuid between our check and our insert.
            raise ConflictError(f"instance {instance.uuid} already exists") from None
        return Written(instance.uuid, 1, warnings)

    def update(self, instance: Instance, *, expected_generation: int | None = None) -> Written:
        """Replace a stored instance (its password is kept); ``NotFoundError`` if absent.

        With ``expected_generation``, refuse (``GenerationMismatch``) if someone else has
        written since the caller read it.
        """
        spec = _spec_json(instance)
        rows = _address_rows(instance)
        with self._write() as (conn, changed):
            current = conn.execute(
                select(instances.c.generation)
                .where(instances.c.uuid == instance.uuid)
                .with_for_update()
            ).scalar_one_or_none()
            if current is None:
                raise NotFoundError(f"no instance {instance.uuid}")
            if expected_generation is not None and current != expected_generation:
                raise GenerationMismatch(
                    f"instance {instance.uuid} is at generation {current}, "
                    f"not {expected_generation}: it changed since it was read"
                )
            conn.execute(
                update(instances)
                .where(instances.c.uuid == instance.uuid)
                .values(
                    name=instance.name,
                    project_id=instance.project_id,
                    spec=spec,
                    generation=current + 1,
                    updated_at=_now(),
                )
            )
            conn.execute(delete(addresses).where(addresses.c.instance_uuid == instance.uuid))
            if rows:
                conn.execute(insert(addresses), rows)
            warnings = self._duplicate_warnings(conn, instance.uuid, rows)
            changed.append(instance.uuid)
        return Written(instance.uuid, current + 1, warnings)

    def delete(self, uuid: str) -> None:
        with self._write() as (conn, changed):
            # Addresses go with it (ON DELETE CASCADE; SQLite enforces it with foreign_keys=ON).
            gone = conn.execute(delete(instances).where(instances.c.uuid == uuid)).rowcount
            if not gone:
                raise NotFoundError(f"no instance {uuid}")
            changed.append(uuid)

    def get(self, uuid: str) -> Instance:
        return self.get_record(uuid).instance

    def get_record(self, uuid: str) -> Record:
        with self._read() as conn:
            row = conn.execute(select(*_RECORD_COLUMNS).where(instances.c.uuid == uuid)).first()
        if row is None:
            raise NotFoundError(f"no instance {uuid}")
        return _record(row)

    def list(self) -> builtins.list[Instance]:
        return [record.instance for record in self.list_records()]

    def list_records(self) -> builtins.list[Record]:
        with self._read() as conn:
            rows = conn.execute(
                select(*_RECORD_COLUMNS).order_by(instances.c.name, instances.c.uuid)
            ).all()
        return [_record(row) for row in rows]

    def generation(self, uuid: str) -> int:
        with self._read() as conn:
            value = conn.execute(
                select(instances.c.generation).where(instances.c.uuid == uuid)
            ).scalar_one_or_none()
        if value is None:
            raise NotFoundError(f"no instance {uuid}")
        return int(value)

    def _duplicate_warnings(
        self, conn: Connection, uuid: str, rows: builtins.list[dict[str, str]]
    ) -> tuple[str, ...]:
        if not rows:
            return ()
        pairs = [(row["network_id"], row["ip"]) for row in rows]
        clashes = conn.execute(
            select(addresses.c.network_id, addresses.c.ip, addresses.c.instance_uuid)
            .where(tuple_(addresses.c.network_id, addresses.c.ip).in_(pairs))
            .where(addresses.c.instance_uuid != uuid)
            .order_by(addresses.c.network_id, addresses.c.ip, addresses.c.instance_uuid)
        ).all()
        warnings = tuple(
            f"address {ip} on network {net or '(none)'} is also held by instance {other}; "
            f"requests from it will be refused as ambiguous"
            for net, ip, other in clashes
        )
        # The warnings go back to whoever wrote the instance (the CLI prints them, the admin
        # API returns them); the service's own log keeps a note at info, not a second warning.
        for warning in warnings:
            log.info("instance %s: %s", uuid, warning)
        return warnings

    # -- identification --------------------------------------------------------------------

    def lookup(
        self, ip: str, *, network_id: str | None = None, router_id: str | None = None
    ) -> builtins.list[str]:
        """Uuids of the instances holding ``ip``: on any network (direct mode), on
        ``network_id``, or on any network attached to ``router_id``.

        More than one uuid means the address is ambiguous; the service must refuse it.
        """
        if network_id is not None and router_id is not None:
            raise ValueError("lookup takes a network or a router, not both")
        norm = normalise_ip(ip)
        if norm is None:
            return []
        query = select(addresses.c.instance_uuid).distinct().where(addresses.c.ip == norm)
        if network_id is not None:
            query = query.where(addresses.c.network_id == network_id)
        elif router_id is not None:
            query = query.join(routers, routers.c.network_id == addresses.c.network_id).where(
                routers.c.router_id == router_id
            )
        with self._read() as conn:
            return sorted(conn.execute(query).scalars())

    # -- routers ---------------------------------------------------------------------------

    def add_router(self, router_id: str, network_ids: Iterable[str]) -> builtins.list[str]:
        """Attach networks to a router (creating it); returns all its networks."""
        nets = _nonempty_ids(router_id, network_ids)
        with self._write() as (conn, changed):
            have = set(
                conn.execute(
                    select(routers.c.network_id).where(routers.c.router_id == router_id)
                ).scalars()
            )
            new = [{"router_id": router_id, "network_id": n} for n in nets if n not in have]
            if new:
                conn.execute(insert(routers), new)
                changed.append(None)
            return sorted(have | set(nets))

    def set_router(self, router_id: str, network_ids: Iterable[str]) -> builtins.list[str]:
        """Make ``network_ids`` exactly the networks of the router (creating it)."""
        nets = _nonempty_ids(router_id, network_ids)
        with self._write() as (conn, changed):
            conn.execute(delete(routers).where(routers.c.router_id == router_id))
            conn.execute(insert(routers), [{"router_id": router_id, "network_id": n} for n in nets])
            changed.append(None)
        return sorted(nets)

    def remove_router(self, router_id: str, network_ids: Iterable[str] | None = None) -> None:
        """Detach the given networks, or remove the router altogether."""
        with self._write() as (conn, changed):
            query = delete(routers).where(routers.c.router_id == router_id)
            nets = None if network_ids is None else sorted(set(network_ids))
            if nets is not None:
                have = set(
                    conn.execute(
                        select(routers.c.network_id).where(routers.c.router_id == router_id)
                    ).scalars()
                )
                missing = [n for n in nets if n not in have]
                if missing:
                    raise NotFoundError(
                        f"router {router_id} has no network {', '.join(missing)}"
                        if have
                        else f"no router {router_id}"
                    )
                query = query.where(routers.c.network_id.in_(nets))
            if not conn.execute(query).rowcount:
                raise NotFoundError(f"no router {router_id}")
            changed.append(None)

    def router(self, router_id: str) -> builtins.list[str]:
        with self._read() as conn:
            nets = sorted(
                conn.execute(
                    select(routers.c.network_id).where(routers.c.router_id == router_id)
                ).scalars()
            )
        if not nets:
            raise NotFoundError(f"no router {router_id}")
        return nets

    def routers(self) -> dict[str, builtins.list[str]]:
        result: dict[str, builtins.list[str]] = {}
        with self._read() as conn:
            for router_id, network_id in conn.execute(
                select(routers.c.router_id, routers.c.network_id).order_by(
                    routers.c.router_id, routers.c.network_id
                )
            ):
                result.setdefault(router_id, []).append(network_id)
        return result

    # -- passwords -------------------------------------------------------------------------

    def password_get(self, uuid: str) -> str:
        """The password the guest posted ('' when none)."""
        with self._read() as conn:
            value = conn.execute(
                select(instances.c.password).where(instances.c.uuid == uuid)
            ).scalar_one_or_none()
        if value is None:
            raise NotFoundError(f"no instance {uuid}")
        return str(value)

    def password_set_once(self, uuid: str, value: str) -> bool:
        """Store the guest's password unless one is set; False if one already was.

        The test and the write are one conditional UPDATE, so of two concurrent posts exactly
        one wins (nova checks a cached copy first and can accept both).
        """
        if len(value.encode()) > PASSWORD_MAX_BYTES:
            raise MetabootError(f"password is longer than {PASSWORD_MAX_BYTES} bytes")
        if not value:
            # Nothing to store; nova treats an empty password as unset, so later posts may win.
            self.password_get(uuid)
            return True
        with self._write() as (conn, changed):
            won = conn.execute(
                update(instances)
                .where(instances.c.uuid == uuid, instances.c.password == "")
                .values(
                    password=value,
                    generation=instances.c.generation + 1,
                    updated_at=_now(),
                )
            ).rowcount
            if won:
                changed.append(uuid)
            else:
                exists = conn.execute(
                    select(instances.c.uuid).where(instances.c.uuid == uuid)
                ).first()
                if exists is None:
                    raise NotFoundError(f"no instance {uuid}")
        return bool(won)

    def password_clear(self, uuid: str) -> None:
        """Forget the stored password (the guest's actual password is unchanged)."""
        with self._write() as (conn, changed):
            found = conn.execute(
                update(instances)
                .where(instances.c.uuid == uuid)
                .values(password="", generation=instances.c.generation + 1, updated_at=_now())
            ).rowcount
            if not found:
                raise NotFoundError(f"no instance {uuid}")
            changed.append(uuid)

    # -- change notification ---------------------------------------------------------------

    def watch(self, callback: notify.Callback) -> Watch:
        """Call ``callback(uuid)`` after any process commits a change to that instance.

        ``None`` means "anything may have changed" (a router edit, or the watcher lost track,
        e.g. after reconnecting): drop every cached instance and lookup. Callbacks run on a
        background thread (or, for this registry's own writes, on the writing thread right
        after the commit), so they must be quick and thread-safe.
        """
        with self._watch_lock:
            key = self._dispatcher.add(callback)
            if self._watcher is None:
                self._watcher = self._start_watcher()

        def close() -> None:
            with self._watch_lock:
                if self._dispatcher.remove(key) == 0 and self._watcher is not None:
                    watcher, self._watcher = self._watcher, None
                    watcher.close()

        return Watch(close)

    def _start_watcher(self) -> notify.SQLitePoller | notify.PostgresListener:
        watcher: notify.SQLitePoller | notify.PostgresListener
        if self.dialect == "postgresql":
            url = self.engine.url.set(drivername="postgresql")
            watcher = notify.PostgresListener(
                url.render_as_string(hide_password=False),
                self._channel,
                self.origin,
                self._dispatcher,
            )
        else:
            watcher = notify.SQLitePoller(
                self.engine.url.database or "", self.origin, self._dispatcher, self._poll_interval
            )
        watcher.start()
        return watcher


_RECORD_COLUMNS = (
    instances.c.spec,
    instances.c.generation,
    instances.c.created_at,
    instances.c.updated_at,
    (instances.c.password != "").label("password_set"),
)


def _record(row: Any) -> Record:
    return Record(
        instance=_decode(row.spec),
        generation=int(row.generation),
        created_at=row.created_at,
        updated_at=row.updated_at,
        password_set=bool(row.password_set),
    )


def _nonempty_ids(router_id: str, network_ids: Iterable[str]) -> list[str]:
    if not router_id:
        raise MetabootError("a router needs an id")
    nets = sorted({n for n in network_ids})
    if not nets or any(not n for n in nets):
        raise MetabootError(f"router {router_id}: give at least one network id, none empty")
    return nets


def _sqlite_engine(path: str, display: str) -> Engine:
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        raise ConfigError(
            f"{display}: an in-memory SQLite database is private to one connection; "
            "give the registry a file"
        )
    file = Path(path)
    file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not file.exists():
        # The registry holds user-data and passwords: readable by its owner only.
        os.close(os.open(file, os.O_CREAT | os.O_WRONLY, 0o600))
    engine = create_engine(f"sqlite:///{file}", hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_conn: Any, _record: Any) -> None:
        # Take transactions out of the driver's hands so that we can say BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=10000")  # first: switching to WAL may wait too
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("metaboot_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
