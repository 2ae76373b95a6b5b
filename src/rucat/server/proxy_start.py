"""Auto-start on connect: a Spark Connect call for a Terminated engine starts it.

Runs after the proxy has admitted the call (credentials, and whatever says
who may connect to the engine), so only a caller allowed to use the engine
can start it. The decision is the domain's (`decide_connect`); the restart is
a user action (`apply_user_action`, actor `auto-start`), so it obeys the
state machine and the same compare-and-set as a user's restart.

A call for an engine on its way up (or down, to be started again), the call
that starts it included, is held while the engine starts, for at most
`hold_secs`, and forwarded as soon as the engine runs; still not Running by
then, it answers UNAVAILABLE with a detail saying the engine is starting and
its state, and pyspark retries UNAVAILABLE. Holding matters because pyspark's
retries back off exponentially (50 ms, 200 ms, 0.8 s, 3.2 s, 12.8 s, ...):
without it a query would wait up to four times the start time; holding the
first call too spares a refusal, a retry and its back-off on every auto-start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

import grpc

from rucat.domain.connect import (
    AUTO_START_ACTOR,
    Forward,
    RefuseCall,
    StartIt,
    WaitFor,
    decide_connect,
)
from rucat.domain.engine import Engine
from rucat.domain.errors import EngineNotFound, QuotaExceeded, RucatError, StateConflict
from rucat.domain.principal import Principal
from rucat.domain.quota import active_limit
from rucat.domain.state import EngineState, UserAction
from rucat.server.actions import apply_user_action
from rucat.server.proxy_auth import Refused
from rucat.store import EngineStore

#: Who auto-starts: a system principal acting for a caller the proxy already
#: found allowed to connect (attach); events name it "auto-start".
_AUTO_STARTER = Principal(AUTO_START_ACTOR, admin=True)

log = logging.getLogger("rucat.server.proxy")

#: How long a call for a starting engine is held before it answers UNAVAILABLE.
HOLD_SECS = 30.0
#: How often a held call looks at the store (one indexed read by primary key).
POLL_SECS = 0.1


class AutoStarter:
    """Starts Terminated engines for the proxy and holds calls while they start."""

    def __init__(
        self,
        *,
        store: EngineStore,
        clock: Callable[[], datetime],
        hold_secs: float = HOLD_SECS,
        poll_secs: float = POLL_SECS,
        check: Callable[[Engine], None] | None = None,
        max_active_engines_per_user: int | None = None,
    ) -> None:
        """`check(engine)` is the REST restart's check (the engine policy): it refuses
        an auto-start as it refuses a restart. `max_active_engines_per_user` is the
        quota a restart by the caller obeys (config `quotas`); an auto-start obeys it too."""
        self._check = check
        self._max_active = max_active_engines_per_user
        self._store = store
        self._clock = clock
        self._hold_secs = hold_secs
        self._poll_secs = poll_secs
        #: Engines this proxy started since it started.
        self.auto_starts = 0

    async def until_running(self, engine: Engine, *, caller: Principal | None) -> Engine:
        """The engine once Running (forward the call), or the engine to refuse with.

        Raises Refused(UNAVAILABLE) when the engine does not run within the
        hold time (the call that started it says so, and from which state);
        Refused(NOT_FOUND) when it was deleted meanwhile.
        """
        deadline = time.monotonic() + self._hold_secs
        started_from: EngineState | None = None
        while True:
            decision = decide_connect(engine.state, auto_start=True)
            match decision:
                case Forward() | RefuseCall():
                    return engine  # the proxy forwards, or refuses as without auto-start
                case StartIt(action):
                    before = engine.state
                    engine = await self._start(engine, action=action, caller=caller)
                    if engine.state is not before:
                        started_from = before
                        continue
                case WaitFor(what):
                    if time.monotonic() >= deadline:
                        if started_from is not None:
                            raise Refused(
                                grpc.StatusCode.UNAVAILABLE,
                                f"engine {engine.id} is starting (it was {started_from.value}, "
                                f"now {engine.state.value}): retry; pyspark does so by itself",
                            )
                        raise Refused(
                            grpc.StatusCode.UNAVAILABLE,
                            f"engine {engine.id} is {what} (now {engine.state.value}): retry",
                        )
            await asyncio.sleep(self._poll_secs)
            try:
                engine = await self._store.get(engine_id=engine.id)
            except EngineNotFound:
                raise Refused(grpc.StatusCode.NOT_FOUND, f"engine {engine.id} not found") from None

    async def _start(
        self, engine: Engine, *, action: UserAction, caller: Principal | None
    ) -> Engine:
        name = caller.name if caller is not None else None
        try:
            started = await apply_user_action(
                self._store,
                engine_id=engine.id,
                action=action,
                # The proxy has already checked that the caller may connect to it.
                principal=_AUTO_STARTER,
                clock=self._clock,
                check=self._check,
                message="started by a Spark Connect call" + (f" from {name}" if name else ""),
                # The caller's quota, as for a restart by the caller through REST.
                active_limit=(
                    active_limit(caller, self._max_active) if caller is not None else None
                ),
            )
        except EngineNotFound:
            raise Refused(grpc.StatusCode.NOT_FOUND, f"engine {engine.id} not found") from None
        except StateConflict as e:
            # Someone else moved it first (a user, a monitor, another proxy): go on from there.
            if e.current is None:
                raise Refused(grpc.StatusCode.NOT_FOUND, f"engine {engine.id} not found") from e
            return e.current
        except QuotaExceeded as e:
            # As REST's 429: the caller must stop another engine first; retrying won't help.
            raise Refused(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"could not start engine {engine.id}: {e.message}",
            ) from e
        except RucatError as e:
            # Retryable (the store is down): pyspark retries. Permanent (the engine
            # policy refuses its confs now): say why, at once.
            code = (
                grpc.StatusCode.UNAVAILABLE if e.retryable else grpc.StatusCode.FAILED_PRECONDITION
            )
            raise Refused(code, f"could not start engine {engine.id}: {e.message}") from e
        assert started is not None
        self.auto_starts += 1
        log.info(
            "engine %s auto-started on a Spark Connect call by %s (%s -> %s)",
            engine.id,
            name or "a client",
            engine.state.value,
            started.state.value,
            extra={"engine_id": engine.id, "actor": AUTO_START_ACTOR},
        )
        return started
