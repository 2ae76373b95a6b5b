"""The SurrealQL of the engine store: its schema, each operation's transaction, their variables.

Kept apart from `rucat.store.surreal.store` (which runs them) so the store's
module is about the EngineStore's operations. Why each transaction is shaped
as it is (guards, quotas, the compare-and-set) is told in the store's
docstring; every query here takes record ids as variables (`record_ids`),
never as text.
"""

from __future__ import annotations

from typing import Any

from surrealdb import RecordID

from rucat.domain.access import GranteeKind, VisibleTo
from rucat.domain.engine import Engine, EngineId
from rucat.domain.errors import QuotaExceeded
from rucat.domain.quota import INACTIVE_STATES
from rucat.store.surreal.connection import QueryFailed

SCHEMA = """
DEFINE TABLE IF NOT EXISTS rucat_engine SCHEMAFULL;
DEFINE FIELD OVERWRITE eid ON rucat_engine TYPE string;
DEFINE FIELD OVERWRITE name ON rucat_engine TYPE string;
DEFINE FIELD OVERWRITE engine_type ON rucat_engine TYPE string;
DEFINE FIELD OVERWRITE version ON rucat_engine TYPE string;
DEFINE FIELD OVERWRITE configs ON rucat_engine FLEXIBLE TYPE object;
DEFINE FIELD OVERWRITE state ON rucat_engine TYPE string;
DEFINE FIELD OVERWRITE platform ON rucat_engine TYPE string;
DEFINE FIELD OVERWRITE create_time ON rucat_engine TYPE datetime;
DEFINE FIELD OVERWRITE update_time ON rucat_engine TYPE datetime;
DEFINE FIELD OVERWRITE next_update_time ON rucat_engine TYPE datetime;
DEFINE FIELD OVERWRITE revision ON rucat_engine TYPE int;
DEFINE FIELD OVERWRITE message ON rucat_engine TYPE option<string>;
DEFINE FIELD OVERWRITE endpoint ON rucat_engine TYPE option<string>;
DEFINE FIELD OVERWRITE lease_owner ON rucat_engine TYPE option<string>;
DEFINE FIELD OVERWRITE last_activity_time ON rucat_engine TYPE option<datetime>;
DEFINE FIELD OVERWRITE auto_stop_minutes ON rucat_engine TYPE option<float>;
DEFINE FIELD OVERWRITE connect_token ON rucat_engine TYPE option<string>;
DEFINE FIELD OVERWRITE saved_logs ON rucat_engine TYPE option<string>;
DEFINE FIELD OVERWRITE owner ON rucat_engine TYPE option<string>;
DEFINE FIELD OVERWRITE pool ON rucat_engine TYPE option<string>;
DEFINE FIELD OVERWRITE grants ON rucat_engine TYPE option<array<object>>;
DEFINE FIELD OVERWRITE grants[*].kind ON rucat_engine TYPE string;
DEFINE FIELD OVERWRITE grants[*].name ON rucat_engine TYPE string;
DEFINE FIELD OVERWRITE grants[*].level ON rucat_engine TYPE string;
DEFINE INDEX IF NOT EXISTS rucat_engine_owner ON rucat_engine FIELDS owner, state;
DEFINE INDEX IF NOT EXISTS rucat_engine_pool ON rucat_engine FIELDS pool, state;
DEFINE INDEX IF NOT EXISTS rucat_engine_created ON rucat_engine FIELDS create_time, eid;
DEFINE INDEX IF NOT EXISTS rucat_engine_due ON rucat_engine FIELDS platform, next_update_time;
DEFINE TABLE IF NOT EXISTS rucat_event SCHEMAFULL;
DEFINE FIELD OVERWRITE engine_id ON rucat_event TYPE string;
DEFINE FIELD OVERWRITE seq ON rucat_event TYPE int;
DEFINE FIELD OVERWRITE time ON rucat_event TYPE datetime;
DEFINE FIELD OVERWRITE from_state ON rucat_event TYPE option<string>;
DEFINE FIELD OVERWRITE to_state ON rucat_event TYPE string;
DEFINE FIELD OVERWRITE message ON rucat_event TYPE option<string>;
DEFINE FIELD OVERWRITE actor ON rucat_event TYPE string;
DEFINE INDEX IF NOT EXISTS rucat_event_engine ON rucat_event FIELDS engine_id, seq;
DEFINE TABLE IF NOT EXISTS rucat_guard SCHEMAFULL;
DEFINE FIELD OVERWRITE writes ON rucat_guard TYPE int DEFAULT 0;
DEFINE TABLE IF NOT EXISTS rucat_owner_guard SCHEMAFULL;
DEFINE FIELD OVERWRITE writes ON rucat_owner_guard TYPE int DEFAULT 0;
"""

#: Opens a quota-checked write transaction (see "Quotas" in the store); THROWs
#: `_QUOTA_MARK` and the count when `$owner` already has `$limit` active engines.
_QUOTA_MARK = "rucat-quota:"
_QUOTA = """
LET $active = count(SELECT VALUE eid FROM rucat_engine
    WHERE owner = $owner AND state NOTINSIDE $inactive);
IF $active >= $limit { THROW "{_QUOTA_MARK}" + <string>$active; };
UPSERT $ogid SET writes += 1 RETURN NONE;
""".replace("{_QUOTA_MARK}", _QUOTA_MARK)

#: Written by every transaction that writes an engine (see "Guards" in the store).
_GUARD = "UPSERT $gid SET writes += 1 RETURN NONE;"

_ADD = """
BEGIN TRANSACTION;
{_QUOTA}
LET $row = (CREATE $rid CONTENT $doc RETURN AFTER);
CREATE $evid CONTENT $event;
{_GUARD}
RETURN $row;
COMMIT TRANSACTION;
""".replace("{_GUARD}", _GUARD)

# The CAS: the event is written only when the update matched, in the same
# transaction, so a row and its history never disagree.
# Activity only moves forward here too: a writer whose read predates the
# proxy's last report keeps the stored, later activity time.
_TRANSITION = """
BEGIN TRANSACTION;
{_QUOTA}
LET $prev = (SELECT VALUE last_activity_time FROM $rid);
LET $after = (UPDATE $rid CONTENT $doc
              WHERE revision = $expected RETURN AFTER);
IF array::len($after) > 0 {
    IF $with_event {
        CREATE $evid CONTENT $event;
    };
    UPDATE $rid SET last_activity_time = $prev[0]
        WHERE $prev[0] != NONE AND (last_activity_time = NONE OR last_activity_time < $prev[0])
        RETURN NONE;
    {_GUARD}
};
RETURN IF array::len($after) > 0 THEN (SELECT * FROM $rid) ELSE [] END;
COMMIT TRANSACTION;
""".replace("{_GUARD}", _GUARD)

REMOVE = """
BEGIN TRANSACTION;
LET $gone = (DELETE $rid WHERE revision = $expected RETURN BEFORE);
IF array::len($gone) > 0 {
    DELETE rucat_event WHERE engine_id = $id;
    {_GUARD}
};
RETURN $gone;
COMMIT TRANSACTION;
""".replace("{_GUARD}", _GUARD)

GET = "SELECT * FROM $rid;"

EVENTS = """
SELECT VALUE eid FROM $rid;
SELECT * FROM rucat_event WHERE engine_id = $id ORDER BY seq ASC;
"""

DUE = """
SELECT * FROM rucat_engine
WHERE platform = $platform AND next_update_time <= $now AND state NOTINSIDE $stable
ORDER BY next_update_time ASC, eid ASC LIMIT $limit;
"""

# Activity only moves forward: reports arriving out of order never make an
# engine look idle for longer than it is. Not a state change: no revision bump.
ACTIVITY = """
BEGIN TRANSACTION;
LET $moved = (UPDATE $rid SET last_activity_time = $at
    WHERE last_activity_time = NONE OR last_activity_time < $at RETURN VALUE eid);
IF array::len($moved) > 0 {
    {_GUARD}
};
RETURN (SELECT VALUE eid FROM $rid);
COMMIT TRANSACTION;
""".replace("{_GUARD}", _GUARD)


# Each write in two forms: quota-checked, and plain (no owner, no limit).
ADD_UNCOUNTED = _ADD.replace("{_QUOTA}", "")
ADD = _ADD.replace("{_QUOTA}", _QUOTA)
TRANSITION_UNCOUNTED = _TRANSITION.replace("{_QUOTA}", "")
TRANSITION = _TRANSITION.replace("{_QUOTA}", _QUOTA)

#: Engines `$viewer` may see: owned, or granted to the user or one of `$viewer_groups`.
VISIBLE = (
    "(owner = $viewer OR array::len((grants ?? [])[WHERE (kind = 'user' AND name = $viewer)"
    " OR (kind = 'group' AND name INSIDE $viewer_groups)]) > 0)"
)


def sees(viewer: VisibleTo, engine: Engine) -> bool:
    """`VISIBLE` for one engine already read (the list cursor)."""
    return engine.owner == viewer.user or any(
        (g.kind is GranteeKind.user and g.name == viewer.user)
        or (g.kind is GranteeKind.group and g.name in viewer.groups)
        for g in engine.grants
    )


def quota_variables(owner: str | None, limit: int | None) -> dict[str, Any]:
    """Variables of `_QUOTA` (none when the write is not quota-checked)."""
    if owner is None or limit is None:
        return {}
    return {
        "owner": owner,
        "limit": limit,
        "inactive": sorted(s.value for s in INACTIVE_STATES),
        "ogid": RecordID("rucat_owner_guard", owner),
    }


def raise_quota(error: QueryFailed, owner: str | None, limit: int | None) -> None:
    """Turn `_QUOTA`'s THROW into QuotaExceeded; any other failure is left to the caller."""
    at = error.text.find(_QUOTA_MARK)
    if at < 0 or owner is None or limit is None:
        return
    digits = error.text[at + len(_QUOTA_MARK) :].split()[0].rstrip(".,;'\"")
    active = int(digits) if digits.isdigit() else limit
    raise QuotaExceeded(owner=owner, limit=limit, active=active) from error


def record_ids(engine_id: EngineId, event_seq: int | None = None) -> dict[str, Any]:
    """Query parameters naming an engine's records (ids go in as values, never as text)."""
    ids: dict[str, Any] = {
        "id": engine_id,
        "rid": RecordID("rucat_engine", engine_id),
        "gid": RecordID("rucat_guard", engine_id),
    }
    if event_seq is not None:
        ids["evid"] = RecordID("rucat_event", [engine_id, event_seq])
    return ids
