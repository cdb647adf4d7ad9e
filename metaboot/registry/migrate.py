"""Bring a database to the newest schema when a registry opens it.

Several processes (service workers, a CLI, another node) may open the same database at once, so
the check and the upgrade run inside one transaction that holds the database's write lock
(SQLite ``BEGIN IMMEDIATE``) or an advisory lock (PostgreSQL): the first one upgrades, the others
wait and then find the schema current. DDL is transactional on both, so a failed upgrade leaves
the previous schema intact.

Opening a current database costs one small query and does not import Alembic (about half a
second of imports on a busy machine): ``HEAD`` names the newest revision, and a test checks it
against the migration scripts.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from metaboot.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

HEAD = "0001"
SCRIPT_LOCATION = "metaboot.registry:migrations"
# pg_advisory_xact_lock key: any constant that other software on the same database is unlikely
# to use ("metaboot" in ASCII, folded into a signed 64-bit integer).
_PG_LOCK_KEY = int.from_bytes(b"metaboot", "big") & 0x7FFF_FFFF_FFFF_FFFF


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    return cfg


@cache
def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """The newest revision according to the migration scripts (should equal ``HEAD``)."""
    head = _scripts().get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision stored in the database, None for an empty one."""
    try:
        with conn.begin_nested() if conn.in_transaction() else conn.begin():
            value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None  # no version table: an empty database
    return None if value is None else str(value)


def _check_known(revision: str | None, url: str) -> None:
    if revision is None:
        return
    known = {script.revision for script in _scripts().walk_revisions()}
    if revision not in known:
        raise ConfigError(
            f"{url}: registry schema revision {revision!r} is newer than this metaboot knows "
            f"(newest here: {HEAD!r}); upgrade metaboot before using this database"
        )


def upgrade(engine: Engine, display_url: str) -> None:
    """Apply every pending migration; one small query when the schema is current."""
    with engine.connect() as conn:
        current = current_revision(conn)
    if current == HEAD:
        return
    _check_known(current, display_url)
    from alembic import command

    with engine.connect() as conn:
        conn.execution_options(metaboot_write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            current = current_revision(conn)
            _check_known(current, display_url)
            if current == HEAD:
                return
            cfg = _config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
