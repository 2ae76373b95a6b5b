"""Real Spark Connect engines on the local platform, driven over REST.

These automate the seed's two integration tests: a full lifecycle with
queries, and a start that fails and says why in Spark's own words. The
failures a monitor must survive (an engine killed, a monitor killed mid-start,
an expired lease, two monitors on one store) need no Spark: they run on fake
engines in test_monitor_on_fake_engines.py.
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

pytestmark = [pytest.mark.java, pytest.mark.timeout(420)]

FAST = {"check_interval_secs": 0.5, "lease_secs": 5, "resync_interval_secs": 2}
START_TIMEOUT = 240
ERROR_STATES = {"ErrorWaitToClean", "ErrorTriggerClean", "ErrorCleanInProgress", "ErrorClean"}


def spark_request(name: str, **configs: str) -> dict[str, Any]:
    return {
        "name": name,
        "engine_type": "Spark",
        "version": bundled_spark_version(),
        "configs": {"spark.executor.memory": "512m", **configs},
    }


def query(connect_port: int, engine_id: str, sql: str) -> list[Any]:
    from pyspark.sql import SparkSession

    url = f"sc://localhost:{connect_port}/;x-rucat-engine-id={engine_id}"
    # create(), not getOrCreate(): a session another test left open (to an engine or
    # proxy that is gone) must never be reused here.
    spark = SparkSession.builder.remote(url).create()
    try:
        return [tuple(row) for row in spark.sql(sql).collect()]
    finally:
        spark.stop()


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, int, Path]]:
    require_java()
    tmp = tmp_path_factory.mktemp("up")
    with (
        rucat_up(tmp, FAST) as (_process, url, connect_port),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client, connect_port, tmp / "data"


def test_an_engine_lives_runs_queries_stops_restarts_and_is_deleted(
    up: tuple[httpx.Client, int, Path],
) -> None:
    client, connect_port, data_dir = up
    engine_id = client.post("/engine", json=spark_request("lifecycle")).json()["id"]

    info = wait_state(client, engine_id, {"Running"} | ERROR_STATES, START_TIMEOUT)
    assert info["state"] == "Running", info
    assert info["endpoint"].startswith("sc://")
    assert info["name"] == "lifecycle"
    assert info["configs"]["spark.executor.memory"] == "512m"
    assert query(connect_port, engine_id, "select 1 + 1") == [(2,)]
    assert len(engine_jvms(engine_id)) == 1

    assert client.post(f"/engine/{engine_id}/stop").status_code == 200
    info = wait_state(client, engine_id, {"Terminated"}, 120)
    assert info["endpoint"] is None
    assert engine_jvms(engine_id) == []

    assert client.post(f"/engine/{engine_id}/restart").status_code == 200
    wait_state(client, engine_id, {"Running"}, START_TIMEOUT)
    assert query(connect_port, engine_id, "select count(*) from range(1000)") == [(1000,)]

    client.post(f"/engine/{engine_id}/stop")
    wait_state(client, engine_id, {"Terminated"}, 120)
    logs = client.get(f"/engine/{engine_id}/logs").json()["logs"]
    assert "SparkConnectServer" in logs or "Spark Connect" in logs

    assert client.delete(f"/engine/{engine_id}").status_code == 200
    assert client.get(f"/engine/{engine_id}").status_code == 404
    assert not (data_dir / "engines" / engine_id).exists()


def test_an_engine_that_cannot_start_says_why_and_can_be_deleted(
    up: tuple[httpx.Client, int, Path],
) -> None:
    client, _, _ = up
    request = spark_request("broken", **{"spark.driver.memory": "1z"})
    engine_id = client.post("/engine", json=request).json()["id"]

    info = wait_state(client, engine_id, {"ErrorClean"}, START_TIMEOUT)
    # The JVM refuses the heap size and exits: the message says how, and shows its log.
    assert info["message"].startswith("the Spark Connect server exited with status "), info
    assert "1z" in info["message"], info
    logs = client.get(f"/engine/{engine_id}/logs").json()["logs"]
    assert logs.strip(), "the failed engine's log is readable"
    events = client.get(f"/engine/{engine_id}/events").json()
    path = [(e["from_state"], e["to_state"]) for e in events]
    # Seen failing while starting, then cleaned through every error state, in order.
    failed_at = path.index(("StartInProgress", "ErrorWaitToClean"))
    assert path[failed_at:] == [
        ("StartInProgress", "ErrorWaitToClean"),
        ("ErrorWaitToClean", "ErrorTriggerClean"),
        ("ErrorTriggerClean", "ErrorCleanInProgress"),
        ("ErrorCleanInProgress", "ErrorClean"),
    ], path
    assert events[failed_at]["message"] == info["message"]

    assert client.delete(f"/engine/{engine_id}").status_code == 200
    assert client.get(f"/engine/{engine_id}").status_code == 404
