"""The engine store on SQL: SQLite (the default) and PostgreSQL.

SQLAlchemy 2 Core. Each operation is one synchronous function over a
Connection, run without blocking the event loop: on SQLite in a worker
thread (pysqlite), on PostgreSQL through asyncpg. How each database is
connected lives in `dialects`, the tables in `schema`, wake-ups in
`rucat.store.changes`; the schema is created and upgraded by Alembic at open
(`migrations/`).

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
import sqlite3
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    and_,
    case,
    column,
    delete,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    table,
    text,
    update,
)
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from rucat.config import PostgresConfig, SqliteConfig
from rucat.domain.access import VisibleTo
from rucat.domain.engine import Engine, EngineEvent, EngineId
from rucat.domain.errors import (
    ConfigError,
    EngineNotFound,
    InvalidRequest,
    RucatError,
    StoreConflict,
    StoreUnavailable,
)
from rucat.domain.quota import becomes_active, counts_anew
from rucat.domain.state import LEASE_FALLBACK, STABLE_STATES, EngineState
from rucat.store.changes import CHANNEL, ChangeFeed
from rucat.store.sql.access import check_quota, visible, with_grants
from rucat.store.sql.dialects import (
    MIGRATION_LOCK_KEY,
    SqlDatabase,
    postgres_engine,
    sqlite_engine,
    upgrade_to_head,
)
from rucat.store.sql.schema import (
    SCHEMA_REVISION,
    VERSION_TABLE,
    UtcDateTime,
    engine_events,
    engine_from_row,
    engine_grants,
    engine_to_row,
    engines,
    grant_rows,
    utc,
)
from rucat.store.sql.statements import engine_by_id
from rucat.store.sql.tokens import SqlTokens

__all__ = ["SqlEngineStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: States in which an engine waits for a monitor to claim it: writes into them
#: are announced on `changes()`.
_WAITING_STATES: frozenset[EngineState] = frozenset(LEASE_FALLBACK.values())

#: Errors that mean "the database failed", as opposed to a bug in Rucat.
_DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    sqlite3.Error,
    OSError,
    TimeoutError,
)
#: Errors that mean "the values cannot be stored" (a bad request, not an outage).
_DATA_ERRORS: tuple[type[BaseException], ...] = (DataError,)
try:  # asyncpg's own errors, raised where SQLAlchemy does not wrap them (and on the hot path)
    import asyncpg

    _DRIVER_ERRORS += (asyncpg.PostgresError, asyncpg.InterfaceError)
    _DATA_ERRORS += (asyncpg.DataError,)
except ImportError:  # pragma: no cover - asyncpg is a dependency
    pass


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
            if not await self._read("connect", _schema_is_current):
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

        def migrate(conn: Connection) -> None:
            if conn.dialect.name == "postgresql":
                # Two processes opening one fresh database migrate it once.
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            upgrade_to_head(conn)

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

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn driver failures into StoreUnavailable/StoreConflict; pass RucatErrors."""
        try:
            yield
        except RucatError:
            raise
        except IntegrityError as e:
            if _is_unique_violation(e):
                # Two writers inserted one id at once; the other one won.
                raise StoreConflict(
                    f"{self.description}: cannot {doing}: conflicting write ({_reason(e)})",
                    current=None,
                ) from e
            raise InvalidRequest(f"{self.description}: cannot {doing}: {_reason(e)}") from e
        except _DATA_ERRORS as e:
            raise InvalidRequest(f"{self.description}: cannot {doing}: {_reason(e)}") from e
        except _DRIVER_ERRORS as e:
            raise StoreUnavailable(f"{self.description}: cannot {doing}: {_reason(e)}") from e

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

    def _announce(self, conn: Connection, engine_id: EngineId) -> None:
        """Inside a write transaction: NOTIFY (sent by PostgreSQL at commit)."""
        if self._notify_in_database:
            conn.execute(
                text("SELECT pg_notify(:channel, :engine_id)"),
                {"channel": CHANNEL, "engine_id": engine_id},
            )

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
            if quota_checked and engine.owner is not None and active_limit is not None:
                check_quota(conn, engine.owner, active_limit)
            existing = engine_by_id(conn, engine.id)
            if existing is not None:
                raise StoreConflict(f"engine {engine.id} already exists", current=existing)
            conn.execute(insert(engines).values(**row))
            if engine.grants:
                conn.execute(insert(engine_grants), grant_rows(engine.id, engine.grants))
            conn.execute(
                insert(engine_events).values(
                    engine_id=engine.id,
                    time=row["create_time"],
                    from_state=None,
                    to_state=engine.state.value,
                    message=row["message"],
                    actor=actor,
                )
            )
            self._announce(conn, engine.id)

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
        row = engine_to_row(replace(new, revision=current.revision + 1))
        del row["id"]
        wakes = new.state is not current.state and new.state in _WAITING_STATES
        # Activity is recorded without a revision bump, so `new` may carry an
        # older last_activity_time than the row: it only ever moves forward.
        activity = row.pop("last_activity_time")
        values: dict[str, Any] = dict(row)
        if activity is not None:
            stamp = literal(activity, UtcDateTime())
            values["last_activity_time"] = case(
                (
                    or_(
                        engines.c.last_activity_time.is_(None),
                        engines.c.last_activity_time < stamp,
                    ),
                    stamp,
                ),
                else_=engines.c.last_activity_time,
            )

        quota_owner = (
            new.owner
            if active_limit is not None
            and counts_anew(current.state, current.owner, new.state, new.owner)
            else None
        )

        def transition(conn: Connection) -> Engine:
            if quota_owner is not None and active_limit is not None:
                check_quota(conn, quota_owner, active_limit)
            stored = (
                conn.execute(
                    update(engines)
                    .where(engines.c.id == current.id, engines.c.revision == current.revision)
                    .values(values)
                    .returning(*engines.c)
                )
                .mappings()
                .first()
            )
            if stored is None:
                raise _conflict(conn, current, "update")
            # The CAS matched, so the stored grants are current's: rewrite on change only.
            if new.grants != current.grants:
                conn.execute(delete(engine_grants).where(engine_grants.c.engine_id == current.id))
                if new.grants:
                    conn.execute(insert(engine_grants), grant_rows(current.id, new.grants))
            if new.state is not current.state:
                conn.execute(
                    insert(engine_events).values(
                        engine_id=current.id,
                        time=row["update_time"],
                        from_state=current.state.value,
                        to_state=new.state.value,
                        message=row["message"],
                        actor=actor,
                    )
                )
            if wakes:
                self._announce(conn, current.id)
            return engine_from_row(stored, new.grants)

        stored = await self._write("update an engine", transition)
        if wakes:
            self._announced(current.id)
        return stored

    async def remove(self, *, current: Engine) -> None:
        def remove(conn: Connection) -> None:
            result = conn.execute(
                delete(engines).where(
                    engines.c.id == current.id, engines.c.revision == current.revision
                )
            )
            if result.rowcount != 1:
                raise _conflict(conn, current, "remove")
            # ON DELETE CASCADE does this too; explicit so no event outlives its engine.
            conn.execute(delete(engine_events).where(engine_events.c.engine_id == current.id))
            conn.execute(delete(engine_grants).where(engine_grants.c.engine_id == current.id))

        await self._write("remove an engine", remove)

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
            return [
                EngineEvent(
                    engine_id=row["engine_id"],
                    time=row["time"],
                    from_state=None
                    if row["from_state"] is None
                    else EngineState(row["from_state"]),
                    to_state=EngineState(row["to_state"]),
                    message=row["message"],
                    actor=row["actor"],
                )
                for row in rows
            ]

        return await self._read("read engine events", events)

    async def record_activity(self, *, engine_id: EngineId, at: datetime) -> None:
        # Only ever moves forward: activity reported out of order never
        # makes an engine look idle for longer than it is.
        at = utc(at, "at")

        def record(conn: Connection) -> None:
            conn.execute(
                update(engines)
                .where(
                    engines.c.id == engine_id,
                    or_(
                        engines.c.last_activity_time.is_(None),
                        engines.c.last_activity_time < at,
                    ),
                )
                .values(last_activity_time=at)
            )
            if conn.scalar(select(engines.c.id).where(engines.c.id == engine_id)) is None:
                raise EngineNotFound(engine_id)

        await self._write("record engine activity", record)

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


# --- operations' building blocks -----------------------------------------------


def _schema_is_current(conn: Connection) -> bool:
    if not inspect(conn).has_table(VERSION_TABLE):
        return False
    versions = conn.scalars(select(column("version_num", String)).select_from(table(VERSION_TABLE)))
    return list(versions) == [SCHEMA_REVISION]


def _conflict(conn: Connection, current: Engine, doing: str) -> StoreConflict:
    now = engine_by_id(conn, current.id)
    if now is None:
        why = "it was removed"
    else:
        why = f"it is now at revision {now.revision} in state {now.state.value}"
    return StoreConflict(
        f"cannot {doing} engine {current.id} at revision {current.revision}: {why}",
        current=now,
    )


def _is_unique_violation(error: IntegrityError) -> bool:
    text_ = str(getattr(error, "orig", None) or error).lower()
    # PostgreSQL: "duplicate key value violates unique constraint";
    # SQLite: "UNIQUE constraint failed".
    return "unique constraint" in text_ or "duplicate key" in text_


def _reason(error: BaseException) -> str:
    """A short cause without SQL text or parameters."""
    cause: BaseException = getattr(error, "orig", None) or error
    text_ = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    name = type(cause).__name__
    return f"{name}: {text_}" if text_ else name
