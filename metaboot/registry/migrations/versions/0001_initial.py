"""Initial registry: instances, their addresses, routers, and the SQLite change log.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("password", sa.Text(), nullable=False, server_default=""),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("uuid", name="pk_instances"),
    )
    op.create_index("ix_instances_name", "instances", ["name"])
    op.create_index("ix_instances_project_id", "instances", ["project_id"])
    op.create_table(
        "addresses",
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("network_id", sa.String(255), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_uuid"],
            ["instances.uuid"],
            name="fk_addresses_instance_uuid_instances",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_uuid", "network_id", "ip", name="pk_addresses"),
    )
    op.create_index("ix_addresses_ip_network_id", "addresses", ["ip", "network_id"])
    op.create_table(
        "routers",
        sa.Column("router_id", sa.String(255), nullable=False),
        sa.Column("network_id", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("router_id", "network_id", name="pk_routers"),
    )
    op.create_index("ix_routers_network_id", "routers", ["network_id"])
    op.create_table(
        "changes",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=True),
        sa.Column("origin", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_changes"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("changes")
    op.drop_table("routers")
    op.drop_table("addresses")
    op.drop_table("instances")
