"""Random sequences of store operations agree with a plain in-memory model.

Hypothesis draws a program (adds, CAS transitions from fresh or stale reads,
removes, activity) and runs it against a fresh store of every backend in
tests/contract/conftest.py::BACKENDS. After every step, every engine, the
list order, the due queue of each platform and each engine's history must be
what the model says.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine
from rucat.domain.errors import EngineNotFound, StoreConflict
from rucat.domain.state import STABLE_STATES, EngineState
from rucat.store import EngineStore, open_store
from tests.contract.conftest import BACKENDS, BackendFactory

T0 = datetime(2026, 5, 1, tzinfo=UTC)
PLATFORMS = ["local", "kubernetes"]


@dataclass(frozen=True)
class Add:
    seconds: int  # create time, T0 + seconds: few values, so ties happen
    platform: int
    state: EngineState


@dataclass(frozen=True)
class Transition:
    target: int  # index into the engines added so far
    stale: bool  # write from an older read of the engine, if there is one
    state: EngineState
    next_seconds: int


@dataclass(frozen=True)
class Remove:
    target: int
    stale: bool


@dataclass(frozen=True)
class Activity:
    target: int
    seconds: int


Step = Add | Transition | Remove | Activity

steps = st.one_of(
    st.builds(
        Add,
        st.integers(0, 3),
        st.integers(0, len(PLATFORMS) - 1),
        st.sampled_from(list(EngineState)),
    ),
    st.builds(
        Transition,
        st.integers(0, 20),
        st.booleans(),
        st.sampled_from(list(EngineState)),
        st.integers(-5, 5),
    ),
    st.builds(Remove, st.integers(0, 20), st.booleans()),
    st.builds(Activity, st.integers(0, 20), st.integers(0, 100)),
)


@dataclass
class Model:
    ids: list[str] = field(default_factory=list)  # every id ever added, in order
    rows: dict[str, Engine] = field(default_factory=dict)  # live engines
    reads: dict[str, list[Engine]] = field(default_factory=dict)  # versions written
    history: dict[str, list[EngineState]] = field(default_factory=dict)


def later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


async def apply(store: EngineStore, model: Model, step: Step, n: int) -> None:
    if isinstance(step, Add):
        request = CreateEngineRequest(name=f"e{n}", engine_type=EngineType.Spark, version="4.0.1")
        engine = replace(
            new_engine(
                request,
                platform=PLATFORMS[step.platform],
                now=T0 + timedelta(seconds=step.seconds),
            ),
            state=step.state,
        )
        stored = await store.add(engine=engine, actor="model")
        model.ids.append(engine.id)
        model.rows[engine.id] = stored
        model.reads[engine.id] = [stored]
        model.history[engine.id] = [step.state]
        return
    if not model.ids:
        return
    engine_id = model.ids[step.target % len(model.ids)]
    versions = model.reads[engine_id]
    live = model.rows.get(engine_id)
    if isinstance(step, Activity):
        at = T0 + timedelta(seconds=step.seconds)
        if live is None:
            with pytest.raises(EngineNotFound):
                await store.record_activity(engine_id=engine_id, at=at)
            return
        await store.record_activity(engine_id=engine_id, at=at)
        if live.last_activity_time is None or live.last_activity_time < at:
            model.rows[engine_id] = replace(live, last_activity_time=at)
        return
    read = versions[0] if step.stale else versions[-1]
    wins = live is not None and read.revision == live.revision
    if isinstance(step, Transition):
        new = replace(
            read,
            state=step.state,
            next_update_time=T0 + timedelta(seconds=step.next_seconds),
            update_time=T0 + timedelta(seconds=n),
        )
        if not wins:
            with pytest.raises(StoreConflict) as caught:
                await store.transition(current=read, new=new, actor="model")
            assert caught.value.current == live
            return
        stored = await store.transition(current=read, new=new, actor="model")
        assert live is not None
        # Activity recorded after `read` was taken is kept.
        assert stored == replace(
            new,
            revision=read.revision + 1,
            last_activity_time=later(live.last_activity_time, new.last_activity_time),
        )
        model.rows[engine_id] = stored
        versions.append(stored)
        if step.state is not read.state:
            model.history[engine_id].append(step.state)
        return
    if not wins:
        with pytest.raises(StoreConflict) as caught:
            await store.remove(current=read)
        assert caught.value.current == live
        return
    await store.remove(current=read)
    del model.rows[engine_id]


async def check(store: EngineStore, model: Model) -> None:
    for engine_id in model.ids:
        live = model.rows.get(engine_id)
        if live is None:
            with pytest.raises(EngineNotFound):
                await store.get(engine_id=engine_id)
            continue
        assert await store.get(engine_id=engine_id) == live
        events = await store.events(engine_id=engine_id)
        assert [e.to_state for e in events] == model.history[engine_id]
    by_age = sorted(model.rows.values(), key=lambda e: (e.create_time, e.id))
    assert [e.id for e in await store.list()] == [e.id for e in by_age]
    now = T0
    for platform in PLATFORMS:
        due = sorted(
            (
                e
                for e in model.rows.values()
                if e.platform == platform
                and e.state not in STABLE_STATES
                and e.next_update_time <= now
            ),
            key=lambda e: (e.next_update_time, e.id),
        )
        got = await store.due(platform=platform, now=now, limit=3)
        # Ties in next_update_time may come in any order; the times may not.
        assert [e.next_update_time for e in got] == [e.next_update_time for e in due[:3]]
        assert {e.id for e in got} <= {e.id for e in due}


async def run_program(
    factory: BackendFactory, request: pytest.FixtureRequest, program: list[Step]
) -> None:
    with tempfile.TemporaryDirectory(prefix="rucat-model-") as tmp:
        store = await open_store(await factory(request, Path(tmp)))
        try:
            model = Model()
            for n, step in enumerate(program):
                await apply(store, model, step, n)
                await check(store, model)
        finally:
            await store.close()


@pytest.mark.parametrize(
    "factory", [factory for _, factory in BACKENDS], ids=[id_ for id_, _ in BACKENDS]
)
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(program=st.lists(steps, min_size=1, max_size=25))
def test_random_programs_agree_with_the_model(
    factory: BackendFactory, request: pytest.FixtureRequest, program: list[Step]
) -> None:
    asyncio.run(run_program(factory, request, program))
