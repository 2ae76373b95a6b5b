"""Two users and an admin on a real `rucat server` process, on SQLite and on PostgreSQL.

alice's engines are invisible to bob on every REST route (404, as for an
unknown id) and through the Spark Connect proxy (NOT_FOUND, also for an
engine that is not Running, so its state does not leak). With attach bob can
read an engine and connect to it but not stop it (403); with manage he can.
The admin sees everything. Quotas hold against parallel creates.

No Spark: the Running engine's endpoint is a real gRPC server in the test
(the proxy forwards bytes, so any gRPC server stands in for an engine), and
the state is written into the server's own database as a monitor would.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import httpx
import pytest
from argon2 import PasswordHasher
from pydantic import SecretStr

from rucat.config import DatabaseConfig, PostgresConfig, SqliteConfig
from rucat.domain.state import EngineState
from rucat.store import EngineStore, open_store
from tests.support import free_port
from tests.support.postgres import (  # noqa: F401 - the fixture is used by `database`
    PostgresServer,
    postgres_server,
)
from tests.support.processes import RucatProcess, rucat, write_config

SPARK = {"name": "shared", "engine_type": "Spark", "version": "4.0.1", "configs": {}}
METHOD = "/spark.connect.SparkConnectService/Config"
_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw"}
USERS = [
    {"name": "alice", "password_hash": _HASHER.hash("alice-pw"), "groups": ["analytics"]},
    {"name": "bob", "password_hash": _HASHER.hash("bob-pw"), "groups": ["ops"]},
    {"name": "root", "password_hash": _HASHER.hash("root-pw"), "admin": True},
]
QUOTA = 3


class _Echo(grpc.GenericRpcHandler):
    """A stand-in engine: any unary method answers its request bytes."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return b"engine:" + request

        return grpc.unary_unary_rpc_method_handler(echo)


@pytest.fixture
async def engine_endpoint() -> AsyncIterator[str]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_Echo(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"sc://127.0.0.1:{port}"
    await server.stop(0)


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "sqlite":
        return {"Sqlite": {"path": str(tmp_path / "rucat.db")}}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return {"Postgres": {"uri": await server.create_database()}}


@dataclasses.dataclass
class Deployment:
    url: str
    proxy_port: int
    store: EngineStore
    process: RucatProcess

    def client(self, name: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, auth=(name, PASSWORDS[name]), timeout=60)

    async def connect(self, name: str, engine_id: str) -> grpc.StatusCode | bytes:
        """One RPC through the proxy as `name`: the engine's answer, or the refusal's code."""
        basic = base64.b64encode(f"{name}:{PASSWORDS[name]}".encode()).decode()
        metadata = (("x-rucat-engine-id", engine_id), ("authorization", f"Basic {basic}"))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.proxy_port}") as channel:
            try:
                answer: bytes = await channel.unary_unary(METHOD)(
                    b"hello", metadata=metadata, timeout=30
                )
            except grpc.aio.AioRpcError as e:
                return e.code()
        return answer


def _sync_store_config(database: dict[str, Any]) -> DatabaseConfig:
    if "Sqlite" in database:
        return DatabaseConfig(Sqlite=SqliteConfig(path=database["Sqlite"]["path"]))
    return DatabaseConfig(Postgres=PostgresConfig(uri=SecretStr(database["Postgres"]["uri"])))


@pytest.fixture
async def deployment(tmp_path: Path, database: dict[str, Any]) -> AsyncIterator[Deployment]:
    port, proxy_port = free_port(), free_port()
    cfg = write_config(
        tmp_path / "config.json",
        auth_provider={"Users": {"users": USERS}},
        database=database,
        data_dir=str(tmp_path / "data"),
        connect_port=proxy_port,
        quotas={"max_active_engines_per_user": QUOTA},
        # A not-Running engine answers at once instead of being waited for.
        auto_start_on_connect=False,
    )
    argv = ("server", "--config-path", str(cfg), "--port", str(port))
    with rucat(*argv, tmp=tmp_path, name="server") as process:
        url = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(process.wait_http, url)
        # The test plays the monitor: it writes states into the server's database.
        store = await open_store(_sync_store_config(database))
        try:
            yield Deployment(url=url, proxy_port=proxy_port, store=store, process=process)
        finally:
            await store.close()


async def _running(store: EngineStore, engine_id: str, endpoint: str) -> None:
    """WaitToStart -> ... -> Running at `endpoint`, as a monitor would record it."""
    engine = await store.get(engine_id=engine_id)
    for state in (EngineState.TriggerStart, EngineState.StartInProgress, EngineState.Running):
        changes: dict[str, Any] = {"state": state}
        if state is EngineState.Running:
            changes.update(endpoint=endpoint, connect_token=None)
        engine = await store.transition(
            current=engine, new=dataclasses.replace(engine, **changes), actor="test-monitor"
        )


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "", None),
    ("GET", "/events", None),
    ("GET", "/logs", None),
    ("POST", "/stop", None),
    ("POST", "/restart", None),
    ("DELETE", "", None),
    ("GET", "/permissions", None),
    ("PUT", "/permissions", {"grants": [{"user": "bob", "level": "manage"}]}),
]


@pytest.mark.timeout(600)
async def test_two_users_and_an_admin_see_and_do_only_what_they_may(
    deployment: Deployment, engine_endpoint: str
) -> None:
    d = deployment
    async with d.client("alice") as alice, d.client("bob") as bob, d.client("root") as root:
        waiting = (await alice.post("/engine", json=SPARK)).json()["id"]
        running = (await alice.post("/engine", json=SPARK)).json()["id"]
        await _running(d.store, running, engine_endpoint)
        unknown = "z" * 20

        # Invisible to bob on every route, exactly as an unknown id.
        for engine_id in (waiting, running):
            for method, suffix, body in ROUTES:
                hidden = await bob.request(method, f"/engine/{engine_id}{suffix}", json=body)
                none = await bob.request(method, f"/engine/{unknown}{suffix}", json=body)
                assert (hidden.status_code, none.status_code) == (404, 404), (method, suffix)
                assert hidden.json()["detail"] == f"engine {engine_id} not found"
        assert (await bob.get("/engines")).json() == []
        # ... and through the proxy, Running or not.
        assert await d.connect("bob", running) == grpc.StatusCode.NOT_FOUND
        assert await d.connect("bob", waiting) == grpc.StatusCode.NOT_FOUND
        assert await d.connect("bob", unknown) == grpc.StatusCode.NOT_FOUND
        assert await d.connect("alice", waiting) == grpc.StatusCode.FAILED_PRECONDITION
        assert await d.connect("alice", running) == b"engine:hello"

        # attach: bob reads and connects, but may not stop.
        shared = await alice.put(
            f"/engine/{running}/permissions",
            json={"grants": [{"user": "bob", "level": "attach"}]},
        )
        assert shared.status_code == 200, shared.text
        assert (await bob.get(f"/engine/{running}")).json()["owner"] == "alice"
        assert (await bob.get(f"/engine/{running}/events")).status_code == 200
        assert (await bob.get("/engines")).json() == [{"id": running}]
        assert await d.connect("bob", running) == b"engine:hello"
        refused = await bob.post(f"/engine/{running}/stop")
        assert refused.status_code == 403
        assert "manage" in refused.json()["detail"]
        assert (await alice.get(f"/engine/{running}")).json()["state"] == "Running"

        # manage through a group: bob stops it, and the event names him.
        await alice.put(
            f"/engine/{running}/permissions",
            json={"grants": [{"group": "ops", "level": "manage"}]},
        )
        stopped = await bob.post(f"/engine/{running}/stop")
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["state"] == "WaitToTerminate"
        events = (await alice.get(f"/engine/{running}/events")).json()
        assert events[-1]["actor"] == "bob"

        # The admin sees and manages everything.
        listed = [e["id"] for e in (await root.get("/engines")).json()]
        assert sorted(listed) == sorted([waiting, running])
        owned = [e["id"] for e in (await root.get("/engines", params={"owner": "alice"})).json()]
        assert sorted(owned) == sorted([waiting, running])
        assert (await root.get(f"/engine/{waiting}/permissions")).status_code == 200
        assert await d.connect("root", waiting) == grpc.StatusCode.FAILED_PRECONDITION
        assert (await root.post(f"/engine/{waiting}/stop")).status_code == 200


@pytest.mark.timeout(600)
async def test_twenty_parallel_creates_by_one_user_leave_exactly_the_quota(
    deployment: Deployment,
) -> None:
    async with deployment.client("bob") as bob, deployment.client("root") as root:
        answers = await asyncio.gather(*(bob.post("/engine", json=SPARK) for _ in range(20)))

        codes = sorted(a.status_code for a in answers)
        assert codes == [200] * QUOTA + [429] * (20 - QUOTA), [a.text for a in answers]
        refusal = next(a for a in answers if a.status_code == 429).json()["detail"]
        assert f"max_active_engines_per_user is {QUOTA}" in refusal
        assert len((await bob.get("/engines")).json()) == QUOTA
        # Admins are exempt.
        for _ in range(QUOTA + 1):
            assert (await root.post("/engine", json=SPARK)).status_code == 200
