"""Owners, grants and quotas in the SQL store: the query pieces its operations use.

Grants are rows of `rucat_engine_grants`, read for a whole page of engines in
one query. Visibility is a WHERE clause, so paging stays exact. A quota is
counted inside the write transaction that would exceed it; on PostgreSQL that
transaction first takes an advisory lock on the owner's name, held to commit,
so racing quota-checked writes of one owner count one after another (SQLite's
BEGIN IMMEDIATE already serialises every writer).
"""

from __future__ import annotations

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    and_,
    exists,
    func,
    or_,
    select,
    text,
)

from rucat.domain.access import VisibleTo
from rucat.domain.engine import Engine
from rucat.domain.quota import INACTIVE_STATES, check_active_limit
from rucat.store.sql.schema import (
    engine_from_row,
    engine_grants,
    engines,
    grant_from_row,
)

#: Key space of the PostgreSQL advisory locks that serialise one owner's
#: quota-checked writes (an int4; the second key is hashtext(owner)).
QUOTA_LOCK_SPACE = 0x72756371


def with_grants(conn: Connection, rows: list[RowMapping]) -> list[Engine]:
    """The engines of `rows`, each with its grants (one more query for all of them)."""
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    by_engine: dict[str, list[RowMapping]] = {}
    grant_query = (
        select(engine_grants)
        .where(engine_grants.c.engine_id.in_(ids))
        .order_by(engine_grants.c.engine_id, engine_grants.c.position)
    )
    for grant in conn.execute(grant_query).mappings():
        by_engine.setdefault(grant["engine_id"], []).append(grant)
    return [
        engine_from_row(row, [grant_from_row(g) for g in by_engine.get(row["id"], [])])
        for row in rows
    ]


def visible(viewer: VisibleTo) -> ColumnElement[bool]:
    """Engines `viewer` may see: owned by them, or granted to them or one of their groups."""
    granted = or_(
        and_(engine_grants.c.kind == "user", engine_grants.c.name == viewer.user),
        and_(engine_grants.c.kind == "group", engine_grants.c.name.in_(sorted(viewer.groups))),
    )
    return or_(
        engines.c.owner == viewer.user,
        exists().where(engine_grants.c.engine_id == engines.c.id, granted),
    )


def check_quota(conn: Connection, owner: str, limit: int) -> None:
    """Inside a write transaction: refuse (QuotaExceeded) when `owner` has `limit` active
    engines. Holds until commit against any other quota-checked write of `owner`
    (see the module docstring)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:space, hashtext(:owner))"),
            {"space": QUOTA_LOCK_SPACE, "owner": owner},
        )
    active = conn.scalar(
        select(func.count())
        .select_from(engines)
        .where(
            engines.c.owner == owner,
            engines.c.state.not_in([s.value for s in INACTIVE_STATES]),
        )
    )
    check_active_limit(owner=owner, limit=limit, active=int(active or 0))
