"""Wake-ups from the SQL store: ids of engines that were just written.

A hint, never a channel of truth (DESIGN.md): an id may come late, twice or
not at all, and a monitor that ignores it is still correct, only slower. It
lets a monitor act on a new engine or a user's STOP at once instead of at its
next periodic check.

* SQLite: the writes of this process's store, fanned out in-process (other
  processes sharing the file are seen at their next check).
* PostgreSQL: every process's writes, by ``NOTIFY`` in the write transaction
  (sent at commit) and one ``LISTEN`` connection per store, reconnected with
  backoff when it drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from rucat.domain.engine import EngineId

log = logging.getLogger(__name__)

#: The PostgreSQL channel; the payload is the engine id.
CHANNEL = "rucat_engine_changes"

#: Ids a slow subscriber may lag behind before newer ones are dropped.
_QUEUE_SIZE = 1024
_RECONNECT_MIN_SECS = 0.5
_RECONNECT_MAX_SECS = 30.0

#: Opens a raw asyncpg connection for LISTEN.
ListenConnector = Callable[[], Awaitable[Any]]


class ChangeFeed:
    """Fans engine ids out to every running `subscribe()`."""

    def __init__(self, *, listen: ListenConnector | None, description: str) -> None:
        self._listen = listen
        self._description = description
        self._queues: set[asyncio.Queue[EngineId]] = set()
        self._listener: asyncio.Task[None] | None = None
        #: Set while a LISTEN is in place (lets tests and callers wait for it).
        self.listening = asyncio.Event()

    def publish(self, engine_id: EngineId) -> None:
        """Hand `engine_id` to every subscriber; a full queue drops it (a hint only)."""
        for queue in self._queues:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(engine_id)

    async def subscribe(self) -> AsyncIterator[EngineId]:
        """Ids of engines written from now on, until the caller stops iterating."""
        queue: asyncio.Queue[EngineId] = asyncio.Queue(_QUEUE_SIZE)
        self._queues.add(queue)
        if self._listen is not None and self._listener is None:
            self._listener = asyncio.create_task(self._keep_listening(), name="rucat-store-listen")
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.discard(queue)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    async def _keep_listening(self) -> None:
        assert self._listen is not None
        delay = _RECONNECT_MIN_SECS
        while True:
            try:
                await self._listen_once()
                delay = _RECONNECT_MIN_SECS
            except asyncio.CancelledError:
                raise
            except Exception as e:  # any failure only delays wake-ups: log and retry
                log.warning("%s: LISTEN failed, retrying in %.1fs: %s", self._description, delay, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_SECS)

    async def _listen_once(self) -> None:
        """LISTEN until the connection drops."""
        assert self._listen is not None
        conn = await self._listen()
        closed = asyncio.Event()

        def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            self.publish(payload)

        try:
            conn.add_termination_listener(lambda _conn: closed.set())
            await conn.add_listener(CHANNEL, on_notify)
            self.listening.set()
            await closed.wait()
        finally:
            self.listening.clear()
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
