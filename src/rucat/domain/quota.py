"""Per-user limits on active engines: which engines count, who is exempt, and the refusal.

Pure decisions; the store applies them atomically with the write that would
exceed the limit (count and insert in one serialised transaction), so racing
creates by one user can never leave more than the limit.
"""

from __future__ import annotations

from rucat.domain.errors import QuotaExceeded
from rucat.domain.principal import Principal
from rucat.domain.state import EngineState

#: States that do not count against a quota: nothing runs or will run.
INACTIVE_STATES: frozenset[EngineState] = frozenset(
    {EngineState.Terminated, EngineState.ErrorClean}
)


def is_active(state: EngineState) -> bool:
    return state not in INACTIVE_STATES


def becomes_active(before: EngineState | None, after: EngineState) -> bool:
    """Does this write add one to its owner's active count? (`before` None: a create.)"""
    return is_active(after) and (before is None or not is_active(before))


def counts_anew(
    before_state: EngineState | None,
    before_owner: str | None,
    after_state: EngineState,
    after_owner: str | None,
) -> bool:
    """Does this write add one to `after_owner`'s active count? Either the engine becomes
    active, or an active engine changes hands (a warm pool's idle engine handed out)."""
    if after_owner is None or not is_active(after_state):
        return False
    return becomes_active(before_state, after_state) or before_owner != after_owner


def active_limit(principal: Principal, max_active_engines_per_user: int | None) -> int | None:
    """The limit on `principal`'s active engines; None: no limit (unset, or an admin)."""
    if principal.admin:
        return None
    return max_active_engines_per_user


def check_active_limit(*, owner: str, limit: int, active: int) -> None:
    """Raise QuotaExceeded unless `owner`, with `active` active engines, may get one more."""
    if active >= limit:
        raise QuotaExceeded(owner=owner, limit=limit, active=active)
