"""Owners and grants: who created each engine, and who else may attach to or manage it.

Engines created before this revision get no owner (NULL): only admins see them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("rucat_engines", sa.Column("owner", sa.Text, nullable=True))
    op.create_index("ix_rucat_engines_owner", "rucat_engines", ["owner", "state"])
    op.create_table(
        "rucat_engine_grants",
        sa.Column(
            "engine_id",
            sa.String(64),
            sa.ForeignKey("rucat_engines.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
    )
    op.create_index("ix_rucat_engine_grants_grantee", "rucat_engine_grants", ["kind", "name"])


def downgrade() -> None:
    op.drop_table("rucat_engine_grants")
    op.drop_index("ix_rucat_engines_owner", table_name="rucat_engines")
    op.drop_column("rucat_engines", "owner")
