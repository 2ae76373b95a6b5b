"""Alembic environment: migrate over the connection `rucat.store.sql.store` hands in.

The caller opens the transaction (and takes the migration lock) itself, so
Alembic runs inside it: a failed upgrade leaves nothing half-applied, and two
processes opening one database at once upgrade it exactly once.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from rucat.store.sql.schema import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "Rucat's migrations run through rucat.store.sql.store, which hands in a connection"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
