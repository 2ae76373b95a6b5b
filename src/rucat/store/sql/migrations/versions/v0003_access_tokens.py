"""Personal access tokens: the SHA-256 of each secret and the principal it acts as.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "rucat_access_tokens",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("groups", sa.Text, nullable=False),
        sa.Column("admin", sa.Boolean, nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_rucat_access_tokens_secret", "rucat_access_tokens", ["secret_hash"], unique=True
    )
    op.create_index("ix_rucat_access_tokens_owner", "rucat_access_tokens", ["owner", "create_time"])


def downgrade() -> None:
    op.drop_table("rucat_access_tokens")
