"""The engine state machine, as data.

The twelve states and their names are the seed's. Two tables say what may
happen: `USER_TRANSITIONS` (what the REST API may do) and
`MONITOR_TRANSITIONS` (what a state monitor may record). `decide_user()` and
`decide_monitor()` are pure functions over those tables; callers decide first,
then apply the decision in one compare-and-set write.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EngineState(enum.StrEnum):
    WaitToStart = "WaitToStart"
    TriggerStart = "TriggerStart"
    StartInProgress = "StartInProgress"
    Running = "Running"
    WaitToTerminate = "WaitToTerminate"
    TriggerTermination = "TriggerTermination"
    TerminateInProgress = "TerminateInProgress"
    Terminated = "Terminated"
    ErrorWaitToClean = "ErrorWaitToClean"
    ErrorTriggerClean = "ErrorTriggerClean"
    ErrorCleanInProgress = "ErrorCleanInProgress"
    ErrorClean = "ErrorClean"


S = EngineState

#: States in which nothing is left for a monitor to do.
STABLE_STATES: frozenset[EngineState] = frozenset({S.Terminated, S.ErrorClean})

#: States a user never has to deal with: the monitor leaves them quickly.
TRIGGER_STATES: frozenset[EngineState] = frozenset(
    {S.TriggerStart, S.TriggerTermination, S.ErrorTriggerClean}
)

#: States whose `message` says why the engine failed.
ERROR_STATES: frozenset[EngineState] = frozenset(
    {S.ErrorWaitToClean, S.ErrorTriggerClean, S.ErrorCleanInProgress, S.ErrorClean}
)

#: The waiting state a trigger state falls back to when its lease expires.
LEASE_FALLBACK: dict[EngineState, EngineState] = {
    S.TriggerStart: S.WaitToStart,
    S.TriggerTermination: S.WaitToTerminate,
    S.ErrorTriggerClean: S.ErrorWaitToClean,
}


#: States of an engine that runs or is on its way up or down: what `rucat up`
#: stops on a clean exit.
SHUTDOWN_STATES: frozenset[EngineState] = frozenset(
    {
        S.WaitToStart,
        S.TriggerStart,
        S.StartInProgress,
        S.Running,
        S.WaitToTerminate,
        S.TriggerTermination,
        S.TerminateInProgress,
    }
)


class UserAction(enum.StrEnum):
    STOP = "STOP"
    RESTART = "RESTART"
    DELETE = "DELETE"


class REMOVED(enum.Enum):
    """Target of DELETE: the engine leaves the store."""

    engine = "removed"


Target = EngineState | REMOVED

USER_TRANSITIONS: dict[tuple[EngineState, UserAction], Target] = {
    (S.WaitToStart, UserAction.STOP): S.Terminated,
    (S.StartInProgress, UserAction.STOP): S.WaitToTerminate,
    (S.Running, UserAction.STOP): S.WaitToTerminate,
    (S.WaitToTerminate, UserAction.RESTART): S.Running,
    (S.Terminated, UserAction.RESTART): S.WaitToStart,
    (S.WaitToStart, UserAction.DELETE): REMOVED.engine,
    (S.Terminated, UserAction.DELETE): REMOVED.engine,
    (S.ErrorClean, UserAction.DELETE): REMOVED.engine,
}


class MonitorEvent(enum.StrEnum):
    CLAIMED = "claimed"
    RESOURCES_CREATED = "resources created"
    CREATE_FAILED = "create failed"
    ENDPOINT_READY = "endpoint accepts connections"
    START_FAILED = "platform failure or start timeout"
    ENGINE_DIED = "engine died"
    STOP_ISSUED = "stop issued"
    RESOURCES_GONE = "resources gone"
    CLEAN_ISSUED = "clean issued"
    LEASE_EXPIRED = "lease expired"
    IDLE = "no activity for its auto-stop time"
    SHUTDOWN = "rucat up shut down"


E = MonitorEvent

MONITOR_TRANSITIONS: dict[tuple[EngineState, MonitorEvent], EngineState] = {
    (S.WaitToStart, E.CLAIMED): S.TriggerStart,
    (S.TriggerStart, E.RESOURCES_CREATED): S.StartInProgress,
    (S.TriggerStart, E.CREATE_FAILED): S.ErrorClean,
    (S.StartInProgress, E.ENDPOINT_READY): S.Running,
    (S.StartInProgress, E.START_FAILED): S.ErrorWaitToClean,
    (S.Running, E.ENGINE_DIED): S.ErrorWaitToClean,
    (S.WaitToTerminate, E.CLAIMED): S.TriggerTermination,
    (S.TriggerTermination, E.STOP_ISSUED): S.TerminateInProgress,
    (S.TerminateInProgress, E.RESOURCES_GONE): S.Terminated,
    (S.ErrorWaitToClean, E.CLAIMED): S.ErrorTriggerClean,
    (S.ErrorTriggerClean, E.CLEAN_ISSUED): S.ErrorCleanInProgress,
    (S.ErrorCleanInProgress, E.RESOURCES_GONE): S.ErrorClean,
    **{(trigger, E.LEASE_EXPIRED): waiting for trigger, waiting in LEASE_FALLBACK.items()},
    # Auto-stop: an idle Running engine is stopped as a user's STOP would.
    (S.Running, E.IDLE): S.WaitToTerminate,
    # `rucat up` stopping its own engines on a clean exit (it stopped its monitor first).
    **{(active, E.SHUTDOWN): S.Terminated for active in SHUTDOWN_STATES},
}


@dataclass(frozen=True)
class Move:
    """Apply: write `to` (or remove the engine when `to` is REMOVED)."""

    to: Target


@dataclass(frozen=True)
class WaitForMonitor:
    """The engine is in a trigger state; retry once the monitor has left it."""

    state: EngineState


@dataclass(frozen=True)
class Refuse:
    """The action is not allowed; `reason` names the current state."""

    reason: str


UserDecision = Move | WaitForMonitor | Refuse


def allowed_user_actions(state: EngineState) -> list[UserAction]:
    return [action for (s, action) in USER_TRANSITIONS if s is state]


def decide_user(state: EngineState, action: UserAction) -> UserDecision:
    """What a user's `action` does to an engine in `state`."""
    target = USER_TRANSITIONS.get((state, action))
    if target is not None:
        return Move(target)
    if state in TRIGGER_STATES and action is not UserAction.DELETE:
        return WaitForMonitor(state)
    allowed = [a.value for a in allowed_user_actions(state)]
    hint = f"; allowed in {state.value}: {', '.join(allowed)}" if allowed else ""
    return Refuse(f"cannot {action.value} engine in state {state.value}{hint}")


def decide_monitor(state: EngineState, event: MonitorEvent) -> EngineState | None:
    """The state a monitor records for `event` in `state`, or None if not allowed."""
    return MONITOR_TRANSITIONS.get((state, event))
