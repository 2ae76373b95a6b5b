"""Access decisions and quota rules (domain/access.py, domain/quota.py), over tables of cases."""

from __future__ import annotations

from typing import Any

import pytest

from rucat.domain.access import (
    AccessLevel,
    Allow,
    EngineAction,
    Forbid,
    Grant,
    GranteeKind,
    Hide,
    VisibleTo,
    decide_access,
    grants_from_json,
    level_of,
    visibility,
)
from rucat.domain.errors import InvalidRequest, QuotaExceeded
from rucat.domain.principal import Principal
from rucat.domain.quota import active_limit, becomes_active, check_active_limit, is_active
from rucat.domain.state import EngineState

A = EngineAction
L = AccessLevel
S = EngineState
ALICE = Principal("alice", frozenset({"analytics"}))
BOB = Principal("bob", frozenset({"analytics", "ops"}))
CAROL = Principal("carol")
ADMIN = Principal("root", admin=True)


def user(name: str, level: L) -> Grant:
    return Grant(GranteeKind.user, name, level)


def group(name: str, level: L) -> Grant:
    return Grant(GranteeKind.group, name, level)


LEVEL_CASES: list[tuple[str, Principal, str | None, tuple[Grant, ...], L]] = [
    ("owner-manages", ALICE, "alice", (), L.MANAGE),
    ("admin-manages-anyones", ADMIN, "alice", (), L.MANAGE),
    ("admin-manages-ownerless", ADMIN, None, (), L.MANAGE),
    ("stranger-has-none", CAROL, "alice", (), L.NONE),
    ("grant-on-ownerless-engine", CAROL, None, (user("carol", L.MANAGE),), L.MANAGE),
    ("ownerless-without-grant-hidden", BOB, None, (), L.NONE),
    ("user-grant-attach", CAROL, "alice", (user("carol", L.ATTACH),), L.ATTACH),
    ("user-grant-manage", CAROL, "alice", (user("carol", L.MANAGE),), L.MANAGE),
    ("group-grant", BOB, "alice", (group("ops", L.ATTACH),), L.ATTACH),
    ("highest-grant-wins", BOB, "alice", (user("bob", L.ATTACH), group("ops", L.MANAGE)), L.MANAGE),
    ("grant-to-other-user", CAROL, "alice", (user("bob", L.MANAGE),), L.NONE),
    ("group-named-like-user", CAROL, "alice", (group("carol", L.MANAGE),), L.NONE),
    ("user-named-like-group", BOB, "alice", (user("ops", L.MANAGE),), L.NONE),
    ("owner-keeps-manage-with-lower-grant", ALICE, "alice", (user("alice", L.ATTACH),), L.MANAGE),
]


@pytest.mark.parametrize(
    ("principal", "owner", "grants", "expected"),
    [case[1:] for case in LEVEL_CASES],
    ids=[case[0] for case in LEVEL_CASES],
)
def test_level_of(
    principal: Principal, owner: str | None, grants: tuple[Grant, ...], expected: L
) -> None:
    assert level_of(principal, owner=owner, grants=grants) is expected


ACTION_CASES: list[tuple[EngineAction, L]] = [
    (A.GET, L.ATTACH),
    (A.EVENTS, L.ATTACH),
    (A.LOGS, L.ATTACH),
    (A.CONNECT, L.ATTACH),
    (A.STOP, L.MANAGE),
    (A.RESTART, L.MANAGE),
    (A.DELETE, L.MANAGE),
    (A.PERMISSIONS, L.MANAGE),
    (A.SPARK_UI, L.ATTACH),
]


@pytest.mark.parametrize(("action", "needed"), ACTION_CASES, ids=[a.value for a, _ in ACTION_CASES])
def test_each_action_needs_its_level_and_hides_the_engine_from_strangers(
    action: EngineAction, needed: L
) -> None:
    for level in (L.ATTACH, L.MANAGE):
        decision = decide_access(CAROL, action, owner="alice", grants=(user("carol", level),))
        if level >= needed:
            assert decision == Allow(level)
        else:
            assert isinstance(decision, Forbid)
            assert "manage" in decision.reason and action.value in decision.reason
    assert decide_access(CAROL, action, owner="alice", grants=()) == Hide()
    assert decide_access(ALICE, action, owner="alice", grants=()) == Allow(L.MANAGE)


def test_visibility_is_unrestricted_for_admins_and_names_user_and_groups_otherwise() -> None:
    assert visibility(ADMIN) is None
    assert visibility(BOB) == VisibleTo(user="bob", groups=frozenset({"analytics", "ops"}))


GOOD_GRANTS: list[tuple[str, list[dict[str, Any]], tuple[Grant, ...]]] = [
    ("empty", [], ()),
    ("user-attach", [{"user": "bob", "level": "attach"}], (user("bob", L.ATTACH),)),
    (
        "user-and-group-in-order",
        [{"group": "analytics", "level": "manage"}, {"user": "bob", "level": "attach"}],
        (group("analytics", L.MANAGE), user("bob", L.ATTACH)),
    ),
    (
        "same-name-user-and-group",
        [{"user": "x", "level": "attach"}, {"group": "x", "level": "attach"}],
        (user("x", L.ATTACH), group("x", L.ATTACH)),
    ),
    (
        "email-like-name",
        [{"user": "bob@example.com", "level": "attach"}],
        (user("bob@example.com", L.ATTACH),),
    ),
]


@pytest.mark.parametrize(
    ("entries", "expected"), [c[1:] for c in GOOD_GRANTS], ids=[c[0] for c in GOOD_GRANTS]
)
def test_grants_from_json_accepts(
    entries: list[dict[str, Any]], expected: tuple[Grant, ...]
) -> None:
    assert grants_from_json(entries) == expected
    assert [g.to_json() for g in expected] == entries


BAD_GRANTS: list[tuple[str, Any, str]] = [
    ("not-a-list", {"user": "bob"}, "must be a list"),
    ("entry-not-object", ["bob"], "grants[0] must be an object"),
    ("neither-user-nor-group", [{"level": "attach"}], "exactly one of 'user' or 'group'"),
    ("both-user-and-group", [{"user": "a", "group": "b", "level": "attach"}], "exactly one"),
    ("unknown-key", [{"user": "a", "level": "attach", "role": "x"}], "unknown key 'role'"),
    ("unknown-level", [{"user": "a", "level": "owner"}], "level must be one of attach, manage"),
    ("level-none", [{"user": "a", "level": "none"}], "level must be one of"),
    ("missing-level", [{"user": "a"}], "level must be one of"),
    ("empty-name", [{"user": "", "level": "attach"}], "grants[0].user: a grantee name"),
    ("name-not-string", [{"user": 5, "level": "attach"}], "grants[0].user"),
    ("colon-in-name", [{"user": "a:b", "level": "attach"}], "must not contain ':'"),
    ("equals-in-name", [{"group": "a=b", "level": "attach"}], "must not contain"),
    ("control-character", [{"user": "a\nb", "level": "attach"}], "control characters"),
    ("leading-space", [{"user": " bob", "level": "attach"}], "whitespace"),
    ("too-long", [{"user": "x" * 256, "level": "attach"}], "at most 255"),
    (
        "duplicate-grantee",
        [{"user": "bob", "level": "attach"}, {"user": "bob", "level": "manage"}],
        "grants[1]: user 'bob' is named more than once",
    ),
    ("too-many", [{"user": f"u{i}", "level": "attach"} for i in range(101)], "at most 100"),
]


@pytest.mark.parametrize(
    ("entries", "message"), [c[1:] for c in BAD_GRANTS], ids=[c[0] for c in BAD_GRANTS]
)
def test_grants_from_json_refuses(entries: Any, message: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        grants_from_json(entries)
    assert message in raised.value.message


ACTIVE_CASES = [(state, state not in (S.Terminated, S.ErrorClean)) for state in S]


@pytest.mark.parametrize(("state", "active"), ACTIVE_CASES, ids=[s.value for s, _ in ACTIVE_CASES])
def test_every_state_but_terminated_and_error_clean_is_active(state: S, active: bool) -> None:
    assert is_active(state) is active


BECOMES_CASES = [
    ("create", None, S.WaitToStart, True),
    ("restart-of-terminated", S.Terminated, S.WaitToStart, True),
    ("stop-of-waiting", S.WaitToStart, S.Terminated, False),
    ("monitor-progress", S.WaitToStart, S.TriggerStart, False),
    ("restart-of-stopping", S.WaitToTerminate, S.Running, False),
    ("cleaned", S.ErrorCleanInProgress, S.ErrorClean, False),
]


@pytest.mark.parametrize(
    ("before", "after", "counted"),
    [c[1:] for c in BECOMES_CASES],
    ids=[c[0] for c in BECOMES_CASES],
)
def test_only_creates_and_restarts_of_inactive_engines_add_to_the_count(
    before: S | None, after: S, counted: bool
) -> None:
    assert becomes_active(before, after) is counted


LIMIT_CASES = [
    ("unset", BOB, None, None),
    ("user-gets-the-limit", BOB, 3, 3),
    ("admin-exempt", ADMIN, 3, None),
    ("zero-limit-kept", BOB, 0, 0),
]


@pytest.mark.parametrize(
    ("principal", "configured", "expected"),
    [c[1:] for c in LIMIT_CASES],
    ids=[c[0] for c in LIMIT_CASES],
)
def test_active_limit(principal: Principal, configured: int | None, expected: int | None) -> None:
    assert active_limit(principal, configured) == expected


def test_the_limit_is_refused_at_the_count_naming_limit_and_count() -> None:
    check_active_limit(owner="bob", limit=3, active=2)
    with pytest.raises(QuotaExceeded) as raised:
        check_active_limit(owner="bob", limit=3, active=3)
    assert "max_active_engines_per_user is 3" in raised.value.message
    assert "bob has 3 active engines" in raised.value.message
