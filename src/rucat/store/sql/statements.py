"""The SQL store's hot statements, built once: one round trip per read or create.

`GET /engine/{id}` and `POST /engine` are the API's busiest routes. Each costs
round trips (on PostgreSQL a network hop and a statement on the server) and
SQLAlchemy work per statement, so:

* an engine and its grants are read in one query (a LEFT JOIN), on every
  backend;
* on PostgreSQL an engine is created in one statement: the row, its creation
  event and the wake-up NOTIFY, as data-modifying CTEs. One statement runs in
  autocommit as its own transaction, so it is atomic without BEGIN and COMMIT.
  SQLite has no data-modifying CTEs and, being in-process, no round trips to
  save; it writes the same rows in a transaction.

Statements are module constants with named bind parameters: building and
compiling them happens once, each execution only binds values.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, literal_column, select
from sqlalchemy.dialects import postgresql

from rucat.domain.access import GRANTABLE, Grant, GranteeKind
from rucat.domain.engine import Engine, EngineId
from rucat.store.changes import CHANNEL
from rucat.store.sql.schema import engine_events, engine_from_row, engine_grants, engines

#: One engine and its grants: a LEFT JOIN gives one row per grant, in grant
#: order, or a single row with NULL grant columns when the engine has none.
_ONE_ENGINE = (
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


def engine_by_id(conn: Connection, engine_id: EngineId) -> Engine | None:
    """The engine `engine_id` with its grants (one query), or None if there is none."""
    rows = list(conn.execute(_ONE_ENGINE, {"engine_id": engine_id}).mappings())
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


#: Bind parameter names of the creation statement: the row's columns, then the event's.
_EVENT_ACTOR = "event_actor"


def _create_statement(*, notify: bool) -> Select[Any]:
    """INSERT the row unless its id exists, its creation event, and (if `notify`) NOTIFY.

    Returns one row (the id) when the engine was added, none when the id
    was taken: then nothing was written.
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
                bindparam(_EVENT_ACTOR, type_=engine_events.c.actor.type),
            ),
        )
        .cte("event")
    )
    columns: list[Any] = [added.c.id]
    if notify:
        columns.append(func.pg_notify(CHANNEL, added.c.id))
    return select(*columns).add_cte(event)


_CREATE = _create_statement(notify=False)
_CREATE_AND_NOTIFY = _create_statement(notify=True)


def create_engine_row(conn: Connection, row: dict[str, Any], *, actor: str, notify: bool) -> bool:
    """PostgreSQL: add the engine `row` with its creation event in one statement.

    False (and nothing written) when an engine with its id exists. The engine
    must have no grants (a create with grants takes the transaction path).
    """
    statement = _CREATE_AND_NOTIFY if notify else _CREATE
    return conn.execute(statement, {**row, _EVENT_ACTOR: actor}).first() is not None
