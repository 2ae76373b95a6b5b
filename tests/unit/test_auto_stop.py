"""Auto-stop as pure decisions: when an engine is idle, and when it is stopped for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rucat.domain.activity import (
    KeepRunning,
    StopIdle,
    decide_idle,
    idle_since,
    resolve_auto_stop,
)
from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine
from rucat.domain.errors import InvalidRequest
from rucat.domain.monitor_decisions import Timing, after_observation
from rucat.domain.observation import Ready
from rucat.domain.state import EngineState

S = EngineState
T0 = datetime(2026, 1, 1, tzinfo=UTC)
GRACE = 10.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def engine(
    state: EngineState = S.Running,
    *,
    minutes: float | None = 1.0,
    running_at: float = 0.0,
    active_at: float | None = None,
) -> Engine:
    base = new_engine(
        CreateEngineRequest(name="e", engine_type=EngineType.Spark, version="4.0.1"),
        platform="Local",
        now=T0,
        auto_stop_minutes=minutes,
    )
    return Engine(
        **{
            **base.__dict__,
            "state": state,
            "update_time": at(running_at),
            "last_activity_time": None if active_at is None else at(active_at),
        }
    )


# (id, engine, seconds after T0, expected decision)
DECISIONS: list[tuple[str, Engine, float, StopIdle | KeepRunning]] = [
    (
        "never-used-and-quiet-past-its-time-is-stopped",
        engine(minutes=1),
        60,
        StopIdle("no Spark Connect activity for 1 minute"),
    ),
    (
        "quiet-for-less-than-its-time-is-checked-again-when-it-could-be-idle",
        engine(minutes=1),
        45,
        KeepRunning(15),
    ),
    (
        "idle-time-counts-from-the-last-activity",
        engine(minutes=1, active_at=30),
        80,
        KeepRunning(10),
    ),
    (
        "idle-time-counts-from-becoming-running-when-activity-is-older",
        engine(minutes=1, running_at=100, active_at=30),
        150,
        KeepRunning(10),
    ),
    (
        "a-restarted-engine-is-stopped-a-full-period-after-running-again",
        engine(minutes=1, running_at=100, active_at=30),
        160,
        StopIdle("no Spark Connect activity for 1 minute"),
    ),
    ("zero-minutes-is-never-stopped", engine(minutes=0), 10**7, KeepRunning(None)),
    ("no-auto-stop-stored-is-never-stopped", engine(minutes=None), 10**7, KeepRunning(None)),
    (
        "fractions-of-a-minute-are-allowed",
        engine(minutes=0.5),
        30,
        StopIdle("no Spark Connect activity for 0.5 minutes"),
    ),
    (
        "an-auto-stop-shorter-than-the-busy-grace-waits-for-the-grace",
        engine(minutes=0.05, active_at=0),
        5,
        KeepRunning(GRACE - 5),
    ),
    (
        "a-busy-engine-refreshed-a-moment-ago-is-never-stopped",
        engine(minutes=0.1, running_at=0, active_at=995),
        1000,
        KeepRunning(GRACE - 5),
    ),
    ("only-running-engines-are-stopped", engine(S.StartInProgress), 10**6, KeepRunning(None)),
]


@pytest.mark.parametrize(
    ("engine", "now", "expected"),
    [case[1:] for case in DECISIONS],
    ids=[case[0] for case in DECISIONS],
)
def test_whether_an_idle_engine_is_stopped(
    engine: Engine, now: float, expected: StopIdle | KeepRunning
) -> None:
    assert decide_idle(engine, now=at(now), busy_grace=GRACE) == expected


IDLE_SINCE: list[tuple[str, Engine, float, datetime | None]] = [
    ("never-used-idle-since-running", engine(running_at=5), 100, at(5)),
    ("idle-since-the-last-activity", engine(running_at=5, active_at=50), 100, at(50)),
    ("null-while-busy", engine(running_at=5, active_at=95), 100, None),
    ("null-when-not-running", engine(S.Terminated, active_at=1), 100, None),
    ("restart-resets-the-clock", engine(running_at=80, active_at=50), 100, at(80)),
]


@pytest.mark.parametrize(
    ("engine", "now", "expected"),
    [case[1:] for case in IDLE_SINCE],
    ids=[case[0] for case in IDLE_SINCE],
)
def test_since_when_an_engine_is_idle(
    engine: Engine, now: float, expected: datetime | None
) -> None:
    assert idle_since(engine, now=at(now), busy_grace=GRACE) == expected


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(None, 60.0), (0, 0.0), (0.1, 0.1), (1440, 1440.0), (30, 30.0)],
    ids=["default", "never", "fraction", "the-maximum", "thirty"],
)
def test_the_auto_stop_an_engine_gets(requested: float | None, expected: float) -> None:
    assert resolve_auto_stop(requested, default=60, maximum=1440) == expected


@pytest.mark.parametrize(
    ("requested", "says"),
    [
        (1440.5, "at most 1440"),
        (-1, ">= 0"),
        (float("inf"), ">= 0"),
        (float("nan"), ">= 0"),
        (True, "number"),
    ],
    ids=["above-the-maximum", "negative", "infinite", "nan", "a-boolean"],
)
def test_a_bad_auto_stop_is_refused_saying_why(requested: float, says: str) -> None:
    with pytest.raises(InvalidRequest, match=says):
        resolve_auto_stop(requested, default=60, maximum=1440)


TIMING = Timing(check_interval=5, start_timeout=300, lease=60, resync=300, busy_grace=GRACE)


def test_the_monitor_moves_an_idle_running_engine_to_wait_to_terminate_as_auto_stop() -> None:
    write = after_observation(engine(minutes=1), Ready("sc://h:1"), now=at(61), timing=TIMING)
    assert (write.to, write.actor, write.delay) == (S.WaitToTerminate, "auto-stop", 0.0)
    assert write.message == "no Spark Connect activity for 1 minute"


def test_the_monitor_looks_again_when_a_running_engine_could_become_idle() -> None:
    write = after_observation(engine(minutes=1), Ready("sc://h:1"), now=at(20), timing=TIMING)
    assert (write.to, write.actor, write.delay) == (S.Running, None, 40.0)


def test_a_newly_running_engine_is_looked_at_by_its_first_possible_auto_stop() -> None:
    starting = engine(S.StartInProgress, minutes=0.5)
    write = after_observation(starting, Ready("sc://h:1"), now=at(1), timing=TIMING)
    assert (write.to, write.delay) == (S.Running, 30.0)


def test_an_engine_that_never_stops_is_looked_at_only_at_the_resync_interval() -> None:
    write = after_observation(engine(minutes=0), Ready("sc://h:1"), now=at(10**6), timing=TIMING)
    assert (write.to, write.delay) == (S.Running, TIMING.resync)
