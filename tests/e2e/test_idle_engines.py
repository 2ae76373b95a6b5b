"""Auto-stop and auto-start with a real engine: a pyspark query gets its result.

A real `rucat up` process, a real Spark Connect engine on the local platform,
pyspark through Rucat's proxy. The engine gets a short auto-stop (0.1
minutes), so it is stopped within seconds when idle. Busy tracking (a long
call is never cut; either of two servers keeps an engine busy) needs no
Spark: it runs on fake engines in test_monitor_on_fake_engines.py.
"""

from __future__ import annotations

from collections.abc import Iterator
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
