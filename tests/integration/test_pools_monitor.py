"""Warm pools with a real monitor, Java-free: the reconciler starts the keeper's engines
as stand-in Spark Connect servers (tests/support/fake_spark.py), a hand-out is Running at
once, the pool refills, a killed idle engine is replaced, and a restarted monitor adopts
the idle engines without starting extra ones.

A real server (uvicorn) and a monitor with its pool keeper in this event loop, as in
`rucat up`, over SQLite and the Local platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from rucat.config import LocalPlatformConfig, PlatformConfig, PoolConfig, RucatConfig
from rucat.domain.engine import Engine
from rucat.domain.state import EngineState
from rucat.monitor.pools import PoolKeeper
from rucat.monitor.runner import build_monitor, build_pool_keeper, run_with_pools
from rucat.platforms.local.platform import LocalPlatform
from rucat.store import EngineStore
from tests.integration.conftest import Api, running_api
from tests.support import eventually
from tests.support.fake_spark import FAKE_VERSION, fake_local_config, fake_server_pids

S = EngineState
CONFIGS = {"spark.sql.shuffle.partitions": "4"}
MATCHING = {"name": "mine", "engine_type": "Spark", "version": FAKE_VERSION, "configs": CONFIGS}


def config_for(tmp_path: Path) -> RucatConfig:
    local = LocalPlatformConfig(**fake_local_config(tmp_path)["Local"], stop_grace_secs=2)
    pool = PoolConfig(name="small", version=FAKE_VERSION, configs=CONFIGS, min_idle=2, max_idle=2)
    return RucatConfig(platform=PlatformConfig(Local=local), pools=[pool], check_interval_secs=0.2)


@contextlib.asynccontextmanager
async def monitor_running(
    config: RucatConfig, store: EngineStore, platform: LocalPlatform
) -> AsyncIterator[PoolKeeper]:
    """A monitor and its pool keeper, running until the block ends; yields the keeper."""
    monitor = build_monitor(config, store=store, platform=platform)
    keeper = build_pool_keeper(config, store=store, platform=platform, monitor=monitor)
    task = asyncio.create_task(run_with_pools(monitor, keeper))
    try:
        yield keeper
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def rucat_up(tmp_path: Path, store: EngineStore) -> AsyncIterator[tuple[Api, LocalPlatform]]:
    config = config_for(tmp_path)
    assert config.platform.Local is not None
    platform = LocalPlatform(config.platform.Local, data_dir=tmp_path / "data")
    try:
        async with (
            monitor_running(config, store, platform),
            running_api(config, store=store, platform=platform) as api,
        ):
            yield api, platform
    finally:
        for engine in await store.list():
            for pid in fake_server_pids(engine.id):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        await platform.close()


async def idle(store: EngineStore) -> list[Engine]:
    return [e for e in await store.list(pool="small") if e.state is S.Running]


async def full_pool(store: EngineStore, *, without: frozenset[str] = frozenset()) -> list[Engine]:
    async def two_idle() -> list[Engine] | None:
        engines = await idle(store)
        fresh = [e for e in engines if e.id not in without]
        return engines if len(engines) == 2 and fresh else None

    return await eventually(two_idle, timeout=60, what="two idle pool engines")


async def test_a_hand_out_is_running_at_once_and_the_pool_refills_in_the_background(
    tmp_path: Path, store: EngineStore
) -> None:
    async with rucat_up(tmp_path, store) as (api, _platform):
        before = await full_pool(store)
        created = await api.client.post("/engine", json=MATCHING)
        assert created.status_code == 200, created.text
        engine_id = created.json()["id"]
        assert engine_id in {e.id for e in before}
        info = (await api.client.get(f"/engine/{engine_id}")).json()
        assert (info["state"], info["name"], info["pool"]) == ("Running", "mine", None)
        assert fake_server_pids(engine_id)  # the same process, now the caller's

        after = await full_pool(store, without=frozenset(e.id for e in before))
        assert engine_id not in {e.id for e in after}
        # The handed-out engine stays Running as an ordinary engine.
        assert (await store.get(engine_id=engine_id)).state is S.Running


async def test_an_idle_pool_engine_that_dies_is_replaced(
    tmp_path: Path, store: EngineStore
) -> None:
    async with rucat_up(tmp_path, store):
        doomed, survivor = await full_pool(store)
        for pid in fake_server_pids(doomed.id):
            os.kill(pid, signal.SIGKILL)
        after = await full_pool(store, without=frozenset({doomed.id, survivor.id}))
        assert survivor.id in {e.id for e in after}
        assert doomed.id not in {e.id for e in after}
        dead = await store.get(engine_id=doomed.id)
        assert dead.state in {
            S.ErrorWaitToClean,
            S.ErrorTriggerClean,
            S.ErrorCleanInProgress,
            S.ErrorClean,
        }


async def test_a_restarted_monitor_adopts_the_idle_engines_and_starts_no_extra_ones(
    tmp_path: Path, store: EngineStore
) -> None:
    config = config_for(tmp_path)
    assert config.platform.Local is not None
    platform = LocalPlatform(config.platform.Local, data_dir=tmp_path / "data")
    try:
        async with monitor_running(config, store, platform) as first:
            before = await full_pool(store)
            assert first.started == 2
        # The monitor is gone; its engines run on. A new one takes over.
        async with monitor_running(config, store, platform) as second:
            for _ in range(3):  # rounds of its own, beside those its loop runs
                await second.run_once()
            assert second.started == 0
            assert sorted(e.id for e in await idle(store)) == sorted(e.id for e in before)
            assert len(await store.list()) == 2
            for engine in before:  # adopted: the same processes serve
                assert fake_server_pids(engine.id)
    finally:
        for engine in await store.list():
            for pid in fake_server_pids(engine.id):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        await platform.close()


async def test_new_pool_engines_are_warmed_by_one_query_and_a_create_takes_a_warm_one(
    tmp_path: Path, store: EngineStore
) -> None:
    async with rucat_up(tmp_path, store) as (api, _platform):

        async def two_warm() -> list[Engine] | None:
            warm = [e for e in await idle(store) if e.last_activity_time is not None]
            return warm if len(warm) == 2 else None

        warm = await eventually(two_warm, timeout=60, what="two warmed pool engines")
        (small,) = (await api.client.get("/pools")).json()
        assert (small["idle"], small["warm"]) == (2, 2)
        created = await api.client.post("/engine", json=MATCHING)
        assert created.status_code == 200, created.text
        assert created.json()["id"] in {e.id for e in warm}
