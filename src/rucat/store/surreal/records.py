"""How an Engine and its events are stored as SurrealDB records, and read back.

The engine store's row mapping, kept apart from its queries: what a record
holds (`engine_doc`, `event_doc`) and the Engine or EngineEvent a stored
record means (`engine_from_doc`, `event_from_doc`). Invariants: every stored
time is tz-aware UTC; free text has NUL replaced as on every backend; a
malformed record is the store's failure (StoreUnavailable), never a bug.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rucat.domain.access import GRANTABLE, Grant, GranteeKind
from rucat.domain.engine import Engine, EngineEvent, EngineType
from rucat.domain.errors import InvalidRequest, StoreUnavailable
from rucat.domain.state import EngineState

_OPTIONAL_STRINGS = ("message", "endpoint", "lease_owner", "connect_token", "saved_logs", "pool")


def utc(value: datetime, what: str) -> datetime:
    """`value` in UTC; a naive datetime is the caller's mistake (InvalidRequest)."""
    if value.utcoffset() is None:
        raise InvalidRequest(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _utc_or_none(value: datetime | None, what: str) -> datetime | None:
    return None if value is None else utc(value, what)


def _text(value: str | None) -> str | None:
    """Free text (messages, captured logs) as every backend stores it.

    PostgreSQL text cannot hold NUL, and engine logs may contain it: NUL
    becomes U+FFFD in every store, so all of them store the same thing.
    """
    return None if value is None else value.replace("\x00", "\ufffd")


def engine_doc(engine: Engine) -> dict[str, Any]:
    """The stored form of `engine`. Absent optional fields are NONE (omitted)."""
    doc: dict[str, Any] = {
        "eid": engine.id,
        "name": engine.name,
        "engine_type": engine.engine_type.value,
        "version": engine.version,
        "configs": dict(engine.configs),
        "state": engine.state.value,
        "platform": engine.platform,
        "create_time": utc(engine.create_time, "create_time"),
        "update_time": utc(engine.update_time, "update_time"),
        "next_update_time": utc(engine.next_update_time, "next_update_time"),
        "revision": engine.revision,
    }
    if engine.owner is not None:
        doc["owner"] = engine.owner
    doc["grants"] = [
        {"kind": g.kind.value, "name": g.name, "level": g.level.label} for g in engine.grants
    ]
    for key in _OPTIONAL_STRINGS:
        value = getattr(engine, key)
        if key in ("message", "saved_logs"):
            value = _text(value)
        if value is not None:
            doc[key] = value
    activity = _utc_or_none(engine.last_activity_time, "last_activity_time")
    if activity is not None:
        doc["last_activity_time"] = activity
    if engine.auto_stop_minutes is not None:
        doc["auto_stop_minutes"] = float(engine.auto_stop_minutes)
    return doc


def stored_time(value: Any) -> datetime:
    """A datetime SurrealDB returned, as tz-aware UTC."""
    if not isinstance(value, datetime):
        raise StoreUnavailable(f"SurrealDB returned {value!r} where a datetime was stored")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def engine_from_doc(doc: Any) -> Engine:
    """An Engine from a stored record; a malformed record is the store's failure."""
    try:
        activity = doc.get("last_activity_time")
        auto_stop = doc.get("auto_stop_minutes")
        return Engine(
            id=str(doc["eid"]),
            name=str(doc["name"]),
            engine_type=EngineType(doc["engine_type"]),
            version=str(doc["version"]),
            configs={str(k): str(v) for k, v in (doc.get("configs") or {}).items()},
            state=EngineState(doc["state"]),
            platform=str(doc["platform"]),
            create_time=stored_time(doc["create_time"]),
            update_time=stored_time(doc["update_time"]),
            next_update_time=stored_time(doc["next_update_time"]),
            revision=int(doc["revision"]),
            message=doc.get("message"),
            endpoint=doc.get("endpoint"),
            lease_owner=doc.get("lease_owner"),
            last_activity_time=None if activity is None else stored_time(activity),
            auto_stop_minutes=None if auto_stop is None else float(auto_stop),
            connect_token=doc.get("connect_token"),
            saved_logs=doc.get("saved_logs"),
            owner=doc.get("owner"),
            pool=doc.get("pool"),
            grants=tuple(
                Grant(kind=GranteeKind(g["kind"]), name=str(g["name"]), level=GRANTABLE[g["level"]])
                for g in (doc.get("grants") or ())
            ),
        )
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise StoreUnavailable(f"SurrealDB holds a malformed engine record: {e!r}") from e


def event_from_doc(doc: Any) -> EngineEvent:
    """An EngineEvent from a stored record; a malformed record is the store's failure."""
    try:
        source = doc.get("from_state")
        return EngineEvent(
            engine_id=str(doc["engine_id"]),
            time=stored_time(doc["time"]),
            from_state=None if source is None else EngineState(source),
            to_state=EngineState(doc["to_state"]),
            message=doc.get("message"),
            actor=str(doc["actor"]),
        )
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise StoreUnavailable(f"SurrealDB holds a malformed event record: {e!r}") from e


def event_doc(
    engine: Engine, *, seq: int, from_state: EngineState | None, actor: str
) -> dict[str, Any]:
    """The stored form of the transition into `engine`'s state, `seq` its revision."""
    doc: dict[str, Any] = {
        "engine_id": engine.id,
        "seq": seq,
        "time": utc(engine.update_time, "update_time"),
        "to_state": engine.state.value,
        "actor": actor,
    }
    if from_state is not None:
        doc["from_state"] = from_state.value
    if engine.message is not None:
        doc["message"] = _text(engine.message)
    return doc


def as_rows(value: Any) -> list[Any]:
    """One statement's result as a list of records (none, one, or already a list)."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]
