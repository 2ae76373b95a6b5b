"""The EngineStore contract: every store implementation passes these tests.

Runs once per backend listed in tests/contract/conftest.py::BACKENDS.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rucat.domain.engine import CreateEngineRequest, Engine, EngineEvent, EngineType, new_engine
from rucat.domain.errors import EngineNotFound, InvalidRequest, StoreConflict
from rucat.domain.state import STABLE_STATES, EngineState
from rucat.store import EngineStore
from tests.contract.conftest import StoreOpener

S = EngineState
T0 = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def make_engine(
    *,
    name: str = "engine",
    at: datetime = T0,
    platform: str = "local",
    engine_id: str | None = None,
    **changes: object,
) -> Engine:
    request = CreateEngineRequest(
        name=name,
        engine_type=EngineType.Spark,
        version="4.0.1",
        configs={"spark.executor.memory": "1g"},
    )
    engine = new_engine(request, platform=platform, now=at, engine_id=engine_id)
    return replace(engine, **changes)  # type: ignore[arg-type]


def is_utc(value: datetime | None) -> bool:
    return value is not None and value.utcoffset() == timedelta(0)


async def added(store: EngineStore, **kwargs: object) -> Engine:
    return await store.add(engine=make_engine(**kwargs), actor="test")  # type: ignore[arg-type]


# --- add / get ----------------------------------------------------------------


async def test_add_then_get_returns_every_field_unchanged(store: EngineStore) -> None:
    engine = make_engine(
        name="ünïcode name 名前",
        configs={"spark.a": "1", "spark.sql.x": "a b \"quoted\" 'q' ü", "k": ""},
        state=S.Running,
        update_time=T0 + timedelta(seconds=1, microseconds=1),
        next_update_time=T0 + timedelta(minutes=5, microseconds=999999),
        message="why it is so",
        endpoint="sc://127.0.0.1:15002",
        lease_owner="monitor-1",
        last_activity_time=T0 + timedelta(seconds=30, microseconds=7),
        connect_token="secret-token-value",
        saved_logs="line 1\nline 2\n\ttabbed ü\n",
        auto_stop_minutes=0.1,
    )

    await store.add(engine=engine, actor="user:alice")
    got = await store.get(engine_id=engine.id)

    assert got == engine
    assert got.connect_token == "secret-token-value"
    assert got.saved_logs == "line 1\nline 2\n\ttabbed ü\n"
    for value in (got.create_time, got.update_time, got.next_update_time, got.last_activity_time):
        assert is_utc(value)


async def test_optional_fields_left_empty_come_back_as_none(store: EngineStore) -> None:
    engine = make_engine(configs={}, connect_token=None)

    await store.add(engine=engine, actor="test")
    got = await store.get(engine_id=engine.id)

    assert got.configs == {}
    assert got.message is None
    assert got.endpoint is None
    assert got.lease_owner is None
    assert got.last_activity_time is None
    assert got.connect_token is None
    assert got.saved_logs is None
    assert got.auto_stop_minutes is None


async def test_datetimes_in_other_time_zones_come_back_as_the_same_instant_in_utc(
    store: EngineStore,
) -> None:
    tokyo = timezone(timedelta(hours=9))
    local_time = datetime(2026, 3, 4, 14, 6, 7, 654321, tzinfo=tokyo)
    engine = make_engine(at=local_time)

    stored = await store.add(engine=engine, actor="test")
    got = await store.get(engine_id=engine.id)

    assert stored == got
    assert is_utc(stored.create_time)
    assert got.create_time == local_time
    assert got.create_time.tzinfo is not None and is_utc(got.create_time)
    assert got.create_time.hour == 5
    assert got.create_time.microsecond == 654321


async def test_add_returns_the_engine_at_revision_zero(store: EngineStore) -> None:
    engine = make_engine(revision=7)

    stored = await store.add(engine=engine, actor="test")

    assert stored.revision == 0
    assert (await store.get(engine_id=engine.id)).revision == 0


async def test_add_records_a_creation_event(store: EngineStore) -> None:
    engine = await added(store)

    events = await store.events(engine_id=engine.id)

    assert events == [
        EngineEvent(
            engine_id=engine.id,
            time=T0,
            from_state=None,
            to_state=S.WaitToStart,
            message=None,
            actor="test",
        )
    ]


async def test_add_of_an_existing_id_raises_store_conflict_with_the_stored_row(
    store: EngineStore,
) -> None:
    first = await added(store, name="first")

    with pytest.raises(StoreConflict) as caught:
        await added(store, name="second", engine_id=first.id)

    assert caught.value.current == first
    assert (await store.get(engine_id=first.id)).name == "first"


async def test_get_of_an_unknown_id_raises_engine_not_found(store: EngineStore) -> None:
    with pytest.raises(EngineNotFound):
        await store.get(engine_id="nosuchengine0000000a")


# --- list ---------------------------------------------------------------------


async def test_list_returns_engines_oldest_first_then_by_id(store: EngineStore) -> None:
    late = await added(store, at=T0 + timedelta(hours=1), engine_id="a" * 20)
    early = await added(store, at=T0 - timedelta(hours=1), engine_id="z" * 20)
    same_time_b = await added(store, at=T0, engine_id="b" * 20)
    same_time_a = await added(store, at=T0, engine_id="a" + "b" * 19)

    listed = await store.list()

    assert [e.id for e in listed] == [early.id, same_time_a.id, same_time_b.id, late.id]


async def test_list_of_an_empty_store_is_empty(store: EngineStore) -> None:
    assert await store.list() == []


async def test_list_filters_by_states(store: EngineStore) -> None:
    waiting = await added(store, at=T0)
    running = await added(store, at=T0 + timedelta(seconds=1), state=S.Running)
    terminated = await added(store, at=T0 + timedelta(seconds=2), state=S.Terminated)

    both = await store.list(states=[S.Running, S.Terminated])
    one = await store.list(states={S.WaitToStart})
    none = await store.list(states=[])

    assert [e.id for e in both] == [running.id, terminated.id]
    assert [e.id for e in one] == [waiting.id]
    assert none == []


async def test_count_by_state_of_an_empty_store_is_empty(store: EngineStore) -> None:
    assert await store.count_by_state() == {}


async def test_count_by_state_counts_every_engine_once_in_its_current_state(
    store: EngineStore,
) -> None:
    for i, state in enumerate([S.WaitToStart, S.Running, S.Running, S.Terminated, S.Running]):
        await added(store, at=T0 + timedelta(seconds=i), state=state)
    moved = await added(store, at=T0 + timedelta(seconds=9), state=S.Running)
    await store.transition(current=moved, new=replace(moved, state=S.ErrorClean), actor="test")
    gone = await added(store, at=T0 + timedelta(seconds=10), state=S.Terminated)
    await store.remove(current=gone)

    assert await store.count_by_state() == {
        S.WaitToStart: 1,
        S.Running: 3,
        S.Terminated: 1,
        S.ErrorClean: 1,
    }


async def test_list_honours_limit(store: EngineStore) -> None:
    engines = [await added(store, at=T0 + timedelta(seconds=i)) for i in range(5)]

    listed = await store.list(limit=3)

    assert [e.id for e in listed] == [e.id for e in engines[:3]]


async def test_list_pages_through_every_engine_once_with_the_after_cursor(
    store: EngineStore,
) -> None:
    # Three share one create_time, so the cursor must break ties by id.
    times = [T0, T0, T0, T0 + timedelta(seconds=1), T0 - timedelta(seconds=1), T0]
    engines = [await added(store, at=t) for t in times]
    expected = [e.id for e in sorted(engines, key=lambda e: (e.create_time, e.id))]

    seen: list[str] = []
    after: str | None = None
    while True:
        page = await store.list(limit=2, after=after)
        if not page:
            break
        assert len(page) <= 2
        seen.extend(e.id for e in page)
        after = page[-1].id

    assert seen == expected


async def test_list_after_cursor_combines_with_the_state_filter(store: EngineStore) -> None:
    first = await added(store, at=T0, state=S.Running)
    await added(store, at=T0 + timedelta(seconds=1))
    third = await added(store, at=T0 + timedelta(seconds=2), state=S.Running)

    page = await store.list(states=[S.Running], after=first.id)

    assert [e.id for e in page] == [third.id]


async def test_list_with_an_unknown_cursor_raises_invalid_request(store: EngineStore) -> None:
    await added(store)

    with pytest.raises(InvalidRequest):
        await store.list(after="nosuchengine0000000a")


# --- transition ---------------------------------------------------------------


async def test_transition_stores_the_new_row_and_bumps_the_revision(store: EngineStore) -> None:
    engine = await added(store)
    new = replace(
        engine,
        state=S.TriggerStart,
        lease_owner="monitor-1",
        update_time=T0 + timedelta(seconds=5),
        next_update_time=T0 + timedelta(seconds=65),
    )

    stored = await store.transition(current=engine, new=new, actor="monitor-1")

    assert stored == replace(new, revision=1)
    assert await store.get(engine_id=engine.id) == stored


async def test_transition_that_changes_state_records_from_to_message_and_actor(
    store: EngineStore,
) -> None:
    engine = await added(store, state=S.StartInProgress)
    at = T0 + timedelta(seconds=9)
    new = replace(engine, state=S.ErrorWaitToClean, message="driver exited", update_time=at)

    await store.transition(current=engine, new=new, actor="monitor-2")

    events = await store.events(engine_id=engine.id)
    assert events[-1] == EngineEvent(
        engine_id=engine.id,
        time=at,
        from_state=S.StartInProgress,
        to_state=S.ErrorWaitToClean,
        message="driver exited",
        actor="monitor-2",
    )
    assert len(events) == 2


async def test_transition_that_keeps_the_state_records_no_event(store: EngineStore) -> None:
    engine = await added(store, state=S.StartInProgress)
    new = replace(engine, next_update_time=T0 + timedelta(seconds=5), endpoint="sc://h:1")

    stored = await store.transition(current=engine, new=new, actor="monitor")

    assert stored.revision == 1
    assert stored.endpoint == "sc://h:1"
    assert len(await store.events(engine_id=engine.id)) == 1


async def test_transition_with_a_stale_revision_raises_store_conflict_carrying_the_current_row(
    store: EngineStore,
) -> None:
    engine = await added(store)
    winner = await store.transition(
        current=engine, new=replace(engine, state=S.TriggerStart), actor="monitor-1"
    )

    with pytest.raises(StoreConflict) as caught:
        await store.transition(
            current=engine, new=replace(engine, state=S.Terminated), actor="user"
        )

    assert caught.value.current == winner
    assert await store.get(engine_id=engine.id) == winner
    assert [e.to_state for e in await store.events(engine_id=engine.id)] == [
        S.WaitToStart,
        S.TriggerStart,
    ]


async def test_transition_of_a_removed_engine_raises_store_conflict_without_a_row(
    store: EngineStore,
) -> None:
    engine = await added(store)
    await store.remove(current=engine)

    with pytest.raises(StoreConflict) as caught:
        await store.transition(
            current=engine, new=replace(engine, state=S.Terminated), actor="user"
        )

    assert caught.value.current is None
    with pytest.raises(EngineNotFound):
        await store.get(engine_id=engine.id)


async def test_successive_transitions_each_bump_the_revision(store: EngineStore) -> None:
    engine = await added(store)
    states = [S.TriggerStart, S.StartInProgress, S.Running, S.WaitToTerminate]

    current = engine
    for state in states:
        current = await store.transition(
            current=current, new=replace(current, state=state), actor="monitor"
        )

    assert current.revision == len(states)
    assert [e.to_state for e in await store.events(engine_id=engine.id)] == [
        S.WaitToStart,
        *states,
    ]


# --- remove -------------------------------------------------------------------


async def test_remove_deletes_the_engine_and_its_events(store: EngineStore) -> None:
    engine = await added(store)
    other = await added(store)

    await store.remove(current=engine)

    with pytest.raises(EngineNotFound):
        await store.get(engine_id=engine.id)
    with pytest.raises(EngineNotFound):
        await store.events(engine_id=engine.id)
    assert [e.id for e in await store.list()] == [other.id]
    assert len(await store.events(engine_id=other.id)) == 1


async def test_remove_with_a_stale_revision_raises_store_conflict_and_keeps_the_engine(
    store: EngineStore,
) -> None:
    engine = await added(store)
    moved = await store.transition(
        current=engine, new=replace(engine, state=S.TriggerStart), actor="monitor"
    )

    with pytest.raises(StoreConflict) as caught:
        await store.remove(current=engine)

    assert caught.value.current == moved
    assert await store.get(engine_id=engine.id) == moved


async def test_remove_of_an_engine_already_removed_raises_store_conflict_without_a_row(
    store: EngineStore,
) -> None:
    engine = await added(store)
    await store.remove(current=engine)

    with pytest.raises(StoreConflict) as caught:
        await store.remove(current=engine)

    assert caught.value.current is None


async def test_after_remove_the_same_id_can_be_added_again_with_a_fresh_history(
    store: EngineStore,
) -> None:
    engine = await added(store)
    await store.transition(current=engine, new=replace(engine, state=S.Terminated), actor="u")
    await store.remove(current=await store.get(engine_id=engine.id))

    again = await store.add(engine=engine, actor="test")

    assert again.revision == 0
    assert len(await store.events(engine_id=engine.id)) == 1


# --- due ----------------------------------------------------------------------


async def test_due_returns_unstable_engines_of_the_platform_whose_time_has_come(
    store: EngineStore,
) -> None:
    now = T0 + timedelta(hours=1)
    expected: list[Engine] = []
    for i, state in enumerate(EngineState):
        engine = await added(store, state=state, next_update_time=now - timedelta(seconds=i + 1))
        if state not in STABLE_STATES:
            expected.append(engine)
    await added(store, platform="kubernetes", next_update_time=now - timedelta(hours=1))
    await added(store, next_update_time=now + timedelta(microseconds=1))

    due = await store.due(platform="local", now=now, limit=100)

    # Most overdue first: the later states were made more overdue above.
    assert [e.id for e in due] == [e.id for e in reversed(expected)]
    assert {e.state for e in due} == set(EngineState) - STABLE_STATES


async def test_due_includes_an_engine_due_exactly_now(store: EngineStore) -> None:
    now = T0 + timedelta(minutes=1)
    engine = await added(store, next_update_time=now)

    assert [e.id for e in await store.due(platform="local", now=now, limit=10)] == [engine.id]
    earlier = await store.due(platform="local", now=now - timedelta(microseconds=1), limit=10)
    assert earlier == []


async def test_due_honours_limit_keeping_the_most_overdue(store: EngineStore) -> None:
    now = T0 + timedelta(hours=1)
    engines = [await added(store, next_update_time=now - timedelta(minutes=i)) for i in range(1, 6)]

    due = await store.due(platform="local", now=now, limit=2)

    assert [e.id for e in due] == [engines[4].id, engines[3].id]


async def test_due_compares_instants_across_time_zones(store: EngineStore) -> None:
    engine = await added(store, next_update_time=T0)
    # The same instant as T0 - 1 µs, written in UTC-05:00.
    before = (T0 - timedelta(microseconds=1)).astimezone(timezone(timedelta(hours=-5)))

    assert await store.due(platform="local", now=before, limit=10) == []
    after = T0.astimezone(timezone(timedelta(hours=-5)))
    assert [e.id for e in await store.due(platform="local", now=after, limit=10)] == [engine.id]


# --- events -------------------------------------------------------------------


async def test_events_of_an_unknown_engine_raise_engine_not_found(store: EngineStore) -> None:
    with pytest.raises(EngineNotFound):
        await store.events(engine_id="nosuchengine0000000a")


async def test_events_come_oldest_first_even_when_they_share_a_time(store: EngineStore) -> None:
    engine = await added(store)
    current = engine
    for state in (S.TriggerStart, S.StartInProgress, S.Running):
        # All at T0: only the order of writing tells them apart.
        current = await store.transition(
            current=current, new=replace(current, state=state), actor=f"to-{state.value}"
        )

    events = await store.events(engine_id=engine.id)

    assert [(e.from_state, e.to_state, e.actor) for e in events] == [
        (None, S.WaitToStart, "test"),
        (S.WaitToStart, S.TriggerStart, "to-TriggerStart"),
        (S.TriggerStart, S.StartInProgress, "to-StartInProgress"),
        (S.StartInProgress, S.Running, "to-Running"),
    ]
    assert all(is_utc(e.time) for e in events)


# --- activity and health --------------------------------------------------------


async def test_record_activity_sets_last_activity_time_without_a_revision_or_event(
    store: EngineStore,
) -> None:
    engine = await added(store, state=S.Running)
    at = T0 + timedelta(minutes=3, microseconds=5)

    await store.record_activity(engine_id=engine.id, at=at)

    got = await store.get(engine_id=engine.id)
    assert got.last_activity_time == at
    assert is_utc(got.last_activity_time)
    assert got.revision == engine.revision
    assert len(await store.events(engine_id=engine.id)) == 1
    # The revision did not move, so a CAS on the row read before still wins.
    await store.transition(current=engine, new=replace(engine, state=S.WaitToTerminate), actor="u")


async def test_a_transition_from_a_read_taken_before_recorded_activity_keeps_the_activity(
    store: EngineStore,
) -> None:
    engine = await added(store, state=S.Running, last_activity_time=T0)
    at = T0 + timedelta(minutes=10)
    await store.record_activity(engine_id=engine.id, at=at)

    # `engine` was read before the activity; its revision is still current.
    moved = await store.transition(
        current=engine, new=replace(engine, state=S.WaitToTerminate), actor="monitor"
    )

    assert moved.last_activity_time == at
    assert (await store.get(engine_id=engine.id)).last_activity_time == at


@pytest.mark.parametrize("minutes", [0.0, 0.1, 60.0, 1440.0], ids=str)
async def test_auto_stop_minutes_survive_a_stop_and_a_restart(
    store: EngineStore, minutes: float
) -> None:
    engine = await added(store, state=S.Running, auto_stop_minutes=minutes)
    stopped = await store.transition(
        current=engine, new=replace(engine, state=S.Terminated), actor="test"
    )
    await store.transition(current=stopped, new=replace(stopped, state=S.WaitToStart), actor="t")
    assert (await store.get(engine_id=engine.id)).auto_stop_minutes == minutes


async def test_record_activity_of_an_unknown_engine_raises_engine_not_found(
    store: EngineStore,
) -> None:
    with pytest.raises(EngineNotFound):
        await store.record_activity(engine_id="nosuchengine0000000a", at=T0)


async def test_ping_answers_when_the_store_is_up(store: EngineStore) -> None:
    await store.ping()


# --- races --------------------------------------------------------------------


def _claims(engine: Engine, count: int) -> list[Engine]:
    """`count` different claims of one engine, as racing monitors would write them."""
    return [replace(engine, state=S.TriggerStart, lease_owner=f"monitor-{i}") for i in range(count)]


def _exactly_one_winner(results: list[Engine | BaseException]) -> Engine:
    winners = [r for r in results if isinstance(r, Engine)]
    losers = [r for r in results if not isinstance(r, Engine)]
    assert len(winners) == 1, f"{len(winners)} winners: {winners}"
    winner = winners[0]
    for loser in losers:
        assert isinstance(loser, StoreConflict), repr(loser)
        assert loser.current == winner
    return winner


async def test_twenty_racing_transitions_on_one_revision_have_exactly_one_winner(
    store: EngineStore,
) -> None:
    engine = await added(store)

    results = await asyncio.gather(
        *(
            store.transition(current=engine, new=claim, actor=claim.lease_owner or "")
            for claim in _claims(engine, 20)
        ),
        return_exceptions=True,
    )

    winner = _exactly_one_winner(results)
    assert winner.revision == 1
    assert await store.get(engine_id=engine.id) == winner
    assert len(await store.events(engine_id=engine.id)) == 2


async def test_racing_transitions_through_two_stores_on_one_database_have_exactly_one_winner(
    store: EngineStore, open_another_store: StoreOpener
) -> None:
    other = await open_another_store()
    engine = await added(store)
    claims = _claims(engine, 20)

    results = await asyncio.gather(
        *(
            (store if i % 2 else other).transition(
                current=engine, new=claim, actor=claim.lease_owner or ""
            )
            for i, claim in enumerate(claims)
        ),
        return_exceptions=True,
    )

    winner = _exactly_one_winner(results)
    assert await other.get(engine_id=engine.id) == winner
    assert len(await store.events(engine_id=engine.id)) == 2


async def test_a_transition_racing_a_remove_leaves_one_outcome(
    store: EngineStore, open_another_store: StoreOpener
) -> None:
    other = await open_another_store()
    engine = await added(store)

    moved, removed = await asyncio.gather(
        store.transition(current=engine, new=replace(engine, state=S.Terminated), actor="u"),
        other.remove(current=engine),
        return_exceptions=True,
    )

    if isinstance(moved, Engine):
        assert isinstance(removed, StoreConflict)
        assert removed.current == moved
        assert await store.get(engine_id=engine.id) == moved
    else:
        assert removed is None
        assert isinstance(moved, StoreConflict)
        assert moved.current is None
        with pytest.raises(EngineNotFound):
            await store.get(engine_id=engine.id)


async def test_counting_with_retried_cas_through_two_stores_loses_no_update(
    store: EngineStore, open_another_store: StoreOpener
) -> None:
    other = await open_another_store()
    engine = await added(store, name="0")

    async def increment(via: EngineStore) -> None:
        while True:
            current = await via.get(engine_id=engine.id)
            try:
                await via.transition(
                    current=current,
                    new=replace(current, name=str(int(current.name) + 1)),
                    actor="counter",
                )
                return
            except StoreConflict:
                continue

    await asyncio.gather(*(increment(store if i % 2 else other) for i in range(30)))

    final = await store.get(engine_id=engine.id)
    assert final.name == "30"
    assert final.revision == 30


async def test_a_second_store_on_the_same_database_sees_the_first_ones_writes(
    store: EngineStore, open_another_store: StoreOpener
) -> None:
    engine = await added(store)
    other = await open_another_store()

    assert await other.get(engine_id=engine.id) == engine
    moved = await other.transition(
        current=engine, new=replace(engine, state=S.TriggerStart), actor="monitor"
    )
    assert await store.get(engine_id=engine.id) == moved
