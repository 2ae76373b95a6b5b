"""Warm pools on the server side: hand an idle pool engine to a matching create.

A create that matches a pool (domain/pool.py) reads the pool's idle Running
engines and takes one with one compare-and-set: the engine gets the request's
name and owner and leaves the pool. Racing creates read the same candidates;
each write names the revision it read, so exactly one wins each engine and
the losers move on to the next candidate (and re-read when all are gone).
When none is left the create starts cold, as without a pool: an empty pool
never fails a request. The monitor refills the pool (monitor/pools.py).

Hand-outs and misses are counted here, per pool, for /metrics; GET /pools
(routes/pools.py) shows each pool's profile and how many of its engines are
idle or starting.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from datetime import datetime

from rucat.domain.engine import CreateEngineRequest, Engine
from rucat.domain.errors import InvalidRequest, StoreConflict
from rucat.domain.pool import (
    FILLING_STATES,
    PoolProfile,
    choose_pool,
    hand_out,
    is_idle_member,
    is_warm,
    warm_first,
)
from rucat.domain.redaction import redact_configs
from rucat.domain.state import EngineState
from rucat.server.metrics import PoolCounts
from rucat.server.schemas import CreateEngineBody, PoolOut
from rucat.store import EngineStore

log = logging.getLogger("rucat.server")

#: Idle engines read per attempt; racing creates spread over them at random.
_CANDIDATES = 16
#: Re-reads of the pool after every candidate was taken by racing creates.
_ROUNDS = 3


class PoolDesk:
    """Where creates take idle pool engines. One per app."""

    def __init__(
        self,
        store: EngineStore,
        profiles: Sequence[PoolProfile],
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self.profiles = tuple(profiles)
        self._clock = clock
        self.counts = PoolCounts()

    def request_of(self, body: CreateEngineBody) -> CreateEngineRequest:
        """The create request of `body`: with a named pool, what the body leaves out is the
        pool's (engine type, version, configs). Raises InvalidRequest for an unknown pool."""
        profile = None
        if body.pool is not None:
            profile = choose_pool(self.profiles, None, named=body.pool)
        engine_type = body.engine_type or (profile.engine_type if profile else None)
        version = body.version or (profile.version if profile else None)
        configs = body.configs if body.configs is not None else (profile.configs if profile else {})
        if engine_type is None or version is None:  # the body's own validator refuses this
            raise InvalidRequest("engine_type and version are required (or name a pool)")
        return CreateEngineRequest(
            name=body.name, engine_type=engine_type, version=version, configs=dict(configs)
        )

    def choose(self, wanted: CreateEngineRequest, *, named: str | None) -> PoolProfile | None:
        """The pool `wanted` (as it would be stored) takes from; raises InvalidRequest
        for an unknown pool name or a request that contradicts the named pool."""
        return choose_pool(self.profiles, wanted, named=named)

    async def take(
        self,
        profile: PoolProfile,
        *,
        name: str,
        owner: str | None,
        auto_stop_minutes: float | None,
        actor: str,
        active_limit: int | None,
    ) -> Engine | None:
        """An idle engine of `profile`'s pool, now the caller's; None when the pool is empty.

        Raises QuotaExceeded when the engine would put `owner` over `active_limit`
        (the store counts it in the same write), StoreUnavailable.
        """
        for _ in range(_ROUNDS):
            idle = [
                e
                for e in await self._store.list(
                    states=[EngineState.Running], pool=profile.name, limit=_CANDIDATES
                )
                if is_idle_member(e, profile)
            ]
            if not idle:
                break
            random.shuffle(idle)  # racing creates mostly try different engines first
            for candidate in warm_first(idle):
                new = hand_out(
                    candidate,
                    name=name,
                    owner=owner,
                    auto_stop_minutes=auto_stop_minutes,
                    now=self._clock(),
                )
                try:
                    taken = await self._store.transition(
                        current=candidate, new=new, actor=actor, active_limit=active_limit
                    )
                except StoreConflict:
                    continue  # another create (or the monitor) wrote it first
                self.counts.hand_outs[profile.name] += 1
                log.info(
                    "engine %s handed out from pool %s",
                    taken.id,
                    profile.name,
                    extra={"engine_id": taken.id, "pool": profile.name, "actor": actor},
                )
                return taken
        self.counts.misses[profile.name] += 1
        log.info("pool %s has no idle engine; starting cold", profile.name)
        return None

    async def describe(self) -> list[PoolOut]:
        """Every pool with its idle and starting engines, as the store has them."""
        out = []
        for profile in self.profiles:
            members = await self._store.list(pool=profile.name, states=sorted(FILLING_STATES))
            idle = [e for e in members if is_idle_member(e, profile)]
            out.append(
                PoolOut(
                    name=profile.name,
                    engine_type=profile.engine_type,
                    version=profile.version,
                    configs=redact_configs(dict(profile.configs)),
                    min_idle=profile.min_idle,
                    max_idle=profile.max_idle,
                    idle=len(idle),
                    warm=sum(is_warm(e) for e in idle),
                    starting=sum(e.state is not EngineState.Running for e in members),
                    hand_outs=self.counts.hand_outs[profile.name],
                    misses=self.counts.misses[profile.name],
                )
            )
        return out
