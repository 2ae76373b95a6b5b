"""Auto-stop: each engine's minutes without Spark Connect activity before it is stopped.

Engines stored before this revision get NULL: they are never auto-stopped.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("rucat_engines") as batch:
        batch.add_column(sa.Column("auto_stop_minutes", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rucat_engines") as batch:
        batch.drop_column("auto_stop_minutes")
