"""Migrations run at open: from empty, idempotently, concurrently, and never backwards."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from metaboot.errors import ConfigError
from metaboot.registry import Registry, migrate
from metaboot.registry.schema import metadata

TABLES = {"alembic_version", "instances", "addresses", "routers", "changes"}


def test_open_migrates_an_empty_database_to_head(db_url: str) -> None:
    with Registry.open(db_url) as reg:
        assert set(inspect(reg.engine).get_table_names()) == TABLES
        with reg.engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision()


def test_head_constant_is_the_newest_migration() -> None:
    assert migrate.head_revision() == migrate.HEAD


def test_migrations_build_exactly_the_tables_the_queries_use(db_url: str) -> None:
    with Registry.open(db_url) as reg, reg.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_reopening_is_a_no_op_and_keeps_data(db_url: str) -> None:
    from tests.registry.specs import instance

    inst = instance("kept")
    with Registry.open(db_url) as reg:
        reg.add(inst)
    with Registry.open(db_url) as reg:
        assert reg.get(inst.uuid) == inst


def test_downgrade_to_empty_and_up_again(db_url: str) -> None:
    with Registry.open(db_url) as reg, reg.engine.begin() as conn:
        cfg = migrate._config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
        assert set(inspect(conn).get_table_names()) == {"alembic_version"}
        command.upgrade(cfg, "head")
        assert set(inspect(conn).get_table_names()) == TABLES


def test_a_schema_newer_than_this_code_is_refused(db_url: str) -> None:
    with Registry.open(db_url) as reg, reg.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    with pytest.raises(ConfigError, match="'from_the_future' is newer than this metaboot knows"):
        Registry.open(db_url)


def test_many_processes_opening_an_empty_database_at_once(db_url: str) -> None:
    code = (
        "import sys\n"
        "from metaboot.registry import Registry\n"
        "Registry.open(sys.argv[1]).close()\n"
        "print('ok')\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "ok"
    with Registry.open(db_url) as reg, reg.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1


def test_sqlite_file_and_directory_are_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "registry.db"
    with Registry.open(str(path)):  # a bare path is a SQLite file
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with Registry.open(str(path)) as reg, reg.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 5000


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_is_refused_with_a_reason(url: str) -> None:
    with pytest.raises(ConfigError, match="in-memory"):
        Registry.open(url)


def test_unreachable_or_unsupported_databases_say_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported database"):
        Registry.open("mysql://root@localhost/x")
    os.chmod(tmp_path, 0o500)
    try:
        if os.geteuid() != 0:  # root ignores directory permissions
            with pytest.raises(ConfigError, match="cannot open the registry"):
                Registry.open(f"sqlite:///{tmp_path / 'x.db'}")
    finally:
        os.chmod(tmp_path, 0o700)
    with pytest.raises(ConfigError, match="cannot open the registry"):
        Registry.open("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
