"""The registry's tables, as the queries see them (the migrations build them; a test checks that
the two agree).

An instance is stored as its canonical spec (``instance_to_spec`` as JSON) — the one format every
other tool already reads — plus the few columns that lookups need indexed. Addresses get their
own table because one instance has several and a lookup goes from address to instance.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

instances = Table(
    "instances",
    metadata,
    Column("uuid", String(36), primary_key=True),
    Column("name", String(255), nullable=False, index=True),
    Column("project_id", String(255), nullable=False, index=True),
    Column("spec", Text, nullable=False),
    # What the guest POSTed to /openstack/<ver>/password ('' = unset; nova treats it the same).
    Column("password", Text, nullable=False, server_default=""),
    # Bumped by every write to the row (spec or password): an ETag for the admin API and a cheap
    # "has it changed" for caches.
    Column("generation", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
)

addresses = Table(
    "addresses",
    metadata,
    Column(
        "instance_uuid",
        String(36),
        ForeignKey("instances.uuid", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("network_id", String(255), nullable=False),
    Column("ip", String(64), nullable=False),
    PrimaryKeyConstraint("instance_uuid", "network_id", "ip"),
    Index("ix_addresses_ip_network_id", "ip", "network_id"),
)

routers = Table(
    "routers",
    metadata,
    Column("router_id", String(255), nullable=False),
    Column("network_id", String(255), nullable=False),
    PrimaryKeyConstraint("router_id", "network_id"),
    Index("ix_routers_network_id", "network_id"),
)

# SQLite has no NOTIFY: each write appends here in its own transaction, and watchers in other
# processes read what is new when PRAGMA data_version moves. instance_uuid NULL means "anything
# may have changed" (a router edit). Old rows are pruned by the writers.
changes = Table(
    "changes",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("instance_uuid", String(36), nullable=True),
    Column("origin", String(32), nullable=False),
    sqlite_autoincrement=True,
)
