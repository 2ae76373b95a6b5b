"""The state machine tables, over every (state, action) pair."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rucat.domain.state import (
    LEASE_FALLBACK,
    MONITOR_TRANSITIONS,
    REMOVED,
    TRIGGER_STATES,
    USER_TRANSITIONS,
    EngineState,
    MonitorEvent,
    Move,
    Refuse,
    UserAction,
    WaitForMonitor,
    decide_monitor,
    decide_user,
)

S = EngineState
A = UserAction
E = MonitorEvent

#: DESIGN.md's user table, written out again by hand so a slip in either shows.
EXPECTED_USER = {
    (S.WaitToStart, A.STOP): S.Terminated,
    (S.StartInProgress, A.STOP): S.WaitToTerminate,
    (S.Running, A.STOP): S.WaitToTerminate,
    (S.WaitToTerminate, A.RESTART): S.Running,
    (S.Terminated, A.RESTART): S.WaitToStart,
    (S.WaitToStart, A.DELETE): REMOVED.engine,
    (S.Terminated, A.DELETE): REMOVED.engine,
    (S.ErrorClean, A.DELETE): REMOVED.engine,
}

EXPECTED_MONITOR = {
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
    (S.TriggerStart, E.LEASE_EXPIRED): S.WaitToStart,
    (S.TriggerTermination, E.LEASE_EXPIRED): S.WaitToTerminate,
    (S.ErrorTriggerClean, E.LEASE_EXPIRED): S.ErrorWaitToClean,
    (S.Running, E.IDLE): S.WaitToTerminate,
    (S.WaitToStart, E.SHUTDOWN): S.Terminated,
    (S.TriggerStart, E.SHUTDOWN): S.Terminated,
    (S.StartInProgress, E.SHUTDOWN): S.Terminated,
    (S.Running, E.SHUTDOWN): S.Terminated,
    (S.WaitToTerminate, E.SHUTDOWN): S.Terminated,
    (S.TriggerTermination, E.SHUTDOWN): S.Terminated,
    (S.TerminateInProgress, E.SHUTDOWN): S.Terminated,
}

USER_PAIRS = [(s, a) for s in S for a in A]
MONITOR_PAIRS = [(s, e) for s in S for e in E]


def test_the_twelve_states_have_the_seeds_names() -> None:
    assert [s.value for s in S] == [
        "WaitToStart",
        "TriggerStart",
        "StartInProgress",
        "Running",
        "WaitToTerminate",
        "TriggerTermination",
        "TerminateInProgress",
        "Terminated",
        "ErrorWaitToClean",
        "ErrorTriggerClean",
        "ErrorCleanInProgress",
        "ErrorClean",
    ]


def test_the_tables_are_the_designs() -> None:
    assert USER_TRANSITIONS == EXPECTED_USER
    assert MONITOR_TRANSITIONS == EXPECTED_MONITOR


@pytest.mark.parametrize(("state", "action"), USER_PAIRS, ids=lambda v: v.value)
def test_user_action(state: EngineState, action: UserAction) -> None:
    decision = decide_user(state, action)
    expected = EXPECTED_USER.get((state, action))
    if expected is not None:
        assert decision == Move(expected)
    elif state in TRIGGER_STATES and action is not A.DELETE:
        assert decision == WaitForMonitor(state)
    else:
        assert isinstance(decision, Refuse)
        assert state.value in decision.reason
        assert action.value in decision.reason


@pytest.mark.parametrize(("state", "event"), MONITOR_PAIRS, ids=lambda v: str(v.value))
def test_monitor_event(state: EngineState, event: MonitorEvent) -> None:
    assert decide_monitor(state, event) == EXPECTED_MONITOR.get((state, event))


def test_every_trigger_state_falls_back_to_its_waiting_state() -> None:
    assert set(LEASE_FALLBACK) == TRIGGER_STATES


def test_a_refusal_names_what_is_allowed_instead() -> None:
    decision = decide_user(S.Running, A.DELETE)
    assert isinstance(decision, Refuse)
    assert "STOP" in decision.reason


Step = tuple[str, UserAction | MonitorEvent]
steps = st.one_of(
    st.tuples(st.just("user"), st.sampled_from(list(A))),
    st.tuples(st.just("monitor"), st.sampled_from(list(E))),
)


#: Where an engine can be, derived from the tables alone.
REACHABLE = {S.WaitToStart} | {t for t in USER_TRANSITIONS.values() if isinstance(t, EngineState)}
REACHABLE |= set(MONITOR_TRANSITIONS.values())


def _moves_from(state: EngineState) -> int:
    return sum(1 for (s, _) in USER_TRANSITIONS if s is state) + sum(
        1 for (s, _) in MONITOR_TRANSITIONS if s is state
    )


def test_every_state_is_reachable_and_none_is_a_dead_end() -> None:
    assert set(S) == REACHABLE
    assert all(_moves_from(s) > 0 for s in S)


@settings(max_examples=500)
@given(st.lists(steps, max_size=60))
def test_random_interleavings_never_leave_the_tables(history: list[Step]) -> None:
    state: EngineState | None = S.WaitToStart
    for who, what in history:
        if state is None:  # removed: nothing may happen to it any more
            break
        if who == "user":
            assert isinstance(what, UserAction)
            decision = decide_user(state, what)
            if isinstance(decision, Move):
                assert USER_TRANSITIONS[(state, what)] == decision.to
                state = None if decision.to is REMOVED.engine else decision.to
                assert state is None or isinstance(state, EngineState)
        else:
            assert isinstance(what, MonitorEvent)
            target = decide_monitor(state, what)
            if target is not None:
                assert MONITOR_TRANSITIONS[(state, what)] is target
                state = target
        assert state is None or (state in REACHABLE and _moves_from(state) > 0)
