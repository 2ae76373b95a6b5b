"""The EngineStore on SurrealDB, the seed's database: embedded (mem://, surrealkv://) or remote.

Same contract as the SQL store (one suite runs on both). How it holds here:

- Records: `rucat_engine:<id>` holds one engine; `rucat_event:[<id>, <seq>]`
  one transition, where `seq` is the engine's revision right after it (0 for
  the creation), so history order is revision order even when two events share
  a time, and an event id can never be written twice.
- Compare-and-set: one SurrealQL transaction updates the engine `WHERE
  revision = $expected` and, only if that matched, writes the event. A CAS that
  matched nothing is a real conflict: the row is read and returned in
  StoreConflict. A transaction SurrealDB rolled back because a concurrent one
  touched the same keys ("read or write conflict") is retried by
  `SurrealConnection.run` and never surfaces as a conflict.
- SurrealDB 2.0's embedded engine does not always catch two concurrent
  transactions writing one record: measured here, 20 racing CAS updates of one
  revision let two commit in 1-10% of races, and a CAS update racing a CAS
  delete both committed in 3-15%. So embedded writes are serialised in-process
  (surreal_embedded; its file lock makes the process the only writer), which
  makes every CAS exact.
- Guards: every write of an engine also writes (never deletes)
  `rucat_guard:<id>` in the same transaction. Any two writes of one engine on
  a remote server, even a delete and an update, then write a common key: the
  plain write-write conflict that optimistic transactions detect. A guard
  outlives its engine (a few bytes per removed engine).
- Schema: defined at open with `IF NOT EXISTS` (tables, indexes) and
  `OVERWRITE` (field types), so opening is idempotent and concurrent opens agree.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Collection
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from surrealdb import RecordID

from rucat.config import SurrealConfig
from rucat.domain.engine import Engine, EngineEvent, EngineId, EngineType
from rucat.domain.errors import (
    EngineNotFound,
    InvalidRequest,
    StoreConflict,
    StoreUnavailable,
)
from rucat.domain.state import LEASE_FALLBACK, STABLE_STATES, EngineState
from rucat.store.sql_notify import ChangeFeed
from rucat.store.surreal_conn import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_QUERY_TIMEOUT,
    DEFAULT_RETRY_WINDOW,
    QueryFailed,
    SurrealConnection,
)

__all__ = ["SurrealEngineStore"]

_OPTIONAL_STRINGS = ("message", "endpoint", "lease_owner", "connect_token", "saved_logs")

SCHEMA = """
DEFINE TABLE IF NOT EXISTS rucat_engine SCHEMAFULL;
DEFINE FIELD OVERWRITE eid ON rucat_engine TYPE string;
DEFINE FIELD OVERWRITE name ON rucat_engine TYPE string;
DEFINE FIELD OVERWRITE engine_type ON rucat_engine TYPE string;
DEFINE FIELD OVERWRITE version ON rucat_engine TYPE string;
DEFINE FIELD OVERWRITE configs ON rucat_engine FLEXIBLE TYPE object;
DEFINE FIELD OVERWRITE state ON rucat_engine TYPE string;
DEFINE FIELD OVERWRITE platform ON rucat_engine TYPE string;
DEFINE FIELD OVERWRITE create_time ON rucat_engine TYPE datetime;
DEFINE FIELD OVERWRITE update_time ON rucat_engine TYPE datetime;
DEFINE FIELD OVERWRITE next_update_time ON rucat_engine TYPE datetime;
DEFINE FIELD OVERWRITE revision ON rucat_engine TYPE int;
DEFINE FIELD OVERWRITE message ON rucat_engine TYPE option<string>;
DEFINE FIELD OVERWRITE endpoint ON rucat_engine TYPE option<string>;
DEFINE FIELD OVERWRITE lease_owner ON rucat_engine TYPE option<string>;
DEFINE FIELD OVERWRITE last_activity_time ON rucat_engine TYPE option<datetime>;
DEFINE FIELD OVERWRITE connect_token ON rucat_engine TYPE option<string>;
DEFINE FIELD OVERWRITE saved_logs ON rucat_engine TYPE option<string>;
DEFINE INDEX IF NOT EXISTS rucat_engine_created ON rucat_engine FIELDS create_time, eid;
DEFINE INDEX IF NOT EXISTS rucat_engine_due ON rucat_engine FIELDS platform, next_update_time;
DEFINE TABLE IF NOT EXISTS rucat_event SCHEMAFULL;
DEFINE FIELD OVERWRITE engine_id ON rucat_event TYPE string;
DEFINE FIELD OVERWRITE seq ON rucat_event TYPE int;
DEFINE FIELD OVERWRITE time ON rucat_event TYPE datetime;
DEFINE FIELD OVERWRITE from_state ON rucat_event TYPE option<string>;
DEFINE FIELD OVERWRITE to_state ON rucat_event TYPE string;
DEFINE FIELD OVERWRITE message ON rucat_event TYPE option<string>;
DEFINE FIELD OVERWRITE actor ON rucat_event TYPE string;
DEFINE INDEX IF NOT EXISTS rucat_event_engine ON rucat_event FIELDS engine_id, seq;
DEFINE TABLE IF NOT EXISTS rucat_guard SCHEMAFULL;
DEFINE FIELD OVERWRITE writes ON rucat_guard TYPE int DEFAULT 0;
"""

#: Written by every transaction that writes an engine (see "Guards" above).
_GUARD = "UPSERT $gid SET writes += 1 RETURN NONE;"

_ADD = """
BEGIN TRANSACTION;
LET $row = (CREATE $rid CONTENT $doc RETURN AFTER);
CREATE $evid CONTENT $event;
{_GUARD}
RETURN $row;
COMMIT TRANSACTION;
""".replace("{_GUARD}", _GUARD)

# The CAS: the event is written only when the update matched, in the same
# transaction, so a row and its history never disagree.
# Activity only moves forward here too: a writer whose read predates the
# proxy's last report keeps the stored, later activity time.
_TRANSITION = """
BEGIN TRANSACTION;
LET $prev = (SELECT VALUE last_activity_time FROM $rid);
LET $after = (UPDATE $rid CONTENT $doc
              WHERE revision = $expected RETURN AFTER);
IF array::len($after) > 0 {
    IF $with_event {
        CREATE $evid CONTENT $event;
    };
    UPDATE $rid SET last_activity_time = $prev[0]
        WHERE $prev[0] != NONE AND (last_activity_time = NONE OR last_activity_time < $prev[0])
        RETURN NONE;
    {_GUARD}
};
RETURN IF array::len($after) > 0 THEN (SELECT * FROM $rid) ELSE [] END;
COMMIT TRANSACTION;
""".replace("{_GUARD}", _GUARD)

_REMOVE = """
BEGIN TRANSACTION;
LET $gone = (DELETE $rid WHERE revision = $expected RETURN BEFORE);
IF array::len($gone) > 0 {
    DELETE rucat_event WHERE engine_id = $id;
    {_GUARD}
};
RETURN $gone;
COMMIT TRANSACTION;
""".replace("{_GUARD}", _GUARD)

_GET = "SELECT * FROM $rid;"

_EVENTS = """
SELECT VALUE eid FROM $rid;
SELECT * FROM rucat_event WHERE engine_id = $id ORDER BY seq ASC;
"""

_DUE = """
SELECT * FROM rucat_engine
WHERE platform = $platform AND next_update_time <= $now AND state NOTINSIDE $stable
ORDER BY next_update_time ASC, eid ASC LIMIT $limit;
"""

# Activity only moves forward: reports arriving out of order never make an
# engine look idle for longer than it is. Not a state change: no revision bump.
_ACTIVITY = """
BEGIN TRANSACTION;
LET $moved = (UPDATE $rid SET last_activity_time = $at
    WHERE last_activity_time = NONE OR last_activity_time < $at RETURN VALUE eid);
IF array::len($moved) > 0 {
    {_GUARD}
};
RETURN (SELECT VALUE eid FROM $rid);
COMMIT TRANSACTION;
""".replace("{_GUARD}", _GUARD)


def _utc(value: datetime, what: str) -> datetime:
    if value.utcoffset() is None:
        raise InvalidRequest(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _utc_or_none(value: datetime | None, what: str) -> datetime | None:
    return None if value is None else _utc(value, what)


def _text(value: str | None) -> str | None:
    """Free text (messages, captured logs) as every backend stores it.

    PostgreSQL text cannot hold NUL, and engine logs may contain it: NUL
    becomes U+FFFD in every store, so all of them store the same thing.
    """
    return None if value is None else value.replace("\x00", "\ufffd")


def _doc(engine: Engine) -> dict[str, Any]:
    """The stored form of `engine`. Absent optional fields are NONE (omitted)."""
    doc: dict[str, Any] = {
        "eid": engine.id,
        "name": engine.name,
        "engine_type": engine.engine_type.value,
        "version": engine.version,
        "configs": dict(engine.configs),
        "state": engine.state.value,
        "platform": engine.platform,
        "create_time": _utc(engine.create_time, "create_time"),
        "update_time": _utc(engine.update_time, "update_time"),
        "next_update_time": _utc(engine.next_update_time, "next_update_time"),
        "revision": engine.revision,
    }
    for key in _OPTIONAL_STRINGS:
        value = getattr(engine, key)
        if key in ("message", "saved_logs"):
            value = _text(value)
        if value is not None:
            doc[key] = value
    activity = _utc_or_none(engine.last_activity_time, "last_activity_time")
    if activity is not None:
        doc["last_activity_time"] = activity
    return doc


def _time(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise StoreUnavailable(f"SurrealDB returned {value!r} where a datetime was stored")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _engine(doc: Any) -> Engine:
    """An Engine from a stored record; a malformed record is the store's failure."""
    try:
        activity = doc.get("last_activity_time")
        return Engine(
            id=str(doc["eid"]),
            name=str(doc["name"]),
            engine_type=EngineType(doc["engine_type"]),
            version=str(doc["version"]),
            configs={str(k): str(v) for k, v in (doc.get("configs") or {}).items()},
            state=EngineState(doc["state"]),
            platform=str(doc["platform"]),
            create_time=_time(doc["create_time"]),
            update_time=_time(doc["update_time"]),
            next_update_time=_time(doc["next_update_time"]),
            revision=int(doc["revision"]),
            message=doc.get("message"),
            endpoint=doc.get("endpoint"),
            lease_owner=doc.get("lease_owner"),
            last_activity_time=None if activity is None else _time(activity),
            connect_token=doc.get("connect_token"),
            saved_logs=doc.get("saved_logs"),
        )
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise StoreUnavailable(f"SurrealDB holds a malformed engine record: {e!r}") from e


def _event(doc: Any) -> EngineEvent:
    try:
        source = doc.get("from_state")
        return EngineEvent(
            engine_id=str(doc["engine_id"]),
            time=_time(doc["time"]),
            from_state=None if source is None else EngineState(source),
            to_state=EngineState(doc["to_state"]),
            message=doc.get("message"),
            actor=str(doc["actor"]),
        )
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise StoreUnavailable(f"SurrealDB holds a malformed event record: {e!r}") from e


def _event_doc(
    engine: Engine, *, seq: int, from_state: EngineState | None, actor: str
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "engine_id": engine.id,
        "seq": seq,
        "time": _utc(engine.update_time, "update_time"),
        "to_state": engine.state.value,
        "actor": actor,
    }
    if from_state is not None:
        doc["from_state"] = from_state.value
    if engine.message is not None:
        doc["message"] = _text(engine.message)
    return doc


def _ids(engine_id: EngineId, event_seq: int | None = None) -> dict[str, Any]:
    """Query parameters naming an engine's records (ids go in as values, never as text)."""
    ids: dict[str, Any] = {
        "id": engine_id,
        "rid": RecordID("rucat_engine", engine_id),
        "gid": RecordID("rucat_guard", engine_id),
    }
    if event_seq is not None:
        ids["evid"] = RecordID("rucat_event", [engine_id, event_seq])
    return ids


def _rows(value: Any) -> builtins.list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


class SurrealEngineStore:
    """EngineStore on SurrealDB. Open with `await SurrealEngineStore.open(config)`."""

    def __init__(self, connection: SurrealConnection) -> None:
        self._db = connection
        # In-process only: monitors in other processes see writes at their next check.
        self._feed = ChangeFeed(listen=None, description="SurrealDB")

    def changes(self) -> AsyncIterator[EngineId]:
        """Ids of engines this store just made wait for a monitor (a hint only)."""
        return self._feed.subscribe()

    @classmethod
    async def open(
        cls,
        config: SurrealConfig,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        query_timeout: float = DEFAULT_QUERY_TIMEOUT,
        retry_window: float = DEFAULT_RETRY_WINDOW,
    ) -> SurrealEngineStore:
        """Connect and define the schema; ConfigError or StoreUnavailable within the timeout."""
        connection = SurrealConnection(
            config,
            connect_timeout=connect_timeout,
            query_timeout=query_timeout,
            retry_window=retry_window,
        )
        await connection.open(setup=SCHEMA)
        return cls(connection)

    @property
    def description(self) -> str:
        """Names the database in messages and logs; never contains a password."""
        return f"SurrealDB at {self._db.target.shown}"

    async def add(self, *, engine: Engine, actor: str) -> Engine:
        stored = replace(engine, revision=0)
        try:
            (row,) = await self._db.run(
                _ADD,
                write=True,
                variables={
                    **_ids(engine.id, 0),
                    "doc": _doc(stored),
                    "event": _event_doc(stored, seq=0, from_state=None, actor=actor),
                },
            )
        except QueryFailed as e:
            if "already exists" not in e.text:
                raise
            current = await self._find(engine.id)
            raise StoreConflict(f"engine {engine.id} already exists", current=current) from e
        self._feed.publish(engine.id)
        # The row as stored: UTC timestamps, NUL replaced.
        return _engine(_rows(row)[0])

    async def get(self, *, engine_id: EngineId) -> Engine:
        found = await self._find(engine_id)
        if found is None:
            raise EngineNotFound(engine_id)
        return found

    async def _find(self, engine_id: EngineId) -> Engine | None:
        (rows,) = await self._db.run(_GET, _ids(engine_id))
        rows = _rows(rows)
        return _engine(rows[0]) if rows else None

    async def list(
        self,
        *,
        states: Collection[EngineState] | None = None,
        limit: int | None = None,
        after: EngineId | None = None,
    ) -> builtins.list[Engine]:
        if limit is not None and limit < 0:
            raise InvalidRequest(f"limit must be >= 0, got {limit}")
        if limit == 0 or (states is not None and len(states) == 0):
            if after is not None:
                await self._cursor(after)
            return []
        conditions: builtins.list[str] = []
        variables: dict[str, Any] = {}
        if after is not None:
            variables["after_time"] = await self._cursor(after)
            variables["after"] = after
            conditions.append(
                "(create_time > $after_time OR (create_time = $after_time AND eid > $after))"
            )
        if states is not None:
            variables["states"] = sorted(EngineState(s).value for s in states)
            conditions.append("state INSIDE $states")
        query = "SELECT * FROM rucat_engine"
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        query += " ORDER BY create_time ASC, eid ASC"
        if limit is not None:
            variables["limit"] = limit
            query += " LIMIT $limit"
        (rows,) = await self._db.run(query + ";", variables)
        return [_engine(row) for row in _rows(rows)]

    async def _cursor(self, after: EngineId) -> datetime:
        found = await self._find(after)
        if found is None:
            raise InvalidRequest(f"unknown cursor {after!r}: no engine has this id")
        return found.create_time

    async def transition(self, *, current: Engine, new: Engine, actor: str) -> Engine:
        if new.id != current.id:
            raise InvalidRequest(f"a transition cannot change the engine id ({current.id})")
        stored = replace(new, revision=current.revision + 1)
        with_event = new.state is not current.state
        event = (
            _event_doc(stored, seq=stored.revision, from_state=current.state, actor=actor)
            if with_event
            else {}
        )
        (after,) = await self._db.run(
            _TRANSITION,
            write=True,
            variables={
                **_ids(current.id, stored.revision),
                "expected": current.revision,
                "doc": _doc(stored),
                "with_event": with_event,
                "event": event,
            },
        )
        rows = _rows(after)
        if rows:
            if with_event and new.state in LEASE_FALLBACK.values():
                self._feed.publish(current.id)
            return _engine(rows[0])
        raise await self._conflict(current, "update")

    async def _conflict(self, current: Engine, doing: str) -> StoreConflict:
        now = await self._find(current.id)
        if now is None:
            why = "it was removed"
        else:
            why = f"it is now at revision {now.revision} in state {now.state.value}"
        return StoreConflict(
            f"cannot {doing} engine {current.id} at revision {current.revision}: {why}",
            current=now,
        )

    async def remove(self, *, current: Engine) -> None:
        (gone,) = await self._db.run(
            _REMOVE, {**_ids(current.id), "expected": current.revision}, write=True
        )
        if not _rows(gone):
            raise await self._conflict(current, "remove")

    async def due(self, *, platform: str, now: datetime, limit: int) -> builtins.list[Engine]:
        if limit < 0:
            raise InvalidRequest(f"limit must be >= 0, got {limit}")
        if limit == 0:
            return []
        (rows,) = await self._db.run(
            _DUE,
            {
                "platform": platform,
                "now": _utc(now, "now"),
                "stable": sorted(s.value for s in STABLE_STATES),
                "limit": limit,
            },
        )
        return [_engine(row) for row in _rows(rows)]

    async def events(self, *, engine_id: EngineId) -> builtins.list[EngineEvent]:
        found, rows = await self._db.run(_EVENTS, _ids(engine_id))
        if not _rows(found):
            raise EngineNotFound(engine_id)
        return [_event(row) for row in _rows(rows)]

    async def record_activity(self, *, engine_id: EngineId, at: datetime) -> None:
        (found,) = await self._db.run(
            _ACTIVITY, {**_ids(engine_id), "at": _utc(at, "at")}, write=True
        )
        if not _rows(found):
            raise EngineNotFound(engine_id)

    async def ping(self) -> None:
        (answer,) = await self._db.run("RETURN 1;")
        if answer != 1:
            raise StoreUnavailable(f"SurrealDB answered {answer!r} to RETURN 1")

    async def close(self) -> None:
        await self._feed.close()
        await self._db.close()
