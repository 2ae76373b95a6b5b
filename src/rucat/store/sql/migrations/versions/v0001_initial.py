"""Initial schema: engines and their transition events.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "rucat_engines",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("engine_type", sa.String(32), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("configs", sa.Text, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_update_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("endpoint", sa.Text, nullable=True),
        sa.Column("lease_owner", sa.Text, nullable=True),
        sa.Column("last_activity_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("connect_token", sa.Text, nullable=True),
        sa.Column("saved_logs", sa.Text, nullable=True),
    )
    op.create_index("ix_rucat_engines_created", "rucat_engines", ["create_time", "id"])
    op.create_index("ix_rucat_engines_due", "rucat_engines", ["platform", "next_update_time"])
    op.create_table(
        "rucat_engine_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "engine_id",
            sa.String(64),
            sa.ForeignKey("rucat_engines.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.String(32), nullable=True),
        sa.Column("to_state", sa.String(32), nullable=False),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("actor", sa.Text, nullable=False),
    )
    op.create_index("ix_rucat_engine_events_engine", "rucat_engine_events", ["engine_id", "seq"])


def downgrade() -> None:
    op.drop_table("rucat_engine_events")
    op.drop_table("rucat_engines")
