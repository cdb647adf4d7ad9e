"""Bring a database to the newest schema when a registry opens it.

Several processes (service workers, a CLI, another node) may open the same database at once, so
the check and the upgrade run inside one transaction that holds the database's write lock
(SQLite ``BEGIN IMMEDIATE``) or an advisory lock (PostgreSQL): the first one upgrades, the others
wait and then find the schema current. DDL is transactional on both, so a failed upgrade leaves
the previous schema intact.
"""

from __future__ import annotations

from functools import cache

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from metaboot.errors import ConfigError

SCRIPT_LOCATION = "metaboot.registry:migrations"
# pg_advisory_xact_lock key: any constant that other software on the same database is unlikely
# to use ("metaboot" in ASCII, folded into a signed 64-bit integer).
_PG_LOCK_KEY = int.from_bytes(b"metaboot", "big") & 0x7FFF_FFFF_FFFF_FFFF


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    return cfg


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _check_known(revision: str | None, url: str) -> None:
    if revision is None:
        return
    known = {script.revision for script in _scripts().walk_revisions()}
    if revision not in known:
        raise ConfigError(
            f"{url}: registry schema revision {revision!r} is newer than this metaboot knows "
            f"(newest here: {head_revision()!r}); upgrade metaboot before using this database"
        )


def upgrade(engine: Engine, display_url: str) -> None:
    """Apply every pending migration; a no-op (one small query) when the schema is current."""
    head = head_revision()
    with engine.connect() as conn:
        current = current_revision(conn)
        conn.rollback()
    _check_known(current, display_url)
    if current == head:
        return
    with engine.connect() as conn:
        conn.execution_options(metaboot_write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            current = current_revision(conn)
            _check_known(current, display_url)
            if current == head:
                return
            cfg = _config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
