"""Which local engines are starting, and whether each answers: one owner for that state.

The Local platform learns readiness in two places: its watcher, which probes
starting engines a few times a second and reports those that answer on
`changes()`, and `inspect`, which the monitor calls (often right after that
report). Both go through `Readiness.check`, so:

- an engine is awaited from start (or adoption, or an inspect that found it
  not answering) until it answers, stops or exits; nothing else edits that set;
- an answer is remembered for `fresh_secs`: the inspect that follows the
  watcher's report reuses it instead of probing the engine again;
- a probe in flight is shared by a second caller whose deadline it meets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rucat.domain.engine import EngineId
from rucat.domain.errors import EngineRefused, EngineUnreachable

#: probe(engine_id, target, token, timeout) -> version; raises EngineUnreachable
#: or EngineRefused (the engine kind's `probe`).
Probe = Callable[[EngineId, str, str | None, float], Awaitable[str]]


@dataclass(frozen=True)
class Answered:
    """The engine at `target` answered."""

    target: str


@dataclass(frozen=True)
class NotYet:
    """It does not answer yet (or its port is not known yet); `detail` says which."""

    detail: str


@dataclass(frozen=True)
class Refused:
    """It answered but refused the engine's token."""

    reason: str


Answer = Answered | NotYet | Refused


@dataclass
class _Flight:
    target: str
    timeout: float
    task: asyncio.Task[str]


class Readiness:
    """The readiness state of a platform's engines; see the module docstring."""

    def __init__(
        self,
        probe: Probe,
        *,
        fresh_secs: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._fresh_secs = fresh_secs
        self._clock = clock
        #: Engines the watcher probes: id -> connect token.
        self._awaited: dict[EngineId, str | None] = {}
        #: Last answer per engine: (target, when).
        self._answered: dict[EngineId, tuple[str, float]] = {}
        self._flights: dict[EngineId, _Flight] = {}

    def expect(self, engine_id: EngineId, token: str | None) -> None:
        """`engine_id` is (re)starting: await its answer, forget any earlier one."""
        self._awaited[engine_id] = token
        self._answered.pop(engine_id, None)

    def drop(self, engine_id: EngineId) -> None:
        """It stopped or exited: neither await it nor remember its answer."""
        self._awaited.pop(engine_id, None)
        self._answered.pop(engine_id, None)

    def awaited(self) -> dict[EngineId, str | None]:
        """The engines not answering yet, with their tokens (a copy)."""
        return dict(self._awaited)

    def is_awaited(self, engine_id: EngineId) -> bool:
        return engine_id in self._awaited

    async def check(
        self, engine_id: EngineId, *, target: str | None, token: str | None, timeout: float
    ) -> Answer:
        """Whether the engine answers at `target` (None: its port is not known yet).

        Not answering (or no port yet) makes it awaited, so the watcher reports
        it once it answers; answering ends that."""
        if target is None:
            self._awaited.setdefault(engine_id, token)
            return NotYet("the engine has not opened its port yet")
        seen = self._answered.get(engine_id)
        if seen is not None and seen[0] == target and self._clock() - seen[1] <= self._fresh_secs:
            return Answered(target)
        try:
            await self._shared_probe(engine_id, target=target, token=token, timeout=timeout)
        except EngineUnreachable:
            self._awaited.setdefault(engine_id, token)
            return NotYet(f"the engine at {target} does not answer yet")
        except EngineRefused as e:
            return Refused(e.message)
        self._awaited.pop(engine_id, None)
        self._answered[engine_id] = (target, self._clock())
        return Answered(target)

    async def _shared_probe(
        self, engine_id: EngineId, *, target: str, token: str | None, timeout: float
    ) -> str:
        flight = self._flights.get(engine_id)
        if flight is None or flight.target != target or flight.timeout < timeout:
            task = asyncio.ensure_future(self._probe(engine_id, target, token, timeout))
            flight = _Flight(target, timeout, task)
            self._flights[engine_id] = flight
            task.add_done_callback(lambda _: self._land(engine_id, flight))
        # shield: one caller cancelled (its own deadline) leaves the probe to the others.
        return await asyncio.shield(flight.task)

    def _land(self, engine_id: EngineId, flight: _Flight) -> None:
        if self._flights.get(engine_id) is flight:
            del self._flights[engine_id]
        if not flight.task.cancelled():
            flight.task.exception()  # retrieved: a probe nobody awaits any more logs nothing
