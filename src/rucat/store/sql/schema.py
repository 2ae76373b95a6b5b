"""The SQL tables of the engine store, and how an Engine maps to a row.

This is the schema queries are built against. The database itself is created
and upgraded by the Alembic scripts in `rucat/store/sql/migrations/`; a test
compares the two so they cannot drift apart.

Timestamps are stored in UTC with microseconds: `timestamptz` on PostgreSQL,
ISO-8601 text (`YYYY-MM-DD HH:MM:SS.ffffff`, which sorts by time) on SQLite.
They come back as tz-aware UTC datetimes on both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.types import TypeDecorator

from rucat.domain.access import GRANTABLE, Grant, GranteeKind
from rucat.domain.engine import Engine, EngineEvent, EngineType
from rucat.domain.errors import InvalidRequest
from rucat.domain.state import EngineState

#: Alembic's bookkeeping table; prefixed so Rucat can share a database.
VERSION_TABLE = "rucat_schema_version"

#: The newest migration in rucat/store/sql/migrations/versions. A store opening a
#: database already at this revision skips Alembic (and its import) entirely;
#: a test checks this equals Alembic's head.
SCHEMA_REVISION = "0005"


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
    # The creating principal's name; NULL on rows from before owners (admins only).
    Column("owner", Text, nullable=True),
    # Minutes without Spark Connect activity before auto-stop; 0 or NULL: never.
    Column("auto_stop_minutes", Float, nullable=True),
    # The warm pool owning the engine while it waits idle; NULL for all others.
    Column("pool", Text, nullable=True),
    Index("ix_rucat_engines_created", "create_time", "id"),
    Index("ix_rucat_engines_due", "platform", "next_update_time"),
    Index("ix_rucat_engines_owner", "owner", "state"),
    Index("ix_rucat_engines_pool", "pool", "state"),
)

#: Who else may attach to or manage an engine. `position` keeps the order the
#: grants were given in; a grantee appears at most once per engine.
engine_grants = Table(
    "rucat_engine_grants",
    metadata,
    Column(
        "engine_id",
        String(64),
        ForeignKey("rucat_engines.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),
    Column("name", Text, nullable=False),
    Column("level", String(16), nullable=False),
    Index("ix_rucat_engine_grants_grantee", "kind", "name"),
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

#: Personal access tokens: only the SHA-256 of each secret, and who its user was.
access_tokens = Table(
    "rucat_access_tokens",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("owner", Text, nullable=False),
    # JSON array of group names, as text.
    Column("groups", Text, nullable=False),
    Column("admin", Boolean, nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("expire_time", UtcDateTime, nullable=False),
    Index("ix_rucat_access_tokens_secret", "secret_hash", unique=True),
    Index("ix_rucat_access_tokens_owner", "owner", "create_time"),
)


# --- rows <-> engines -------------------------------------------------------


def utc(value: datetime, what: str) -> datetime:
    """`value` in UTC; a naive datetime is refused (its zone would be a guess)."""
    if value.utcoffset() is None:
        raise InvalidRequest(f"{what} must be a tz-aware datetime, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def text_for_storage(value: str | None) -> str | None:
    """Free text (messages, captured logs) as every backend can store it.

    PostgreSQL text cannot hold NUL, and engine logs may contain it: NUL
    becomes U+FFFD on every backend, so all of them store the same thing.
    """
    return None if value is None else value.replace("\x00", "\ufffd")


def engine_to_row(engine: Engine) -> dict[str, Any]:
    """The row for `engine`: UTC timestamps, configs as JSON text, NUL-free free text."""
    return {
        "id": engine.id,
        "name": engine.name,
        "engine_type": engine.engine_type.value,
        "version": engine.version,
        "configs": json.dumps(engine.configs, sort_keys=True, ensure_ascii=False),
        "state": engine.state.value,
        "platform": engine.platform,
        "create_time": utc(engine.create_time, "create_time"),
        "update_time": utc(engine.update_time, "update_time"),
        "next_update_time": utc(engine.next_update_time, "next_update_time"),
        "revision": engine.revision,
        "message": text_for_storage(engine.message),
        "endpoint": engine.endpoint,
        "lease_owner": engine.lease_owner,
        "last_activity_time": (
            None
            if engine.last_activity_time is None
            else utc(engine.last_activity_time, "last_activity_time")
        ),
        "connect_token": engine.connect_token,
        "saved_logs": text_for_storage(engine.saved_logs),
        "owner": engine.owner,
        "auto_stop_minutes": engine.auto_stop_minutes,
        "pool": engine.pool,
    }


def grant_rows(engine_id: str, grants: Sequence[Grant]) -> list[dict[str, Any]]:
    """The rows of `engine_grants` for an engine's grants, in order."""
    return [
        {
            "engine_id": engine_id,
            "position": i,
            "kind": grant.kind.value,
            "name": grant.name,
            "level": grant.level.label,
        }
        for i, grant in enumerate(grants)
    ]


def grant_from_row(row: RowMapping | Mapping[str, Any]) -> Grant:
    return Grant(kind=GranteeKind(row["kind"]), name=row["name"], level=GRANTABLE[row["level"]])


def engine_from_row(row: RowMapping | Mapping[str, Any], grants: Sequence[Grant] = ()) -> Engine:
    """The Engine a row of `engines` holds, with its grants (read from `engine_grants`)."""
    configs = json.loads(row["configs"])
    return Engine(
        id=row["id"],
        name=row["name"],
        engine_type=EngineType(row["engine_type"]),
        version=row["version"],
        configs={str(k): str(v) for k, v in configs.items()},
        state=EngineState(row["state"]),
        platform=row["platform"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        next_update_time=row["next_update_time"],
        revision=int(row["revision"]),
        message=row["message"],
        endpoint=row["endpoint"],
        lease_owner=row["lease_owner"],
        last_activity_time=row["last_activity_time"],
        connect_token=row["connect_token"],
        saved_logs=row["saved_logs"],
        owner=row["owner"],
        grants=tuple(grants),
        auto_stop_minutes=(
            None if row["auto_stop_minutes"] is None else float(row["auto_stop_minutes"])
        ),
        pool=row["pool"],
    )


def event_from_row(row: RowMapping | Mapping[str, Any]) -> EngineEvent:
    """The EngineEvent a row of `engine_events` holds."""
    return EngineEvent(
        engine_id=row["engine_id"],
        time=row["time"],
        from_state=None if row["from_state"] is None else EngineState(row["from_state"]),
        to_state=EngineState(row["to_state"]),
        message=row["message"],
        actor=row["actor"],
    )
