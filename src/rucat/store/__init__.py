"""The EngineStore Protocol: the only channel between servers and monitors.

Every write is a compare-and-set on the row's `revision`: a late writer never
overwrites a newer state, and two monitors never act on one engine. One
contract suite (tests/contract/test_store_contract.py) runs against every
implementation.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Collection
from datetime import datetime
from typing import Protocol

from rucat.config import DatabaseConfig
from rucat.domain.access import VisibleTo
from rucat.domain.engine import Engine, EngineEvent, EngineId
from rucat.domain.errors import ConfigError, StoreConflict
from rucat.domain.state import EngineState
from rucat.domain.token import AccessToken

__all__ = ["EngineStore", "StoreConflict", "open_store"]


class EngineStore(Protocol):
    async def add(self, *, engine: Engine, actor: str, active_limit: int | None = None) -> Engine:
        """Insert a new engine (revision 0), its grants and its creation event.

        `active_limit`: refuse with QuotaExceeded when `engine.owner` already
        has that many active engines (domain/quota.py), counted atomically with
        the insert: racing adds of one owner never exceed it.
        """
        ...

    async def get(self, *, engine_id: EngineId) -> Engine:
        """The engine; raises EngineNotFound."""
        ...

    async def list(
        self,
        *,
        states: Collection[EngineState] | None = None,
        limit: int | None = None,
        after: EngineId | None = None,
        owner: str | None = None,
        visible_to: VisibleTo | None = None,
        pool: str | None = None,
    ) -> list[Engine]:
        """Engines oldest first (create_time, then id), optionally filtered.

        `owner`: only engines this principal name owns. `pool`: only engines
        that warm pool owns (idle, not yet handed out). `visible_to`: only
        engines that user owns or that are granted to the user or one of its
        groups. Filters apply in the query, so `limit` pages stay full.
        `after` is a cursor: the id of the last engine of the previous page.
        An unknown cursor, or one outside the owner/visibility filters, raises
        InvalidRequest.
        """
        ...

    async def count_by_state(self) -> dict[EngineState, int]:
        """How many engines are in each state, counted in the store (no rows loaded);
        states no engine is in are absent."""
        ...

    async def transition(
        self, *, current: Engine, new: Engine, actor: str, active_limit: int | None = None
    ) -> Engine:
        """Write `new` (with its grants) if the row still has `current.revision`.

        Returns the stored row (revision + 1). Writes an event when the state
        changes. Raises StoreConflict carrying the row as it is now (None if
        removed) when the revision moved on. `active_limit`: as for `add`, when
        the write moves the engine from an inactive into an active state, or
        gives an active engine to a new owner (a warm pool's hand-out).
        """
        ...

    async def remove(self, *, current: Engine) -> None:
        """Delete the engine and its events if the row still has `current.revision`."""
        ...

    async def due(self, *, platform: str, now: datetime, limit: int) -> builtins.list[Engine]:
        """Engines of `platform` not in a stable state whose next_update_time <= now,
        most overdue first."""
        ...

    async def events(self, *, engine_id: EngineId) -> builtins.list[EngineEvent]:
        """The engine's transitions, oldest first; raises EngineNotFound."""
        ...

    async def record_activity(self, *, engine_id: EngineId, at: datetime) -> None:
        """Set last_activity_time (not a state change: no revision bump, no event)."""
        ...

    def changes(self) -> AsyncIterator[EngineId]:
        """Ids of engines that now wait for a monitor (added, or moved into a waiting
        state such as a user's STOP). A wake-up hint only: ids may come late, twice
        or never, so a monitor still polls `due()`."""
        ...

    # --- personal access tokens -------------------------------------------

    async def add_token(self, *, token: AccessToken) -> None:
        """Store a new token (its hash, never its secret)."""
        ...

    async def get_token(self, *, token_id: str) -> AccessToken:
        """The token with this id; raises TokenNotFound."""
        ...

    async def find_token(self, *, secret_hash: str) -> AccessToken | None:
        """The token whose secret hashes to `secret_hash`, or None (also when revoked)."""
        ...

    async def list_tokens(self, *, owner: str | None = None) -> builtins.list[AccessToken]:
        """Tokens oldest first (create_time, then id); `owner`: only that user's."""
        ...

    async def remove_token(self, *, token_id: str) -> None:
        """Revoke (delete) a token; raises TokenNotFound."""
        ...

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""
        ...

    async def close(self) -> None: ...


async def open_store(config: DatabaseConfig) -> EngineStore:
    """Open (and migrate) the configured store; raises ConfigError/StoreUnavailable."""
    if config.Sqlite is not None:
        from rucat.store.sql.store import SqlEngineStore

        return await SqlEngineStore.open_sqlite(config.Sqlite)
    if config.Postgres is not None:
        from rucat.store.sql.store import SqlEngineStore

        return await SqlEngineStore.open_postgres(config.Postgres)
    if config.Surreal is not None:
        try:
            from rucat.store.surreal.store import SurrealEngineStore
        except ImportError as e:
            raise ConfigError("the SurrealDB store is not available in this build") from e
        return await SurrealEngineStore.open(config.Surreal)
    raise ConfigError("database: no variant given")
