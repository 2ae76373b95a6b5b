"""The engine store on SQL: SQLite (the default) and PostgreSQL.

SQLAlchemy 2 Core. Each operation is one synchronous function over a
Connection, run without blocking the event loop: on SQLite in a worker
thread (pysqlite), on PostgreSQL through asyncpg. How each database is
connected (and migrated) lives in `dialects`, the tables and row mapping in
`schema`, the write transactions of engine rows in `writes`, owners, grants
and quotas in `access`, error conversion in `errors`, tokens in `tokens`,
wake-ups in `rucat.store.changes`; the schema is created and upgraded by
Alembic at open (`migrations/`).

Invariants:

* Every write is one transaction, and every change of a row is a
  compare-and-set: ``UPDATE ... WHERE id = :id AND revision = :read``. A lost
  race is reported as StoreConflict carrying the row as it is now.
* SQLite is safe for several processes on one file: WAL mode (readers never
  block the writer), a busy timeout, and ``BEGIN IMMEDIATE`` for writes, so a
  writer takes the write lock before it reads and never fails with "database
  is locked" half-way through a transaction. Within one process writes are
  also queued on an asyncio lock, so they do not busy-wait on each other.
* On PostgreSQL (READ COMMITTED) a racing UPDATE waits for the winner to
  commit, re-checks its WHERE on the new row and matches nothing.
* A quota (`active_limit`) is counted and the write made in one transaction
  that no other quota-checked write of the same owner can interleave with:
  on SQLite the write lock (BEGIN IMMEDIATE) serialises all writers; on
  PostgreSQL the transaction first takes an advisory lock on the owner's name
  (`pg_advisory_xact_lock`, released at commit), so racing creates of one
  owner count one after another and never exceed the limit.
* An engine's grants are rows of their own, replaced in the same transaction
  as the engine's compare-and-set when they change.
* Every driver or connection failure becomes StoreUnavailable naming the
  database (never the password), raised ``from`` the original error.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select, text

from rucat.config import PostgresConfig, SqliteConfig
from rucat.domain.access import VisibleTo
from rucat.domain.engine import Engine, EngineEvent, EngineId
from rucat.domain.errors import ConfigError, EngineNotFound, InvalidRequest, StoreConflict
from rucat.domain.quota import becomes_active, counts_anew
from rucat.domain.state import LEASE_FALLBACK, STABLE_STATES, EngineState
from rucat.store.changes import ChangeFeed
from rucat.store.sql.access import visible, with_grants
from rucat.store.sql.dialects import (
    SqlDatabase,
    migrate,
    postgres_engine,
    schema_is_current,
    sqlite_engine,
)
from rucat.store.sql.errors import converted_errors
from rucat.store.sql.schema import (
    SCHEMA_REVISION,
    engine_events,
    engine_from_row,
    engine_to_row,
    engines,
    event_from_row,
    utc,
)
from rucat.store.sql.statements import engine_by_id
from rucat.store.sql.tokens import SqlTokens
from rucat.store.sql.writes import (
    delete_engine,
    insert_engine,
    move_activity,
    update_engine,
    update_values,
)

__all__ = ["SqlEngineStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: States in which an engine waits for a monitor to claim it: writes into them
#: are announced on `changes()`.
_WAITING_STATES: frozenset[EngineState] = frozenset(LEASE_FALLBACK.values())


class SqlEngineStore(SqlTokens):
    """EngineStore on SQLite or PostgreSQL. Open with `open_sqlite`/`open_postgres`.

    Each operation is one synchronous function over a SQLAlchemy Connection,
    run by the database's Runner: a read, or a write in one transaction.
    """

    def __init__(self, database: SqlDatabase) -> None:
        self._runner = database.runner
        #: Names the database in messages; never contains a password.
        self.description = database.description
        self._write_lock = asyncio.Lock() if database.serialise_writes else None
        self._feed = ChangeFeed(listen=database.listen, description=self.description)
        #: PostgreSQL announces writes with NOTIFY; SQLite only within this store.
        self._notify_in_database = database.listen is not None
        #: PostgreSQL: get() and most add()s on asyncpg directly.
        self._hot = database.hot

    # --- opening --------------------------------------------------------

    @classmethod
    async def open_sqlite(cls, config: SqliteConfig) -> SqlEngineStore:
        """Open (creating the file and its folder) and migrate a SQLite database."""
        store = cls(await asyncio.to_thread(sqlite_engine, config))
        await store._open()
        return store

    @classmethod
    async def open_postgres(cls, config: PostgresConfig) -> SqlEngineStore:
        """Connect to and migrate a PostgreSQL database; fails within seconds if unreachable."""
        store = cls(postgres_engine(config))
        await store._open()
        return store

    async def _open(self) -> None:
        try:
            if not await self._read("connect", schema_is_current):
                await self._migrate()
            if self._hot is not None:
                with self._errors("connect"):
                    await self._hot.open()
        except BaseException:
            await self._runner.dispose()
            raise
        log.debug("opened %s", self.description)

    async def _migrate(self) -> None:
        from alembic.util import CommandError

        try:
            await self._write("migrate the schema", migrate)
        except CommandError as e:
            # Typically a database migrated by a newer Rucat than this one.
            raise ConfigError(
                f"{self.description}: cannot migrate the schema to revision "
                f"{SCHEMA_REVISION}: {e}; is a newer Rucat using this database?"
            ) from e

    async def close(self) -> None:
        await self._feed.close()
        if self._hot is not None:
            await self._hot.close()
        await self._runner.dispose()

    # --- running operations ---------------------------------------------

    def _errors(self, doing: str) -> AbstractContextManager[None]:
        """Turn driver failures into StoreUnavailable/StoreConflict; pass RucatErrors."""
        return converted_errors(self.description, doing)

    async def _read(self, doing: str, fn: Callable[[Connection], T]) -> T:
        with self._errors(doing):
            return await self._runner.run(fn, write=False)

    async def _write(self, doing: str, fn: Callable[[Connection], T]) -> T:
        """`fn` in one write transaction: committed if it returns, rolled back if it raises."""
        with self._errors(doing):
            if self._write_lock is None:
                return await self._runner.run(fn, write=True)
            async with self._write_lock:
                return await self._runner.run(fn, write=True)

    def _announced(self, engine_id: EngineId) -> None:
        """After a commit: tell this process's subscribers (those NOTIFY does not reach)."""
        if not self._notify_in_database:
            self._feed.publish(engine_id)

    # --- the EngineStore protocol ---------------------------------------

    async def add(self, *, engine: Engine, actor: str, active_limit: int | None = None) -> Engine:
        row = engine_to_row(replace(engine, revision=0))
        quota_checked = (
            active_limit is not None
            and engine.owner is not None
            and becomes_active(None, engine.state)
        )

        def add(conn: Connection) -> None:
            insert_engine(
                conn,
                engine,
                row,
                actor=actor,
                active_limit=active_limit if quota_checked else None,
                notify=self._notify_in_database,
            )

        if self._hot is not None and not quota_checked and not engine.grants:
            # One statement, one round trip; a quota or grants need the transaction.
            with self._errors("add an engine"):
                added = await self._hot.create(row, actor=actor, notify=self._notify_in_database)
            if not added:
                existing = await self._read(
                    "read an engine", lambda conn: engine_by_id(conn, engine.id)
                )
                raise StoreConflict(f"engine {engine.id} already exists", current=existing)
        else:
            await self._write("add an engine", add)
        self._announced(engine.id)
        # The row as stored: UTC timestamps, NUL replaced.
        return engine_from_row(row, engine.grants)

    async def get(self, *, engine_id: EngineId) -> Engine:
        if self._hot is not None:
            with self._errors("read an engine"):
                found = await self._hot.engine(engine_id)
        else:
            found = await self._read("read an engine", lambda conn: engine_by_id(conn, engine_id))
        if found is None:
            raise EngineNotFound(engine_id)
        return found

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
        # Filters that decide which engines exist for this caller: the cursor too.
        scope: builtins.list[ColumnElement[bool]] = []
        if owner is not None:
            scope.append(engines.c.owner == owner)
        if pool is not None:
            scope.append(engines.c.pool == pool)
        if visible_to is not None:
            scope.append(visible(visible_to))
        query = select(engines).where(*scope).order_by(engines.c.create_time, engines.c.id)
        if states is not None:
            try:
                values = [EngineState(s).value for s in states]
            except ValueError as e:
                raise InvalidRequest(f"unknown state in filter: {e}") from e
            query = query.where(engines.c.state.in_(values))
        if limit is not None:
            query = query.limit(limit)

        def page(conn: Connection) -> builtins.list[Engine]:
            nonlocal query
            if after is not None:
                cursor = conn.scalar(
                    select(engines.c.create_time).where(engines.c.id == after, *scope)
                )
                if cursor is None:
                    raise InvalidRequest(f"unknown cursor {after!r}: no engine has this id")
                query = query.where(
                    or_(
                        engines.c.create_time > cursor,
                        and_(engines.c.create_time == cursor, engines.c.id > after),
                    )
                )
            return with_grants(conn, list(conn.execute(query).mappings()))

        return await self._read("list engines", page)

    async def count_by_state(self) -> dict[EngineState, int]:
        query = select(engines.c.state, func.count()).group_by(engines.c.state)

        def counts(conn: Connection) -> dict[EngineState, int]:
            return {EngineState(state): int(n) for state, n in conn.execute(query)}

        return await self._read("count engines by state", counts)

    async def transition(
        self, *, current: Engine, new: Engine, actor: str, active_limit: int | None = None
    ) -> Engine:
        """CAS write of `new`; last_activity_time keeps the later of row's and new's."""
        if new.id != current.id:
            raise InvalidRequest(f"cannot turn engine {current.id} into engine {new.id}")
        values = update_values(new, current.revision + 1)
        wakes = new.state is not current.state and new.state in _WAITING_STATES

        quota_owner = (
            new.owner
            if active_limit is not None
            and counts_anew(current.state, current.owner, new.state, new.owner)
            else None
        )

        def transition(conn: Connection) -> Engine:
            return update_engine(
                conn,
                current=current,
                new=new,
                values=values,
                actor=actor,
                quota_owner=quota_owner,
                active_limit=active_limit,
                notify=wakes and self._notify_in_database,
            )

        stored = await self._write("update an engine", transition)
        if wakes:
            self._announced(current.id)
        return stored

    async def remove(self, *, current: Engine) -> None:
        await self._write("remove an engine", lambda conn: delete_engine(conn, current))

    async def due(self, *, platform: str, now: datetime, limit: int) -> builtins.list[Engine]:
        if limit < 0:
            raise InvalidRequest(f"limit must be >= 0, got {limit}")
        query = (
            select(engines)
            .where(
                engines.c.platform == platform,
                engines.c.next_update_time <= utc(now, "now"),
                engines.c.state.not_in([s.value for s in STABLE_STATES]),
            )
            .order_by(engines.c.next_update_time, engines.c.id)
            .limit(limit)
        )

        def due(conn: Connection) -> builtins.list[Engine]:
            return with_grants(conn, list(conn.execute(query).mappings()))

        return await self._read("list due engines", due)

    async def events(self, *, engine_id: EngineId) -> builtins.list[EngineEvent]:
        def events(conn: Connection) -> builtins.list[EngineEvent]:
            if conn.scalar(select(engines.c.id).where(engines.c.id == engine_id)) is None:
                raise EngineNotFound(engine_id)
            rows = conn.execute(
                select(engine_events)
                .where(engine_events.c.engine_id == engine_id)
                .order_by(engine_events.c.seq)
            ).mappings()
            return [event_from_row(row) for row in rows]

        return await self._read("read engine events", events)

    async def record_activity(self, *, engine_id: EngineId, at: datetime) -> None:
        at = utc(at, "at")
        await self._write("record engine activity", lambda conn: move_activity(conn, engine_id, at))

    def changes(self) -> AsyncIterator[EngineId]:
        """Ids of engines that now wait for a monitor: a wake-up hint only.

        Announced: every added engine, and every transition into a state that
        waits for a monitor to claim it (WaitToStart, WaitToTerminate,
        ErrorWaitToClean), such as a user's STOP. A monitor's own progress is
        not announced: NOTIFY serialises PostgreSQL commits, so it is kept off
        the hot path. Ids may come late, twice or never (see
        rucat.store.changes); on PostgreSQL they include other processes'
        writes.
        """
        return self._feed.subscribe()

    async def ping(self) -> None:
        await self._read("answer a ping", lambda conn: conn.execute(text("SELECT 1")).all())
