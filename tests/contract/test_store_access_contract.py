"""The EngineStore contract for owners, grants, visibility filters and quotas.

Runs once per backend listed in tests/contract/conftest.py::BACKENDS.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from rucat.domain.access import AccessLevel, Grant, GranteeKind, VisibleTo
from rucat.domain.engine import Engine
from rucat.domain.errors import InvalidRequest, QuotaExceeded, StoreConflict
from rucat.domain.state import EngineState
from rucat.store import EngineStore
from tests.contract.conftest import StoreOpener
from tests.contract.test_store_contract import T0, make_engine

S = EngineState
BOB_ATTACH = Grant(kind=GranteeKind.user, name="bob", level=AccessLevel.ATTACH)
ANALYTICS_MANAGE = Grant(kind=GranteeKind.group, name="analytics", level=AccessLevel.MANAGE)


def bob(*groups: str) -> VisibleTo:
    return VisibleTo(user="bob", groups=frozenset(groups))


async def owned(store: EngineStore, owner: str | None, n: int = 0, **changes: object) -> Engine:
    engine = make_engine(at=T0 + timedelta(seconds=n), owner=owner, **changes)
    return await store.add(engine=engine, actor=owner or "test")


async def ids(store: EngineStore, **filters: object) -> list[str]:
    return [e.id for e in await store.list(**filters)]  # type: ignore[arg-type]


# --- owner and grants are stored -------------------------------------------------


async def test_owner_and_grants_come_back_as_added(store: EngineStore) -> None:
    engine = make_engine(owner="alice", grants=(BOB_ATTACH, ANALYTICS_MANAGE))

    added = await store.add(engine=engine, actor="alice")

    assert added == engine
    got = await store.get(engine_id=engine.id)
    assert got.owner == "alice"
    assert got.grants == (BOB_ATTACH, ANALYTICS_MANAGE)


async def test_an_engine_without_owner_comes_back_without_one(store: EngineStore) -> None:
    engine = await owned(store, None)

    got = await store.get(engine_id=engine.id)

    assert got.owner is None
    assert got.grants == ()


async def test_a_transition_replaces_the_grants_in_their_order(store: EngineStore) -> None:
    engine = await owned(store, "alice", grants=(BOB_ATTACH,))
    new_grants = (ANALYTICS_MANAGE, replace(BOB_ATTACH, level=AccessLevel.MANAGE))

    written = await store.transition(
        current=engine, new=replace(engine, grants=new_grants), actor="alice"
    )

    assert written.grants == new_grants
    assert written.revision == engine.revision + 1
    assert (await store.get(engine_id=engine.id)).grants == new_grants
    assert len(await store.events(engine_id=engine.id)) == 1  # no state change, no event


async def test_grants_can_be_cleared(store: EngineStore) -> None:
    engine = await owned(store, "alice", grants=(BOB_ATTACH, ANALYTICS_MANAGE))

    await store.transition(current=engine, new=replace(engine, grants=()), actor="alice")

    assert (await store.get(engine_id=engine.id)).grants == ()


async def test_a_state_transition_keeps_owner_and_grants(store: EngineStore) -> None:
    engine = await owned(store, "alice", grants=(BOB_ATTACH,))

    await store.transition(
        current=engine, new=replace(engine, state=S.TriggerStart), actor="monitor"
    )

    got = await store.get(engine_id=engine.id)
    assert (got.owner, got.grants) == ("alice", (BOB_ATTACH,))
    (due,) = await store.due(platform="local", now=T0 + timedelta(hours=1), limit=10)
    assert due.grants == (BOB_ATTACH,)


async def test_replacing_grants_from_a_stale_read_conflicts_and_changes_nothing(
    store: EngineStore,
) -> None:
    engine = await owned(store, "alice")
    await store.transition(current=engine, new=replace(engine, grants=(BOB_ATTACH,)), actor="alice")

    with pytest.raises(StoreConflict) as raised:
        await store.transition(
            current=engine, new=replace(engine, grants=(ANALYTICS_MANAGE,)), actor="alice"
        )

    assert raised.value.current is not None
    assert raised.value.current.grants == (BOB_ATTACH,)
    assert (await store.get(engine_id=engine.id)).grants == (BOB_ATTACH,)


async def test_an_engine_removed_and_added_again_has_only_its_new_grants(
    store: EngineStore,
) -> None:
    engine = await owned(store, "alice", grants=(BOB_ATTACH,))
    await store.remove(current=engine)

    again = await store.add(engine=replace(engine, grants=()), actor="alice")

    assert again.grants == ()
    assert (await store.get(engine_id=engine.id)).grants == ()


# --- list filters ---------------------------------------------------------------


async def test_list_by_owner_returns_only_that_owners_engines(store: EngineStore) -> None:
    a1 = await owned(store, "alice", 0)
    await owned(store, "bob", 1)
    await owned(store, None, 2)
    a2 = await owned(store, "alice", 3)

    assert await ids(store, owner="alice") == [a1.id, a2.id]
    assert await ids(store, owner="carol") == []


async def test_list_visible_to_a_user_returns_owned_and_granted_engines(
    store: EngineStore,
) -> None:
    own = await owned(store, "bob", 0)
    to_user = await owned(store, "alice", 1, grants=(BOB_ATTACH,))
    to_group = await owned(store, "alice", 2, grants=(ANALYTICS_MANAGE,))
    await owned(store, "alice", 3)  # not shared
    await owned(store, None, 4)  # from before owners: admins only
    await owned(store, "alice", 5, grants=(replace(BOB_ATTACH, name="bobby"),))

    assert await ids(store, visible_to=bob()) == [own.id, to_user.id]
    assert await ids(store, visible_to=bob("analytics", "ops")) == [
        own.id,
        to_user.id,
        to_group.id,
    ]


async def test_a_group_grant_does_not_reach_a_user_of_that_name(store: EngineStore) -> None:
    await owned(store, "alice", 0, grants=(Grant(GranteeKind.group, "bob", AccessLevel.MANAGE),))

    assert await ids(store, visible_to=bob()) == []


async def test_visible_pages_are_full_and_combine_with_the_state_filter(
    store: EngineStore,
) -> None:
    visible: list[Engine] = []
    for n in range(9):
        if n % 3 == 0:
            await owned(store, "alice", n)  # invisible to bob, between his engines
        else:
            visible.append(await owned(store, "bob" if n % 2 else "alice", n, grants=(BOB_ATTACH,)))

    pages: list[list[str]] = []
    after: str | None = None
    while True:
        page = await ids(store, visible_to=bob(), limit=2, after=after)
        if not page:
            break
        pages.append(page)
        after = page[-1]

    assert pages == [[e.id for e in visible[i : i + 2]] for i in range(0, len(visible), 2)]
    running = visible[1]
    await store.transition(
        current=running, new=replace(running, state=S.TriggerStart), actor="monitor"
    )
    assert await ids(store, visible_to=bob(), states=[S.TriggerStart]) == [running.id]


async def test_a_cursor_the_caller_may_not_see_is_an_unknown_cursor(store: EngineStore) -> None:
    hidden = await owned(store, "alice", 0)
    await owned(store, "bob", 1)

    with pytest.raises(InvalidRequest, match="cursor"):
        await store.list(visible_to=bob(), after=hidden.id)
    with pytest.raises(InvalidRequest, match="cursor"):
        await store.list(owner="bob", after=hidden.id)


# --- quotas ----------------------------------------------------------------------


async def test_add_within_the_limit_succeeds_and_beyond_it_raises_quota_exceeded(
    store: EngineStore,
) -> None:
    for n in range(2):
        engine = make_engine(at=T0 + timedelta(seconds=n), owner="alice")
        await store.add(engine=engine, actor="alice", active_limit=2)

    with pytest.raises(QuotaExceeded) as raised:
        await store.add(engine=make_engine(owner="alice"), actor="alice", active_limit=2)

    assert (raised.value.limit, raised.value.active, raised.value.owner) == (2, 2, "alice")
    assert len(await store.list()) == 2


async def test_only_active_engines_of_the_same_owner_count(store: EngineStore) -> None:
    await owned(store, "alice", 0, state=S.Terminated)
    await owned(store, "alice", 1, state=S.ErrorClean)
    await owned(store, "alice", 2, state=S.ErrorWaitToClean)  # still holds resources
    await owned(store, "bob", 3)
    await owned(store, None, 4)

    await store.add(engine=make_engine(owner="alice"), actor="alice", active_limit=2)
    with pytest.raises(QuotaExceeded):
        await store.add(engine=make_engine(owner="alice"), actor="alice", active_limit=2)


async def test_add_without_a_limit_is_never_refused(store: EngineStore) -> None:
    for n in range(3):
        await owned(store, "alice", n)

    await store.add(engine=make_engine(owner="alice"), actor="admin", active_limit=None)

    assert len(await store.list(owner="alice")) == 4


async def test_restart_of_a_terminated_engine_counts_against_the_limit(
    store: EngineStore,
) -> None:
    stopped = await owned(store, "alice", 0, state=S.Terminated)
    await owned(store, "alice", 1)

    with pytest.raises(QuotaExceeded):
        await store.transition(
            current=stopped,
            new=replace(stopped, state=S.WaitToStart),
            actor="alice",
            active_limit=1,
        )

    assert (await store.get(engine_id=stopped.id)).state is S.Terminated
    written = await store.transition(
        current=stopped, new=replace(stopped, state=S.WaitToStart), actor="alice", active_limit=2
    )
    assert written.state is S.WaitToStart


async def test_a_transition_between_active_states_is_not_counted(store: EngineStore) -> None:
    engine = await owned(store, "alice", 0)
    await owned(store, "alice", 1)

    written = await store.transition(
        current=engine, new=replace(engine, state=S.TriggerStart), actor="m", active_limit=1
    )

    assert written.state is S.TriggerStart


async def _race_creates(stores: list[EngineStore], count: int, limit: int) -> list[object]:
    async def create(n: int) -> Engine:
        engine = make_engine(at=T0 + timedelta(microseconds=n), owner="alice")
        return await stores[n % len(stores)].add(engine=engine, actor="alice", active_limit=limit)

    return await asyncio.gather(*(create(n) for n in range(count)), return_exceptions=True)


async def test_twenty_racing_creates_with_a_limit_of_three_leave_exactly_three(
    store: EngineStore, open_another_store: StoreOpener
) -> None:
    stores = [store, await open_another_store()]

    results = await _race_creates(stores, 20, 3)

    assert sum(isinstance(r, Engine) for r in results) == 3
    assert all(isinstance(r, Engine | QuotaExceeded) for r in results), results
    assert len(await store.list(owner="alice")) == 3
