"""The SurrealDB store beyond the shared contract: races, restarts, URIs, faults, the seed config.

No SurrealDB server can be installed here, so the remote transports (ws://,
http://) are exercised against `SurrealBridge`: the SDK's real embedded
SurrealDB engine answering SurrealDB's own CBOR RPC over a real WebSocket and
HTTP endpoint on 127.0.0.1. The store's code path is the one it takes with a
server. The contract suite also runs against a real server when
RUCAT_TEST_SURREAL_URL is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr
from websockets.asyncio.server import Server, ServerConnection, serve

from rucat.config import DatabaseConfig, SurrealConfig, SurrealCredentials, load_config
from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine
from rucat.domain.errors import ConfigError, EngineNotFound, StoreConflict, StoreUnavailable
from rucat.domain.state import EngineState
from rucat.store import open_store
from rucat.store.surreal.connection import parse_uri
from rucat.store.surreal.store import SurrealEngineStore
from tests.support import free_port

S = EngineState
T0 = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
SEED = {
    "auth_provider": {
        "StaticAuthProviderConfig": {
            "username": "admin",
            "password": "admin",
            "bearer_token": "admin",
        }
    },
    "database": {
        "Surreal": {
            "credentials": {"username": "admin", "password": "admin"},
            "uri": "rucat-surrealdb:8000",
        }
    },
    "check_interval_secs": 1,
}


def engine(name: str = "engine", **changes: Any) -> Engine:
    request = CreateEngineRequest(
        name=name, engine_type=EngineType.Spark, version="4.0.1", configs={"spark.a": "1"}
    )
    return replace(new_engine(request, platform="local", now=T0), **changes)


# --- a SurrealDB RPC endpoint over the embedded engine ------------------------------


class SurrealBridge:
    """SurrealDB's RPC (CBOR over WebSocket at /rpc, and over HTTP POST /rpc) on 127.0.0.1,
    answered by the SDK's embedded engine. `paused` makes it swallow requests unanswered."""

    def __init__(self) -> None:
        from surrealdb._surrealdb_ext import AsyncEmbeddedDB

        self.db = AsyncEmbeddedDB("mem://")
        self.port = free_port()
        self.paused = False
        self._connected = False
        self._ws: Server | None = None
        self._http: web.AppRunner | None = None

    async def _connect(self) -> None:
        if not self._connected:
            await self.db.connect()
            self._connected = True

    async def answer(self, frame: bytes) -> bytes | None:
        from surrealdb.data.cbor import decode, encode

        if self.paused:
            return None
        try:
            return bytes(await self.db.execute(frame))
        except Exception as e:  # the engine raises what a server returns as an RPC error
            request = decode(frame)
            return bytes(
                encode({"id": request.get("id"), "error": {"code": -32000, "message": str(e)}})
            )

    async def start_ws(self) -> str:
        await self._connect()

        async def session(connection: ServerConnection) -> None:
            async def reply(frame: bytes) -> None:
                response = await self.answer(frame)
                if response is not None:
                    with contextlib.suppress(Exception):
                        await connection.send(response)

            tasks: set[asyncio.Task[None]] = set()
            async for frame in connection:
                task = asyncio.create_task(reply(bytes(frame)))  # type: ignore[arg-type]
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        self._ws = await serve(session, "127.0.0.1", self.port, subprotocols=["cbor"])  # type: ignore[list-item]
        return f"ws://127.0.0.1:{self.port}"

    async def stop_ws(self) -> None:
        if self._ws is not None:
            self._ws.close()
            await self._ws.wait_closed()
            self._ws = None

    async def start_http(self) -> str:
        await self._connect()

        async def rpc(request: web.Request) -> web.Response:
            response = await self.answer(await request.read())
            if response is None:
                await asyncio.sleep(3600)
            return web.Response(body=response, content_type="application/cbor")

        app = web.Application()
        app.router.add_post("/rpc", rpc)
        self._http = web.AppRunner(app)
        await self._http.setup()
        await web.TCPSite(self._http, "127.0.0.1", self.port).start()
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        await self.stop_ws()
        if self._http is not None:
            await self._http.cleanup()
        with contextlib.suppress(Exception):
            await self.db.close()


@pytest.fixture
async def bridge() -> AsyncIterator[SurrealBridge]:
    b = SurrealBridge()
    yield b
    await b.stop()


# --- races ------------------------------------------------------------------------


@pytest.fixture(params=["mem", "surrealkv"])
def embedded_config(request: pytest.FixtureRequest, tmp_path: Path) -> SurrealConfig:
    if request.param == "mem":
        return SurrealConfig(uri=f"mem://{tmp_path.name}")
    return SurrealConfig(uri=f"surrealkv://{tmp_path}/db")


async def test_twenty_claims_on_one_revision_have_exactly_one_winner_and_the_rest_see_its_row(
    embedded_config: SurrealConfig,
) -> None:
    store = await SurrealEngineStore.open(embedded_config)
    other = await SurrealEngineStore.open(embedded_config)  # a second store on the same data
    try:
        added = await store.add(engine=engine(), actor="user")
        claims = [
            replace(added, state=S.TriggerStart, lease_owner=f"monitor-{i}", update_time=T0)
            for i in range(20)
        ]
        results = await asyncio.gather(
            *(
                (store if i % 2 else other).transition(
                    current=added, new=claim, actor=claim.lease_owner or ""
                )
                for i, claim in enumerate(claims)
            ),
            return_exceptions=True,
        )

        winners = [r for r in results if isinstance(r, Engine)]
        conflicts = [r for r in results if isinstance(r, StoreConflict)]
        assert len(winners) == 1, results
        assert len(conflicts) == 19, results
        (winner,) = winners
        assert winner.revision == 1
        assert all(c.current == winner for c in conflicts)
        assert await store.get(engine_id=added.id) == winner
        events = await other.events(engine_id=added.id)
        assert [(e.from_state, e.to_state) for e in events] == [
            (None, S.WaitToStart),
            (S.WaitToStart, S.TriggerStart),
        ]
        assert events[1].actor == winner.lease_owner
    finally:
        await other.close()
        await store.close()


async def test_activity_reports_racing_transitions_never_cause_a_conflict(
    embedded_config: SurrealConfig,
) -> None:
    store = await SurrealEngineStore.open(embedded_config)
    try:
        row = await store.add(engine=engine(), actor="user")

        async def walk() -> Engine:
            current = row
            for i in range(30):
                current = await store.transition(
                    current=current,
                    new=replace(current, next_update_time=T0 + timedelta(seconds=i)),
                    actor="monitor",
                )
            return current

        async def touch() -> None:
            for i in range(30):
                await store.record_activity(engine_id=row.id, at=T0 + timedelta(seconds=i))

        final, _ = await asyncio.gather(walk(), touch())

        assert final.revision == 30
        stored = await store.get(engine_id=row.id)
        assert stored.revision == 30
    finally:
        await store.close()


# --- durability and sharing of surrealkv:// ---------------------------------------

_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from rucat.config import SurrealConfig
    from rucat.domain.engine import CreateEngineRequest, EngineType, new_engine
    from rucat.store.surreal.store import SurrealEngineStore

    async def main() -> None:
        store = await SurrealEngineStore.open(SurrealConfig(uri=sys.argv[1]))
        request = CreateEngineRequest(name="durable", engine_type=EngineType.Spark, version="4.0.1")
        engine = new_engine(request, platform="local", now=datetime(2026, 1, 2, tzinfo=UTC))
        await store.add(engine=engine, actor="writer")
        print(engine.id, flush=True)
        if sys.argv[2] == "hold":
            sys.stdin.readline()
        await store.close()

    asyncio.run(main())
    """
)


def _writer(uri: str, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, uri, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )


async def test_engines_written_through_surrealkv_survive_a_restart_of_the_process(
    tmp_path: Path,
) -> None:
    uri = f"surrealkv://{tmp_path}/db"
    writer = _writer(uri, "exit")
    out, _ = await asyncio.to_thread(writer.communicate, timeout=120)
    assert writer.returncode == 0
    engine_id = out.strip()

    store = await SurrealEngineStore.open(SurrealConfig(uri=uri))
    try:
        found = await store.get(engine_id=engine_id)
        assert found.name == "durable"
        moved = await store.transition(
            current=found, new=replace(found, state=S.TriggerStart), actor="monitor"
        )
    finally:
        await store.close()

    reopened = await SurrealEngineStore.open(SurrealConfig(uri=uri))
    try:
        assert await reopened.get(engine_id=engine_id) == moved
        assert [e.actor for e in await reopened.events(engine_id=engine_id)] == [
            "writer",
            "monitor",
        ]
    finally:
        await reopened.close()


async def test_a_second_process_cannot_open_a_surrealkv_database_in_use(tmp_path: Path) -> None:
    uri = f"surrealkv://{tmp_path}/db"
    holder = _writer(uri, "hold")
    try:
        assert holder.stdout is not None
        engine_id = (await asyncio.to_thread(holder.stdout.readline)).strip()
        assert engine_id
        with pytest.raises(StoreUnavailable, match="in use by another process"):
            await SurrealEngineStore.open(SurrealConfig(uri=uri))
    finally:
        await asyncio.to_thread(holder.communicate, "\n", 120)
    store = await SurrealEngineStore.open(SurrealConfig(uri=uri))
    try:
        assert (await store.get(engine_id=engine_id)).name == "durable"
    finally:
        await store.close()


async def test_stores_of_one_process_on_one_surrealkv_path_see_each_others_writes(
    tmp_path: Path,
) -> None:
    config = SurrealConfig(uri=f"surrealkv://{tmp_path}/db")
    first = await SurrealEngineStore.open(config)
    # The same file, spelled relative to the working directory.
    relative = await asyncio.to_thread(os.path.relpath, tmp_path / "db")
    second = await SurrealEngineStore.open(SurrealConfig(uri=f"surrealkv://{relative}"))
    try:
        added = await first.add(engine=engine(), actor="user")
        assert await second.get(engine_id=added.id) == added
    finally:
        await first.close()
        await second.close()


# --- the seed's config -------------------------------------------------------------


async def test_the_seed_config_file_opens_a_surreal_store_when_its_uri_is_embedded(
    tmp_path: Path,
) -> None:
    seed = json.loads(json.dumps(SEED))
    seed["database"]["Surreal"]["uri"] = "mem://seed"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(seed))

    config = load_config(path)
    store = await open_store(config.database)
    try:
        assert isinstance(store, SurrealEngineStore)
        await store.ping()
        added = await store.add(engine=engine(), actor="user")
        assert await store.get(engine_id=added.id) == added
    finally:
        await store.close()


async def test_the_seed_config_unchanged_names_its_unreachable_host_instead_of_hanging(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(SEED))
    config = load_config(path)

    with pytest.raises(StoreUnavailable, match="rucat-surrealdb:8000"):
        await open_store(config.database)


# --- URIs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "url", "embedded"),
    [
        ("rucat-surrealdb:8000", "ws://rucat-surrealdb:8000/rpc", False),
        ("127.0.0.1:8000", "ws://127.0.0.1:8000/rpc", False),
        ("ws://db.example:8000", "ws://db.example:8000", False),
        ("ws://db.example:8000/rpc", "ws://db.example:8000", False),
        ("wss://db.example", "wss://db.example", False),
        ("http://db.example:8000", "http://db.example:8000", False),
        ("https://db.example/rpc", "https://db.example", False),
        ("mem://", "mem://", True),
        ("mem://tests", "mem://tests", True),
        ("surrealkv:///var/lib/rucat/db", "surrealkv:///var/lib/rucat/db", True),
    ],
)
def test_uri_forms_are_understood(uri: str, url: str, embedded: bool) -> None:
    target = parse_uri(uri)
    assert (target.url, target.embedded) == (url, embedded)


def test_a_relative_surrealkv_path_is_relative_to_the_working_directory() -> None:
    assert parse_uri("surrealkv://data/db").url == f"surrealkv://{Path.cwd() / 'data' / 'db'}"


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "rucat-surrealdb",
        "ftp://db:21",
        "ws://",
        "ws://user:pw@db:8000",
        "surrealkv://",
        "db:99999",
    ],
)
async def test_an_unusable_uri_is_a_config_error_naming_the_key(uri: str) -> None:
    with pytest.raises(ConfigError, match=r"database\.Surreal\.uri"):
        await open_store(DatabaseConfig(Surreal=SurrealConfig(uri=uri)))


async def test_a_bad_namespace_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"database\.Surreal\.namespace"):
        await SurrealEngineStore.open(SurrealConfig(uri="mem://", namespace="a`b"))


# --- faults ---------------------------------------------------------------------------


async def test_a_refused_connection_gives_store_unavailable() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
        await SurrealEngineStore.open(SurrealConfig(uri=f"127.0.0.1:{port}"))


@pytest.mark.timeout(60)
async def test_a_server_that_never_answers_gives_store_unavailable_instead_of_a_hang() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never says a word
    port = silent.getsockname()[1]
    try:
        for uri in (f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"):
            with pytest.raises(StoreUnavailable, match="did not answer"):
                await SurrealEngineStore.open(SurrealConfig(uri=uri), connect_timeout=1.0)
    finally:
        silent.close()


async def test_a_closed_store_is_unavailable() -> None:
    store = await SurrealEngineStore.open(SurrealConfig(uri="mem://closing"))
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.ping()


async def test_wrong_credentials_are_a_config_error(bridge: SurrealBridge) -> None:
    url = await bridge.start_ws()
    config = SurrealConfig(
        uri=url, credentials=SurrealCredentials(username="nobody", password=SecretStr("wrong"))
    )
    with pytest.raises(ConfigError, match="credentials"):
        await SurrealEngineStore.open(config)


@pytest.mark.timeout(60)
async def test_ping_fails_while_the_server_is_silent_or_gone_and_recovers_when_it_returns(
    bridge: SurrealBridge,
) -> None:
    url = await bridge.start_ws()
    store = await SurrealEngineStore.open(SurrealConfig(uri=url), query_timeout=1.0)
    try:
        added = await store.add(engine=engine(), actor="user")
        await store.ping()

        bridge.paused = True
        with pytest.raises(StoreUnavailable, match="did not answer"):
            await store.ping()
        bridge.paused = False

        await bridge.stop_ws()
        with pytest.raises(StoreUnavailable):
            await store.ping()

        await bridge.start_ws()  # same port, same data: the store reconnects
        await store.ping()
        assert await store.get(engine_id=added.id) == added
    finally:
        await store.close()


# --- the remote transports -----------------------------------------------------------


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_every_store_operation_works_over_a_remote_transport(
    bridge: SurrealBridge, transport: str
) -> None:
    url = await (bridge.start_ws() if transport == "ws" else bridge.start_http())
    store = await SurrealEngineStore.open(SurrealConfig(uri=url, namespace="ns", database="db"))
    try:
        added = await store.add(engine=engine(), actor="user")
        assert await store.get(engine_id=added.id) == added
        assert await store.due(platform="local", now=T0, limit=10) == [added]
        claimed = await store.transition(
            current=added, new=replace(added, state=S.TriggerStart), actor="monitor"
        )
        with pytest.raises(StoreConflict) as lost:
            await store.transition(current=added, new=replace(added, state=S.Terminated), actor="u")
        assert lost.value.current == claimed
        await store.record_activity(engine_id=added.id, at=T0 + timedelta(seconds=5))
        active = await store.get(engine_id=added.id)
        assert active.last_activity_time == T0 + timedelta(seconds=5)
        assert [e.to_state for e in await store.events(engine_id=added.id)] == [
            S.WaitToStart,
            S.TriggerStart,
        ]
        assert await store.list(states=[S.TriggerStart]) == [active]
        await store.remove(current=active)
        with pytest.raises(EngineNotFound):
            await store.get(engine_id=added.id)
    finally:
        await store.close()


async def test_nul_in_messages_and_logs_is_stored_as_the_replacement_character_like_sql() -> None:
    store = await SurrealEngineStore.open(SurrealConfig(uri="mem://nul"))
    try:
        added = await store.add(engine=engine(message="a\x00b", saved_logs="x\x00"), actor="u")
        assert (added.message, added.saved_logs) == ("a\ufffdb", "x\ufffd")
        assert await store.get(engine_id=added.id) == added
        (event,) = await store.events(engine_id=added.id)
        assert event.message == "a\ufffdb"
    finally:
        await store.close()
