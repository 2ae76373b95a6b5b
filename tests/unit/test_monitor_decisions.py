"""The monitor's pure decisions: what it writes for each state and observation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine
from rucat.domain.monitor_decisions import (
    OBSERVED_STATES,
    Claim,
    Ok,
    PermanentFailure,
    PlatformAction,
    RetryableFailure,
    Timing,
    Write,
    after_action,
    after_observation,
    plan,
)
from rucat.domain.observation import Absent, Failed, Observation, Pending, Ready, Unknown
from rucat.domain.state import MONITOR_TRANSITIONS, EngineState

S = EngineState
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TIMING = Timing(check_interval=5, start_timeout=300, lease=60, fast_poll=0.25, resync=60)


def engine_in(state: EngineState, **changes: object) -> Engine:
    base = new_engine(
        CreateEngineRequest(name="e", engine_type=EngineType.Spark, version="4.0.1"),
        platform="Local",
        now=T0,
    )
    fields = {"state": state, **changes}
    return Engine(**{**base.__dict__, **fields})  # type: ignore[arg-type]


def assert_in_table(before: EngineState, write: Write) -> None:
    if write.to is not before:
        assert write.to in {t for (s, _), t in MONITOR_TRANSITIONS.items() if s is before}


@pytest.mark.parametrize(
    ("state", "claimed", "action"),
    [
        (S.WaitToStart, S.TriggerStart, PlatformAction.START),
        (S.WaitToTerminate, S.TriggerTermination, PlatformAction.STOP),
        (S.ErrorWaitToClean, S.ErrorTriggerClean, PlatformAction.STOP),
    ],
    ids=lambda v: str(v),
)
def test_a_waiting_engine_is_claimed_into_its_trigger_state(
    state: EngineState, claimed: EngineState, action: PlatformAction
) -> None:
    assert plan(engine_in(state), TIMING) == Claim(to=claimed, action=action)


@pytest.mark.parametrize(
    ("state", "fallback"),
    [
        (S.TriggerStart, S.WaitToStart),
        (S.TriggerTermination, S.WaitToTerminate),
        (S.ErrorTriggerClean, S.ErrorWaitToClean),
    ],
    ids=lambda v: str(v),
)
def test_a_due_trigger_state_means_an_expired_lease_and_falls_back(
    state: EngineState, fallback: EngineState
) -> None:
    step = plan(engine_in(state, message="boom"), TIMING)
    assert isinstance(step, Write)
    assert step.to is fallback
    assert step.message == "boom"
    assert step.delay == 0


@pytest.mark.parametrize("state", sorted(OBSERVED_STATES), ids=str)
def test_in_progress_and_running_engines_are_observed(state: EngineState) -> None:
    assert type(plan(engine_in(state), TIMING)).__name__ == "Observe"


@pytest.mark.parametrize("state", [S.Terminated, S.ErrorClean], ids=str)
def test_engines_at_rest_need_nothing(state: EngineState) -> None:
    assert plan(engine_in(state), TIMING) is None


def test_a_started_engine_moves_to_start_in_progress_and_is_polled_fast() -> None:
    write = after_action(engine_in(S.TriggerStart), Ok(), TIMING)
    assert (write.to, write.delay) == (S.StartInProgress, TIMING.fast_poll)


def test_a_start_refused_for_good_cleans_up_and_ends_in_error_clean() -> None:
    write = after_action(engine_in(S.TriggerStart), PermanentFailure("bad image"), TIMING)
    assert write.to is S.ErrorClean
    assert write.stop_again
    assert write.message is not None and "bad image" in write.message


@pytest.mark.parametrize(
    "state", [S.TriggerStart, S.TriggerTermination, S.ErrorTriggerClean], ids=str
)
def test_a_passing_platform_failure_keeps_the_trigger_state_for_a_retry(
    state: EngineState,
) -> None:
    write = after_action(engine_in(state), RetryableFailure("api down"), TIMING)
    assert write.to is state
    assert write.delay == TIMING.check_interval
    assert write.message is not None and "api down" in write.message


def test_an_issued_stop_moves_to_terminate_in_progress() -> None:
    assert after_action(engine_in(S.TriggerTermination), Ok(), TIMING).to is S.TerminateInProgress


def test_an_issued_clean_keeps_the_error_message() -> None:
    engine = engine_in(S.ErrorTriggerClean, message="engine died: exit 137")
    write = after_action(engine, Ok(), TIMING)
    assert (write.to, write.message) == (S.ErrorCleanInProgress, "engine died: exit 137")


CASES: list[tuple[EngineState, Observation, EngineState, bool]] = [
    (S.StartInProgress, Ready("sc://h:1"), S.Running, False),
    (S.StartInProgress, Pending("jvm starting"), S.StartInProgress, False),
    (S.StartInProgress, Unknown("api down"), S.StartInProgress, False),
    (S.StartInProgress, Failed("exit 1"), S.ErrorWaitToClean, False),
    (S.StartInProgress, Absent(), S.ErrorWaitToClean, False),
    (S.Running, Ready("sc://h:1"), S.Running, False),
    (S.Running, Pending(), S.Running, False),
    (S.Running, Failed("exit 137"), S.ErrorWaitToClean, False),
    (S.Running, Absent(), S.ErrorWaitToClean, False),
    (S.TerminateInProgress, Absent(), S.Terminated, False),
    (S.TerminateInProgress, Pending(), S.TerminateInProgress, True),
    (S.TerminateInProgress, Ready("sc://h:1"), S.TerminateInProgress, True),
    (S.ErrorCleanInProgress, Absent(), S.ErrorClean, False),
    (S.ErrorCleanInProgress, Failed("x"), S.ErrorCleanInProgress, True),
]


@pytest.mark.parametrize(
    ("state", "observation", "expected", "stop_again"),
    CASES,
    ids=[f"{s.value}-{type(o).__name__}" for s, o, _, _ in CASES],
)
def test_observation(
    state: EngineState, observation: Observation, expected: EngineState, stop_again: bool
) -> None:
    engine = engine_in(state, update_time=T0)
    write = after_observation(engine, observation, now=T0 + timedelta(seconds=1), timing=TIMING)
    assert write.to is expected
    assert write.stop_again is stop_again
    assert_in_table(state, write)


def test_running_records_the_endpoint_it_was_given() -> None:
    write = after_observation(
        engine_in(S.StartInProgress), Ready("sc://127.0.0.1:15010"), now=T0, timing=TIMING
    )
    assert write.endpoint == "sc://127.0.0.1:15010"


def test_a_failure_while_running_says_the_engine_died_and_why() -> None:
    write = after_observation(
        engine_in(S.Running), Failed("exit status 137"), now=T0, timing=TIMING
    )
    assert write.message == "engine died: exit status 137"
    assert write.endpoint is None


def test_a_start_still_pending_after_the_timeout_is_an_error_with_the_reason() -> None:
    engine = engine_in(S.StartInProgress, update_time=T0)
    late = T0 + timedelta(seconds=TIMING.start_timeout + 1)
    write = after_observation(engine, Pending("Unschedulable: 0/3 nodes"), now=late, timing=TIMING)
    assert write.to is S.ErrorWaitToClean
    assert write.message is not None
    assert "timed out" in write.message and "Unschedulable" in write.message


def test_a_start_pending_within_the_timeout_is_checked_again_soon() -> None:
    engine = engine_in(S.StartInProgress, update_time=T0)
    soon = T0 + timedelta(seconds=TIMING.start_timeout - 1)
    write = after_observation(engine, Pending(), now=soon, timing=TIMING)
    assert (write.to, write.delay) == (S.StartInProgress, TIMING.fast_poll)
