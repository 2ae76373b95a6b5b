"""The monitor's failure scenarios, with real Rucat processes and fake engines (no Java).

`rucat up`, `rucat server` and `rucat monitor` run as processes over real
stores (a SQLite file, PostgreSQL); the Local platform starts, adopts and
stops engines that are real processes, the stand-in Spark Connect servers of
tests/support/fake_spark.py: they start in a fraction of a second, answer
the monitor's readiness probe and refuse any call without the engine's token.
So a monitor killed mid-start, an expired lease, two monitors racing for one
store, a killed engine and auto-stop each take seconds, not a JVM's minutes.
What needs Spark itself (queries, Spark's own failure messages) stays in
test_local_engines.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from rucat.config import DatabaseConfig, LocalPlatformConfig, PostgresConfig, SqliteConfig
from rucat.domain.state import EngineState
from rucat.platforms.local.platform import LocalPlatform
from rucat.store import open_store
from tests.support import free_port
from tests.support.fake_spark import FAKE_VERSION, fake_local_config, fake_server_pids
from tests.support.postgres import (  # noqa: F401 - the fixture is used by `database`
    PostgresServer,
    postgres_server,
)
from tests.support.processes import kill_engines_under, rucat, rucat_up, wait_state, write_config

pytestmark = [pytest.mark.timeout(180)]

FAST: dict[str, Any] = {
    "check_interval_secs": 0.5,
    "lease_secs": 5,
    "resync_interval_secs": 2,
    "auto_stop": {"busy_refresh_secs": 1},
}
#: Fake engines answer within a second or two; this is for a loaded machine.
START_TIMEOUT = 60
#: Long enough that an idle engine with auto-stop 0.1 minutes would have been stopped twice.
PAST_AUTO_STOP_SECS = 15
ERROR_STATES = {"ErrorWaitToClean", "ErrorTriggerClean", "ErrorCleanInProgress", "ErrorClean"}
CLEANING = [
    ("ErrorWaitToClean", "ErrorTriggerClean"),
    ("ErrorTriggerClean", "ErrorCleanInProgress"),
    ("ErrorCleanInProgress", "ErrorClean"),
]


def fake_request(name: str, **configs: str) -> dict[str, Any]:
    return {"name": name, "engine_type": "Spark", "version": FAKE_VERSION, "configs": configs}


def create(client: httpx.Client, name: str, **fields: Any) -> str:
    configs = fields.pop("configs", {})
    response = client.post("/engine", json={**fake_request(name, **configs), **fields})
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


def path_of(client: httpx.Client, engine_id: str) -> list[tuple[str, str]]:
    return [(e["from_state"], e["to_state"]) for e in events(client, engine_id)]


def the_server(engine_id: str, timeout: float = START_TIMEOUT) -> int:
    """The pid of the engine's one fake Spark Connect server, once it exists."""
    deadline = time.monotonic() + timeout
    while not (pids := fake_server_pids(engine_id)):
        assert time.monotonic() < deadline, f"no server of engine {engine_id}"
        time.sleep(0.1)
    assert len(pids) == 1, pids
    return pids[0]


def spark_version_through_proxy(connect_port: int, engine_id: str) -> str:
    """AnalyzePlan through Rucat's proxy, retried while it answers UNAVAILABLE (an
    engine being started), as pyspark retries. The fake refuses calls without the
    engine's token: an answer proves the proxy routed the call and added it."""
    import grpc
    from pyspark.sql.connect.proto import base_pb2, base_pb2_grpc

    request = base_pb2.AnalyzePlanRequest(
        session_id=str(uuid.uuid4()),
        user_context=base_pb2.UserContext(user_id="test"),
        spark_version=base_pb2.AnalyzePlanRequest.SparkVersion(),
    )
    deadline = time.monotonic() + START_TIMEOUT
    with grpc.insecure_channel(f"127.0.0.1:{connect_port}") as channel:
        stub = base_pb2_grpc.SparkConnectServiceStub(channel)
        while True:
            try:
                response = stub.AnalyzePlan(
                    request, metadata=[("x-rucat-engine-id", engine_id)], timeout=30
                )
                return str(response.spark_version.version)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


class HeldCall:
    """An ExecutePlan through the proxy, in a thread, that the engine holds open
    until `release()`: a query exactly as long as the test needs."""

    def __init__(self, connect_port: int, engine_id: str, gate: Path) -> None:
        self.gate = gate
        self.outcome: list[Any] = []
        self._thread = threading.Thread(
            target=self._run, args=(connect_port, engine_id), daemon=True
        )
        self._thread.start()
        started = Path(f"{gate}.started")
        deadline = time.monotonic() + START_TIMEOUT
        while not started.exists() and self._thread.is_alive():
            assert time.monotonic() < deadline, "the call never reached the engine"
            time.sleep(0.1)
        assert started.exists(), f"the call failed: {self.outcome}"

    def _run(self, connect_port: int, engine_id: str) -> None:
        import grpc
        from pyspark.sql.connect.proto import base_pb2, base_pb2_grpc

        request = base_pb2.ExecutePlanRequest(
            session_id=str(uuid.uuid4()),
            user_context=base_pb2.UserContext(user_id="test"),
            plan=base_pb2.Plan(),
        )
        try:
            with grpc.insecure_channel(f"127.0.0.1:{connect_port}") as channel:
                stub = base_pb2_grpc.SparkConnectServiceStub(channel)
                responses = stub.ExecutePlan(
                    request, metadata=[("x-rucat-engine-id", engine_id)], timeout=300
                )
                self.outcome.append([r.WhichOneof("response_type") for r in responses])
        except BaseException as e:
            self.outcome.append(e)

    def release(self) -> Any:
        self.gate.touch()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the call did not end after its release"
        return self.outcome[0]


# --- one `rucat up` --------------------------------------------------------------


@dataclasses.dataclass
class Up:
    client: httpx.Client
    connect_port: int
    data_dir: Path


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("fake-up")
    config = {**FAST, "platform": fake_local_config(tmp, stop_grace_secs=5)}
    with (
        rucat_up(tmp, config) as (_process, url, connect_port),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield Up(client, connect_port, tmp / "data")


def test_an_engine_runs_answers_through_the_proxy_stops_restarts_and_is_deleted(up: Up) -> None:
    client = up.client
    engine_id = create(up.client, "lifecycle")
    info = running(client, engine_id)
    assert info["endpoint"].startswith("sc://127.0.0.1:")
    first = the_server(engine_id)
    assert spark_version_through_proxy(up.connect_port, engine_id) == "9.9.9"

    assert client.post(f"/engine/{engine_id}/stop").status_code == 200
    info = wait_state(client, engine_id, {"Terminated"}, START_TIMEOUT)
    assert info["endpoint"] is None
    assert fake_server_pids(engine_id) == []

    assert client.post(f"/engine/{engine_id}/restart").status_code == 200
    running(client, engine_id)
    assert the_server(engine_id) != first
    assert spark_version_through_proxy(up.connect_port, engine_id) == "9.9.9"
    client.post(f"/engine/{engine_id}/stop")
    wait_state(client, engine_id, {"Terminated"}, START_TIMEOUT)
    assert fake_server_pids(engine_id) == []
    starts = [p for p in path_of(client, engine_id) if p == ("TriggerStart", "StartInProgress")]
    assert len(starts) == 2, path_of(client, engine_id)

    assert client.delete(f"/engine/{engine_id}").status_code == 200
    assert client.get(f"/engine/{engine_id}").status_code == 404
    assert not (up.data_dir / "engines" / engine_id).exists()


def test_a_killed_engine_goes_to_an_error_state_saying_how_and_is_cleaned(up: Up) -> None:
    client = up.client
    engine_id = create(client, "victim")
    running(client, engine_id)

    os.kill(the_server(engine_id), signal.SIGKILL)

    info = wait_state(client, engine_id, {"ErrorClean"}, START_TIMEOUT)
    assert info["message"].startswith(
        "engine died: the Spark Connect server was killed by signal 9 (SIGKILL)"
    ), info
    path = path_of(client, engine_id)
    died = path.index(("Running", "ErrorWaitToClean"))
    assert path[died:] == [("Running", "ErrorWaitToClean"), *CLEANING], path
    assert events(client, engine_id)[died]["message"] == info["message"]
    assert fake_server_pids(engine_id) == []
    assert client.delete(f"/engine/{engine_id}").status_code == 200


def test_an_engine_that_exits_while_starting_says_so_with_its_last_log_lines(up: Up) -> None:
    client = up.client
    engine_id = create(client, "broken", configs={"rucat.test.mode": "exit:3"})

    info = wait_state(client, engine_id, {"ErrorClean"}, START_TIMEOUT)
    assert info["message"].startswith("the Spark Connect server exited with status 3"), info
    assert "fake: giving up" in info["message"]
    path = path_of(client, engine_id)
    failed = path.index(("StartInProgress", "ErrorWaitToClean"))
    assert path[failed:] == [("StartInProgress", "ErrorWaitToClean"), *CLEANING], path
    assert "fake: giving up" in client.get(f"/engine/{engine_id}/logs").json()["logs"]


def test_an_idle_engine_is_auto_stopped_and_a_call_through_the_proxy_starts_it_again(
    up: Up,
) -> None:
    client = up.client
    engine_id = create(client, "idle", auto_stop_minutes=0.1)
    running(client, engine_id)

    stopped = wait_state(client, engine_id, {"Terminated"} | ERROR_STATES, START_TIMEOUT)
    assert stopped["state"] == "Terminated", stopped
    stop = next(e for e in events(client, engine_id) if e["from_state"] == "Running")
    assert (stop["to_state"], stop["actor"]) == ("WaitToTerminate", "auto-stop")
    assert stop["message"] == "no Spark Connect activity for 0.1 minutes"
    assert fake_server_pids(engine_id) == []

    # The engine is Terminated: the call starts it, and is answered once it runs.
    assert spark_version_through_proxy(up.connect_port, engine_id) == "9.9.9"
    start = next(e for e in events(client, engine_id) if e["actor"] == "auto-start")
    assert (start["from_state"], start["to_state"]) == ("Terminated", "WaitToStart")
    assert len(fake_server_pids(engine_id)) == 1
    client.post(f"/engine/{engine_id}/stop")
    wait_state(client, engine_id, {"Terminated"}, START_TIMEOUT)


def test_a_call_longer_than_the_auto_stop_is_never_cut_and_the_engine_stops_after_it(
    up: Up, tmp_path: Path
) -> None:
    client, gate = up.client, tmp_path / "released"
    configs = {"rucat.test.gate": str(gate)}
    engine_id = create(client, "busy", auto_stop_minutes=0.1, configs=configs)
    running(client, engine_id)
    call = HeldCall(up.connect_port, engine_id, gate)
    try:
        time.sleep(PAST_AUTO_STOP_SECS)  # the call runs on: the engine is busy, not idle
        info = client.get(f"/engine/{engine_id}").json()
        assert info["state"] == "Running", info
        assert info["idle_since"] is None
        assert not any(e["actor"] == "auto-stop" for e in events(client, engine_id))
        released_at = datetime.now(UTC)
        assert call.release() == ["result_complete"]  # the whole answer: never cut
    finally:
        gate.touch()

    stopped = wait_state(client, engine_id, {"Terminated"} | ERROR_STATES, START_TIMEOUT)
    assert stopped["state"] == "Terminated", stopped
    stop = next(e for e in events(client, engine_id) if e["actor"] == "auto-stop")
    assert datetime.fromisoformat(stop["time"]) > released_at


def test_either_of_two_servers_keeps_an_engine_busy_and_a_killed_ones_call_stops_counting(
    tmp_path: Path,
) -> None:
    db, gate = tmp_path / "data" / "rucat.db", tmp_path / "released"
    database = {"Sqlite": {"path": str(db)}}
    platform = fake_local_config(tmp_path)
    up_config = {**FAST, "database": database, "platform": platform}
    with rucat_up(tmp_path, up_config) as (_up, url, _connect_port):
        port, other_connect_port = free_port(), free_port()
        path = write_config(
            tmp_path / "b.json",
            **FAST,
            database=database,
            platform=platform,
            connect_port=other_connect_port,
        )
        argv = ("server", "--config-path", str(path), "--port", str(port))
        with (
            httpx.Client(base_url=url, timeout=30) as client,
            rucat(*argv, tmp=tmp_path, name="b") as other,
        ):
            other.wait_http(f"http://127.0.0.1:{port}")
            configs = {"rucat.test.gate": str(gate)}
            engine_id = create(client, "shared", auto_stop_minutes=0.1, configs=configs)
            running(client, engine_id)

            # A call through the other server (not the one beside the monitor) keeps it alive.
            HeldCall(other_connect_port, engine_id, gate)
            time.sleep(PAST_AUTO_STOP_SECS)
            assert client.get(f"/engine/{engine_id}").json()["state"] == "Running"

            # That server dies with the call open: its refreshes stop with it.
            other.kill(signal.SIGKILL)
            killed_at = datetime.now(UTC)
            stopped = wait_state(client, engine_id, {"Terminated"} | ERROR_STATES, START_TIMEOUT)
            gate.touch()
            assert stopped["state"] == "Terminated", stopped
            assert datetime.fromisoformat(stopped["last_activity_time"]) <= killed_at
            stop = next(e for e in events(client, engine_id) if e["actor"] == "auto-stop")
            assert datetime.fromisoformat(stop["time"]) > killed_at


# --- a server alone, and monitors that come and go -------------------------------


@dataclasses.dataclass
class Split:
    client: httpx.Client
    config_path: Path
    config: dict[str, Any]
    tmp: Path

    def monitor(self, name: str) -> Any:
        return rucat("monitor", "--config-path", str(self.config_path), tmp=self.tmp, name=name)

    def store_config(self) -> DatabaseConfig:
        database = self.config["database"]
        if "Sqlite" in database:
            return DatabaseConfig(Sqlite=SqliteConfig(path=database["Sqlite"]["path"]))
        uri = SecretStr(database["Postgres"]["uri"])
        return DatabaseConfig(Postgres=PostgresConfig(uri=uri))


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "sqlite":
        return {"Sqlite": {"path": str(tmp_path / "rucat.db")}}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return {"Postgres": {"uri": await server.create_database()}}


@pytest.fixture
def split(tmp_path: Path, database: dict[str, Any]) -> Iterator[Split]:
    """A `rucat server` alone over `database`, which the test's monitors share."""
    port = free_port()
    config = {
        **FAST,
        "connect_port": None,
        "data_dir": str(tmp_path / "data"),
        "database": database,
        "platform": fake_local_config(tmp_path, stop_grace_secs=5),
    }
    path = write_config(tmp_path / "config.json", **config)
    argv = ("server", "--config-path", str(path), "--port", str(port))
    with rucat(*argv, tmp=tmp_path, name="srv") as server:
        url = f"http://127.0.0.1:{port}"
        server.wait_http(url)
        try:
            with httpx.Client(base_url=url, timeout=30) as client:
                yield Split(client, path, config, tmp_path)
        finally:
            kill_engines_under(tmp_path / "data")


def stop_all(client: httpx.Client, ids: list[str]) -> None:
    for engine_id in ids:
        client.post(f"/engine/{engine_id}/stop")
    for engine_id in ids:
        wait_state(client, engine_id, {"Terminated"}, START_TIMEOUT)
        assert fake_server_pids(engine_id) == []


def test_a_new_monitor_adopts_the_engines_a_killed_one_was_starting(split: Split) -> None:
    client, gate = split.client, split.tmp / "open"
    # The servers open their ports only once the gate exists: caught starting.
    slow = {"rucat.test.open_when": str(gate)}
    ids = [create(client, f"adopt-{i}", configs=slow) for i in range(2)]

    with split.monitor("m1") as first:
        for engine_id in ids:
            wait_state(client, engine_id, {"StartInProgress"}, START_TIMEOUT)
        servers = {engine_id: the_server(engine_id) for engine_id in ids}
        first.kill(signal.SIGKILL)
    assert all(client.get(f"/engine/{i}").json()["state"] == "StartInProgress" for i in ids)

    with split.monitor("m2"):
        gate.touch()
        for engine_id in ids:
            running(client, engine_id)
            # The same process: adopted, never started a second time.
            assert fake_server_pids(engine_id) == [servers[engine_id]]
            starts = [p for p in path_of(client, engine_id) if p[1] == "StartInProgress"]
            assert len(starts) == 1, path_of(client, engine_id)
        stop_all(client, ids)


def test_an_expired_lease_falls_back_and_the_retry_adopts_what_the_dead_monitor_started(
    split: Split,
) -> None:
    client = split.client
    engine_id = create(client, "orphan")
    lease_end = datetime.now(UTC) + timedelta(seconds=2)

    async def die_mid_start() -> None:
        """What a monitor leaves when it dies in TriggerStart after starting the
        engine: its claim, with a lease, and the engine's process."""
        store = await open_store(split.store_config())
        platform = LocalPlatform(
            LocalPlatformConfig.model_validate(split.config["platform"]["Local"]),
            data_dir=Path(split.config["data_dir"]),
        )
        try:
            current = await store.get(engine_id=engine_id)
            claimed = dataclasses.replace(
                current,
                state=EngineState.TriggerStart,
                lease_owner="dead-monitor",
                next_update_time=lease_end,
            )
            engine = await store.transition(current=current, new=claimed, actor="dead-monitor")
            await platform.start(engine=engine)
        finally:
            await platform.close()
            await store.close()

    asyncio.run(die_mid_start())
    server = the_server(engine_id)

    with split.monitor("heir"):
        running(client, engine_id)
    history = events(client, engine_id)
    path = [(e["from_state"], e["to_state"]) for e in history]
    assert path == [
        (None, "WaitToStart"),
        ("WaitToStart", "TriggerStart"),  # the dead monitor's claim
        ("TriggerStart", "WaitToStart"),  # its lease ran out
        ("WaitToStart", "TriggerStart"),
        ("TriggerStart", "StartInProgress"),
        ("StartInProgress", "Running"),
    ], path
    fallback = history[path.index(("TriggerStart", "WaitToStart"))]
    assert datetime.fromisoformat(fallback["time"]) >= lease_end
    assert fake_server_pids(engine_id) == [server]  # adopted, not started twice
    with split.monitor("closer"):
        stop_all(client, [engine_id])


def test_two_monitors_on_one_store_start_every_engine_exactly_once(split: Split) -> None:
    client = split.client
    with split.monitor("a"), split.monitor("b"):
        time.sleep(1)  # both monitors up before the engines exist
        ids = [create(client, f"pair-{i}") for i in range(4)]
        for engine_id in ids:
            running(client, engine_id)
        for engine_id in ids:
            assert len(fake_server_pids(engine_id)) == 1
            starts = [p for p in path_of(client, engine_id) if p[1] == "StartInProgress"]
            assert len(starts) == 1, path_of(client, engine_id)
        stop_all(client, ids)
