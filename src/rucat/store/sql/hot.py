"""PostgreSQL's hot path: reading one engine and creating one, on asyncpg directly.

Why: profiled under `bench/api.py`, SQLAlchemy's execution machinery (the
greenlet bridge, the connection and result objects, the compiled-cache lookup)
cost about seven times the CPU asyncpg itself spent on a `GET /engine/{id}`
on PostgreSQL. These two statements skip it. They are the Core statements of
`rucat.store.sql.statements`, compiled once at import to PostgreSQL's SQL with
`$n` parameters, and run on a small asyncpg pool of the store's own, where
asyncpg prepares each once per connection. Everything else keeps SQLAlchemy.

Invariants:

* Rows read here are the rows SQLAlchemy would read: asyncpg returns
  `timestamptz` as tz-aware UTC datetimes, which is what `UtcDateTime` makes
  of them; values bound here are already what `engine_to_row` stores (UTC,
  NUL-free), which `UtcDateTime` would pass unchanged.
* A create is one statement in autocommit: its own transaction, atomic.
* A call that fails because its connection was dropped (server restart,
  `pg_terminate_backend`, idle timeout) expires every pooled connection, here
  and in SQLAlchemy's pool, as a failed SQLAlchemy read does. A read is then
  retried once on a fresh connection; a create is never retried (whether it
  committed is unknown), its error is the caller's (StoreUnavailable).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import asyncpg
from sqlalchemy import ClauseElement
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from rucat.domain.engine import Engine, EngineId
from rucat.store.sql.statements import (
    CREATE,
    CREATE_AND_NOTIFY,
    EVENT_ACTOR,
    ONE_ENGINE,
    engine_from_joined_rows,
)

#: Connections of the hot path's pool (opened on demand, none kept when idle
#: beyond asyncpg's inactive lifetime). PostgreSQL does the work; more
#: connections than its cores only queue there instead of here.
HOT_POOL_SIZE = 8
#: How long a call waits for a pooled connection, and how long closing waits.
_ACQUIRE_TIMEOUT_SECS = 30.0
_CLOSE_TIMEOUT_SECS = 10.0


class _Compiled:
    """A Core statement as PostgreSQL SQL, with its parameters in `$n` order."""

    def __init__(self, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
        self.sql = str(compiled)
        # SQLCompiler's: the bind parameters' names in $1, $2, ... order.
        self._names: tuple[str, ...] = tuple(getattr(compiled, "positiontup", None) or ())
        if len(self._names) != len(compiled.params):
            raise AssertionError(f"unexpected parameters in {self.sql!r}")
        #: Values fixed in the statement (such as the NOTIFY channel).
        self._fixed = dict(compiled.params)

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[n] if n in values else self._fixed[n] for n in self._names]


#: What a connection the server dropped raises on its next use: asyncpg may
#: not have noticed yet (then its protocol is in a state no call expects), or
#: it has, or the server said it is shutting the connection down.
_DROPPED: tuple[type[BaseException], ...] = (
    asyncpg.InternalClientError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    ConnectionError,
)

_ONE_ENGINE = _Compiled(ONE_ENGINE)
_CREATE = _Compiled(CREATE)
_CREATE_AND_NOTIFY = _Compiled(CREATE_AND_NOTIFY)


class PostgresHotPath:
    """The hot statements on an asyncpg pool of their own. `open()` before use."""

    def __init__(
        self,
        dsn: str,
        connect_args: Mapping[str, Any],
        *,
        on_dropped: Callable[[], Awaitable[None]],
    ) -> None:
        self._dsn = dsn
        self._connect_args = dict(connect_args)
        self._pool: Any = None
        #: Called when a connection was found dropped: the store's other pool's
        #: connections are most likely dead too (a server restart drops them all).
        self._on_dropped = on_dropped

    async def open(self) -> None:
        """Make the pool (it connects on first use)."""
        pool = asyncpg.create_pool(
            self._dsn, min_size=0, max_size=HOT_POOL_SIZE, **self._connect_args
        )
        self._pool = await pool

    async def close(self) -> None:
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        try:
            await asyncio.wait_for(pool.close(), _CLOSE_TIMEOUT_SECS)
        except TimeoutError:
            pool.terminate()

    async def engine(self, engine_id: EngineId) -> Engine | None:
        """The engine `engine_id` with its grants, or None."""
        rows = await self._fetch(_ONE_ENGINE, {"engine_id": engine_id}, retry=True)
        return engine_from_joined_rows(cast(Sequence[Mapping[str, Any]], rows))

    async def create(self, row: Mapping[str, Any], *, actor: str, notify: bool) -> bool:
        """Add the engine `row` (no grants) and its creation event; False if its id exists."""
        statement = _CREATE_AND_NOTIFY if notify else _CREATE
        rows = await self._fetch(statement, {**row, EVENT_ACTOR: actor}, retry=False)
        return bool(rows)

    async def _fetch(
        self, statement: _Compiled, values: Mapping[str, Any], *, retry: bool
    ) -> list[Any]:
        if self._pool is None:
            raise asyncpg.InterfaceError("the store is closed")
        args = statement.args(values)
        for attempt in range(2 if retry else 1):
            conn = await self._pool.acquire(timeout=_ACQUIRE_TIMEOUT_SECS)
            try:
                return cast(list[Any], await conn.fetch(statement.sql, *args))
            except _DROPPED as e:
                # The pool replaces a terminated connection; the others are
                # most likely dead too.
                terminate_quietly(conn)
                await self._pool.expire_connections()
                await self._on_dropped()
                if attempt == 1 or not retry:
                    if isinstance(e, asyncpg.InternalClientError):
                        raise asyncpg.InterfaceError(f"connection lost: {e}") from e
                    raise
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                if is_closed(conn):  # lost while the statement ran
                    await self._pool.expire_connections()
                    await self._on_dropped()
                raise
            finally:
                await self._pool.release(conn)
        raise AssertionError("unreachable")  # pragma: no cover


# asyncpg hands a connection that closes back to its pool by itself, which
# detaches the proxy we hold: every call on it then raises InterfaceError
# ("released back to the pool"). A detached connection is closed already.


def terminate_quietly(conn: Any) -> None:
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()


def is_closed(conn: Any) -> bool:
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True
