"""Running a monitor from config: the glue between `RucatConfig` and `Monitor`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rucat.config import RucatConfig
from rucat.domain.reconcile import Timing
from rucat.monitor.reconciler import Monitor, utc_now
from rucat.platforms import Platform
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
