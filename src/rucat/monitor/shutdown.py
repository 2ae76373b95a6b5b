"""`rucat up`'s clean exit: stop the engines it runs, and record why.

`rucat up` is one process a user starts and stops; engines it leaves behind
keep holding cores and memory after Ctrl-C. So on SIGINT or SIGTERM (after
its monitor and server have stopped, so nothing races these writes) it stops
every engine of its platform that runs or is on its way up or down, all at
once, and records each as Terminated with actor `shutdown`. Each stop is the
platform's own (SIGTERM, then SIGKILL after the stop grace period), so the
whole exit waits about one grace period, however many engines there are.

A crash (kill -9) skips all this: the engines keep running, and the next
`rucat up` adopts them, as does `rucat up --keep-engines` on purpose.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from rucat.domain.engine import Engine
from rucat.domain.errors import RucatError, StoreConflict
from rucat.domain.rows import shutdown_row
from rucat.domain.state import SHUTDOWN_STATES, MonitorEvent, decide_monitor
from rucat.platforms import Platform
from rucat.store import EngineStore

log = logging.getLogger("rucat.monitor")

#: The actor of the events `rucat up` records when it stops its engines on exit.
SHUTDOWN_ACTOR = "shutdown"
#: Lost compare-and-sets tolerated per engine (nothing else should be writing).
_ATTEMPTS = 5


async def stop_engines_on_exit(
    *,
    store: EngineStore,
    platform: Platform,
    clock: Callable[[], datetime],
    timeout: float,
    on_stopping: Callable[[Engine], None],
) -> list[Engine]:
    """Stop every active engine of `platform`; returns those recorded as Terminated.

    `on_stopping` is told of each engine before its stop is issued. Gives up
    on what is not done within `timeout` seconds (those stay for adoption).
    """
    engines = [e for e in await store.list(states=SHUTDOWN_STATES) if e.platform == platform.name]
    for engine in engines:
        on_stopping(engine)
    if not engines:
        return []
    tasks = [
        asyncio.create_task(_stop(engine, store=store, platform=platform, clock=clock))
        for engine in engines
    ]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if pending:
        log.warning("%d engine(s) did not stop within %gs; left running", len(pending), timeout)
    stopped = [t.result() for t in done if t.exception() is None]
    return [e for e in stopped if e is not None]


async def _stop(
    engine: Engine, *, store: EngineStore, platform: Platform, clock: Callable[[], datetime]
) -> Engine | None:
    try:
        await platform.stop(engine=engine)
    except Exception as e:
        log.warning("engine %s: could not stop it on exit: %s", engine.id, e)
        return None
    for _ in range(_ATTEMPTS):
        target = decide_monitor(engine.state, MonitorEvent.SHUTDOWN)
        if target is None:
            return None  # it moved to a state at rest meanwhile
        try:
            return await store.transition(
                current=engine,
                new=shutdown_row(
                    engine, target, now=clock(), message="stopped when rucat up exited"
                ),
                actor=SHUTDOWN_ACTOR,
            )
        except StoreConflict as conflict:
            if conflict.current is None:
                return None
            engine = conflict.current
        except RucatError as e:
            log.warning("engine %s: stopped, but could not record it: %s", engine.id, e)
            return None
    return None
