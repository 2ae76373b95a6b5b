"""The SQL store's writes of engine rows: each one function over a Connection, in one transaction.

`rucat.store.sql.store` runs each of these inside its write transaction
(`SqlEngineStore._write`); here is what the transaction does. Invariants:

* a change of a row is a compare-and-set, ``UPDATE/DELETE ... WHERE id = :id
  AND revision = :read``; one that matches nothing raises `conflict`, the
  StoreConflict carrying the row as it is now;
* a quota is checked first, in the same transaction (`access.check_quota`);
* an engine's events and grants are written in the transaction that writes
  its row, so a row, its history and its grants never disagree;
* `last_activity_time` only moves forward, whatever a writer read;
* ``notify``: the transaction NOTIFYs the engine's id (PostgreSQL sends it at
  commit); the store decides which writes wake a monitor.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, delete, insert, literal, or_, select, text, update

from rucat.domain.engine import Engine, EngineId
from rucat.domain.errors import EngineNotFound, StoreConflict
from rucat.store.changes import CHANNEL
from rucat.store.conflicts import lost_race
from rucat.store.sql.access import check_quota
from rucat.store.sql.schema import (
    UtcDateTime,
    engine_events,
    engine_from_row,
    engine_grants,
    engine_to_row,
    engines,
    grant_rows,
)
from rucat.store.sql.statements import engine_by_id


def announce(conn: Connection, engine_id: EngineId) -> None:
    """Inside a write transaction: NOTIFY (sent by PostgreSQL at commit)."""
    conn.execute(
        text("SELECT pg_notify(:channel, :engine_id)"),
        {"channel": CHANNEL, "engine_id": engine_id},
    )


def insert_engine(
    conn: Connection,
    engine: Engine,
    row: dict[str, Any],
    *,
    actor: str,
    active_limit: int | None,
    notify: bool,
) -> None:
    """Insert `row` (`engine` at revision 0), its grants and its creation event.

    `active_limit`: checked for `engine.owner` first (None: not quota-checked).
    """
    if active_limit is not None and engine.owner is not None:
        check_quota(conn, engine.owner, active_limit)
    existing = engine_by_id(conn, engine.id)
    if existing is not None:
        raise StoreConflict(f"engine {engine.id} already exists", current=existing)
    conn.execute(insert(engines).values(**row))
    if engine.grants:
        conn.execute(insert(engine_grants), grant_rows(engine.id, engine.grants))
    conn.execute(
        insert(engine_events).values(
            engine_id=engine.id,
            time=row["create_time"],
            from_state=None,
            to_state=engine.state.value,
            message=row["message"],
            actor=actor,
        )
    )
    if notify:
        announce(conn, engine.id)


def update_values(new: Engine, revision: int) -> dict[str, Any]:
    """The columns a compare-and-set writes for `new` at `revision` (all but the id).

    Built before the transaction, so a value that cannot be stored (a naive
    datetime) is refused before anything is written.
    """
    row = engine_to_row(replace(new, revision=revision))
    del row["id"]
    # Activity is recorded without a revision bump, so `new` may carry an
    # older last_activity_time than the row: it only ever moves forward.
    activity = row.pop("last_activity_time")
    values: dict[str, Any] = dict(row)
    if activity is not None:
        stamp = literal(activity, UtcDateTime())
        values["last_activity_time"] = case(
            (
                or_(
                    engines.c.last_activity_time.is_(None),
                    engines.c.last_activity_time < stamp,
                ),
                stamp,
            ),
            else_=engines.c.last_activity_time,
        )
    return values


def update_engine(
    conn: Connection,
    *,
    current: Engine,
    new: Engine,
    values: dict[str, Any],
    actor: str,
    quota_owner: str | None,
    active_limit: int | None,
    notify: bool,
) -> Engine:
    """The compare-and-set of `values` (`update_values(new, ...)`) on `current`'s revision.

    Also replaces the grants when they change and writes an event when the
    state does. Returns the stored row. `quota_owner`: checked against
    `active_limit` first (None: not quota-checked).
    """
    if quota_owner is not None and active_limit is not None:
        check_quota(conn, quota_owner, active_limit)
    stored = (
        conn.execute(
            update(engines)
            .where(engines.c.id == current.id, engines.c.revision == current.revision)
            .values(values)
            .returning(*engines.c)
        )
        .mappings()
        .first()
    )
    if stored is None:
        raise conflict(conn, current, "update")
    # The CAS matched, so the stored grants are current's: rewrite on change only.
    if new.grants != current.grants:
        conn.execute(delete(engine_grants).where(engine_grants.c.engine_id == current.id))
        if new.grants:
            conn.execute(insert(engine_grants), grant_rows(current.id, new.grants))
    if new.state is not current.state:
        conn.execute(
            insert(engine_events).values(
                engine_id=current.id,
                time=values["update_time"],
                from_state=current.state.value,
                to_state=new.state.value,
                message=values["message"],
                actor=actor,
            )
        )
    if notify:
        announce(conn, current.id)
    return engine_from_row(stored, new.grants)


def delete_engine(conn: Connection, current: Engine) -> None:
    """Delete the engine, its events and grants if the row still has `current.revision`."""
    result = conn.execute(
        delete(engines).where(engines.c.id == current.id, engines.c.revision == current.revision)
    )
    if result.rowcount != 1:
        raise conflict(conn, current, "remove")
    # ON DELETE CASCADE does this too; explicit so no event outlives its engine.
    conn.execute(delete(engine_events).where(engine_events.c.engine_id == current.id))
    conn.execute(delete(engine_grants).where(engine_grants.c.engine_id == current.id))


def move_activity(conn: Connection, engine_id: EngineId, at: datetime) -> None:
    """Set last_activity_time to `at` (UTC) unless it is already later; no revision bump.

    Only ever moves forward: activity reported out of order never makes an
    engine look idle for longer than it is.
    """
    conn.execute(
        update(engines)
        .where(
            engines.c.id == engine_id,
            or_(
                engines.c.last_activity_time.is_(None),
                engines.c.last_activity_time < at,
            ),
        )
        .values(last_activity_time=at)
    )
    if conn.scalar(select(engines.c.id).where(engines.c.id == engine_id)) is None:
        raise EngineNotFound(engine_id)


def conflict(conn: Connection, current: Engine, doing: str) -> StoreConflict:
    """The StoreConflict of a compare-and-set on `current` that matched nothing."""
    return lost_race(current, engine_by_id(conn, current.id), doing)
