"""The state monitor's loop: claim due engines, act on the platform, record.

Any number of monitors may run against one store. They never coordinate
directly: every write is a compare-and-set on the engine's revision, and a
monitor that loses one simply drops the engine (the winner owns it). Trigger
states carry a lease (`next_update_time`); when a monitor dies holding one,
the lease runs out, the engine becomes due, and another monitor falls back to
the waiting state and retries. Platform actions are idempotent, so the retry
adopts what the dead monitor created.

Every decision is the domain's (domain/monitor_decisions.py) and so is every
row written (domain/rows.py): this loop reads, asks the platform, and makes
one compare-and-set per decision. A claim that stops an engine carries the
engine's log tail in that same write.

Wake-ups (`wake()`, platform change events) only shorten the wait; the loop
polls the store every `check_interval` regardless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from rucat.domain.activity import AUTO_STOP_ACTOR
from rucat.domain.engine import Engine, EngineId
from rucat.domain.errors import RucatError, StoreConflict
from rucat.domain.monitor_decisions import (
    Claim,
    Observe,
    Ok,
    Outcome,
    PermanentFailure,
    PlatformAction,
    RetryableFailure,
    Timing,
    Write,
    after_action,
    after_observation,
    plan,
)
from rucat.domain.observation import Observation, Unknown
from rucat.domain.rows import claim_row, monitor_row
from rucat.domain.state import STABLE_STATES, TRIGGER_STATES, EngineState
from rucat.platforms import Platform
from rucat.store import EngineStore

log = logging.getLogger("rucat.monitor")

#: Lines of an engine's log kept in the store before its resources go away.
SAVED_LOG_LINES = 200
#: Steps one engine may take in one go before yielding to the others.
_MAX_STEPS = 8


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_owner_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Monitor:
    """Reconciles the engines of one platform with the store."""

    def __init__(
        self,
        *,
        store: EngineStore,
        platform: Platform,
        timing: Timing,
        max_concurrency: int = 32,
        clock: Callable[[], datetime] = utc_now,
        owner: str | None = None,
    ) -> None:
        self._store = store
        self._platform = platform
        self._timing = timing
        self._clock = clock
        self.owner = owner or new_owner_id()
        self._slots = asyncio.Semaphore(max_concurrency)
        self._batch = max_concurrency * 4
        self._wakeup = asyncio.Event()
        self._urgent: set[EngineId] = set()
        self._in_flight: dict[EngineId, asyncio.Task[None]] = {}
        #: Engines this monitor stopped for idleness since it started.
        self.auto_stops = 0

    # --- signals ------------------------------------------------------------

    def wake(self, engine_id: EngineId | None = None) -> None:
        """Look at the store now (and at `engine_id` even if it is not due)."""
        if engine_id is not None:
            self._urgent.add(engine_id)
        self._wakeup.set()

    # --- the loop -----------------------------------------------------------

    async def run(self) -> None:
        """Reconcile until cancelled. Raises ConfigError if the platform cannot work."""
        await self._platform.check()
        log.info("monitor %s started on platform %s", self.owner, self._platform.name)
        watchers = [
            asyncio.create_task(
                self._follow(self._platform.changes), name="rucat-platform-changes"
            ),
            asyncio.create_task(self._follow(self._store.changes), name="rucat-store-changes"),
        ]
        try:
            await self._resync_all()
            while True:
                await self.run_once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._timing.check_interval)
                self._wakeup.clear()
        finally:
            tasks = [*watchers, *self._in_flight.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run_once(self) -> None:
        """One pass: the urgent engines, then those due. Returns once scheduled."""
        urgent, self._urgent = self._urgent, set()
        try:
            for engine_id in urgent:
                with contextlib.suppress(RucatError):
                    self._schedule(await self._store.get(engine_id=engine_id))
            for engine in await self._store.due(
                platform=self._platform.name, now=self._clock(), limit=self._batch
            ):
                self._schedule(engine)
        except RucatError as e:
            log.warning("monitor pass failed, retrying in %gs: %s", self._timing.check_interval, e)

    async def _resync_all(self) -> None:
        """At start, look at every engine of this platform that is not at rest,
        so a restarted monitor adopts what is running without waiting."""
        try:
            engines = await self._store.list(
                states=[s for s in EngineState if s not in STABLE_STATES]
            )
        except RucatError as e:
            log.warning("initial resync failed: %s", e)
            return
        for engine in engines:
            if engine.platform == self._platform.name:
                self._schedule(engine)

    async def _follow(self, changes: Callable[[], AsyncIterator[EngineId]]) -> None:
        """Wake for every id a change stream yields; restart it if it fails."""
        while True:
            try:
                async for engine_id in changes():
                    self.wake(engine_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("change stream failed; restarting it")
            await asyncio.sleep(self._timing.check_interval)

    def _schedule(self, engine: Engine) -> None:
        if engine.id in self._in_flight or engine.platform != self._platform.name:
            return
        if engine.state in STABLE_STATES:
            return
        if engine.state in TRIGGER_STATES and engine.next_update_time > self._clock():
            return  # another monitor (or this one) holds the lease
        task = asyncio.create_task(self._handle(engine), name=f"rucat-engine-{engine.id}")
        self._in_flight[engine.id] = task
        task.add_done_callback(lambda _t: self._in_flight.pop(engine.id, None))

    # --- one engine ---------------------------------------------------------

    async def _handle(self, engine: Engine) -> None:
        try:
            async with self._slots:
                for _ in range(_MAX_STEPS):
                    step = plan(engine, self._timing)
                    if step is None:
                        return
                    engine, write = await self._step(engine, step)
                    engine = await self._apply(engine, write)
                    if write.delay > 0:
                        return
        except StoreConflict:
            return  # someone else moved the engine on; it is theirs now
        except RucatError as e:
            log.warning("engine %s: %s", engine.id, e)
        except Exception:
            log.exception("engine %s: unexpected error", engine.id)

    async def _step(self, engine: Engine, step: Claim | Observe | Write) -> tuple[Engine, Write]:
        """Run one step; returns the stored row to write against, and the write."""
        match step:
            case Write():
                return engine, step
            case Claim(action=action):
                # Read before the claim, so the tail rides on the claim's write.
                tail = await self._log_tail(engine) if action is PlatformAction.STOP else None
                engine = await self._store.transition(
                    current=engine,
                    new=claim_row(
                        engine,
                        step,
                        now=self._clock(),
                        owner=self.owner,
                        lease_secs=self._timing.lease,
                        log_tail=tail,
                    ),
                    actor=self.owner,
                )
                log.debug(
                    "engine %s: claimed (%s), %s", engine.id, engine.state.value, action.value
                )
                outcome = await self._act(engine, action)
                write = after_action(engine, outcome, self._timing)
            case Observe():
                observation = await self._inspect(engine)
                log.debug("engine %s: %s: %s", engine.id, engine.state.value, observation)
                write = after_observation(
                    engine, observation, now=self._clock(), timing=self._timing
                )
        if write.stop_again:
            await self._act(engine, PlatformAction.STOP)
        return engine, write

    async def _apply(self, engine: Engine, write: Write) -> Engine:
        new = monitor_row(engine, write, now=self._clock())
        if new is None:
            return engine
        stored = await self._store.transition(
            current=engine, new=new, actor=write.actor or self.owner
        )
        if write.actor == AUTO_STOP_ACTOR:
            self.auto_stops += 1
        if new.state is not engine.state:
            log.info(
                "engine %s: %s -> %s%s",
                engine.id,
                engine.state.value,
                new.state.value,
                f" ({new.message})" if new.message else "",
            )
        return stored

    async def _act(self, engine: Engine, action: PlatformAction) -> Outcome:
        try:
            if action is PlatformAction.START:
                await self._platform.start(engine=engine)
            else:
                await self._platform.stop(engine=engine)
        except RucatError as e:
            if e.retryable:
                return RetryableFailure(e.message)
            return PermanentFailure(e.message)
        except Exception as e:
            log.exception("engine %s: platform %s failed", engine.id, action.value)
            return RetryableFailure(f"{type(e).__name__}: {e}")
        return Ok()

    async def _inspect(self, engine: Engine) -> Observation:
        try:
            return await self._platform.inspect(engine=engine)
        except RucatError as e:
            return Unknown(e.message)
        except Exception as e:
            log.exception("engine %s: inspect failed", engine.id)
            return Unknown(f"{type(e).__name__}: {e}")

    async def _log_tail(self, engine: Engine) -> str | None:
        """The last lines of the engine's log, to keep in the store before a stop
        (platforms may lose them with the resources); None when unreadable."""
        try:
            return await self._platform.logs(engine=engine, tail=SAVED_LOG_LINES)
        except Exception as e:
            log.warning("engine %s: could not read logs before stopping: %s", engine.id, e)
            return None
