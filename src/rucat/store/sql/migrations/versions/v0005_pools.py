"""Warm pools: the pool that owns an idle engine until it is handed out.

Engines stored before this revision get NULL: they belong to no pool.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("rucat_engines", sa.Column("pool", sa.Text, nullable=True))
    op.create_index("ix_rucat_engines_pool", "rucat_engines", ["pool", "state"])


def downgrade() -> None:
    op.drop_index("ix_rucat_engines_pool", table_name="rucat_engines")
    with op.batch_alter_table("rucat_engines") as batch:
        batch.drop_column("pool")
