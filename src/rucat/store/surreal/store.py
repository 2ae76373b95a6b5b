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

The SurrealQL (schema, transactions) is in `queries`, the Engine <-> record
mapping in `records`, the token methods in `tokens`.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Collection
from dataclasses import replace
from datetime import datetime
from typing import Any

from rucat.config import SurrealConfig
from rucat.domain.access import VisibleTo
from rucat.domain.engine import Engine, EngineEvent, EngineId
from rucat.domain.errors import (
    EngineNotFound,
    InvalidRequest,
    StoreConflict,
    StoreUnavailable,
)
from rucat.domain.quota import counts_anew
from rucat.domain.state import LEASE_FALLBACK, STABLE_STATES, EngineState
from rucat.store.changes import ChangeFeed
from rucat.store.conflicts import lost_race
from rucat.store.surreal import queries
from rucat.store.surreal.connection import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_QUERY_TIMEOUT,
    DEFAULT_RETRY_WINDOW,
    QueryFailed,
    SurrealConnection,
)
from rucat.store.surreal.records import (
    as_rows,
    engine_doc,
    engine_from_doc,
    event_doc,
    event_from_doc,
    utc,
)
from rucat.store.surreal.tokens import TABLES_OF_TOKENS, SurrealTokens

__all__ = ["SurrealEngineStore"]


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
        await connection.open(setup=queries.SCHEMA + TABLES_OF_TOKENS)
        return cls(connection)

    @property
    def description(self) -> str:
        """Names the database in messages and logs; never contains a password."""
        return f"SurrealDB at {self._db.target.shown}"

    async def add(self, *, engine: Engine, actor: str, active_limit: int | None = None) -> Engine:
        stored = replace(engine, revision=0)
        counted = active_limit is not None and engine.owner is not None
        quota = queries.quota_variables(engine.owner, active_limit if counted else None)
        try:
            (row,) = await self._db.run(
                queries.ADD if counted else queries.ADD_UNCOUNTED,
                write=True,
                variables={
                    **queries.record_ids(engine.id, 0),
                    **quota,
                    "doc": engine_doc(stored),
                    "event": event_doc(stored, seq=0, from_state=None, actor=actor),
                },
            )
        except QueryFailed as e:
            queries.raise_quota(e, engine.owner, active_limit)
            if "already exists" not in e.text:
                raise
            current = await self._find(engine.id)
            raise StoreConflict(f"engine {engine.id} already exists", current=current) from e
        self._feed.publish(engine.id)
        # The row as stored: UTC timestamps, NUL replaced.
        return engine_from_doc(as_rows(row)[0])

    async def get(self, *, engine_id: EngineId) -> Engine:
        found = await self._find(engine_id)
        if found is None:
            raise EngineNotFound(engine_id)
        return found

    async def _find(self, engine_id: EngineId) -> Engine | None:
        (rows,) = await self._db.run(queries.GET, queries.record_ids(engine_id))
        rows = as_rows(rows)
        return engine_from_doc(rows[0]) if rows else None

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
            conditions.append(queries.VISIBLE)
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
        return [engine_from_doc(row) for row in as_rows(rows)]

    async def count_by_state(self) -> dict[EngineState, int]:
        (rows,) = await self._db.run(
            "SELECT state, count() AS n FROM rucat_engine GROUP BY state;", {}
        )
        return {EngineState(row["state"]): int(row["n"]) for row in as_rows(rows)}

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
        if found is not None and visible_to is not None and not queries.sees(visible_to, found):
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
            event_doc(stored, seq=stored.revision, from_state=current.state, actor=actor)
            if with_event
            else {}
        )
        counted = active_limit is not None and counts_anew(
            current.state, current.owner, new.state, new.owner
        )
        try:
            (after,) = await self._db.run(
                queries.TRANSITION if counted else queries.TRANSITION_UNCOUNTED,
                write=True,
                variables={
                    **queries.record_ids(current.id, stored.revision),
                    **queries.quota_variables(new.owner, active_limit if counted else None),
                    "expected": current.revision,
                    "doc": engine_doc(stored),
                    "with_event": with_event,
                    "event": event,
                },
            )
        except QueryFailed as e:
            queries.raise_quota(e, new.owner, active_limit)
            raise
        rows = as_rows(after)
        if rows:
            if with_event and new.state in LEASE_FALLBACK.values():
                self._feed.publish(current.id)
            return engine_from_doc(rows[0])
        raise await self._conflict(current, "update")

    async def _conflict(self, current: Engine, doing: str) -> StoreConflict:
        return lost_race(current, await self._find(current.id), doing)

    async def remove(self, *, current: Engine) -> None:
        (gone,) = await self._db.run(
            queries.REMOVE,
            {**queries.record_ids(current.id), "expected": current.revision},
            write=True,
        )
        if not as_rows(gone):
            raise await self._conflict(current, "remove")

    async def due(self, *, platform: str, now: datetime, limit: int) -> builtins.list[Engine]:
        if limit < 0:
            raise InvalidRequest(f"limit must be >= 0, got {limit}")
        if limit == 0:
            return []
        (rows,) = await self._db.run(
            queries.DUE,
            {
                "platform": platform,
                "now": utc(now, "now"),
                "stable": sorted(s.value for s in STABLE_STATES),
                "limit": limit,
            },
        )
        return [engine_from_doc(row) for row in as_rows(rows)]

    async def events(self, *, engine_id: EngineId) -> builtins.list[EngineEvent]:
        found, rows = await self._db.run(queries.EVENTS, queries.record_ids(engine_id))
        if not as_rows(found):
            raise EngineNotFound(engine_id)
        return [event_from_doc(row) for row in as_rows(rows)]

    async def record_activity(self, *, engine_id: EngineId, at: datetime) -> None:
        (found,) = await self._db.run(
            queries.ACTIVITY, {**queries.record_ids(engine_id), "at": utc(at, "at")}, write=True
        )
        if not as_rows(found):
            raise EngineNotFound(engine_id)

    async def ping(self) -> None:
        (answer,) = await self._db.run("RETURN 1;")
        if answer != 1:
            raise StoreUnavailable(f"SurrealDB answered {answer!r} to RETURN 1")

    async def close(self) -> None:
        await self._feed.close()
        await self._db.close()
