"""When a Running engine is idle, and when the monitor stops it for that.

Spark Connect traffic is the only activity that counts: the proxy records the
time of each RPC in the store (`last_activity_time`, which never moves back)
and, while an engine has RPCs in flight (an open ExecutePlan or
ReattachExecute stream, an AddArtifacts upload), refreshes it every
`busy_refresh` seconds. So a store row tells, without asking any server,
whether some proxy vouched for the engine recently: an engine whose last
activity is younger than `busy_grace` (two refresh intervals: one late
refresh is tolerated) may be busy and is never stopped. A server that dies
simply stops refreshing, and its engine ages from its last refresh.

Idle time starts at the later of the engine becoming Running (its
`update_time` while Running: writes within a state keep it) and its last
activity. Everything here is pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from rucat.domain.engine import Engine
from rucat.domain.errors import InvalidRequest
from rucat.domain.state import EngineState

#: The actor of the event that stops an idle engine.
AUTO_STOP_ACTOR = "auto-stop"


def resolve_auto_stop(requested: float | None, *, default: float, maximum: float) -> float:
    """The auto-stop minutes an engine gets: the request's, else the default.

    Raises InvalidRequest (400) for a negative, non-finite or above-maximum value.
    """
    minutes = default if requested is None else requested
    if isinstance(minutes, bool) or not isinstance(minutes, int | float):
        raise InvalidRequest("auto_stop_minutes must be a number of minutes")
    if not math.isfinite(minutes) or minutes < 0:
        raise InvalidRequest(f"auto_stop_minutes must be a number >= 0 (0: never), got {minutes!r}")
    if minutes > maximum:
        raise InvalidRequest(
            f"auto_stop_minutes is {minutes:g}; this server allows at most {maximum:g}"
        )
    return float(minutes)


def _running_since(engine: Engine) -> datetime:
    return engine.update_time


def _quiet_since(engine: Engine) -> datetime:
    """The later of becoming Running and the last recorded activity."""
    start = _running_since(engine)
    last = engine.last_activity_time
    return start if last is None or last < start else last


def is_busy(engine: Engine, *, now: datetime, busy_grace: float) -> bool:
    """A proxy recorded activity within `busy_grace` seconds: an RPC may be in flight."""
    last = engine.last_activity_time
    return last is not None and (now - last).total_seconds() < busy_grace


def idle_since(engine: Engine, *, now: datetime, busy_grace: float) -> datetime | None:
    """Since when a Running engine has been idle; None when busy or not Running."""
    if engine.state is not EngineState.Running or is_busy(engine, now=now, busy_grace=busy_grace):
        return None
    return _quiet_since(engine)


def minutes_text(minutes: float) -> str:
    return f"{minutes:g} minute" + ("" if minutes == 1 else "s")


@dataclass(frozen=True)
class StopIdle:
    """Stop the engine: it had no Spark Connect activity for its auto-stop time."""

    message: str


@dataclass(frozen=True)
class KeepRunning:
    """Not idle long enough; `recheck_after` seconds until it could be (None: never)."""

    recheck_after: float | None


IdleDecision = StopIdle | KeepRunning


def decide_idle(engine: Engine, *, now: datetime, busy_grace: float) -> IdleDecision:
    """Whether the monitor stops a Running engine for idleness, or when to look again.

    An engine is stopped once it has been quiet for its auto-stop time and, in
    any case, for longer than `busy_grace`, so a busy engine (refreshed every
    half grace) is never stopped, however short its auto-stop time.
    """
    minutes = engine.auto_stop_minutes
    if engine.state is not EngineState.Running or not minutes:
        return KeepRunning(recheck_after=None)
    needed = max(minutes * 60.0, busy_grace)
    quiet = (now - _quiet_since(engine)).total_seconds()
    if quiet >= needed:
        return StopIdle(f"no Spark Connect activity for {minutes_text(minutes)}")
    return KeepRunning(recheck_after=needed - quiet)
