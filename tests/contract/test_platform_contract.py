"""The Platform contract, run against every platform in tests/support/platforms.py.

Engines are real Spark Connect servers. Starting one costs seconds, so the
module starts three at once (which is itself the test that concurrent starts
never collide) and the tests share them: `steady` stays up for the read-only
tests, `doomed` is crashed, `stopped` is stopped and forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine
from rucat.domain.errors import PlatformRejected, RucatError
from rucat.engines import spark_launch, spark_versions
from rucat.platforms import Absent, Failed, Observation, Pending, Platform, Ready
from tests.support import eventually
from tests.support.platforms import PLATFORMS, PlatformUnderTest

pytestmark = [
    pytest.mark.java,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.asyncio(loop_scope="module"),
]

START_TIMEOUT = 180.0


def spark_engine(name: str, **configs: str) -> Engine:
    request = CreateEngineRequest(
        name=name,
        engine_type=EngineType.Spark,
        version=spark_versions.bundled_spark_version(),
        configs={"spark.executor.memory": "512m", **configs},
    )
    return new_engine(request, platform="Local", now=datetime.now(UTC))


@dataclass
class Started:
    engine: Engine
    #: What inspect said right after start returned.
    first: Observation
    ready: Ready


@dataclass
class Fleet:
    put: PlatformUnderTest
    data_dir: Path
    platform: Platform
    steady: Started
    doomed: Started
    stopped: Started


@pytest.fixture(scope="module", params=[p for _, p in PLATFORMS], ids=[i for i, _ in PLATFORMS])
def put(request: pytest.FixtureRequest) -> PlatformUnderTest:
    platform_under_test: PlatformUnderTest = request.param
    platform_under_test.require()
    return platform_under_test


async def wait_ready(platform: Platform, engine: Engine) -> Ready:
    async def ready() -> Ready | None:
        seen = await platform.inspect(engine=engine)
        assert not isinstance(seen, Failed | Absent), seen
        return seen if isinstance(seen, Ready) else None

    return await eventually(ready, timeout=START_TIMEOUT, what=f"engine {engine.id} Ready")


async def wait_absent(platform: Platform, engine: Engine) -> None:
    async def absent() -> bool:
        return await platform.inspect(engine=engine) == Absent()

    await eventually(absent, timeout=60, what=f"engine {engine.id} Absent")


async def start_one(platform: Platform, engine: Engine) -> Started:
    await platform.start(engine=engine)
    first = await platform.inspect(engine=engine)
    return Started(engine, first, await wait_ready(platform, engine))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fleet(
    put: PlatformUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Fleet]:
    data_dir = tmp_path_factory.mktemp("platform")
    platform = put.make(data_dir)
    await platform.check()
    engines = [spark_engine(n) for n in ("steady", "doomed", "stopped")]
    try:
        steady, doomed, stopped = await asyncio.gather(*(start_one(platform, e) for e in engines))
        yield Fleet(put, data_dir, platform, steady, doomed, stopped)
    finally:
        for engine in engines:
            with contextlib.suppress(RucatError):
                await platform.forget(engine=engine)
        await platform.close()


async def query(put: PlatformUnderTest, endpoint: str, token: str | None, sql: str) -> list[tuple]:
    def run() -> list[tuple]:
        from pyspark.sql import SparkSession

        session = SparkSession.builder.remote(put.client_url(endpoint, token)).create()
        try:
            return [tuple(row) for row in session.sql(sql).collect()]
        finally:
            session.stop()

    return await asyncio.to_thread(run)


# --- start and inspect ------------------------------------------------------


async def test_inspect_right_after_start_is_pending_then_ready(fleet: Fleet) -> None:
    for started in (fleet.steady, fleet.doomed, fleet.stopped):
        assert isinstance(started.first, Pending)
        assert started.ready.endpoint.startswith("sc://")


async def test_concurrent_starts_get_distinct_endpoints(fleet: Fleet) -> None:
    endpoints = {s.ready.endpoint for s in (fleet.steady, fleet.doomed, fleet.stopped)}
    assert len(endpoints) == 3


def needs_spark(fleet: Fleet) -> None:
    if not fleet.put.runs_spark:
        pytest.skip("no Spark Connect server answers behind this platform's endpoints")


async def test_a_ready_engine_runs_a_query_with_its_token(fleet: Fleet) -> None:
    needs_spark(fleet)
    engine, endpoint = fleet.steady.engine, fleet.steady.ready.endpoint
    rows = await query(fleet.put, endpoint, engine.connect_token, "select 40 + 2 as answer")
    assert rows == [(42,)]


async def test_a_connection_without_the_engine_token_is_refused(fleet: Fleet) -> None:
    needs_spark(fleet)
    endpoint = fleet.steady.ready.endpoint
    with pytest.raises(Exception, match=r"(?i)unauthenticated|authentication"):
        await asyncio.wait_for(query(fleet.put, endpoint, None, "select 1"), timeout=60)
    with pytest.raises(Exception, match=r"(?i)unauthenticated|authentication"):
        await asyncio.wait_for(query(fleet.put, endpoint, "not-the-token", "select 1"), 60)


async def test_a_ready_engines_spark_ui_answers_on_its_endpoints_host_under_rucats_prefix(
    fleet: Fleet,
) -> None:
    needs_spark(fleet)
    engine, endpoint = fleet.steady.engine, fleet.steady.ready.endpoint
    port = await fleet.platform.ui_port(engine=engine)
    assert port is not None
    host = endpoint.removeprefix("sc://").rsplit(":", 1)[0]
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=30) as ui:
        apps = (await ui.get("/api/v1/applications")).json()
        jobs = await ui.get("/jobs/")
    assert [app["name"] for app in apps] == [spark_launch.app_name(engine.id)]
    assert f'href="{spark_launch.ui_proxy_base(engine.id)}/static/' in jobs.text


async def test_start_of_a_running_engine_starts_nothing(fleet: Fleet) -> None:
    engine = fleet.steady.engine
    await fleet.platform.start(engine=engine)
    await fleet.platform.start(engine=engine)
    assert await fleet.put.servers(engine) == 1
    assert await fleet.platform.inspect(engine=engine) == fleet.steady.ready


async def test_a_new_platform_instance_adopts_a_running_engine(fleet: Fleet) -> None:
    engine = fleet.steady.engine
    restarted = fleet.put.make(fleet.data_dir)
    try:
        assert await restarted.inspect(engine=engine) == fleet.steady.ready
        await restarted.start(engine=engine)
        assert await fleet.put.servers(engine) == 1
        assert await restarted.inspect(engine=engine) == fleet.steady.ready
    finally:
        await restarted.close()


async def test_logs_return_the_last_lines_of_a_running_engine(fleet: Fleet) -> None:
    engine = fleet.steady.engine
    whole = await fleet.platform.logs(engine=engine)
    tail = await fleet.platform.logs(engine=engine, tail=3)
    assert "Spark" in whole
    assert 0 < len(tail.splitlines()) <= 3
    assert whole.endswith(tail)


# --- failures ---------------------------------------------------------------


async def test_a_crashed_engine_is_failed_and_reported_by_changes(fleet: Fleet) -> None:
    engine, platform = fleet.doomed.engine, fleet.platform
    changes = platform.changes()

    async def reported_failed() -> Failed:
        # A platform may report an engine for other reasons too: wait for the
        # report after which inspect says Failed.
        async for engine_id in changes:
            if engine_id == engine.id:
                seen = await platform.inspect(engine=engine)
                if isinstance(seen, Failed):
                    return seen
        raise AssertionError("changes() ended")

    watching = asyncio.create_task(reported_failed())
    await asyncio.sleep(0.5)  # let the watcher take its first look at the live engine
    await fleet.put.crash(engine)
    try:
        failed = await asyncio.wait_for(watching, timeout=60)
    finally:
        watching.cancel()
        await changes.aclose()  # type: ignore[attr-defined]

    assert failed.reason
    assert await fleet.put.servers(engine) == 0
    assert await platform.inspect(engine=engine) == failed


async def test_a_config_that_breaks_the_start_gives_failed_with_a_reason(fleet: Fleet) -> None:
    engine = spark_engine("broken", **{"spark.driver.memory": "1z"})
    platform = fleet.platform
    try:
        try:
            await platform.start(engine=engine)
        except PlatformRejected as e:  # refused up front, naming the conf: fine too
            assert "spark.driver.memory" in e.message
            return

        async def failed() -> Failed | None:
            seen = await platform.inspect(engine=engine)
            assert not isinstance(seen, Ready | Absent), seen
            return seen if isinstance(seen, Failed) else None

        reason = (await eventually(failed, timeout=START_TIMEOUT, what="Failed")).reason
        logs = await platform.logs(engine=engine)
        assert "Invalid maximum heap size" in reason + logs
    finally:
        await platform.forget(engine=engine)


# --- stop and forget --------------------------------------------------------


async def test_stop_removes_every_process_and_keeps_logs_until_forget(fleet: Fleet) -> None:
    engine = fleet.stopped.engine
    platform = fleet.platform
    await platform.stop(engine=engine)
    assert await fleet.put.servers(engine) == 0
    await wait_absent(platform, engine)  # a pod may take a moment to go
    if fleet.put.keeps_logs_after_stop:
        assert "Spark" in await platform.logs(engine=engine)

    await platform.stop(engine=engine)  # again: nothing to do, no error
    assert await platform.inspect(engine=engine) == Absent()

    await platform.forget(engine=engine)
    assert await platform.logs(engine=engine) == ""
    assert await platform.logs(engine=engine, tail=10) == ""
    assert await platform.inspect(engine=engine) == Absent()


async def test_an_engine_never_started_is_absent_and_stop_and_forget_are_fine(
    fleet: Fleet,
) -> None:
    engine = spark_engine("never")
    platform = fleet.platform
    assert await platform.inspect(engine=engine) == Absent()
    await platform.stop(engine=engine)
    await platform.forget(engine=engine)
    assert await platform.logs(engine=engine) == ""
    assert await platform.inspect(engine=engine) == Absent()
