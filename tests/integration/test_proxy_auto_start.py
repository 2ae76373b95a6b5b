"""Auto-start on connect and busy tracking in the proxy, against a real gRPC upstream (no Java).

The engine is a fake (tests.integration.test_proxy_passthrough's Upstream);
the proxy and the SQLite store are real. A test plays the monitor by writing
states into the store, exactly as a monitor would.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from datetime import datetime

import grpc
import grpc.aio
import pytest
from argon2 import PasswordHasher

from rucat.config import (
    AuthProviderConfig,
    EnginePolicyConfig,
    PolicyRuleConfig,
    QuotasConfig,
    RucatConfig,
    UserConfig,
    UsersAuthConfig,
)
from rucat.domain.state import EngineState
from rucat.store import EngineStore
from tests.conftest import FakeClock
from tests.integration.test_proxy_passthrough import (
    Upstream,
    _add,
    _call,
    _channel,
    _config,
    _md,
    _proxy,
    store,
    upstream,
)

__all__ = ["store", "upstream"]  # fixtures

S = EngineState


async def _play_monitor(
    store: EngineStore, engine_id: str, state: EngineState, **changes: object
) -> None:
    current = await store.get(engine_id=engine_id)
    new = replace(current, state=state, **changes)  # type: ignore[arg-type]
    await store.transition(current=current, new=new, actor="test-monitor")


async def test_a_call_for_a_terminated_engine_starts_it_and_is_forwarded_once_it_runs(
    store: EngineStore, upstream: Upstream
) -> None:
    engine = await _add(store, upstream, state=S.Terminated, endpoint=None)
    async with _proxy(store) as proxy, _channel(proxy) as channel:
        call = asyncio.create_task(_call(channel, [b"x"], _md(engine)))
        for _ in range(300):  # the call restarts the engine, then waits for it
            if (await store.get(engine_id=engine.id)).state is S.WaitToStart:
                break
            await asyncio.sleep(0.01)
        assert proxy.auto_starts == 1
        assert not call.done()  # held, not refused
        await _play_monitor(store, engine.id, S.Running, endpoint=f"sc://127.0.0.1:{upstream.port}")
        responses, _ = await asyncio.wait_for(call, 30)
    assert responses == [b"x", b"done"]


async def test_a_call_that_starts_an_engine_answers_unavailable_saying_so_after_the_hold_time(
    store: EngineStore, upstream: Upstream
) -> None:
    engine = await _add(store, upstream, state=S.Terminated, endpoint=None)
    async with _proxy(store, auto_start_hold_secs=0.3) as proxy, _channel(proxy) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(channel, [b"x"], _md(engine))
        assert proxy.auto_starts == 1
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    details = caught.value.details() or ""
    assert "is starting" in details and "WaitToStart" in details
    assert (await store.get(engine_id=engine.id)).state is S.WaitToStart
    event = (await store.events(engine_id=engine.id))[-1]
    assert (event.from_state, event.to_state, event.actor) == (
        S.Terminated,
        S.WaitToStart,
        "auto-start",
    )
    assert event.message is not None and "Spark Connect call" in event.message
    assert upstream.seen_requests == []


async def test_a_call_for_a_starting_engine_waits_and_is_forwarded_once_it_runs(
    store: EngineStore, upstream: Upstream
) -> None:
    engine = await _add(store, upstream, state=S.StartInProgress, endpoint=None)
    async with _proxy(store) as proxy, _channel(proxy) as channel:
        call = asyncio.create_task(_call(channel, [b"x"], _md(engine)))
        await asyncio.sleep(0.5)
        assert not call.done()  # held, not refused
        await _play_monitor(store, engine.id, S.Running, endpoint=f"sc://127.0.0.1:{upstream.port}")
        responses, _ = await asyncio.wait_for(call, 30)
    assert responses == [b"x", b"done"]


async def test_a_call_held_longer_than_the_hold_time_answers_unavailable_with_the_state(
    store: EngineStore, upstream: Upstream
) -> None:
    engine = await _add(store, upstream, state=S.WaitToStart, endpoint=None)
    async with _proxy(store, auto_start_hold_secs=0.3) as proxy, _channel(proxy) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(channel, [b"x"], _md(engine))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "starting" in (caught.value.details() or "")
    assert "WaitToStart" in (caught.value.details() or "")


async def test_a_call_for_an_engine_about_to_stop_keeps_it_running_and_is_forwarded(
    store: EngineStore, upstream: Upstream
) -> None:
    engine = await _add(store, upstream, state=S.WaitToTerminate)
    async with _proxy(store) as proxy, _channel(proxy) as channel:
        responses, _ = await _call(channel, [b"x"], _md(engine))
    assert responses == [b"x", b"done"]
    assert (await store.get(engine_id=engine.id)).state is S.Running
    assert (await store.events(engine_id=engine.id))[-1].actor == "auto-start"


@pytest.mark.parametrize(
    "state",
    [S.ErrorClean, S.ErrorWaitToClean, S.ErrorCleanInProgress],
    ids=str,
)
async def test_an_engine_in_an_error_state_is_not_started(
    store: EngineStore, upstream: Upstream, state: EngineState
) -> None:
    engine = await _add(store, upstream, state=state, message="engine died: exit 137")
    async with _proxy(store) as proxy, _channel(proxy) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(channel, [b"x"], _md(engine))
        assert proxy.auto_starts == 0
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "exit 137" in (caught.value.details() or "")
    after = await store.get(engine_id=engine.id)
    assert (after.state, after.revision) == (state, engine.revision)


async def test_without_auto_start_a_terminated_engine_stays_terminated(
    store: EngineStore, upstream: Upstream
) -> None:
    engine = await _add(store, upstream, state=S.Terminated, endpoint=None)
    config = _config(auto_start_on_connect=False)
    async with _proxy(store, config=config) as proxy, _channel(proxy) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(channel, [b"x"], _md(engine))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "Terminated" in (caught.value.details() or "")
    assert (await store.get(engine_id=engine.id)).state is S.Terminated


async def _activity(store: EngineStore, engine_id: str) -> datetime | None:
    return (await store.get(engine_id=engine_id)).last_activity_time


async def _until_activity(store: EngineStore, engine_id: str, at: datetime) -> None:
    for _ in range(1000):
        if await _activity(store, engine_id) == at:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"last_activity_time never became {at}")


async def test_an_open_stream_refreshes_activity_every_interval_and_a_finished_one_stops(
    store: EngineStore, upstream: Upstream, clock: FakeClock
) -> None:
    engine = await _add(store, upstream)
    async with (
        _proxy(store, clock=clock, activity_interval_secs=0.1) as proxy,
        _channel(proxy) as channel,
    ):
        call = asyncio.create_task(_call(channel, [b"hang"], _md(engine)))
        await asyncio.wait_for(upstream.received.wait(), 10)
        for _ in range(3):  # a long query: each interval writes the clock's time again
            clock.advance(600)
            await _until_activity(store, engine.id, clock())
        refreshed = clock()
        call.cancel()
        await asyncio.wait_for(upstream.cancelled.wait(), 10)
        await asyncio.sleep(0.5)  # the end of the call is written within an interval
        ended = await _activity(store, engine.id)
        assert ended is not None and ended >= refreshed
        clock.advance(600)
        await asyncio.sleep(0.5)  # five intervals: nothing in flight, nothing written
        assert await _activity(store, engine.id) == ended


async def test_an_engine_the_policy_now_refuses_is_not_auto_started_as_it_is_not_restarted(
    store: EngineStore, upstream: Upstream
) -> None:
    engine = await _add(
        store, upstream, state=S.Terminated, endpoint=None, configs={"spark.forbidden": "1"}
    )
    policy = EnginePolicyConfig(
        rules=[PolicyRuleConfig(pattern="spark.forbidden", action="deny")]  # type: ignore[arg-type]
    )
    config = _config(engine_policy=policy)
    async with _proxy(store, config=config) as proxy, _channel(proxy) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(channel, [b"x"], _md(engine))
        assert proxy.auto_starts == 0
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "spark.forbidden" in (caught.value.details() or "")
    assert (await store.get(engine_id=engine.id)).state is S.Terminated


async def test_an_auto_start_beyond_the_callers_quota_is_refused_and_changes_nothing(
    store: EngineStore, upstream: Upstream
) -> None:
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    alice = UserConfig(name="alice", password_hash=hasher.hash("alice-pw"))
    config = RucatConfig(
        connect_port=0,
        auth_provider=AuthProviderConfig(Users=UsersAuthConfig(users=[alice])),
        quotas=QuotasConfig(max_active_engines_per_user=1),
    )
    await _add(store, upstream, owner="alice")  # Running: alice's one active engine
    stopped = await _add(store, upstream, owner="alice", state=S.Terminated, endpoint=None)
    basic = "Basic " + base64.b64encode(b"alice:alice-pw").decode()
    metadata = (("authorization", basic), ("x-rucat-engine-id", stopped.id))
    async with _proxy(store, config=config) as proxy, _channel(proxy) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(channel, [b"x"], metadata)
        assert proxy.auto_starts == 0
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = caught.value.details() or ""
    assert "alice has 1 active engines and max_active_engines_per_user is 1" in details
    assert (await store.get(engine_id=stopped.id)).state is S.Terminated
    assert upstream.seen_requests == []
