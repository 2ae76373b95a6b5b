"""The row each decision writes, asserted whole: every field of the Engine, every time.

A field a builder must not touch keeps its stored value; the expected rows
below spell out all twenty of them, so a builder that drops or invents a
field fails here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rucat.domain.access import AccessLevel, Grant, GranteeKind
from rucat.domain.engine import Engine, EngineType
from rucat.domain.monitor_decisions import Claim, PlatformAction, Write
from rucat.domain.redaction import REDACTED
from rucat.domain.rows import (
    SAVED_LOG_CHARS,
    claim_row,
    grants_row,
    monitor_row,
    shutdown_row,
    user_row,
)
from rucat.domain.state import EngineState

S = EngineState
CREATED = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
UPDATED = datetime(2026, 1, 1, 9, 5, tzinfo=UTC)
DUE = datetime(2026, 1, 1, 9, 6, tzinfo=UTC)
ACTIVE = datetime(2026, 1, 1, 9, 4, tzinfo=UTC)
NOW = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
SECRET = "s3cr3t-value-123"
TOKEN = "connect-token-abcdefgh"
GRANTS = (Grant(GranteeKind.user, "bob", AccessLevel.ATTACH),)


def stored(state: EngineState, **changes: object) -> Engine:
    """An engine as a store returns it, every field set to a value of its own."""
    fields: dict[str, object] = {
        "id": "a1234567890123456789",
        "name": "etl",
        "engine_type": EngineType.Spark,
        "version": "4.0.1",
        "configs": {"spark.hadoop.fs.s3a.secret.key": SECRET},
        "state": state,
        "platform": "Local",
        "create_time": CREATED,
        "update_time": UPDATED,
        "next_update_time": DUE,
        "revision": 7,
        "message": "earlier message",
        "endpoint": "sc://127.0.0.1:15002",
        "lease_owner": "host-1-abc",
        "last_activity_time": ACTIVE,
        "auto_stop_minutes": 30.0,
        "connect_token": TOKEN,
        "saved_logs": "old log\n",
        "owner": "alice",
        "grants": GRANTS,
        **changes,
    }
    return Engine(**fields)  # type: ignore[arg-type]


def row(
    *,
    state: EngineState,
    update_time: datetime,
    next_update_time: datetime,
    message: str | None,
    endpoint: str | None,
    lease_owner: str | None,
    saved_logs: str | None = "old log\n",
    grants: tuple[Grant, ...] = GRANTS,
) -> Engine:
    """The expected row: the fields a write may change are arguments, the rest is stored()'s."""
    return Engine(
        id="a1234567890123456789",
        name="etl",
        engine_type=EngineType.Spark,
        version="4.0.1",
        configs={"spark.hadoop.fs.s3a.secret.key": SECRET},
        state=state,
        platform="Local",
        create_time=CREATED,
        update_time=update_time,
        next_update_time=next_update_time,
        revision=7,
        message=message,
        endpoint=endpoint,
        lease_owner=lease_owner,
        last_activity_time=ACTIVE,
        auto_stop_minutes=30.0,
        connect_token=TOKEN,
        saved_logs=saved_logs,
        owner="alice",
        grants=grants,
    )


# --- user actions ------------------------------------------------------------


def test_a_user_stop_makes_the_engine_due_at_once_unclaimed_and_drops_the_message() -> None:
    assert user_row(stored(S.Running), S.WaitToTerminate, now=NOW) == row(
        state=S.WaitToTerminate,
        update_time=NOW,
        next_update_time=NOW,
        message=None,
        endpoint="sc://127.0.0.1:15002",
        lease_owner=None,
    )


def test_a_restart_of_a_terminated_engine_forgets_its_old_endpoint() -> None:
    assert user_row(stored(S.Terminated), S.WaitToStart, now=NOW) == row(
        state=S.WaitToStart,
        update_time=NOW,
        next_update_time=NOW,
        message=None,
        endpoint=None,
        lease_owner=None,
    )


def test_a_user_action_with_a_message_records_it() -> None:
    restarted = user_row(stored(S.Terminated), S.WaitToStart, now=NOW, message="auto-start: bob")
    assert restarted == row(
        state=S.WaitToStart,
        update_time=NOW,
        next_update_time=NOW,
        message="auto-start: bob",
        endpoint=None,
        lease_owner=None,
    )


def test_a_move_into_an_error_state_keeps_the_reason() -> None:
    assert user_row(stored(S.ErrorCleanInProgress), S.ErrorClean, now=NOW) == row(
        state=S.ErrorClean,
        update_time=NOW,
        next_update_time=NOW,
        message="earlier message",
        endpoint="sc://127.0.0.1:15002",
        lease_owner=None,
    )


def test_new_grants_change_nothing_else() -> None:
    carol = (Grant(GranteeKind.group, "data", AccessLevel.MANAGE),)
    assert grants_row(stored(S.Running), carol) == row(
        state=S.Running,
        update_time=UPDATED,
        next_update_time=DUE,
        message="earlier message",
        endpoint="sc://127.0.0.1:15002",
        lease_owner="host-1-abc",
        grants=carol,
    )


# --- monitor claims ----------------------------------------------------------

START = Claim(to=S.TriggerStart, action=PlatformAction.START)
STOP = Claim(to=S.TriggerTermination, action=PlatformAction.STOP)


def test_a_claim_takes_the_trigger_state_under_the_monitors_lease() -> None:
    claimed = claim_row(stored(S.WaitToStart), START, now=NOW, owner="host-2-def", lease_secs=60)
    assert claimed == row(
        state=S.TriggerStart,
        update_time=NOW,
        next_update_time=NOW + timedelta(seconds=60),
        message="earlier message",
        endpoint="sc://127.0.0.1:15002",
        lease_owner="host-2-def",
    )


def test_a_stop_claim_saves_the_log_tail_in_the_same_row_redacted() -> None:
    tail = f"starting\nconf secret.key={SECRET} token {TOKEN}\nstopped\n"
    claimed = claim_row(
        stored(S.WaitToTerminate), STOP, now=NOW, owner="host-2-def", lease_secs=60, log_tail=tail
    )
    assert claimed == row(
        state=S.TriggerTermination,
        update_time=NOW,
        next_update_time=NOW + timedelta(seconds=60),
        message="earlier message",
        endpoint="sc://127.0.0.1:15002",
        lease_owner="host-2-def",
        saved_logs=f"starting\nconf secret.key={REDACTED} token {REDACTED}\nstopped\n",
    )


def test_a_long_log_tail_keeps_its_last_characters() -> None:
    tail = "x" * 10 + "y" * SAVED_LOG_CHARS
    claimed = claim_row(
        stored(S.ErrorWaitToClean),
        Claim(to=S.ErrorTriggerClean, action=PlatformAction.STOP),
        now=NOW,
        owner="host-2-def",
        lease_secs=30,
        log_tail=tail,
    )
    assert claimed == row(
        state=S.ErrorTriggerClean,
        update_time=NOW,
        next_update_time=NOW + timedelta(seconds=30),
        message="earlier message",
        endpoint="sc://127.0.0.1:15002",
        lease_owner="host-2-def",
        saved_logs="y" * SAVED_LOG_CHARS,
    )


def test_an_empty_log_tail_keeps_the_logs_saved_before() -> None:
    claimed = claim_row(
        stored(S.WaitToTerminate), STOP, now=NOW, owner="host-2-def", lease_secs=60, log_tail=""
    )
    assert claimed == row(
        state=S.TriggerTermination,
        update_time=NOW,
        next_update_time=NOW + timedelta(seconds=60),
        message="earlier message",
        endpoint="sc://127.0.0.1:15002",
        lease_owner="host-2-def",
    )


# --- monitor writes ----------------------------------------------------------


def test_a_state_change_releases_the_lease_and_redacts_the_message() -> None:
    write = Write(
        to=S.TerminateInProgress, message=f"stop issued ({SECRET})", endpoint=None, delay=0.25
    )
    assert monitor_row(stored(S.TriggerTermination), write, now=NOW) == row(
        state=S.TerminateInProgress,
        update_time=NOW,
        next_update_time=NOW + timedelta(seconds=0.25),
        message=f"stop issued ({REDACTED})",
        endpoint=None,
        lease_owner=None,
    )


def test_a_recheck_in_the_same_state_keeps_the_update_time() -> None:
    write = Write(to=S.StartInProgress, message="earlier message", endpoint="sc://h:1", delay=5.0)
    assert monitor_row(stored(S.StartInProgress), write, now=NOW) == row(
        state=S.StartInProgress,
        update_time=UPDATED,
        next_update_time=NOW + timedelta(seconds=5),
        message="earlier message",
        endpoint="sc://h:1",
        lease_owner=None,
    )


def test_a_write_that_changes_nothing_is_not_written() -> None:
    engine = stored(S.Running, lease_owner=None, next_update_time=NOW + timedelta(seconds=60))
    write = Write(
        to=S.Running, message="earlier message", endpoint="sc://127.0.0.1:15002", delay=60
    )
    assert monitor_row(engine, write, now=NOW) is None


def test_rucat_up_exiting_records_terminated_without_an_endpoint() -> None:
    assert shutdown_row(
        stored(S.Running), S.Terminated, now=NOW, message="stopped when rucat up exited"
    ) == row(
        state=S.Terminated,
        update_time=NOW,
        next_update_time=NOW,
        message="stopped when rucat up exited",
        endpoint=None,
        lease_owner=None,
    )
