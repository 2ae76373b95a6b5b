"""Running a monitor from config: the glue between `RucatConfig` and `Monitor`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from rucat.config import RucatConfig
from rucat.domain.connect import dial_target
from rucat.domain.engine import Engine
from rucat.domain.monitor_decisions import Timing
from rucat.monitor.pools import PoolKeeper
from rucat.monitor.reconciler import Monitor, utc_now
from rucat.platforms import Platform
from rucat.platforms.offer import platform_offer
from rucat.platforms.pool_profiles import pool_profiles
from rucat.store import EngineStore


def timing_from(config: RucatConfig) -> Timing:
    return Timing(
        check_interval=config.check_interval_secs,
        start_timeout=config.start_timeout_secs,
        lease=config.lease_secs,
        fast_poll=min(0.25, config.check_interval_secs),
        resync=max(config.resync_interval_secs, config.check_interval_secs),
        busy_grace=2 * config.auto_stop.busy_refresh_secs,
    )


def build_monitor(
    config: RucatConfig,
    *,
    store: EngineStore,
    platform: Platform,
    clock: Callable[[], datetime] = utc_now,
) -> Monitor:
    return Monitor(
        store=store,
        platform=platform,
        timing=timing_from(config),
        max_concurrency=config.max_concurrency,
        clock=clock,
    )


def build_pool_keeper(
    config: RucatConfig,
    *,
    store: EngineStore,
    platform: Platform,
    monitor: Monitor,
    clock: Callable[[], datetime] = utc_now,
) -> PoolKeeper:
    """The keeper of config.pools; it wakes `monitor` for each engine it adds or stops,
    and warms each new pool engine with one query of its engine kind."""
    kind = platform_offer(config.platform).kind

    async def warm_up(engine: Engine) -> None:
        if engine.endpoint is None:
            return
        await kind.warm_up(
            engine_id=engine.id,
            target=dial_target(engine.endpoint),
            token=engine.connect_token,
            timeout=config.start_timeout_secs,
        )

    return PoolKeeper(
        store=store,
        platform=platform,
        profiles=pool_profiles(config),
        check_interval=config.check_interval_secs,
        clock=clock,
        notify=monitor.wake,
        warm_up=warm_up,
    )


async def run_with_pools(monitor: Monitor, keeper: PoolKeeper) -> None:
    """Run the monitor and the pool keeper until cancelled (or one of them fails)."""
    tasks = [
        asyncio.create_task(monitor.run(), name="rucat-monitor-loop"),
        asyncio.create_task(keeper.run(), name="rucat-pools"),
    ]
    try:
        while tasks:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise what stopped it
                tasks.remove(task)  # a keeper without pools returns at once
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
