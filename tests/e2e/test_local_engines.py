"""Real Spark Connect engines on the local platform, driven over REST.

These automate the seed's two integration tests (a full lifecycle with
queries; a start that fails and says why) and the failures a monitor must
survive: an engine's JVM killed, the monitor killed mid-start, two monitors
sharing one SQLite file.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rucat.engines.spark import bundled_spark_version
from tests.support import free_port, require_java
from tests.support.processes import (
    engine_jvms,
    kill_engines_under,
    rucat,
    rucat_up,
    wait_state,
    write_config,
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


def test_a_killed_engine_goes_to_an_error_state_and_is_cleaned(
    up: tuple[httpx.Client, int, Path],
) -> None:
    client, _, _ = up
    engine_id = client.post("/engine", json=spark_request("victim")).json()["id"]
    wait_state(client, engine_id, {"Running"}, START_TIMEOUT)
    (pid,) = engine_jvms(engine_id)

    os.kill(pid, signal.SIGKILL)

    info = wait_state(client, engine_id, {"ErrorClean"}, 60)
    # The JVM is the supervisor's own child (spark-submit execs it): its status is the signal.
    assert info["message"].startswith(
        "engine died: the Spark Connect server was killed by signal 9 (SIGKILL)"
    ), info
    died = [
        e for e in client.get(f"/engine/{engine_id}/events").json() if e["from_state"] == "Running"
    ]
    assert [e["to_state"] for e in died] == ["ErrorWaitToClean"], died
    assert engine_jvms(engine_id) == []
    assert client.delete(f"/engine/{engine_id}").status_code == 200


@pytest.fixture
def split(tmp_path: Path) -> Iterator[tuple[httpx.Client, Path, dict[str, Any]]]:
    """A `rucat server` alone, on a SQLite file that monitors will share."""
    require_java()
    port = free_port()
    config = {
        **FAST,
        "connect_port": None,
        "data_dir": str(tmp_path / "data"),
        "database": {"Sqlite": {"path": str(tmp_path / "rucat.db")}},
    }
    cfg = write_config(tmp_path / "config.json", **config)
    with rucat(
        "server", "--config-path", str(cfg), "--port", str(port), tmp=tmp_path, name="srv"
    ) as server:
        url = f"http://127.0.0.1:{port}"
        server.wait_http(url)
        try:
            with httpx.Client(base_url=url, timeout=30) as client:
                yield client, cfg, config
        finally:
            kill_engines_under(tmp_path / "data")


def _stop_all(client: httpx.Client, ids: list[str]) -> None:
    for engine_id in ids:
        client.post(f"/engine/{engine_id}/stop")
    for engine_id in ids:
        wait_state(client, engine_id, {"Terminated"}, 120)
        assert engine_jvms(engine_id) == []


def test_a_new_monitor_adopts_engines_of_a_killed_one_without_starting_them_twice(
    split: tuple[httpx.Client, Path, dict[str, Any]], tmp_path: Path
) -> None:
    client, cfg, _ = split
    ids = [client.post("/engine", json=spark_request(f"adopt-{i}")).json()["id"] for i in range(2)]

    with rucat("monitor", "--config-path", str(cfg), tmp=tmp_path, name="m1") as first:
        # Kill it while the engines are being started, before they are Running.
        wait_state(client, ids[0], {"StartInProgress", "Running"}, 60)
        first.kill(signal.SIGKILL)
    assert all(len(engine_jvms(i)) <= 1 for i in ids)

    with rucat("monitor", "--config-path", str(cfg), tmp=tmp_path, name="m2"):
        for engine_id in ids:
            info = wait_state(client, engine_id, {"Running"} | ERROR_STATES, START_TIMEOUT)
            assert info["state"] == "Running", info
            assert len(engine_jvms(engine_id)) == 1
        _stop_all(client, ids)


def test_two_monitors_on_one_sqlite_file_start_every_engine_exactly_once(
    split: tuple[httpx.Client, Path, dict[str, Any]], tmp_path: Path
) -> None:
    client, cfg, _ = split
    with (
        rucat("monitor", "--config-path", str(cfg), tmp=tmp_path, name="a"),
        rucat("monitor", "--config-path", str(cfg), tmp=tmp_path, name="b"),
    ):
        time.sleep(1)  # both monitors up before the engines exist
        ids = [
            client.post("/engine", json=spark_request(f"pair-{i}")).json()["id"] for i in range(3)
        ]
        for engine_id in ids:
            info = wait_state(client, engine_id, {"Running"} | ERROR_STATES, START_TIMEOUT)
            assert info["state"] == "Running", info
        for engine_id in ids:
            assert len(engine_jvms(engine_id)) == 1
            starts = [
                e
                for e in client.get(f"/engine/{engine_id}/events").json()
                if e["to_state"] == "StartInProgress"
            ]
            assert len(starts) == 1, starts
        _stop_all(client, ids)
