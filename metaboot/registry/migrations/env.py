"""Alembic environment: always run programmatically by ``metaboot.registry.migrate``, which hands
over a connection that is already inside a locked transaction."""

from __future__ import annotations

from alembic import context

from metaboot.registry.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    # Both backends roll DDL back with the transaction, so a failed upgrade leaves no half schema.
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
