"""What the Spark Connect proxy does with a call for an engine, by the engine's state.

Pure: the proxy (server/proxy_start.py) applies the decision. With
auto-start on, a call never fails just because the engine is not running
yet: a Terminated engine is started (RESTART, as a user would), an engine
on its way up or down is waited for, and the call answers UNAVAILABLE
(which pyspark retries) until the engine runs. Error states are never
started: they answer FAILED_PRECONDITION with the reason, as without
auto-start.
"""

from __future__ import annotations

from dataclasses import dataclass

from rucat.domain.state import ERROR_STATES, EngineState, UserAction

S = EngineState

#: The actor of the event that starts an engine on a Spark Connect call.
AUTO_START_ACTOR = "auto-start"

#: On the way up: wait for Running.
_STARTING = frozenset({S.WaitToStart, S.TriggerStart, S.StartInProgress})
#: On the way down: wait for Terminated, then start again.
_STOPPING = frozenset({S.TriggerTermination, S.TerminateInProgress})


@dataclass(frozen=True)
class Forward:
    """The engine runs: forward the call."""


@dataclass(frozen=True)
class StartIt:
    """Apply `action` (as actor auto-start), then decide again."""

    action: UserAction


@dataclass(frozen=True)
class WaitFor:
    """The engine is starting or stopping: `what` says which, for the UNAVAILABLE detail."""

    what: str


@dataclass(frozen=True)
class RefuseCall:
    """Not Running and not to be started: FAILED_PRECONDITION."""


ConnectDecision = Forward | StartIt | WaitFor | RefuseCall


def decide_connect(state: EngineState, *, auto_start: bool) -> ConnectDecision:
    """What a proxied call for an engine in `state` does."""
    if state is S.Running:
        return Forward()
    if not auto_start or state in ERROR_STATES:
        return RefuseCall()
    if state is S.Terminated:
        return StartIt(UserAction.RESTART)  # Terminated -> WaitToStart
    if state is S.WaitToTerminate:
        return StartIt(UserAction.RESTART)  # not stopped yet: -> Running again
    if state in _STARTING:
        return WaitFor("starting")
    if state in _STOPPING:
        return WaitFor("stopping; it starts again once stopped")
    return RefuseCall()  # pragma: no cover - every state is named above


def dial_target(endpoint: str) -> str:
    """`sc://host:port[/...]` (an engine's recorded endpoint) -> `host:port`, what a
    gRPC channel dials."""
    rest = endpoint.removeprefix("sc://")
    return rest.split("/", 1)[0]
