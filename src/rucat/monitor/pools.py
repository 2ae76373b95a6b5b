"""Warm pools on the monitor side: keep each pool's idle engines ready.

Every `check_interval` (sooner after `wake()`) the keeper reads each pool's
engines from the store, lets the domain decide (`plan_pool`), and applies
the plan: new engines are added in WaitToStart (the reconciler starts them
like any other), surplus or stale ones are stopped by the state machine's
STOP, stopped and old failed ones are removed. It holds no state of its own:
a restarted monitor counts what the store holds, so it adopts the idle
engines it finds and starts no extras.

Several monitors may keep one pool at once. Their stops and removals are
compare-and-sets, so they never act twice on one engine; two monitors that
refill at the same moment may start one engine too many, which the next
round stops once the pool is above `max_idle`.

A new pool engine is warmed once it runs: the keeper runs one trivial query on
it (the engine kind's `warm_up`) and records that as the engine's activity,
which is how a create tells a warm engine from a cold one and takes warm ones
first. An engine's first query pays for its JVM's cold code paths (seconds);
a warmed engine answers a new session's first query at once. A warm-up that
fails only leaves the engine cold: it is still handed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from rucat.domain.engine import Engine, EngineId, new_engine
from rucat.domain.errors import RucatError, StoreConflict
from rucat.domain.pool import (
    FILLING_STATES,
    POOL_ACTOR,
    PoolProfile,
    needs_warm_up,
    plan_orphans,
    plan_pool,
)
from rucat.domain.rows import user_row
from rucat.domain.state import REMOVED, EngineState, Move, UserAction, decide_user
from rucat.platforms import Platform
from rucat.store import EngineStore

log = logging.getLogger("rucat.monitor")

#: States of a stopped or failed engine, which a pool removes.
_LEFT_STATES = (EngineState.Terminated, EngineState.ErrorClean)


class PoolKeeper:
    """Keeps the configured pools' idle engines between min_idle and max_idle."""

    def __init__(
        self,
        *,
        store: EngineStore,
        platform: Platform,
        profiles: Sequence[PoolProfile],
        check_interval: float,
        clock: Callable[[], datetime],
        notify: Callable[[EngineId], None] | None = None,
        warm_up: Callable[[Engine], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._platform = platform
        self.profiles = tuple(p for p in profiles if p.platform == platform.name)
        self._check_interval = check_interval
        self._clock = clock
        self._notify = notify
        self._wakeup = asyncio.Event()
        self._warm_up = warm_up
        #: Engines this keeper warmed or tried to: one warm-up each.
        self._warm_tried: set[EngineId] = set()
        self._warming: set[asyncio.Task[None]] = set()
        #: Pool engines this keeper created since it started.
        self.started = 0
        #: Pool engines this keeper warmed since it started.
        self.warmed = 0

    def wake(self, _engine_id: EngineId | None = None) -> None:
        """Look at the pools now (a hand-out just emptied a slot)."""
        self._wakeup.set()

    async def run(self) -> None:
        """Keep the pools until cancelled (after retiring the engines of pools that are
        no longer configured)."""
        try:
            await self.retire_orphans()
        except RucatError as e:
            log.warning("could not look for engines of removed pools: %s", e)
        if not self.profiles:
            return
        log.info("keeping pools %s", ", ".join(p.name for p in self.profiles))
        try:
            while True:
                await self.run_once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._check_interval)
                self._wakeup.clear()
        finally:
            for task in self._warming:
                task.cancel()
            await asyncio.gather(*self._warming, return_exceptions=True)

    async def run_once(self) -> None:
        """One round over every pool; a failing store is retried next round."""
        for profile in self.profiles:
            try:
                await self._keep(profile)
            except RucatError as e:
                log.warning("pool %s: %s; retrying in %gs", profile.name, e, self._check_interval)

    async def retire_orphans(self) -> None:
        """Stop, then remove, the engines of pools no longer in the config (read once at
        start: the config only changes with a restart)."""
        engines = await self._store.list(states=[*FILLING_STATES, *_LEFT_STATES])
        plan = plan_orphans(
            self.profiles, [e for e in engines if e.platform == self._platform.name]
        )
        for engine in plan.stop:
            await self._stop(engine)
        for engine in plan.remove:
            await self._remove(engine)

    async def _keep(self, profile: PoolProfile) -> None:
        members = await self._store.list(pool=profile.name)
        plan = plan_pool(profile, members)
        for engine in members:
            if needs_warm_up(engine, profile) and engine.id not in self._warm_tried:
                self._warm_tried.add(engine.id)
                self._spawn_warm_up(engine)
        for engine in plan.stop:
            await self._stop(engine)
        for engine in plan.remove:
            await self._remove(engine)
        for _ in range(plan.start):
            await self._start(profile)

    def _spawn_warm_up(self, engine: Engine) -> None:
        if self._warm_up is None:
            return
        task = asyncio.create_task(self._warm(engine), name=f"rucat-warm-{engine.id}")
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def _warm(self, engine: Engine) -> None:
        assert self._warm_up is not None
        try:
            await self._warm_up(engine)
            await self._store.record_activity(engine_id=engine.id, at=self._clock())
        except RucatError as e:
            log.warning("pool %s: engine %s stays cold: %s", engine.pool, engine.id, e)
            return
        self.warmed += 1
        log.info("pool %s: engine %s warmed", engine.pool, engine.id)

    async def _start(self, profile: PoolProfile) -> None:
        engine = new_engine(
            profile.request(),
            platform=profile.platform,
            now=self._clock(),
            owner=None,
            # Idle pool engines never auto-stop; a hand-out gives the create's minutes.
            auto_stop_minutes=0.0,
            pool=profile.name,
        )
        stored = await self._store.add(engine=engine, actor=POOL_ACTOR)
        self.started += 1
        log.info("pool %s: engine %s added", profile.name, stored.id)
        if self._notify is not None:
            self._notify(stored.id)

    async def _stop(self, engine: Engine) -> None:
        decision = decide_user(engine.state, UserAction.STOP)
        if not isinstance(decision, Move) or decision.to is REMOVED.engine:
            return  # in a trigger state: the next round stops it
        try:
            # Stopped as a user's STOP would (domain/rows.py builds that row).
            stored = await self._store.transition(
                current=engine,
                new=user_row(engine, decision.to, now=self._clock()),
                actor=POOL_ACTOR,
            )
        except StoreConflict:
            return  # handed out or moved on meanwhile: not the pool's to stop now
        log.info("pool %s: engine %s stopped (%s)", engine.pool, engine.id, stored.state.value)
        if self._notify is not None:
            self._notify(engine.id)

    async def _remove(self, engine: Engine) -> None:
        if decide_user(engine.state, UserAction.DELETE) != Move(REMOVED.engine):
            return
        try:
            await self._store.remove(current=engine)
        except StoreConflict:
            return
        try:
            await self._platform.forget(engine=engine)
        except Exception:  # leftovers only cost disk; the engine is gone from the store
            log.exception("pool %s: could not forget engine %s", engine.pool, engine.id)
        log.info("pool %s: engine %s removed", engine.pool, engine.id)
