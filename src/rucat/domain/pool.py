"""Warm pools: which pool a create takes an engine from, and how a pool is kept full.

A pool is a profile (engine type, version, confs) and bounds on how many of
its engines wait Running and idle. Its engines are ordinary engines whose
`pool` field names it; they have no owner, so no user sees them (admins do)
and no quota counts them. A create that matches a profile takes one: a single
compare-and-set gives it the request's name and owner and clears `pool`, so
it leaves the pool for good, and no second create can take it (the second
write's revision no longer matches).

The monitor side is one pure decision over the pool's engines as stored
(`plan_pool`): how many to start, which to stop, which leftovers to remove.
Everything here is pure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rucat.domain.engine import CreateEngineRequest, Engine, EngineType
from rucat.domain.errors import InvalidRequest
from rucat.domain.state import EngineState

#: The actor of a pool's own writes (its engines' creation, stops and removal).
POOL_ACTOR = "pool"

#: Failed engines a pool keeps (with their events and logs) for inspection; older
#: ones are removed, so a profile that cannot start does not pile up rows.
KEPT_FAILURES = 3

#: States of a pool engine that is, or will be, Running and idle.
FILLING_STATES: frozenset[EngineState] = frozenset(
    {
        EngineState.WaitToStart,
        EngineState.TriggerStart,
        EngineState.StartInProgress,
        EngineState.Running,
    }
)


@dataclass(frozen=True)
class PoolProfile:
    """One pool as configured, its confs as the engine policy settles them."""

    name: str
    engine_type: EngineType
    version: str
    configs: Mapping[str, str] = field(default_factory=dict)
    min_idle: int = 0
    max_idle: int = 0
    #: The platform its engines run on.
    platform: str = ""

    def request(self, *, name: str | None = None) -> CreateEngineRequest:
        """The create request of one engine of this profile."""
        return CreateEngineRequest(
            name=name or pool_engine_name(self.name),
            engine_type=self.engine_type,
            version=self.version,
            configs=dict(self.configs),
        )


def pool_engine_name(pool: str) -> str:
    """The name an idle engine of `pool` carries until a create renames it."""
    return f"pool-{pool}"


def fits(engine: Engine, profile: PoolProfile) -> bool:
    """The engine is what a create of `profile` would get (type, version, confs, platform)."""
    return (
        engine.engine_type is profile.engine_type
        and engine.version == profile.version
        and engine.configs == dict(profile.configs)
        and engine.platform == profile.platform
    )


def choose_pool(
    profiles: Iterable[PoolProfile], wanted: CreateEngineRequest | None, *, named: str | None
) -> PoolProfile | None:
    """The pool a create takes an idle engine from; None: no pool, start cold.

    `wanted` is the request as it would be stored (confs settled by the engine
    policy; None: only look the named pool up). `named`: the pool the request
    names; it must exist and the request must not ask for another profile than
    the pool's (InvalidRequest otherwise). Without a name, the first pool whose
    profile equals the request's.
    """
    profiles = list(profiles)
    if named is not None:
        for profile in profiles:
            if profile.name == named:
                if wanted is not None:
                    _check_same_profile(profile, wanted)
                return profile
        known = ", ".join(sorted(p.name for p in profiles)) or "none are configured"
        raise InvalidRequest(f"unknown pool {named!r}; pools: {known}")
    if wanted is None:
        return None
    for profile in profiles:
        if (
            wanted.engine_type is profile.engine_type
            and wanted.version == profile.version
            and wanted.configs == dict(profile.configs)
        ):
            return profile
    return None


def _check_same_profile(profile: PoolProfile, wanted: CreateEngineRequest) -> None:
    if wanted.engine_type is not profile.engine_type:
        raise InvalidRequest(
            f"pool {profile.name!r} runs {profile.engine_type.value} engines, "
            f"not {wanted.engine_type.value}"
        )
    if wanted.version != profile.version:
        raise InvalidRequest(
            f"pool {profile.name!r} runs version {profile.version}, not {wanted.version}"
        )
    if wanted.configs != dict(profile.configs):
        differ = sorted(
            k
            for k in set(wanted.configs) | set(profile.configs)
            if wanted.configs.get(k) != profile.configs.get(k)
        )
        raise InvalidRequest(
            f"pool {profile.name!r} has other configs than the request: "
            f"{', '.join(differ)} differ; leave configs out to take the pool's"
        )


def is_idle_member(engine: Engine, profile: PoolProfile) -> bool:
    """An engine of `profile`'s pool a create may take: Running, still pooled, fitting."""
    return (
        engine.pool == profile.name
        and engine.state is EngineState.Running
        and engine.owner is None
        and fits(engine, profile)
    )


def is_warm(engine: Engine) -> bool:
    """A pool engine that has answered a query: its warm-up is recorded as activity."""
    return engine.last_activity_time is not None


def needs_warm_up(engine: Engine, profile: PoolProfile) -> bool:
    """An idle member of the pool that has not answered a query yet."""
    return is_idle_member(engine, profile) and not is_warm(engine)


def warm_first(idle: Sequence[Engine]) -> list[Engine]:
    """The candidates of a hand-out, warm ones first, each group in its given order."""
    return sorted(idle, key=lambda e: not is_warm(e))


def hand_out(
    engine: Engine,
    *,
    name: str,
    owner: str | None,
    auto_stop_minutes: float | None,
    now: datetime,
) -> Engine:
    """The idle pool engine as the create's: its name and owner, out of the pool for good,
    and Running as it is. Its idle time (auto-stop) starts now, not when it became Running."""
    return dataclasses.replace(
        engine,
        name=name,
        owner=owner,
        grants=(),
        pool=None,
        auto_stop_minutes=auto_stop_minutes,
        update_time=now,
        message=None,
    )


@dataclass(frozen=True)
class PoolPlan:
    """What the monitor does to one pool now."""

    #: New engines to create.
    start: int = 0
    #: Engines to stop: beyond max_idle, or no longer of the pool's profile.
    stop: tuple[Engine, ...] = ()
    #: Stopped or failed engines to remove from the store (and their leftovers).
    remove: tuple[Engine, ...] = ()


def plan_pool(profile: PoolProfile, members: Sequence[Engine]) -> PoolPlan:
    """Keep `min_idle` engines of `profile` Running or on their way, never more than
    `max_idle`. `members` are the engines the pool owns (any state).

    Engines on their way (WaitToStart .. StartInProgress) count as filling, so a
    slow start is not doubled. An engine that dies goes through the error states
    and counts no longer: it is replaced at once. Surplus engines stop, those
    not yet Running first, then the newest. Stopped engines are removed; failed
    ones too, but for the newest KEPT_FAILURES, kept for their events and logs.
    """
    mine = [e for e in members if e.pool == profile.name]
    filling = [e for e in mine if e.state in FILLING_STATES and fits(e, profile)]
    stale = [e for e in mine if e.state in FILLING_STATES and not fits(e, profile)]
    surplus = sorted(
        filling,
        key=lambda e: (e.state is EngineState.Running, -e.create_time.timestamp(), e.id),
    )[: max(0, len(filling) - profile.max_idle)]
    stopped = [e for e in mine if e.state is EngineState.Terminated]
    failed = sorted(
        (e for e in mine if e.state is EngineState.ErrorClean),
        key=lambda e: (e.update_time, e.id),
        reverse=True,
    )
    return PoolPlan(
        start=max(0, profile.min_idle - len(filling)),
        stop=tuple(stale + surplus),
        remove=tuple(stopped + failed[KEPT_FAILURES:]),
    )


def plan_orphans(profiles: Iterable[PoolProfile], engines: Sequence[Engine]) -> PoolPlan:
    """Engines of pools no longer configured: stop those running or on their way, remove
    those stopped or failed. Nothing else would: they never auto-stop."""
    names = {p.name for p in profiles}
    orphans = [e for e in engines if e.pool is not None and e.pool not in names]
    return PoolPlan(
        stop=tuple(e for e in orphans if e.state in FILLING_STATES),
        remove=tuple(
            e for e in orphans if e.state in (EngineState.Terminated, EngineState.ErrorClean)
        ),
    )
