"""User intent (STOP, RESTART, DELETE) applied to the store: decide, then one compare-and-set.

The decision is the domain's (`decide_user`), and so is the row it writes
(domain/rows.py `user_row`). This module only loops around them: when the
compare-and-set loses (a monitor wrote first) it re-reads and decides again,
a bounded number of times; when the engine sits in a trigger state it waits
a few seconds for the monitor to leave it, then decides again or answers 409.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from rucat.config import RucatConfig
from rucat.domain.access import EngineAction, Grant
from rucat.domain.engine import Engine, EngineId
from rucat.domain.errors import StateConflict, StoreConflict
from rucat.domain.principal import Principal
from rucat.domain.rows import grants_row, user_row
from rucat.domain.state import (
    REMOVED,
    Move,
    Refuse,
    UserAction,
    WaitForMonitor,
    decide_user,
)
from rucat.platforms.offer import platform_offer
from rucat.server.access import authorize
from rucat.store import EngineStore

log = logging.getLogger("rucat.server")

#: Lost compare-and-sets tolerated before giving up with 409.
MAX_CAS_ATTEMPTS = 20


@dataclasses.dataclass(frozen=True)
class TriggerWait:
    """How a user action waits for a monitor to leave a trigger state: at most `secs`
    by `monotonic`, re-reading the engine every `poll_secs` (`sleep` waits between).
    Tests inject a clock whose `sleep` moves it, so a wait costs no real time."""

    secs: float = 5.0
    poll_secs: float = 0.1
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


#: The production wait: a few seconds, on the real clock.
TRIGGER_WAIT = TriggerWait()


def restart_check(config: RucatConfig) -> Callable[[Engine], None]:
    """What a restart checks on the stored engine before it starts again, whoever
    restarts it (REST, auto-start on connect): its confs against the engine policy,
    which may have changed since create."""
    policy = platform_offer(config.platform).policy(config.engine_policy)

    def policy_allows(engine: Engine) -> None:
        policy.check(
            engine.configs,
            context=f"engine {engine.id} cannot restart: the engine policy refuses its confs: ",
        )

    return policy_allows


#: The access level check of each user action.
_ACCESS: dict[UserAction, EngineAction] = {
    UserAction.STOP: EngineAction.STOP,
    UserAction.RESTART: EngineAction.RESTART,
    UserAction.DELETE: EngineAction.DELETE,
}


async def apply_user_action(
    store: EngineStore,
    *,
    engine_id: EngineId,
    action: UserAction,
    principal: Principal,
    clock: Callable[[], datetime],
    check: Callable[[Engine], None] | None = None,
    message: str | None = None,
    trigger_wait: TriggerWait = TRIGGER_WAIT,
    active_limit: int | None = None,
) -> Engine | None:
    """Apply `action` on behalf of `principal`; returns the engine as written (None when
    removed). `active_limit` is the principal's quota, checked by the store when the
    action makes the engine active again (a restart of a Terminated engine).

    `check(engine)` runs on the stored engine before anything is written and
    may refuse by raising (it must only read what never changes, e.g. confs).
    `message` says why, on the engine and its event (auto-start says who called).
    `trigger_wait` bounds the wait for a monitor to leave a trigger state.

    Raises EngineNotFound (also for an engine the principal may not see),
    PermissionDenied, QuotaExceeded, StateConflict (409, naming the current
    state) or StoreUnavailable.
    """
    actor = principal.name
    engine = await store.get(engine_id=engine_id)
    # Access first: a hidden engine must not reveal what `check` would say about it.
    authorize(principal, engine, _ACCESS[action])
    if check is not None:
        check(engine)
    deadline: float | None = None
    attempts = 0
    while True:
        # Checked on every read: grants may change while this loop waits.
        authorize(principal, engine, _ACCESS[action])
        decision = decide_user(engine.state, action)
        if isinstance(decision, Refuse):
            raise StateConflict(decision.reason, current=engine)
        if isinstance(decision, WaitForMonitor):
            now_mono = trigger_wait.monotonic()
            deadline = deadline if deadline is not None else now_mono + trigger_wait.secs
            if now_mono >= deadline:
                raise StateConflict(
                    f"cannot {action.value} engine in state {engine.state.value}: the monitor "
                    f"did not leave it within {trigger_wait.secs:g}s; retry later",
                    current=engine,
                )
            await trigger_wait.sleep(trigger_wait.poll_secs)
            engine = await store.get(engine_id=engine_id)
            continue
        assert isinstance(decision, Move)
        try:
            if decision.to is REMOVED.engine:
                await store.remove(current=engine)
                log.info(
                    "engine %s removed",
                    engine.id,
                    extra={
                        "engine_id": engine.id,
                        "from_state": engine.state.value,
                        "actor": actor,
                    },
                )
                return None
            written = await store.transition(
                current=engine,
                new=user_row(engine, decision.to, now=clock(), message=message),
                actor=actor,
                active_limit=active_limit,
            )
        except StoreConflict as conflict:
            attempts += 1
            if conflict.current is None:
                # Removed meanwhile: the engine is gone for this caller too.
                engine = await store.get(engine_id=engine_id)
            elif attempts >= MAX_CAS_ATTEMPTS:
                raise StateConflict(
                    f"engine {engine_id} kept changing (now {conflict.current.state.value}); retry",
                    current=conflict.current,
                ) from conflict
            else:
                engine = conflict.current
            continue
        log.info(
            "engine %s: %s -> %s",
            engine.id,
            engine.state.value,
            written.state.value,
            extra={
                "engine_id": engine.id,
                "from_state": engine.state.value,
                "to_state": written.state.value,
                "actor": actor,
            },
        )
        return written


async def replace_grants(
    store: EngineStore,
    *,
    engine_id: EngineId,
    grants: tuple[Grant, ...],
    principal: Principal,
) -> Engine:
    """Replace the engine's grants in one compare-and-set (re-read and retried when a
    monitor wrote first); the principal needs manage. Returns the engine as written."""
    engine = await store.get(engine_id=engine_id)
    for _ in range(MAX_CAS_ATTEMPTS):
        authorize(principal, engine, EngineAction.PERMISSIONS)
        if engine.grants == grants:
            return engine
        try:
            return await store.transition(
                current=engine,
                new=grants_row(engine, grants),
                actor=principal.name,
            )
        except StoreConflict as conflict:
            engine = conflict.current or await store.get(engine_id=engine_id)
    raise StateConflict(f"engine {engine_id} kept changing; retry", current=engine)
