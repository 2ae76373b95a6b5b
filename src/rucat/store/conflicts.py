"""The StoreConflict a lost compare-and-set raises, worded alike by every backend.

Both stores report a CAS that matched nothing the same way, so a caller (and
a user reading the message) cannot tell which backend lost the race.
"""

from __future__ import annotations

from rucat.domain.engine import Engine
from rucat.domain.errors import StoreConflict


def lost_race(current: Engine, now: Engine | None, doing: str) -> StoreConflict:
    """`doing` ("update", "remove") on `current` matched nothing; the row is now `now`."""
    if now is None:
        why = "it was removed"
    else:
        why = f"it is now at revision {now.revision} in state {now.state.value}"
    return StoreConflict(
        f"cannot {doing} engine {current.id} at revision {current.revision}: {why}",
        current=now,
    )
