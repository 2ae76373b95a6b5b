"""Engine logs under load: reading a log never stalls the REST API.

A real server and monitor in one event loop (as in `rucat up`), with the Local
platform running stand-in engines (tests/support/fake_spark.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rucat.config import LocalPlatformConfig, PlatformConfig, RucatConfig
from rucat.domain.state import EngineState
from rucat.monitor.runner import build_monitor
from rucat.platforms.local import LocalPlatform
from rucat.store import EngineStore
from tests.conftest import FakeClock
from tests.integration.conftest import Api, running_api
from tests.support import eventually
from tests.support.fake_spark import FAKE_VERSION, make_fake_spark_home


@contextlib.asynccontextmanager
async def rucat_up(tmp_path: Path, store: EngineStore) -> AsyncIterator[Api]:
    """The REST API and a monitor over the Local platform, in this event loop."""
    local = LocalPlatformConfig(
        spark_homes={FAKE_VERSION: str(make_fake_spark_home(tmp_path))}, stop_grace_secs=2
    )
    config = RucatConfig(platform=PlatformConfig(Local=local), check_interval_secs=0.2)
    platform = LocalPlatform(local, data_dir=tmp_path / "data")
    monitor = build_monitor(config, store=store, platform=platform)
    running = asyncio.create_task(monitor.run())
    try:
        async with running_api(
            config, store=store, platform=platform, clock=FakeClock(datetime.now(UTC))
        ) as api:
            yield api
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await platform.close()


async def state_of(api: Api, engine_id: str) -> EngineState:
    return (await api.engine(engine_id)).state


def threads_opening_a_fifo() -> list[str]:
    """Threads of this process blocked in open() of a FIFO no one writes to."""
    waiting = []
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            if Path(f"/proc/self/task/{tid}/wchan").read_text() == "wait_for_partner":
                waiting.append(tid)
    return waiting


@pytest.mark.timeout(60)
async def test_health_answers_while_an_engines_log_tail_is_being_saved(
    tmp_path: Path, store: EngineStore
) -> None:
    async with rucat_up(tmp_path, store) as api:
        engine_id = await api.create(version=FAKE_VERSION)

        async def started() -> bool:
            # The stand-in never speaks Spark Connect: it stays StartInProgress.
            return await state_of(api, engine_id) is EngineState.StartInProgress

        await eventually(started, timeout=30, what="StartInProgress")
        # The log becomes a FIFO without a writer: reading it blocks in open()
        # until the test opens its other end, so the save lasts as long as we wish.
        log = tmp_path / "data" / "engines" / engine_id / "engine.log"
        log.unlink()
        os.mkfifo(log, 0o600)
        response = await api.client.post(f"/engine/{engine_id}/stop")
        assert response.status_code == 200, response.text

        async def saving() -> list[str]:
            return threads_opening_a_fifo()

        await eventually(saving, timeout=30, what="the monitor reading the log")
        for _ in range(3):
            health = await api.client.get("/health")
            assert health.json() == {"status": "ok"}
        assert await state_of(api, engine_id) is EngineState.TriggerTermination

        # A regular log again for the stop that follows; then the reader's open returns.
        os.link(log, tmp_path / "fifo")
        log.unlink()
        log.write_text("")
        os.close(os.open(tmp_path / "fifo", os.O_WRONLY | os.O_NONBLOCK))

        async def terminated() -> bool:
            return await state_of(api, engine_id) is EngineState.Terminated

        await eventually(terminated, timeout=30, what="Terminated")
