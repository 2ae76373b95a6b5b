"""Real Spark Connect engines on a real Spark standalone cluster, driven over REST.

The cluster (tests/support/standalone.py) is a master and one worker of 1 core
and 1 GiB, started from the installed pyspark. These are the seed's two
integration tests on it (a full lifecycle with queries; a start that fails
and says why), with what only a cluster shows: the query's tasks run in an
executor on the worker, a stopped engine's application is finished on the
master, a version the master does not run is refused naming both, and a
master that dies fails the engines on it. Engines start one at a time: the
worker has one core.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rucat.engines.spark_launch import app_name
from rucat.engines.spark_versions import bundled_spark_home, bundled_spark_version
from tests.support.processes import engine_jvms, rucat_up, wait_state
from tests.support.standalone import StandaloneCluster, start_cluster

pytestmark = [pytest.mark.java, pytest.mark.slow, pytest.mark.timeout(600)]

FAST = {"check_interval_secs": 0.5, "lease_secs": 5, "resync_interval_secs": 2}
START_TIMEOUT = 300
ERROR_STATES = {"ErrorWaitToClean", "ErrorTriggerClean", "ErrorCleanInProgress", "ErrorClean"}
#: A version configured with a SPARK_HOME, but not the cluster's (4.x).
OTHER_VERSION = "3.5.3"


def spark_request(name: str, version: str | None = None, **configs: str) -> dict[str, Any]:
    return {
        "name": name,
        "engine_type": "Spark",
        "version": version or bundled_spark_version(),
        "configs": {"spark.executor.memory": "512m", **configs},
    }


def standalone_config(cluster: StandaloneCluster, **fields: Any) -> dict[str, Any]:
    return {
        **FAST,
        **fields,
        "platform": {
            "Standalone": {
                "master_url": cluster.master_url,
                "master_web_url": cluster.master_web_url,
                "poll_interval_secs": 1.0,
                "spark_homes": {OTHER_VERSION: str(bundled_spark_home())},
            }
        },
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
def up(
    standalone_cluster: StandaloneCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, int, Path]]:
    tmp = tmp_path_factory.mktemp("up")
    with (
        rucat_up(tmp, standalone_config(standalone_cluster)) as (_process, url, connect_port),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client, connect_port, tmp / "data"


def active_app(cluster: StandaloneCluster, engine_id: str) -> dict[str, Any] | None:
    apps = [a for a in cluster.state()["activeapps"] if a["name"] == app_name(engine_id)]
    return apps[0] if apps else None


def test_an_engine_lives_runs_queries_on_the_worker_stops_restarts_and_is_deleted(
    up: tuple[httpx.Client, int, Path], standalone_cluster: StandaloneCluster
) -> None:
    client, connect_port, data_dir = up
    cluster = standalone_cluster
    engine_id = client.post("/engine", json=spark_request("lifecycle")).json()["id"]

    info = wait_state(client, engine_id, {"Running"} | ERROR_STATES, START_TIMEOUT)
    assert info["state"] == "Running", info
    assert info["platform"] == "Standalone"
    assert info["endpoint"].startswith("sc://")
    # Running means the master lists the application, not only that Connect answers.
    app = active_app(cluster, engine_id)
    assert app is not None, cluster.state()["activeapps"]

    # The driver has no executor of its own: a query that returns ran on the worker.
    assert query(connect_port, engine_id, "select sum(id) from range(100)") == [(4950,)]
    app = active_app(cluster, engine_id)
    assert app is not None and app["state"] == "RUNNING" and app["cores"] == 1, app
    (worker,) = cluster.state()["workers"]
    assert worker["coresused"] == 1
    executors = [e for e in cluster.worker_state()["executors"] if e["appid"] == app["id"]]
    assert len(executors) == 1, cluster.worker_state()
    assert len(engine_jvms(engine_id)) == 1  # the driver; executors name the app, not the engine

    assert client.post(f"/engine/{engine_id}/stop").status_code == 200
    info = wait_state(client, engine_id, {"Terminated"}, 120)
    assert info["endpoint"] is None
    assert engine_jvms(engine_id) == []
    assert active_app(cluster, engine_id) is None
    finished = {a["id"]: a["state"] for a in cluster.state()["completedapps"]}
    assert finished[app["id"]] == "FINISHED"

    assert client.post(f"/engine/{engine_id}/restart").status_code == 200
    wait_state(client, engine_id, {"Running"}, START_TIMEOUT)
    assert query(connect_port, engine_id, "select count(*) from range(1000)") == [(1000,)]
    second = active_app(cluster, engine_id)
    assert second is not None and second["id"] != app["id"]

    client.post(f"/engine/{engine_id}/stop")
    wait_state(client, engine_id, {"Terminated"}, 120)
    assert engine_jvms(engine_id) == []
    logs = client.get(f"/engine/{engine_id}/logs").json()["logs"]
    assert "SparkConnectServer" in logs or "Spark Connect" in logs

    assert client.delete(f"/engine/{engine_id}").status_code == 200
    assert client.get(f"/engine/{engine_id}").status_code == 404
    assert not (data_dir / "engines" / engine_id).exists()


def test_an_engine_that_cannot_start_says_why_and_can_be_deleted(
    up: tuple[httpx.Client, int, Path],
) -> None:
    client, _, _ = up
    # Allowed by the Standalone conf policy (spark.driver.memory=1z is refused up front),
    # and fatal in SparkContext's start-up, long before any executor.
    request = spark_request("broken", **{"spark.network.timeout": "1s"})
    engine_id = client.post("/engine", json=request).json()["id"]

    info = wait_state(client, engine_id, {"ErrorClean"}, START_TIMEOUT)
    assert info["message"].startswith("the driver failed: "), info
    assert "spark.network.timeout=1000ms must be greater than" in info["message"], info
    events = {e["to_state"] for e in client.get(f"/engine/{engine_id}/events").json()}
    assert {"ErrorWaitToClean", "ErrorCleanInProgress", "ErrorClean"} <= events, events
    assert engine_jvms(engine_id) == []

    assert client.delete(f"/engine/{engine_id}").status_code == 200
    assert client.get(f"/engine/{engine_id}").status_code == 404


def test_a_version_the_master_does_not_run_is_refused_naming_both_versions(
    up: tuple[httpx.Client, int, Path], standalone_cluster: StandaloneCluster
) -> None:
    client, _, _ = up
    engine_id = client.post("/engine", json=spark_request("old", OTHER_VERSION)).json()["id"]

    info = wait_state(client, engine_id, {"ErrorClean"}, 60)
    assert f"Spark {OTHER_VERSION} cannot run on the standalone master" in info["message"]
    assert f"which runs Spark {bundled_spark_version()}" in info["message"]
    assert engine_jvms(engine_id) == []
    assert client.delete(f"/engine/{engine_id}").status_code == 200


@pytest.fixture
def doomed_cluster() -> Iterator[StandaloneCluster]:
    """A cluster of its own: the test kills its master."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_a_killed_master_fails_its_running_engine_which_is_then_cleaned(
    doomed_cluster: StandaloneCluster, tmp_path: Path
) -> None:
    with (
        # No resync within the test: only the platform's poll of the master can notice.
        rucat_up(tmp_path, standalone_config(doomed_cluster, resync_interval_secs=3600)) as (
            _process,
            url,
            _,
        ),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        engine_id = client.post("/engine", json=spark_request("orphan")).json()["id"]
        info = wait_state(client, engine_id, {"Running"} | ERROR_STATES, START_TIMEOUT)
        assert info["state"] == "Running", info
        assert len(engine_jvms(engine_id)) == 1

        doomed_cluster.kill_master()

        info = wait_state(client, engine_id, {"ErrorClean"}, 90)
        assert info["message"].startswith(
            f"engine died: the standalone master at {doomed_cluster.master_web_url} "
            "refuses connections"
        ), info
        assert engine_jvms(engine_id) == []  # the driver would have waited forever
        events = [e["to_state"] for e in client.get(f"/engine/{engine_id}/events").json()]
        assert "ErrorWaitToClean" in events, events
        assert client.delete(f"/engine/{engine_id}").status_code == 200
