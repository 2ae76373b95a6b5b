"""What a state monitor does with an engine, as pure decisions.

monitor/reconciler.py is the loop that runs them (claim, act, observe, record);
this module only decides. A monitor handles a due engine in up to three
steps, each decided here, built into a row by domain/rows.py, and applied by
the loop in one compare-and-set write:

1. `plan()`: a waiting state is claimed into its trigger state (holding a
   lease); a trigger state whose lease ran out falls back to its waiting
   state; an in-progress or Running state is observed on the platform.
2. `after_action()`: the outcome of the platform call made under the lease
   (start, stop, clean) decides the next state.
3. `after_observation()`: what the platform reports decides whether the
   engine moves on, failed, or is simply checked again later; a Running
   engine idle past its auto-stop time is stopped (domain/activity.py).

Every target state is taken from the transition table in `state.py`, so a
decision can never leave it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from rucat.domain.activity import AUTO_STOP_ACTOR, KeepRunning, StopIdle, decide_idle
from rucat.domain.engine import Engine
from rucat.domain.observation import Absent, Failed, Observation, Pending, Ready, Unknown
from rucat.domain.state import (
    LEASE_FALLBACK,
    EngineState,
    MonitorEvent,
    decide_monitor,
)

S = EngineState
E = MonitorEvent


class PlatformAction(enum.StrEnum):
    START = "start"
    STOP = "stop"


#: The platform action taken once a waiting state has been claimed.
CLAIM_ACTIONS: dict[EngineState, PlatformAction] = {
    S.WaitToStart: PlatformAction.START,
    S.WaitToTerminate: PlatformAction.STOP,
    S.ErrorWaitToClean: PlatformAction.STOP,
}

#: States whose resources the monitor watches on the platform.
OBSERVED_STATES: frozenset[EngineState] = frozenset(
    {S.StartInProgress, S.Running, S.TerminateInProgress, S.ErrorCleanInProgress}
)


@dataclass(frozen=True)
class Timing:
    """How long the monitor waits between looks, in seconds."""

    check_interval: float
    start_timeout: float
    lease: float
    #: Polling while an engine starts or stops: short, so Running is seen soon.
    fast_poll: float = 0.25
    #: A Running engine is re-inspected this often even without platform events.
    resync: float = 60.0
    #: Activity younger than this may mean an RPC in flight (see domain/activity.py).
    busy_grace: float = 10.0


@dataclass(frozen=True)
class Claim:
    """Move into a trigger state under a lease, then run `action`."""

    to: EngineState
    action: PlatformAction


@dataclass(frozen=True)
class Observe:
    """Inspect the engine on the platform, then call `after_observation()`."""


@dataclass(frozen=True)
class Write:
    """Record `to` (possibly the same state) and look again after `delay`.

    `message` and `endpoint` are the values to store; `stop_again` asks the
    caller to re-issue the (idempotent) stop before writing; `actor` names a
    decision that is not the platform's (auto-stop).
    """

    to: EngineState
    message: str | None
    endpoint: str | None
    delay: float
    stop_again: bool = False
    #: Who the event names; None: the monitor itself.
    actor: str | None = None


@dataclass(frozen=True)
class Ok:
    """The platform action succeeded."""


@dataclass(frozen=True)
class PermanentFailure:
    reason: str


@dataclass(frozen=True)
class RetryableFailure:
    reason: str


Outcome = Ok | PermanentFailure | RetryableFailure
Plan = Claim | Observe | Write | None


def _to(state: EngineState, event: MonitorEvent) -> EngineState:
    target = decide_monitor(state, event)
    if target is None:  # pragma: no cover - guarded by the table tests
        raise ValueError(f"{event.value} is not allowed in {state.value}")
    return target


def plan(engine: Engine, timing: Timing) -> Plan:
    """The first step for a due engine; None when there is nothing to do."""
    state = engine.state
    if state in CLAIM_ACTIONS:
        return Claim(to=_to(state, E.CLAIMED), action=CLAIM_ACTIONS[state])
    if state in LEASE_FALLBACK:
        # Due while in a trigger state means its monitor's lease ran out.
        return Write(
            to=_to(state, E.LEASE_EXPIRED),
            message=engine.message,
            endpoint=engine.endpoint,
            delay=0.0,
        )
    if state in OBSERVED_STATES:
        return Observe()
    return None


def after_action(engine: Engine, outcome: Outcome, timing: Timing) -> Write:
    """The write after a platform action taken in trigger state `engine.state`."""
    state = engine.state
    match outcome:
        case RetryableFailure(reason):
            # Keep the trigger state; the shortened lease makes someone retry soon.
            return Write(
                to=state,
                message=f"retrying: {reason}",
                endpoint=engine.endpoint,
                delay=timing.check_interval,
            )
        case PermanentFailure(reason) if state is S.TriggerStart:
            return Write(
                to=_to(state, E.CREATE_FAILED),
                message=f"failed to create the engine: {reason}",
                endpoint=None,
                delay=0.0,
                stop_again=True,
            )
        case PermanentFailure(reason):
            # Stop and clean only fail for good on a platform bug; keep retrying
            # slowly rather than leaking resources.
            return Write(
                to=state,
                message=f"retrying: {reason}",
                endpoint=engine.endpoint,
                delay=timing.resync,
            )
        case Ok():
            if state is S.TriggerStart:
                return Write(
                    to=_to(state, E.RESOURCES_CREATED),
                    message=None,
                    endpoint=None,
                    delay=timing.fast_poll,
                )
            if state is S.TriggerTermination:
                return Write(
                    to=_to(state, E.STOP_ISSUED),
                    message=None,
                    endpoint=engine.endpoint,
                    delay=timing.fast_poll,
                )
            return Write(
                to=_to(state, E.CLEAN_ISSUED),
                message=engine.message,
                endpoint=engine.endpoint,
                delay=timing.fast_poll,
            )
    raise ValueError(f"no action is taken in {state.value}")  # pragma: no cover


def after_observation(
    engine: Engine, observation: Observation, *, now: datetime, timing: Timing
) -> Write:
    """The write after inspecting an engine in an observed state.

    For StartInProgress, `engine.update_time` is when it entered that state:
    touches within a state do not move it.
    """
    state = engine.state
    if state is S.StartInProgress:
        match observation:
            case Ready(endpoint):
                return Write(
                    to=_to(state, E.ENDPOINT_READY),
                    message=None,
                    endpoint=endpoint,
                    delay=_running_delay(engine.auto_stop_minutes, timing),
                )
            case Failed(reason):
                return _start_failed(state, reason)
            case Absent():
                return _start_failed(state, "the engine's resources disappeared while starting")
            case Pending() | Unknown():
                waited = (now - engine.update_time).total_seconds()
                if waited > timing.start_timeout:
                    why = observation.detail if isinstance(observation, Pending) else ""
                    why = why or (observation.reason if isinstance(observation, Unknown) else "")
                    suffix = f": {why}" if why else ""
                    return _start_failed(
                        state,
                        f"start timed out: not Running after {timing.start_timeout:g} s{suffix}",
                    )
                return _recheck(engine, timing.fast_poll)
    if state is S.Running:
        match observation:
            case Ready(endpoint):
                match decide_idle(engine, now=now, busy_grace=timing.busy_grace):
                    case StopIdle(message):
                        return Write(
                            to=_to(state, E.IDLE),
                            message=message,
                            endpoint=endpoint,
                            delay=0.0,
                            actor=AUTO_STOP_ACTOR,
                        )
                    case KeepRunning(recheck_after):
                        delay = timing.resync
                        if recheck_after is not None:
                            delay = min(delay, recheck_after)
                        return Write(to=state, message=None, endpoint=endpoint, delay=delay)
            case Failed(reason):
                return _died(state, reason)
            case Absent():
                return _died(state, "the engine's resources disappeared")
            case Pending() | Unknown():
                return _recheck(engine, timing.check_interval)
    if state in (S.TerminateInProgress, S.ErrorCleanInProgress):
        if isinstance(observation, Absent):
            return Write(
                to=_to(state, E.RESOURCES_GONE),
                message=engine.message if state is S.ErrorCleanInProgress else None,
                endpoint=None,
                delay=0.0,
            )
        return Write(
            to=state,
            message=engine.message,
            endpoint=engine.endpoint,
            delay=timing.fast_poll * 4,
            stop_again=True,
        )
    raise ValueError(f"{state.value} is not an observed state")  # pragma: no cover


def _running_delay(auto_stop_minutes: float | None, timing: Timing) -> float:
    """When to look at a newly Running engine: by its first possible auto-stop."""
    if not auto_stop_minutes:
        return timing.resync
    return min(timing.resync, max(auto_stop_minutes * 60.0, timing.busy_grace))


def _recheck(engine: Engine, delay: float) -> Write:
    return Write(to=engine.state, message=engine.message, endpoint=engine.endpoint, delay=delay)


def _start_failed(state: EngineState, reason: str) -> Write:
    return Write(to=_to(state, E.START_FAILED), message=reason, endpoint=None, delay=0.0)


def _died(state: EngineState, reason: str) -> Write:
    return Write(
        to=_to(state, E.ENGINE_DIED),
        message=f"engine died: {reason}",
        endpoint=None,
        delay=0.0,
    )
