"""The SQL store's hot statements, built once: one round trip per read or create.

`GET /engine/{id}` and `POST /engine` are the API's busiest routes, and each
round trip costs (on PostgreSQL a network hop and a statement on the server,
on every backend SQLAlchemy's work per statement), so:

* an engine and its grants are read in one query (a LEFT JOIN), on every
  backend;
* on PostgreSQL an engine is created in one statement: the row, its creation
  event and the wake-up NOTIFY, as data-modifying CTEs (`rucat.store.sql.hot`
  runs it in autocommit, as its own transaction: atomic without BEGIN and
  COMMIT). SQLite has no data-modifying CTEs and, being in-process, no round
  trips to save; it writes the same rows in a transaction.

Statements are module constants with named bind parameters, so building and
compiling them happens once; each execution only binds values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, Select, bindparam, func, literal_column, select
from sqlalchemy.dialects import postgresql

from rucat.domain.access import GRANTABLE, Grant, GranteeKind
from rucat.domain.engine import Engine, EngineId
from rucat.store.changes import CHANNEL
from rucat.store.sql.schema import engine_events, engine_from_row, engine_grants, engines

#: One engine and its grants, by the bind parameter `engine_id`: a LEFT JOIN
#: gives one row per grant, in grant order, or a single row with NULL grant
#: columns when the engine has none.
ONE_ENGINE = (
    select(
        engines,
        engine_grants.c.kind.label("grant_kind"),
        engine_grants.c.name.label("grant_name"),
        engine_grants.c.level.label("grant_level"),
    )
    .select_from(engines.outerjoin(engine_grants, engine_grants.c.engine_id == engines.c.id))
    .where(engines.c.id == bindparam("engine_id"))
    .order_by(engine_grants.c.position)
)


def engine_from_joined_rows(rows: Sequence[RowMapping | Mapping[str, Any]]) -> Engine | None:
    """The engine the rows of `ONE_ENGINE` hold, or None for no rows."""
    if not rows:
        return None
    grants = [
        Grant(
            kind=GranteeKind(row["grant_kind"]),
            name=row["grant_name"],
            level=GRANTABLE[row["grant_level"]],
        )
        for row in rows
        if row["grant_kind"] is not None
    ]
    return engine_from_row(rows[0], grants)


def engine_by_id(conn: Connection, engine_id: EngineId) -> Engine | None:
    """The engine `engine_id` with its grants (one query), or None if there is none."""
    rows: list[RowMapping] = list(conn.execute(ONE_ENGINE, {"engine_id": engine_id}).mappings())
    return engine_from_joined_rows(rows)


#: The bind parameter of the creation event's actor; the others are the row's columns.
EVENT_ACTOR = "event_actor"


def _create_statement(*, notify: bool) -> Select[Any]:
    """PostgreSQL: INSERT the row unless its id exists, with its creation event,
    and (if `notify`) NOTIFY its id.

    Answers one row when the engine was added, none when the id was taken
    (then nothing was written). For engines without grants.
    """
    added = (
        postgresql.insert(engines)
        .values({c.name: bindparam(c.name, type_=c.type) for c in engines.c})
        .on_conflict_do_nothing(index_elements=[engines.c.id])
        .returning(engines.c.id, engines.c.create_time, engines.c.state, engines.c.message)
        .cte("added")
    )
    event = (
        postgresql.insert(engine_events)
        .from_select(
            ["engine_id", "time", "from_state", "to_state", "message", "actor"],
            select(
                added.c.id,
                added.c.create_time,
                literal_column("NULL"),
                added.c.state,
                added.c.message,
                bindparam(EVENT_ACTOR, type_=engine_events.c.actor.type),
            ),
        )
        .cte("event")
    )
    # A data-modifying CTE runs whether or not the query reads it; a plain
    # one (pg_notify) only if it is read, so the notify is in the query itself.
    columns: list[Any] = [added.c.id]
    if notify:
        columns.append(func.pg_notify(CHANNEL, added.c.id))
    return select(*columns).add_cte(event)


CREATE = _create_statement(notify=False)
CREATE_AND_NOTIFY = _create_statement(notify=True)
