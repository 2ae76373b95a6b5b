"""The EngineStore contract for warm pools: the `pool` field, the `pool` filter of list,
and hand-outs as compare-and-sets (one winner, counted against the new owner's quota).

Runs once per backend listed in tests/contract/conftest.py::BACKENDS.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine
from rucat.domain.errors import InvalidRequest, QuotaExceeded, StoreConflict
from rucat.domain.pool import hand_out
from rucat.domain.state import EngineState
from rucat.store import EngineStore
from tests.contract.conftest import StoreOpener

S = EngineState
T0 = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def pool_engine(pool: str | None = "small", *, at: datetime = T0, **changes: object) -> Engine:
    request = CreateEngineRequest(name="pool-small", engine_type=EngineType.Spark, version="4.0.1")
    engine = new_engine(request, platform="local", now=at, pool=pool, auto_stop_minutes=0.0)
    return replace(engine, **changes)  # type: ignore[arg-type]


async def idle(store: EngineStore, pool: str = "small", *, at: datetime = T0) -> Engine:
    added = await store.add(engine=pool_engine(pool, at=at), actor="pool")
    return await store.transition(
        current=added, new=replace(added, state=S.Running, endpoint="sc://h:1"), actor="monitor"
    )


async def test_the_pool_of_an_engine_comes_back_unchanged_and_none_when_not_pooled(
    store: EngineStore,
) -> None:
    pooled = await store.add(engine=pool_engine("small"), actor="pool")
    cold = await store.add(engine=pool_engine(None), actor="alice")
    assert (await store.get(engine_id=pooled.id)).pool == "small"
    assert (await store.get(engine_id=cold.id)).pool is None
    assert await store.get(engine_id=pooled.id) == pooled


async def test_list_filters_by_pool_and_combines_with_states(store: EngineStore) -> None:
    running = await idle(store, "small", at=T0)
    starting = await store.add(engine=pool_engine("small", at=T0 + timedelta(1)), actor="pool")
    await idle(store, "big", at=T0 + timedelta(2))
    await store.add(engine=pool_engine(None, at=T0 + timedelta(3)), actor="alice")

    assert [e.id for e in await store.list(pool="small")] == [running.id, starting.id]
    assert [e.id for e in await store.list(pool="small", states=[S.Running])] == [running.id]
    assert await store.list(pool="none-such") == []


async def test_list_by_pool_pages_with_a_cursor_inside_the_pool_only(store: EngineStore) -> None:
    first = await idle(store, "small", at=T0)
    second = await idle(store, "small", at=T0 + timedelta(1))
    other = await idle(store, "big", at=T0 + timedelta(2))
    assert [e.id for e in await store.list(pool="small", after=first.id)] == [second.id]
    with pytest.raises(InvalidRequest, match="unknown cursor"):
        await store.list(pool="small", after=other.id)


async def test_a_hand_out_clears_the_pool_so_the_engine_leaves_it_for_good(
    store: EngineStore,
) -> None:
    engine = await idle(store)
    taken = await store.transition(
        current=engine,
        new=hand_out(engine, name="mine", owner="alice", auto_stop_minutes=5.0, now=T0),
        actor="alice",
    )
    assert (taken.name, taken.owner, taken.pool, taken.state) == ("mine", "alice", None, S.Running)
    assert await store.get(engine_id=engine.id) == taken
    assert await store.list(pool="small") == []
    assert [e.id for e in await store.list(owner="alice")] == [engine.id]


async def test_ten_racing_hand_outs_of_one_engine_have_exactly_one_winner(
    open_another_store: StoreOpener,
) -> None:
    stores = [await open_another_store(), await open_another_store()]
    engine = await idle(stores[0])

    async def take(n: int) -> str | None:
        new = hand_out(engine, name=f"mine-{n}", owner=f"user{n}", auto_stop_minutes=None, now=T0)
        try:
            await stores[n % 2].transition(current=engine, new=new, actor=f"user{n}")
        except StoreConflict:
            return None
        return f"user{n}"

    winners = [w for w in await asyncio.gather(*(take(n) for n in range(10))) if w is not None]
    assert len(winners) == 1
    assert (await stores[0].get(engine_id=engine.id)).owner == winners[0]


async def test_a_hand_out_counts_against_the_new_owners_quota(store: EngineStore) -> None:
    # Idle pool engines have no owner: they count against no one's quota.
    first, second = await idle(store), await idle(store, at=T0 + timedelta(1))
    await store.transition(
        current=first,
        new=hand_out(first, name="a", owner="alice", auto_stop_minutes=None, now=T0),
        actor="alice",
        active_limit=1,
    )
    with pytest.raises(QuotaExceeded):
        await store.transition(
            current=second,
            new=hand_out(second, name="b", owner="alice", auto_stop_minutes=None, now=T0),
            actor="alice",
            active_limit=1,
        )
    assert (await store.get(engine_id=second.id)).pool == "small"  # nothing changed
