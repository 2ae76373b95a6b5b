"""Auto-stop and auto-start with real engines: a pyspark query gets its result,
and a query longer than the auto-stop time is never cut.

A real `rucat up` process, real Spark Connect engines on the local platform,
pyspark through Rucat's proxy. Engines get a short auto-stop (0.1 minutes),
so an idle one is stopped within seconds. The long query is gated by a file:
its UDF runs until the test creates it, so the query lasts as long as the test
needs, whatever the machine's load. The rest of busy tracking (either of two
servers keeps an engine busy; a killed server's call stops counting) runs on
fake engines in test_monitor_on_fake_engines.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from rucat.engines.spark_versions import bundled_spark_version
from tests.support import require_java
from tests.support.processes import (
    engine_jvms,
    rucat_up,
    wait_state,
)

pytestmark = [pytest.mark.java, pytest.mark.slow, pytest.mark.timeout(600)]

AUTO_STOP = 0.1  # minutes: 6 s
#: Proxies refresh busy engines every second; monitors look every half second.
FAST: dict[str, Any] = {
    "check_interval_secs": 0.5,
    "lease_secs": 5,
    "resync_interval_secs": 2,
    "auto_stop": {"busy_refresh_secs": 1},
}
START_TIMEOUT = 240
#: Long enough that an idle engine with AUTO_STOP would have been stopped twice over.
PAST_AUTO_STOP_SECS = 15
ERROR_STATES = {"ErrorWaitToClean", "ErrorTriggerClean", "ErrorCleanInProgress", "ErrorClean"}


def create(client: httpx.Client, name: str, auto_stop: float = AUTO_STOP) -> str:
    body = {
        "name": name,
        "engine_type": "Spark",
        "version": bundled_spark_version(),
        "configs": {"spark.executor.memory": "512m"},
        "auto_stop_minutes": auto_stop,
    }
    response = client.post("/engine", json=body)
    assert response.status_code == 200, response.text
    engine_id: str = response.json()["id"]
    return engine_id


def running(client: httpx.Client, engine_id: str) -> dict[str, Any]:
    info = wait_state(client, engine_id, {"Running"} | ERROR_STATES, START_TIMEOUT)
    assert info["state"] == "Running", info
    return info


def events(client: httpx.Client, engine_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(f"/engine/{engine_id}/events").json()
    return found


def session(connect_port: int, engine_id: str) -> Any:
    from pyspark.sql import SparkSession

    url = f"sc://localhost:{connect_port}/;x-rucat-engine-id={engine_id}"
    return SparkSession.builder.remote(url).create()


class GatedQuery:
    """A pyspark query in a thread whose UDF runs until `release()`."""

    def __init__(self, connect_port: int, engine_id: str, folder: Path) -> None:
        self.started = folder / f"started-{engine_id}"
        self.released = folder / f"released-{engine_id}"
        self.outcome: list[Any] = []
        self.spark = session(connect_port, engine_id)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 180
        while not self.started.exists() and self._thread.is_alive():
            assert time.monotonic() < deadline, "the query never started"
            time.sleep(0.2)
        assert self.started.exists(), f"the query failed: {self.outcome}"

    def _run(self) -> None:
        from pyspark.sql.functions import col, udf
        from pyspark.sql.types import LongType

        started, released = str(self.started), str(self.released)

        @udf(LongType())
        def gated(x: int) -> int:
            import pathlib
            import time

            pathlib.Path(started).touch()
            while not pathlib.Path(released).exists():
                time.sleep(0.2)
            return x * 2

        try:
            rows = self.spark.range(0, 3, 1, 1).select(gated(col("id")).alias("v")).collect()
            self.outcome.append(sorted(r["v"] for r in rows))
        except BaseException as e:
            self.outcome.append(e)

    def release(self) -> Any:
        self.released.touch()
        self._thread.join(120)
        assert not self._thread.is_alive(), "the query did not end after its release"
        return self.outcome[0]

    def abandon(self) -> None:
        self.released.touch()
        self._thread.join(30)


def _counter(metrics: str, name: str) -> float:
    line = next(line for line in metrics.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, int, Path]]:
    require_java()
    tmp = tmp_path_factory.mktemp("idle")
    with (
        rucat_up(tmp, FAST) as (_process, url, connect_port),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client, connect_port, tmp


def test_an_idle_engine_is_auto_stopped_and_a_query_starts_it_again_and_gets_its_result(
    up: tuple[httpx.Client, int, Path],
) -> None:
    client, connect_port, _ = up
    engine_id = create(client, "idle")
    running(client, engine_id)

    stopped = wait_state(client, engine_id, {"Terminated"} | ERROR_STATES, 120)
    assert stopped["state"] == "Terminated", stopped
    stop = next(e for e in events(client, engine_id) if e["from_state"] == "Running")
    assert (stop["to_state"], stop["actor"]) == ("WaitToTerminate", "auto-stop")
    assert stop["message"] == "no Spark Connect activity for 0.1 minutes"
    assert engine_jvms(engine_id) == []

    spark = session(connect_port, engine_id)  # the engine is Terminated: this starts it
    try:
        assert [tuple(r) for r in spark.sql("select 40 + 2").collect()] == [(42,)]
    finally:
        spark.stop()
    start = next(e for e in events(client, engine_id) if e["actor"] == "auto-start")
    assert (start["from_state"], start["to_state"]) == ("Terminated", "WaitToStart")
    assert client.get(f"/engine/{engine_id}").json()["auto_stop_minutes"] == AUTO_STOP

    metrics = client.get("/metrics").text
    assert _counter(metrics, "rucat_engine_auto_stops_total") >= 1
    assert _counter(metrics, "rucat_engine_auto_starts_total") >= 1
    client.post(f"/engine/{engine_id}/stop")


def test_a_query_longer_than_the_auto_stop_is_never_cut_and_the_engine_stops_after_it(
    up: tuple[httpx.Client, int, Path],
) -> None:
    client, connect_port, tmp = up
    engine_id = create(client, "busy")
    running(client, engine_id)
    query = GatedQuery(connect_port, engine_id, tmp)
    try:
        time.sleep(PAST_AUTO_STOP_SECS)  # the query runs on: the engine is busy, not idle
        info = client.get(f"/engine/{engine_id}").json()
        assert info["state"] == "Running", info
        assert not any(e["actor"] == "auto-stop" for e in events(client, engine_id))
        released_at = datetime.now(UTC)
        assert query.release() == [0, 2, 4]  # the whole result: the query was never cut
    finally:
        query.abandon()
        query.spark.stop()

    stopped = wait_state(client, engine_id, {"Terminated"} | ERROR_STATES, 120)
    assert stopped["state"] == "Terminated", stopped
    stop = next(e for e in events(client, engine_id) if e["actor"] == "auto-stop")
    assert datetime.fromisoformat(stop["time"]) > released_at
    assert engine_jvms(engine_id) == []
