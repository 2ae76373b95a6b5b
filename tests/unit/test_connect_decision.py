"""The proxy's decision for a call, over every engine state, with auto-start on and off."""

from __future__ import annotations

import pytest

from rucat.domain.connect import (
    ConnectDecision,
    Forward,
    RefuseCall,
    StartIt,
    WaitFor,
    decide_connect,
)
from rucat.domain.state import USER_TRANSITIONS, EngineState, UserAction

S = EngineState

WITH_AUTO_START: dict[EngineState, ConnectDecision] = {
    S.Running: Forward(),
    S.Terminated: StartIt(UserAction.RESTART),
    S.WaitToTerminate: StartIt(UserAction.RESTART),
    S.WaitToStart: WaitFor("starting"),
    S.TriggerStart: WaitFor("starting"),
    S.StartInProgress: WaitFor("starting"),
    S.TriggerTermination: WaitFor("stopping; it starts again once stopped"),
    S.TerminateInProgress: WaitFor("stopping; it starts again once stopped"),
    S.ErrorWaitToClean: RefuseCall(),
    S.ErrorTriggerClean: RefuseCall(),
    S.ErrorCleanInProgress: RefuseCall(),
    S.ErrorClean: RefuseCall(),
}


@pytest.mark.parametrize("state", list(S), ids=str)
def test_with_auto_start_a_call_runs_starts_waits_or_is_refused(state: EngineState) -> None:
    assert decide_connect(state, auto_start=True) == WITH_AUTO_START[state]


@pytest.mark.parametrize("state", list(S), ids=str)
def test_without_auto_start_only_a_running_engine_takes_calls(state: EngineState) -> None:
    expected = Forward() if state is S.Running else RefuseCall()
    assert decide_connect(state, auto_start=False) == expected


@pytest.mark.parametrize(
    "state", [s for s, d in WITH_AUTO_START.items() if isinstance(d, StartIt)], ids=str
)
def test_every_start_is_a_restart_the_user_table_allows(state: EngineState) -> None:
    decision = decide_connect(state, auto_start=True)
    assert isinstance(decision, StartIt)
    assert (state, decision.action) in USER_TRANSITIONS
