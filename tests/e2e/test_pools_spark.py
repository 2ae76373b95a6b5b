"""Warm pools with real Spark engines: a real `rucat up` keeps one idle engine, a matching
create gets it Running at once and queries it through the proxy, the pool refills, and an
idle engine killed behind Rucat's back is replaced.

One `rucat up` for the module (its pool's engines are the slow part); the tests run in
order and each leaves the pool refilling.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from typer.testing import CliRunner

from rucat.cli import app
from rucat.client import RucatClient, RucatClientError
from rucat.engines.spark_versions import bundled_spark_version
from tests.support import require_java
from tests.support.processes import RucatProcess, engine_jvms, rucat_up

pytestmark = [pytest.mark.java]

TOKEN = "pool-test-token"
VERSION = bundled_spark_version()
CONFIGS = {"spark.sql.shuffle.partitions": "2"}
MATCHING = {"name": "warm", "engine_type": "Spark", "version": VERSION, "configs": CONFIGS}
#: A real engine's start on a loaded 2-core machine.
START_SECS = 240
#: Engines this module's tests took from the pool, in order.
HANDED: list[str] = []


@dataclass(frozen=True)
class Up:
    process: RucatProcess
    url: str
    connect_port: int
    http: httpx.Client
    sdk: RucatClient


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    require_java()
    tmp = tmp_path_factory.mktemp("pools")
    config = {
        "check_interval_secs": 0.5,
        "auth_provider": {"StaticAuthProviderConfig": {"bearer_token": TOKEN}},
        "pools": [
            {
                "name": "small",
                "version": VERSION,
                "configs": CONFIGS,
                "min_idle": 1,
                "max_idle": 1,
            }
        ],
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with (
        rucat_up(tmp, config) as (process, url, connect_port),
        httpx.Client(base_url=url, headers=headers, timeout=30) as http,
        RucatClient(url, token=TOKEN, connect_port=connect_port) as sdk,
    ):
        yield Up(process=process, url=url, connect_port=connect_port, http=http, sdk=sdk)


def pool(up: Up) -> dict[str, object]:
    response = up.http.get("/pools")
    assert response.status_code == 200, response.text
    (small,) = response.json()
    assert isinstance(small, dict)
    return small


def idle_engines(up: Up) -> list[str]:
    """Ids of the pool's Running engines (admins see them: they have no owner)."""
    ids = [e["id"] for e in up.http.get("/engines", params={"state": "Running"}).json()]
    infos = [up.http.get(f"/engine/{engine_id}").json() for engine_id in ids]
    return [info["id"] for info in infos if info.get("pool") == "small"]


def wait_for_idle(up: Up, *, other_than: frozenset[str] = frozenset()) -> str:
    """The pool's idle engine once there is one not in `other_than`."""
    deadline = time.monotonic() + START_SECS
    while time.monotonic() < deadline:
        fresh = [e for e in idle_engines(up) if e not in other_than]
        if fresh:
            return fresh[0]
        time.sleep(0.5)
    raise AssertionError(
        f"no idle pool engine within {START_SECS}s:\n{up.process.output()[-3000:]}"
    )


def forget(up: Up, engine_id: str) -> None:
    """Leave no JVM behind whatever happened."""
    with contextlib.suppress(RucatClientError):
        up.sdk.stop(engine_id)
    with contextlib.suppress(RucatClientError):
        up.sdk.wait_until(engine_id, "Terminated", timeout=120)
    for pid in engine_jvms(engine_id):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(600)
def test_a_matching_create_gets_a_running_engine_whose_first_query_answers(up: Up) -> None:
    warm = wait_for_idle(up)
    created = up.http.post("/engine", json=MATCHING)
    assert created.status_code == 200, created.text
    engine_id = created.json()["id"]
    HANDED.append(engine_id)
    try:
        assert engine_id == warm
        info = up.http.get(f"/engine/{engine_id}").json()
        assert (info["state"], info["name"], info["pool"]) == ("Running", "warm", None)
        spark = up.sdk.spark_session(engine_id)
        try:
            assert spark.sql("select 1 as one").collect()[0]["one"] == 1
            partitions = spark.conf.get("spark.sql.shuffle.partitions")
            assert partitions == "2"  # the pool's profile
        finally:
            spark.stop()
    finally:
        forget(up, engine_id)


@pytest.mark.timeout(600)
def test_the_pool_refills_to_min_idle_in_the_background(up: Up) -> None:
    handed = wait_for_idle(up)
    created = up.http.post("/engine", json=MATCHING)
    assert created.json()["id"] == handed
    HANDED.append(handed)
    try:
        refill = wait_for_idle(up, other_than=frozenset({handed}))
        assert refill != handed
        assert pool(up)["idle"] == 1
    finally:
        forget(up, handed)


@pytest.mark.timeout(600)
def test_an_idle_engine_that_dies_is_replaced(up: Up) -> None:
    doomed = wait_for_idle(up)
    for pid in engine_jvms(doomed):
        os.kill(pid, signal.SIGKILL)
    replacement = wait_for_idle(up, other_than=frozenset({doomed}))
    assert replacement != doomed
    state = up.http.get(f"/engine/{doomed}").json()["state"]
    assert state.startswith("Error")  # it died as any engine dies: in the error states


@pytest.mark.timeout(600)
def test_rucat_pool_list_shows_the_pool_and_its_hand_outs(up: Up) -> None:
    wait_for_idle(up)
    result = CliRunner().invoke(
        app, ["pool", "list", "-o", "json"], env={"RUCAT_URL": up.url, "RUCAT_TOKEN": TOKEN}
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    (small,) = json.loads(result.stdout)
    assert small["name"] == "small"
    assert small["configs"] == CONFIGS
    assert small["idle"] == 1
    assert small["hand_outs"] == len(HANDED)  # this server counted each hand-out above
    table = CliRunner().invoke(
        app, ["pool", "list"], env={"RUCAT_URL": up.url, "RUCAT_TOKEN": TOKEN}
    )
    assert "small" in table.stdout and f"Spark {VERSION}" in table.stdout
