"""Engine logs under load: reading a log never stalls the REST API nor fills
its memory, and an engine's log never fills the disk.

A real server (and monitor, in one event loop as in `rucat up`), with the
Local platform running stand-in engines (tests/support/fake_spark.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rucat.config import LocalPlatformConfig, PlatformConfig, RucatConfig
from rucat.domain.engine import CreateEngineRequest, EngineType, new_engine
from rucat.domain.state import EngineState
from rucat.monitor.runner import build_monitor
from rucat.platforms import Pending, files
from rucat.platforms.local.platform import LocalPlatform
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
        engine_id = await api.create(version=FAKE_VERSION, configs={"rucat.test.mode": "tcp"})

        async def started() -> bool:
            # This stand-in never speaks Spark Connect: it stays StartInProgress.
            return await state_of(api, engine_id) is EngineState.StartInProgress

        await eventually(started, timeout=30, what="StartInProgress")
        # The log becomes a FIFO without a writer: reading it blocks in open()
        # until the test opens its other end, so the save lasts as long as we wish.
        log = tmp_path / "data" / "engines" / engine_id / "engine.log"
        log.unlink()
        os.mkfifo(log, 0o600)
        fifo = tmp_path / "fifo"
        os.link(log, fifo)
        try:
            response = await api.client.post(f"/engine/{engine_id}/stop")
            assert response.status_code == 200, response.text

            async def saving() -> list[str]:
                return threads_opening_a_fifo()

            await eventually(saving, timeout=30, what="the monitor reading the log")
            for _ in range(3):
                health = await api.client.get("/health")
                assert health.json() == {"status": "ok"}
            # The tail rides on the stop's claim: the engine is not claimed yet.
            assert await state_of(api, engine_id) is EngineState.WaitToTerminate
        finally:
            # Pass or fail, a regular log again (for the stop that follows), and
            # the blocked reader's open() returns: a thread blocked in it for ever
            # would hold the event loop's close, and the whole run, for ever.
            log.unlink()
            log.write_text("")
            with contextlib.suppress(OSError):  # ENXIO: no reader is waiting
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

        async def terminated() -> bool:
            return await state_of(api, engine_id) is EngineState.Terminated

        await eventually(terminated, timeout=30, what="Terminated")


def peak_rss_since_reset() -> int:
    """This process's peak resident memory (bytes) since `reset_peak_rss`."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def sparse_log(path: Path, size: int) -> None:
    """A `size`-byte log of 1 MiB lines ending ``line N``, in holes of a sparse file."""
    line = 1 << 20
    with open(path, "wb") as f:
        for n in range(size // line):
            end = f"line {n}\n".encode()
            f.seek((n + 1) * line - len(end))
            f.write(end)


@pytest.mark.timeout(120)
async def test_a_300_mb_log_is_served_capped_without_the_servers_memory_growing(
    tmp_path: Path, store: EngineStore
) -> None:
    platform = LocalPlatform(LocalPlatformConfig(), data_dir=tmp_path / "data")
    async with running_api(RucatConfig(), store=store, platform=platform) as api:
        engine_id = await api.create()
        folder = tmp_path / "data" / "engines" / engine_id
        folder.mkdir(parents=True)
        size = 300 << 20
        sparse_log(folder / "engine.log", size)
        await api.client.get("/health")  # warm: the first request's imports
        reset_peak_rss()
        before = peak_rss_since_reset()
        response = await api.client.get(f"/engine/{engine_id}/logs")
        grown = peak_rss_since_reset() - before
        assert response.status_code == 200
        logs = response.json()["logs"]
        # Before, the server read all of it: 300 MB of bytes, then as much text and JSON.
        assert grown < 64 << 20, f"the server grew by {grown >> 20} MiB"
        cap = files.TAIL_MAX_BYTES
        assert logs.startswith(files.left_out_marker(size - cap, cap))
        assert logs.endswith("\0line 299\n")
        assert len(logs) < 2 * cap
        tail = (await api.client.get(f"/engine/{engine_id}/logs", params={"tail": 1})).json()
        assert tail["logs"].endswith("\0line 299\n")
        await platform.close()


@pytest.mark.timeout(120)
async def test_an_engines_log_on_disk_is_rotated_below_its_cap_keeping_the_newest_output(
    tmp_path: Path,
) -> None:
    cap = 256 << 10
    local = LocalPlatformConfig(
        spark_homes={FAKE_VERSION: str(make_fake_spark_home(tmp_path))}, log_max_bytes=cap
    )
    platform = LocalPlatform(local, data_dir=tmp_path)
    request = CreateEngineRequest(
        name="t",
        engine_type=EngineType.Spark,
        version=FAKE_VERSION,
        configs={"rucat.test.mode": "flood:4096"},  # 4 MiB, then the port's line
    )
    e = new_engine(request, platform="Local", now=datetime.now(UTC))
    folder = tmp_path / "engines" / e.id
    try:
        await platform.start(engine=e)

        async def serving() -> Pending | None:
            seen = await platform.inspect(engine=e)
            return seen if isinstance(seen, Pending) and "does not answer" in seen.detail else None

        # The port's line came after the flood and its rotations: it is still found.
        await eventually(serving, timeout=60, what="the port after the flood")
        log, rotated = folder / "engine.log", folder / "engine.log.1"

        async def within_cap() -> bool:  # checked 4 times a second by the supervisor
            return log.stat().st_size + rotated.stat().st_size <= cap

        await eventually(within_cap, timeout=10, what="the log within its cap")
        assert (folder / "engine.log.rotated").exists()
        assert "flood 00004095 " in log.read_text() + rotated.read_text()
        assert "flood 00000000 " not in log.read_text() + rotated.read_text()
        assert stat.S_IMODE(rotated.stat().st_mode) == 0o600
        assert "Spark Connect server started at" in await platform.logs(engine=e, tail=5)
    finally:
        await platform.forget(engine=e)
        await platform.close()
