"""The row each decision writes: one pure function per kind of write.

A user action (domain/state.py `decide_user`), a monitor's claim and a
monitor's write (domain/monitor_decisions.py) are decided first; the functions
here build the whole new row from the stored one, and the caller applies it
in one compare-and-set. Nothing else builds rows, so every field a write
touches is listed in exactly one place:

- `user_row`: due at once, unclaimed; the message is kept only in error states.
- `claim_row`: the trigger state under this monitor's lease; before a stop,
  the engine's log tail rides on the same write (redacted, capped).
- `monitor_row`: the decided state, message (redacted) and endpoint, the
  lease released, looked at again after the decided delay; None when the row
  would not change.
- `grants_row`, `shutdown_row`: the grants replaced; `rucat up` exiting.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from rucat.domain.access import Grant
from rucat.domain.engine import Engine
from rucat.domain.monitor_decisions import Claim, Write
from rucat.domain.redaction import engine_secrets, redact_text
from rucat.domain.state import ERROR_STATES, EngineState

#: Characters of an engine's log tail kept in the store (its last ones).
SAVED_LOG_CHARS = 64 * 1024


def user_row(
    engine: Engine, to: EngineState, *, now: datetime, message: str | None = None
) -> Engine:
    """`engine` moved to `to` by a user: due at once, unclaimed, its message kept only in
    error states (or `message`, which the event records too)."""
    endpoint = engine.endpoint
    if engine.state is EngineState.Terminated and to is EngineState.WaitToStart:
        endpoint = None  # a restarted engine gets a new endpoint
    return replace(
        engine,
        state=to,
        update_time=now,
        next_update_time=now,
        lease_owner=None,
        message=message if message is not None else engine.message if to in ERROR_STATES else None,
        endpoint=endpoint,
    )


def claim_row(
    engine: Engine,
    claim: Claim,
    *,
    now: datetime,
    owner: str,
    lease_secs: float,
    log_tail: str | None = None,
) -> Engine:
    """`engine` claimed into `claim.to` by monitor `owner`, whose lease runs `lease_secs`.

    `log_tail` (read just before, when the claim stops the engine) replaces the
    saved logs: platforms may lose a log with the resources. The store keeps no
    secret, so conf values and the token are redacted first; an empty tail
    keeps the logs saved earlier.
    """
    saved_logs = engine.saved_logs
    if log_tail:
        saved_logs = redact_text(log_tail[-SAVED_LOG_CHARS:], engine_secrets(engine)) or saved_logs
    return replace(
        engine,
        state=claim.to,
        update_time=now,
        lease_owner=owner,
        next_update_time=now + timedelta(seconds=lease_secs),
        saved_logs=saved_logs,
    )


def monitor_row(engine: Engine, write: Write, *, now: datetime) -> Engine | None:
    """The row after a monitor's `write` to `engine`; None when nothing would change.

    `update_time` moves only with the state (StartInProgress measures its start
    timeout from it). Messages quote platforms and logs, and events and the API
    show them: they are redacted here.
    """
    changed = write.to is not engine.state
    message = None if write.message is None else redact_text(write.message, engine_secrets(engine))
    new = replace(
        engine,
        state=write.to,
        message=message,
        endpoint=write.endpoint,
        update_time=now if changed else engine.update_time,
        lease_owner=None,
        next_update_time=now + timedelta(seconds=write.delay),
    )
    return None if new == engine else new


def grants_row(engine: Engine, grants: tuple[Grant, ...]) -> Engine:
    """`engine` with its grants replaced (nothing else changes)."""
    return replace(engine, grants=grants)


def shutdown_row(engine: Engine, to: EngineState, *, now: datetime, message: str) -> Engine:
    """`engine` stopped by `rucat up` on exit: `to`, unclaimed, no endpoint."""
    return replace(
        engine,
        state=to,
        message=message,
        endpoint=None,
        lease_owner=None,
        update_time=now,
        next_update_time=now,
    )
