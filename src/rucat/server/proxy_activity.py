"""What the Spark Connect proxy tells the store about engine activity.

Auto-stop (domain/activity.py) reads one thing from the store:
`last_activity_time`. The proxy keeps it true enough for that:

- An RPC that starts or ends is activity. It is written at once when the
  engine's activity was not written within the last `refresh_secs`, else at
  the next tick, so a store write per RPC never happens under load and the
  end of a query is recorded at most one interval late (later, never
  earlier: an engine never looks idle for longer than it is).
- While an engine has RPCs in flight (open ExecutePlan or ReattachExecute
  streams, AddArtifacts uploads), every tick writes it again: that is what
  keeps a two-hour query's engine from looking idle, through any server.
  A server that dies stops ticking, and the engine ages from its last tick.

Writes run in the background and at most one per engine at a time: a slow
store never delays an RPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from rucat.domain.engine import EngineId
from rucat.domain.errors import EngineNotFound
from rucat.store import EngineStore

log = logging.getLogger("rucat.server.proxy")

#: A refresh interval of 0 (write every RPC at once) still ticks no faster than this.
_MIN_TICK_SECS = 0.05


class ActivityTracker:
    """Counts RPCs in flight per engine and records their activity in the store."""

    def __init__(
        self, *, store: EngineStore, clock: Callable[[], datetime], refresh_secs: float
    ) -> None:
        self._store = store
        self._clock = clock
        self.refresh_secs = refresh_secs
        self._in_flight: dict[EngineId, int] = {}
        #: When (monotonic) each engine's activity was last sent to the store.
        self._written: dict[EngineId, float] = {}
        #: Engines with activity not written yet (throttled): the next tick writes it.
        self._dirty: set[EngineId] = set()
        self._pending: set[EngineId] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick(), name="rucat-proxy-activity")

    async def close(self, *, grace: float) -> None:
        """Stop ticking, write what is still unwritten, wait at most `grace` s for it."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for engine_id in list(self._dirty):
            self._write(engine_id)
        if self._background:
            await asyncio.wait(set(self._background), timeout=grace)

    def in_flight(self, engine_id: EngineId) -> int:
        return self._in_flight.get(engine_id, 0)

    def begin(self, engine_id: EngineId) -> None:
        """An RPC to `engine_id` starts; pair with `end`."""
        self._in_flight[engine_id] = self._in_flight.get(engine_id, 0) + 1
        self._note(engine_id)

    def end(self, engine_id: EngineId) -> None:
        left = self._in_flight.get(engine_id, 0) - 1
        if left > 0:
            self._in_flight[engine_id] = left
        else:
            self._in_flight.pop(engine_id, None)
        self._note(engine_id)

    def forget(self, engine_id: EngineId) -> None:
        """The engine left Running: its next activity is written at once."""
        self._written.pop(engine_id, None)

    def _note(self, engine_id: EngineId) -> None:
        last = self._written.get(engine_id)
        if last is not None and time.monotonic() - last < self.refresh_secs:
            self._dirty.add(engine_id)
        else:
            self._write(engine_id)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(max(self.refresh_secs, _MIN_TICK_SECS))
            for engine_id in {*self._in_flight, *self._dirty}:
                self._write(engine_id)

    def _write(self, engine_id: EngineId) -> None:
        if engine_id in self._pending:
            self._dirty.add(engine_id)  # the next tick writes a later time
            return
        self._dirty.discard(engine_id)
        self._written[engine_id] = time.monotonic()
        self._pending.add(engine_id)
        self._spawn(self._record(engine_id, self._clock()))

    async def _record(self, engine_id: EngineId, at: datetime) -> None:
        try:
            await self._store.record_activity(engine_id=engine_id, at=at)
        except EngineNotFound:
            self._written.pop(engine_id, None)
            self._dirty.discard(engine_id)
        except Exception as e:
            log.warning("could not record activity of engine %s: %s", engine_id, e)
        finally:
            self._pending.discard(engine_id)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
