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
  (surreal.embedded; its file lock makes the process the only writer), which
  makes every CAS exact.
- Guards: every write of an engine also writes (never deletes)
  `rucat_guard:<id>` in the same transaction. Any two writes of one engine on
  a remote server, even a delete and an update, then write a common key: the
  plain write-write conflict that optimistic transactions detect. A guard
  outlives its engine (a few bytes per removed engine).
- Owners and grants: `owner` and `grants` (an array of {kind, name, level})
  live on the engine record and are written by its compare-and-set; list
  filters on them in the query.
- Quotas: a quota-checked write counts the owner's active engines and THROWs
  in the same transaction when the limit is reached. Embedded, writes are
  serialised (above), so the count cannot go stale before the commit; on a
  remote server the transaction also writes `rucat_owner_guard:<owner>`, so
  two racing quota-checked writes of one owner conflict and one is retried,
  counting again.
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
from rucat.domain.access import GRANTABLE, Grant, GranteeKind, VisibleTo
from rucat.domain.engine import Engine, EngineEvent, EngineId, EngineType
from rucat.domain.errors import (
    EngineNotFound,
    InvalidRequest,
    QuotaExceeded,
    StoreConflict,
    StoreUnavailable,
)
from rucat.domain.quota import INACTIVE_STATES, counts_anew
from rucat.domain.state import LEASE_FALLBACK, STABLE_STATES, EngineState
from rucat.store.changes import ChangeFeed
from rucat.store.surreal.connection import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_QUERY_TIMEOUT,
    DEFAULT_RETRY_WINDOW,
    QueryFailed,
    SurrealConnection,
)
from rucat.store.surreal.tokens import TABLES_OF_TOKENS, SurrealTokens

__all__ = ["SurrealEngineStore"]

_OPTIONAL_STRINGS = ("message", "endpoint", "lease_owner", "connect_token", "saved_logs", "pool")

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
DEFINE FIELD OVERWRITE auto_stop_minutes ON rucat_engine TYPE option<float>;
DEFINE FIELD OVERWRITE connect_token ON rucat_engine TYPE option<string>;
DEFINE FIELD OVERWRITE saved_logs ON rucat_engine TYPE option<string>;
DEFINE FIELD OVERWRITE owner ON rucat_engine TYPE option<string>;
DEFINE FIELD OVERWRITE pool ON rucat_engine TYPE option<string>;
DEFINE FIELD OVERWRITE grants ON rucat_engine TYPE option<array<object>>;
DEFINE FIELD OVERWRITE grants[*].kind ON rucat_engine TYPE string;
DEFINE FIELD OVERWRITE grants[*].name ON rucat_engine TYPE string;
DEFINE FIELD OVERWRITE grants[*].level ON rucat_engine TYPE string;
DEFINE INDEX IF NOT EXISTS rucat_engine_owner ON rucat_engine FIELDS owner, state;
DEFINE INDEX IF NOT EXISTS rucat_engine_pool ON rucat_engine FIELDS pool, state;
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
DEFINE TABLE IF NOT EXISTS rucat_owner_guard SCHEMAFULL;
DEFINE FIELD OVERWRITE writes ON rucat_owner_guard TYPE int DEFAULT 0;
"""

#: Opens a quota-checked write transaction (see "Quotas" above); THROWs
#: `_QUOTA_MARK` and the count when `$owner` already has `$limit` active engines.
_QUOTA_MARK = "rucat-quota:"
_QUOTA = """
LET $active = count(SELECT VALUE eid FROM rucat_engine
    WHERE owner = $owner AND state NOTINSIDE $inactive);
IF $active >= $limit { THROW "{_QUOTA_MARK}" + <string>$active; };
UPSERT $ogid SET writes += 1 RETURN NONE;
""".replace("{_QUOTA_MARK}", _QUOTA_MARK)

#: Written by every transaction that writes an engine (see "Guards" above).
_GUARD = "UPSERT $gid SET writes += 1 RETURN NONE;"

_ADD = """
BEGIN TRANSACTION;
{_QUOTA}
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
{_QUOTA}
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


# Each write in two forms: quota-checked, and plain (no owner, no limit).
_ADD_UNCOUNTED = _ADD.replace("{_QUOTA}", "")
_ADD = _ADD.replace("{_QUOTA}", _QUOTA)
_TRANSITION_UNCOUNTED = _TRANSITION.replace("{_QUOTA}", "")
_TRANSITION = _TRANSITION.replace("{_QUOTA}", _QUOTA)

#: Engines `$viewer` may see: owned, or granted to the user or one of `$viewer_groups`.
_VISIBLE = (
    "(owner = $viewer OR array::len((grants ?? [])[WHERE (kind = 'user' AND name = $viewer)"
    " OR (kind = 'group' AND name INSIDE $viewer_groups)]) > 0)"
)


def _sees(viewer: VisibleTo, engine: Engine) -> bool:
    """`_VISIBLE` for one engine already read (the list cursor)."""
    return engine.owner == viewer.user or any(
        (g.kind is GranteeKind.user and g.name == viewer.user)
        or (g.kind is GranteeKind.group and g.name in viewer.groups)
        for g in engine.grants
    )


def _quota(owner: str | None, limit: int | None) -> dict[str, Any]:
    """Variables of `_QUOTA` (none when the write is not quota-checked)."""
    if owner is None or limit is None:
        return {}
    return {
        "owner": owner,
        "limit": limit,
        "inactive": sorted(s.value for s in INACTIVE_STATES),
        "ogid": RecordID("rucat_owner_guard", owner),
    }


def _raise_quota(error: QueryFailed, owner: str | None, limit: int | None) -> None:
    """Turn `_QUOTA`'s THROW into QuotaExceeded; any other failure is left to the caller."""
    at = error.text.find(_QUOTA_MARK)
    if at < 0 or owner is None or limit is None:
        return
    digits = error.text[at + len(_QUOTA_MARK) :].split()[0].rstrip(".,;'\"")
    active = int(digits) if digits.isdigit() else limit
    raise QuotaExceeded(owner=owner, limit=limit, active=active) from error


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


def _time(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise StoreUnavailable(f"SurrealDB returned {value!r} where a datetime was stored")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _engine(doc: Any) -> Engine:
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
            create_time=_time(doc["create_time"]),
            update_time=_time(doc["update_time"]),
            next_update_time=_time(doc["next_update_time"]),
            revision=int(doc["revision"]),
            message=doc.get("message"),
            endpoint=doc.get("endpoint"),
            lease_owner=doc.get("lease_owner"),
            last_activity_time=None if activity is None else _time(activity),
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


class SurrealEngineStore(SurrealTokens):
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
        await connection.open(setup=SCHEMA + TABLES_OF_TOKENS)
        return cls(connection)

    @property
    def description(self) -> str:
        """Names the database in messages and logs; never contains a password."""
        return f"SurrealDB at {self._db.target.shown}"

    async def add(self, *, engine: Engine, actor: str, active_limit: int | None = None) -> Engine:
        stored = replace(engine, revision=0)
        counted = active_limit is not None and engine.owner is not None
        quota = _quota(engine.owner, active_limit if counted else None)
        try:
            (row,) = await self._db.run(
                _ADD if counted else _ADD_UNCOUNTED,
                write=True,
                variables={
                    **_ids(engine.id, 0),
                    **quota,
                    "doc": _doc(stored),
                    "event": _event_doc(stored, seq=0, from_state=None, actor=actor),
                },
            )
        except QueryFailed as e:
            _raise_quota(e, engine.owner, active_limit)
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
        owner: str | None = None,
        visible_to: VisibleTo | None = None,
        pool: str | None = None,
    ) -> builtins.list[Engine]:
        if limit is not None and limit < 0:
            raise InvalidRequest(f"limit must be >= 0, got {limit}")
        if limit == 0 or (states is not None and len(states) == 0):
            if after is not None:
                await self._cursor(after, owner=owner, visible_to=visible_to, pool=pool)
            return []
        conditions: builtins.list[str] = []
        variables: dict[str, Any] = {}
        if owner is not None:
            variables["owner"] = owner
            conditions.append("owner = $owner")
        if pool is not None:
            variables["pool"] = pool
            conditions.append("pool = $pool")
        if visible_to is not None:
            variables["viewer"] = visible_to.user
            variables["viewer_groups"] = sorted(visible_to.groups)
            conditions.append(_VISIBLE)
        if after is not None:
            variables["after_time"] = await self._cursor(
                after, owner=owner, visible_to=visible_to, pool=pool
            )
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

    async def count_by_state(self) -> dict[EngineState, int]:
        (rows,) = await self._db.run(
            "SELECT state, count() AS n FROM rucat_engine GROUP BY state;", {}
        )
        return {EngineState(row["state"]): int(row["n"]) for row in _rows(rows)}

    async def _cursor(
        self,
        after: EngineId,
        *,
        owner: str | None,
        visible_to: VisibleTo | None,
        pool: str | None = None,
    ) -> datetime:
        found = await self._find(after)
        if found is not None and owner is not None and found.owner != owner:
            found = None
        if found is not None and pool is not None and found.pool != pool:
            found = None
        if found is not None and visible_to is not None and not _sees(visible_to, found):
            found = None
        if found is None:
            raise InvalidRequest(f"unknown cursor {after!r}: no engine has this id")
        return found.create_time

    async def transition(
        self, *, current: Engine, new: Engine, actor: str, active_limit: int | None = None
    ) -> Engine:
        if new.id != current.id:
            raise InvalidRequest(f"a transition cannot change the engine id ({current.id})")
        stored = replace(new, revision=current.revision + 1)
        with_event = new.state is not current.state
        event = (
            _event_doc(stored, seq=stored.revision, from_state=current.state, actor=actor)
            if with_event
            else {}
        )
        counted = active_limit is not None and counts_anew(
            current.state, current.owner, new.state, new.owner
        )
        try:
            (after,) = await self._db.run(
                _TRANSITION if counted else _TRANSITION_UNCOUNTED,
                write=True,
                variables={
                    **_ids(current.id, stored.revision),
                    **_quota(new.owner, active_limit if counted else None),
                    "expected": current.revision,
                    "doc": _doc(stored),
                    "with_event": with_event,
                    "event": event,
                },
            )
        except QueryFailed as e:
            _raise_quota(e, new.owner, active_limit)
            raise
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
