"""The SQL tables of the engine store, as SQLAlchemy Core metadata.

This is the schema queries are built against. The database itself is created
and upgraded by the Alembic scripts in `rucat/store/migrations/`; a test
compares the two so they cannot drift apart.

Timestamps are stored in UTC with microseconds: `timestamptz` on PostgreSQL,
ISO-8601 text (`YYYY-MM-DD HH:MM:SS.ffffff`, which sorts by time) on SQLite.
They come back as tz-aware UTC datetimes on both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

#: Alembic's bookkeeping table; prefixed so Rucat can share a database.
VERSION_TABLE = "rucat_schema_version"

#: The newest migration in rucat/store/migrations/versions. A store opening a
#: database already at this revision skips Alembic (and its import) entirely;
#: a test checks this equals Alembic's head.
SCHEMA_REVISION = "0001"


class UtcDateTime(TypeDecorator[datetime]):
    """A tz-aware UTC datetime on every backend; naive datetimes are refused.

    Invariant: what is read back equals (as an instant) what was written, to
    the microsecond, and always has tzinfo=UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise ValueError(f"timestamps must be tz-aware datetimes, got {value!r}")
        utc = value.astimezone(UTC)
        # SQLite stores text: drop the offset so every value has one format
        # and text order is time order.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()

engines = Table(
    "rucat_engines",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("engine_type", String(32), nullable=False),
    Column("version", String(64), nullable=False),
    # JSON object of string -> string, as text: portable and exact.
    Column("configs", Text, nullable=False),
    Column("state", String(32), nullable=False),
    Column("platform", String(64), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
    Column("next_update_time", UtcDateTime, nullable=False),
    # The compare-and-set token: every write is `WHERE revision = <read>`.
    Column("revision", BigInteger, nullable=False),
    Column("message", Text, nullable=True),
    Column("endpoint", Text, nullable=True),
    Column("lease_owner", Text, nullable=True),
    Column("last_activity_time", UtcDateTime, nullable=True),
    Column("connect_token", Text, nullable=True),
    Column("saved_logs", Text, nullable=True),
    Index("ix_rucat_engines_created", "create_time", "id"),
    Index("ix_rucat_engines_due", "platform", "next_update_time"),
)

engine_events = Table(
    "rucat_engine_events",
    metadata,
    # Insertion order is history order, also when two events share a time.
    Column(
        "seq",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column(
        "engine_id",
        String(64),
        ForeignKey("rucat_engines.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("time", UtcDateTime, nullable=False),
    Column("from_state", String(32), nullable=True),
    Column("to_state", String(32), nullable=False),
    Column("message", Text, nullable=True),
    Column("actor", Text, nullable=False),
    Index("ix_rucat_engine_events_engine", "engine_id", "seq"),
)
