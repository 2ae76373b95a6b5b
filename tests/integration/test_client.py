"""The SDK against a real Rucat server over real HTTP.

The server is uvicorn on a free port over a real SQLite store (the `api`
fixture of this folder's conftest). No monitor runs, so engines stay in
WaitToStart unless a test writes monitor states into the store itself, one
compare-and-set at a time, exactly as a monitor would (`force_state`).
The sync client blocks, so it runs in a thread while the server keeps
serving on the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
import uvicorn

from rucat.client import (
    AsyncRucatClient,
    BadRequest,
    Conflict,
    EngineFailed,
    EngineInfo,
    NotFound,
    RucatClient,
    RucatClientError,
    ServerError,
    ServerUnreachable,
    ServiceUnavailable,
    Unauthorized,
    WaitAborted,
    WaitTimeout,
    connect,
)
from rucat.client.errors import error_for_status
from rucat.config import AuthProviderConfig, RucatConfig, StaticAuthConfig
from rucat.domain.errors import RucatError
from rucat.domain.state import EngineState
from rucat.server.app import create_app
from rucat.store import EngineStore
from tests.integration.conftest import Api, StartApi, force_state
from tests.support import free_port

T = TypeVar("T")
S = EngineState

TOKEN = "t0ken-for-tests"
AUTH = RucatConfig(
    auth_provider=AuthProviderConfig(
        StaticAuthProviderConfig=StaticAuthConfig(
            username="alice", password="s3cret", bearer_token=TOKEN
        )
    )
)


@pytest.fixture
async def rucat(api: Api) -> AsyncIterator[AsyncRucatClient]:
    async with AsyncRucatClient(api.url) as client:
        yield client


async def in_thread(call: Callable[[], T]) -> T:
    """Run a blocking SDK call without blocking the server on this event loop."""
    return await asyncio.to_thread(call)


class Seen:
    """An `on_state` callback recording the states `wait_until` reported.

    Safe to call from the sync client's worker thread: recording happens on
    the test's event loop, in call order.
    """

    def __init__(self) -> None:
        self.states: list[EngineState] = []
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()

    def __call__(self, info: EngineInfo) -> None:
        self._loop.call_soon_threadsafe(self._record, info.state)

    def _record(self, state: EngineState) -> None:
        self.states.append(state)
        self._changed.set()

    async def reported(self, state: EngineState) -> None:
        """Until `state` has been reported (wait_until keeps polling meanwhile)."""
        while state not in self.states:
            self._changed.clear()
            await self._changed.wait()


# --- create, get, list -------------------------------------------------------


async def test_create_returns_an_id_and_get_returns_every_field(
    api: Api, rucat: AsyncRucatClient
) -> None:
    engine_id = await rucat.create("etl", "4.0.1", {"spark.executor.memory": "1g"})

    info = await rucat.get(engine_id)

    assert info == EngineInfo(
        id=engine_id,
        name="etl",
        engine_type="Spark",
        version="4.0.1",
        state=S.WaitToStart,
        configs={"spark.executor.memory": "1g"},
        create_time=api.clock(),
        update_time=api.clock(),
        message=None,
        platform=info.platform,
        endpoint=None,
        last_activity_time=None,
        auto_stop_minutes=60.0,
        owner="anonymous",
        connect_url=f"sc://127.0.0.1:15002/;x-rucat-engine-id={engine_id}",
    )
    assert info.platform == "Local"


async def test_get_shows_what_a_monitor_recorded(api: Api, rucat: AsyncRucatClient) -> None:
    engine_id = await rucat.create("etl", "4.0.1")
    await force_state(api.store, engine_id, S.TriggerStart)
    await force_state(api.store, engine_id, S.StartInProgress)
    await force_state(api.store, engine_id, S.Running, endpoint="sc://127.0.0.1:41000")
    await api.store.record_activity(engine_id=engine_id, at=api.clock())

    info = await rucat.get(engine_id)

    assert info.state is S.Running
    assert info.endpoint == "sc://127.0.0.1:41000"
    assert info.last_activity_time == api.clock()


async def test_list_returns_ids_oldest_first_and_filters_by_state(
    api: Api, rucat: AsyncRucatClient
) -> None:
    first = await rucat.create("one", "4.0.1")
    api.clock.advance(1)
    second = await rucat.create("two", "4.0.1")
    api.clock.advance(1)
    third = await rucat.create("three", "4.0.1")
    await rucat.stop(second)

    assert await rucat.list() == [first, second, third]
    assert await rucat.list(state=S.Terminated) == [second]
    assert await rucat.list(state="WaitToStart") == [first, third]
    assert await rucat.list(state=[S.Terminated, S.WaitToStart]) == [first, second, third]


async def test_list_pages_with_limit_and_after(api: Api, rucat: AsyncRucatClient) -> None:
    ids = []
    for n in range(5):
        ids.append(await rucat.create(f"engine-{n}", "4.0.1"))
        api.clock.advance(1)

    first_page = await rucat.list(limit=2)
    second_page = await rucat.list(limit=2, after=first_page[-1])
    rest = await rucat.list(after=second_page[-1])

    assert [*first_page, *second_page, *rest] == ids
    assert len(first_page) == len(second_page) == 2


async def test_list_info_returns_each_engines_info(api: Api, rucat: AsyncRucatClient) -> None:
    first = await rucat.create("one", "4.0.1")
    api.clock.advance(1)
    second = await rucat.create("two", "4.0.1")

    infos = await rucat.list_info()

    assert [(i.id, i.name, i.state) for i in infos] == [
        (first, "one", S.WaitToStart),
        (second, "two", S.WaitToStart),
    ]


# --- user actions ---------------------------------------------------------------


async def test_stop_restart_and_delete_walk_the_state_machine(rucat: AsyncRucatClient) -> None:
    engine_id = await rucat.create("etl", "4.0.1")

    assert (await rucat.stop(engine_id)).state is S.Terminated
    assert (await rucat.restart(engine_id)).state is S.WaitToStart
    await rucat.delete(engine_id)

    with pytest.raises(NotFound) as raised:
        await rucat.get(engine_id)
    assert raised.value.status == 404
    assert engine_id in raised.value.detail


async def test_stop_of_a_running_engine_asks_the_monitor_to_terminate_it(
    api: Api, rucat: AsyncRucatClient
) -> None:
    engine_id = await rucat.create("etl", "4.0.1")
    for state in (S.TriggerStart, S.StartInProgress, S.Running):
        await force_state(api.store, engine_id, state)

    assert (await rucat.stop(engine_id)).state is S.WaitToTerminate
    assert (await rucat.restart(engine_id)).state is S.Running


async def test_a_refused_action_raises_conflict_naming_the_current_state(
    rucat: AsyncRucatClient,
) -> None:
    engine_id = await rucat.create("etl", "4.0.1")
    await rucat.stop(engine_id)

    with pytest.raises(Conflict) as raised:
        await rucat.stop(engine_id)

    assert raised.value.status == 409
    assert "Terminated" in raised.value.detail


async def test_delete_of_a_running_engine_raises_conflict(
    api: Api, rucat: AsyncRucatClient
) -> None:
    engine_id = await rucat.create("etl", "4.0.1")
    for state in (S.TriggerStart, S.StartInProgress, S.Running):
        await force_state(api.store, engine_id, state)

    with pytest.raises(Conflict, match="Running"):
        await rucat.delete(engine_id)
    assert (await rucat.get(engine_id)).state is S.Running


async def test_every_call_on_an_unknown_engine_raises_not_found(rucat: AsyncRucatClient) -> None:
    unknown = "a" * 20
    calls = [
        rucat.get(unknown),
        rucat.stop(unknown),
        rucat.restart(unknown),
        rucat.delete(unknown),
        rucat.logs(unknown),
        rucat.events(unknown),
    ]
    for call in calls:
        with pytest.raises(NotFound, match=unknown):
            await call


async def test_an_id_with_slashes_cannot_reach_another_route(rucat: AsyncRucatClient) -> None:
    with pytest.raises(NotFound):
        await rucat.get("../engines")


# --- bad input ------------------------------------------------------------------


async def test_bad_input_raises_bad_request_with_the_servers_detail(
    rucat: AsyncRucatClient,
) -> None:
    with pytest.raises(BadRequest) as raised:
        await rucat.create("etl", "four")
    assert raised.value.status in (400, 422)
    assert "four" in raised.value.detail

    with pytest.raises(BadRequest, match="engine_type"):
        await rucat.create("etl", "4.0.1", engine_type="Flink")

    with pytest.raises(BadRequest, match="name"):
        await rucat.create("", "4.0.1")

    assert await rucat.list() == []


async def test_a_body_over_the_limit_raises_bad_request_413(rucat: AsyncRucatClient) -> None:
    with pytest.raises(BadRequest) as raised:
        await rucat.create("etl", "4.0.1", {"big": "x" * (2 << 20)})
    assert raised.value.status == 413


async def test_an_unknown_state_filter_is_refused_before_sending(
    rucat: AsyncRucatClient,
) -> None:
    with pytest.raises(BadRequest, match=r"Dancing.*WaitToStart"):
        await rucat.list(state="Dancing")
    with pytest.raises(BadRequest, match="Runing"):
        await rucat.wait_until("a" * 20, "Runing", timeout=1)


# --- events and logs ------------------------------------------------------------


async def test_events_list_each_transition_with_its_actor(
    api: Api, rucat: AsyncRucatClient
) -> None:
    engine_id = await rucat.create("etl", "4.0.1")
    await force_state(api.store, engine_id, S.TriggerStart)
    await force_state(api.store, engine_id, S.StartInProgress)
    await force_state(
        api.store, engine_id, S.ErrorWaitToClean, message="java.lang.OutOfMemoryError"
    )

    found = await rucat.events(engine_id)

    assert [(e.from_state, e.to_state) for e in found] == [
        (None, S.WaitToStart),
        (S.WaitToStart, S.TriggerStart),
        (S.TriggerStart, S.StartInProgress),
        (S.StartInProgress, S.ErrorWaitToClean),
    ]
    assert found[-1].message == "java.lang.OutOfMemoryError"
    assert found[-1].actor == "test-monitor"
    assert found[0].time == api.clock()


async def test_logs_return_the_engines_saved_log_and_its_tail(
    api: Api, rucat: AsyncRucatClient
) -> None:
    engine_id = await rucat.create("etl", "4.0.1")
    assert await rucat.logs(engine_id) == ""
    await force_state(api.store, engine_id, S.Terminated, saved_logs="one\ntwo\nthree\n")

    assert await rucat.logs(engine_id) == "one\ntwo\nthree\n"
    assert await rucat.logs(engine_id, tail=1) == "three\n"


# --- wait_until -----------------------------------------------------------------


async def test_wait_until_returns_the_engine_once_running_and_reports_each_state(
    api: Api, rucat: AsyncRucatClient
) -> None:
    engine_id = await rucat.create("etl", "4.0.1")
    seen = Seen()
    waiting = asyncio.create_task(
        rucat.wait_until(
            engine_id,
            S.Running,
            timeout=60,
            poll_interval=0.01,
            on_state=seen,
        )
    )
    await seen.reported(S.WaitToStart)
    await force_state(api.store, engine_id, S.TriggerStart)
    await force_state(api.store, engine_id, S.StartInProgress)
    await seen.reported(S.StartInProgress)
    await force_state(api.store, engine_id, S.Running, endpoint="sc://127.0.0.1:41000")

    info = await waiting

    assert info.state is S.Running
    assert info.endpoint == "sc://127.0.0.1:41000"
    # Each state is reported once; TriggerStart may pass between two polls.
    assert seen.states[0] is S.WaitToStart
    assert seen.states[-2:] == [S.StartInProgress, S.Running]
    assert len(seen.states) == len(set(seen.states))


async def test_wait_until_stops_early_with_the_engines_message_when_it_fails(
    api: Api, rucat: AsyncRucatClient
) -> None:
    engine_id = await rucat.create("etl", "4.0.1")
    seen = Seen()
    waiting = asyncio.create_task(
        rucat.wait_until(
            engine_id,
            S.Running,
            timeout=30,
            poll_interval=0.01,
            on_state=seen,
        )
    )
    await seen.reported(S.WaitToStart)
    await force_state(api.store, engine_id, S.TriggerStart)
    await force_state(api.store, engine_id, S.StartInProgress)
    await force_state(api.store, engine_id, S.ErrorWaitToClean, message="port 15002 already in use")

    with pytest.raises(EngineFailed) as raised:
        await waiting

    assert "port 15002 already in use" in raised.value.detail
    assert raised.value.engine.state is S.ErrorWaitToClean
    assert isinstance(raised.value, WaitAborted)


async def test_wait_until_gives_up_when_the_engine_is_stopped_meanwhile(
    rucat: AsyncRucatClient,
) -> None:
    engine_id = await rucat.create("etl", "4.0.1")
    await rucat.stop(engine_id)

    with pytest.raises(WaitAborted, match="Terminated") as raised:
        await rucat.wait_until(engine_id, S.Running, timeout=30)

    assert not isinstance(raised.value, EngineFailed)


async def test_wait_until_raises_wait_timeout_with_the_last_state_seen(
    rucat: AsyncRucatClient,
) -> None:
    engine_id = await rucat.create("etl", "4.0.1")

    with pytest.raises(WaitTimeout, match="WaitToStart") as raised:
        await rucat.wait_until(engine_id, "Running", timeout=0.2, poll_interval=0.05)

    assert raised.value.engine is not None
    assert raised.value.engine.state is S.WaitToStart
    assert raised.value.wanted is S.Running


async def test_wait_until_an_error_state_waits_for_it_instead_of_failing(
    api: Api, rucat: AsyncRucatClient
) -> None:
    engine_id = await rucat.create("etl", "4.0.1")
    for state in (S.TriggerStart, S.StartInProgress, S.ErrorWaitToClean):
        await force_state(api.store, engine_id, state, message="boom")
    waiting = asyncio.create_task(
        rucat.wait_until(engine_id, S.ErrorClean, timeout=60, poll_interval=0.01)
    )
    for state in (S.ErrorTriggerClean, S.ErrorCleanInProgress, S.ErrorClean):
        await force_state(api.store, engine_id, state, message="boom")

    assert (await waiting).state is S.ErrorClean


@contextlib.asynccontextmanager
async def serving(store: EngineStore, port: int) -> AsyncIterator[str]:
    """A REST server over `store` on a fixed `port`, so a test can restart it."""
    app = create_app(RucatConfig(), store=store, platform=None)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
        )
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_wait_until_rides_out_a_server_restart(store: EngineStore) -> None:
    port = free_port()
    seen = Seen()
    async with serving(store, port) as url:
        rucat = AsyncRucatClient(url)
        engine_id = await rucat.create("etl", "4.0.1")
        waiting = asyncio.create_task(
            rucat.wait_until(engine_id, S.Running, timeout=60, poll_interval=0.02, on_state=seen)
        )
        await seen.reported(S.WaitToStart)
    # The server is down: polls fail with no answer until it is back.
    await asyncio.sleep(0.2)
    assert not waiting.done()
    async with serving(store, port):
        for state in (S.TriggerStart, S.StartInProgress, S.Running):
            await force_state(store, engine_id, state)
        try:
            assert (await waiting).state is S.Running
        finally:
            await rucat.aclose()


async def test_wait_until_on_a_server_that_never_answered_fails_at_once() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with AsyncRucatClient(url) as nowhere:
        with pytest.raises(ServerUnreachable, match=url):
            await nowhere.wait_until("a" * 20, S.Running, timeout=5)


# --- auth and transport errors --------------------------------------------------


async def test_without_credentials_a_protected_server_raises_unauthorized(
    start_api: StartApi,
) -> None:
    async with start_api(AUTH) as api:
        async with AsyncRucatClient(api.url) as anonymous:
            with pytest.raises(Unauthorized) as raised:
                await anonymous.list()
        assert raised.value.status == 401
        assert raised.value.detail

        async with AsyncRucatClient(api.url, username="alice", password="wrong") as wrong:
            with pytest.raises(Unauthorized, match="invalid credentials"):
                await wrong.list()
        async with AsyncRucatClient(api.url, token="not-the-token") as wrong_token:
            with pytest.raises(Unauthorized):
                await wrong_token.list()


async def test_a_token_or_a_username_and_password_authenticate(start_api: StartApi) -> None:
    async with start_api(AUTH) as api:
        async with AsyncRucatClient(api.url, token=TOKEN) as with_token:
            engine_id = await with_token.create("etl", "4.0.1")
        async with AsyncRucatClient(api.url, username="alice", password="s3cret") as with_basic:
            assert await with_basic.list() == [engine_id]
        events = await api.store.events(engine_id=engine_id)
        assert events[0].actor == "alice"


async def test_from_env_reads_the_clis_variables(
    start_api: StartApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with start_api(AUTH) as api:
        monkeypatch.setenv("RUCAT_URL", api.url)
        monkeypatch.setenv("RUCAT_TOKEN", TOKEN)
        monkeypatch.setenv("RUCAT_CONNECT_PORT", "15123")
        async with AsyncRucatClient.from_env() as rucat:
            engine_id = await rucat.create("etl", "4.0.1")
            assert rucat.connect_url(engine_id) == (
                f"sc://localhost:15123/;x-rucat-engine-id={engine_id};token={TOKEN}"
            )
        monkeypatch.delenv("RUCAT_TOKEN")
        monkeypatch.setenv("RUCAT_USERNAME", "alice")
        monkeypatch.setenv("RUCAT_PASSWORD", "s3cret")
        with RucatClient.from_env(connect_port=15002) as sync:
            assert await in_thread(sync.list) == [engine_id]
            assert sync.connect_port == 15002


async def test_a_username_without_a_password_is_refused_before_sending() -> None:
    with pytest.raises(BadRequest, match="password"):
        AsyncRucatClient("http://127.0.0.1:1", username="alice")


async def test_an_unreachable_server_raises_saying_which_url_and_what_to_do() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with AsyncRucatClient(url) as nowhere:
        with pytest.raises(ServerUnreachable) as raised:
            await nowhere.get("a" * 20)
    assert url in raised.value.detail
    assert "rucat up" in raised.value.detail
    assert "RUCAT_URL" in raised.value.detail
    assert raised.value.status is None


async def test_credentials_in_the_url_never_appear_in_an_error() -> None:
    port = free_port()
    async with AsyncRucatClient(f"http://alice:s3cret@127.0.0.1:{port}") as nowhere:
        with pytest.raises(ServerUnreachable) as raised:
            await nowhere.list()
    assert f"127.0.0.1:{port}" in raised.value.detail
    assert "s3cret" not in raised.value.detail


def test_every_error_status_maps_to_its_typed_error_under_one_root() -> None:
    expected: dict[int, type[RucatClientError]] = {
        400: BadRequest,
        401: Unauthorized,
        404: NotFound,
        409: Conflict,
        413: BadRequest,
        422: BadRequest,
        500: ServerError,
        502: ServerError,
        503: ServiceUnavailable,
    }
    for status, cls in expected.items():
        error = error_for_status(status, f"detail {status}")
        assert type(error) is cls
        assert isinstance(error, RucatError)
        assert (error.status, error.detail) == (status, f"detail {status}")


# --- the sync client ------------------------------------------------------------


async def test_the_sync_client_covers_the_same_api(api: Api) -> None:
    def scenario() -> dict[str, Any]:
        with RucatClient(api.url) as rucat:
            engine_id = rucat.create("etl", "4.0.1", {"spark.sql.shuffle.partitions": "4"})
            info = rucat.get(engine_id)
            listed = rucat.list()
            infos = rucat.list_info(state=S.WaitToStart)
            stopped = rucat.stop(engine_id)
            with pytest.raises(Conflict, match="Terminated"):
                rucat.stop(engine_id)
            restarted = rucat.restart(engine_id)
            events = rucat.events(engine_id)
            logs = rucat.logs(engine_id, tail=5)
            rucat.delete(engine_id)
            with pytest.raises(NotFound):
                rucat.get(engine_id)
            with pytest.raises(BadRequest, match="four"):
                rucat.create("etl", "four")
            return {
                "id": engine_id,
                "info": info,
                "listed": listed,
                "infos": infos,
                "states": (stopped.state, restarted.state),
                "events": [e.to_state for e in events],
                "logs": logs,
            }

    result = await in_thread(scenario)

    assert result["info"].configs == {"spark.sql.shuffle.partitions": "4"}
    assert result["info"].state is S.WaitToStart
    assert result["listed"] == [result["id"]]
    assert [i.id for i in result["infos"]] == [result["id"]]
    assert result["states"] == (S.Terminated, S.WaitToStart)
    assert result["events"] == [S.WaitToStart, S.Terminated, S.WaitToStart]
    assert result["logs"] == ""


async def test_the_sync_wait_until_returns_once_running_and_fails_early_on_error(
    api: Api,
) -> None:
    rucat = RucatClient(api.url)
    try:
        ok = await in_thread(lambda: rucat.create("ok", "4.0.1"))
        bad = await in_thread(lambda: rucat.create("bad", "4.0.1"))
        seen = Seen()
        waiting = asyncio.ensure_future(
            in_thread(
                lambda: rucat.wait_until(ok, S.Running, 60, poll_interval=0.01, on_state=seen)
            )
        )
        await seen.reported(S.WaitToStart)
        for state in (S.TriggerStart, S.StartInProgress, S.Running):
            await force_state(api.store, ok, state)
        assert (await waiting).state is S.Running

        for state in (S.TriggerStart, S.StartInProgress, S.ErrorWaitToClean):
            await force_state(api.store, bad, state, message="no such version")
        with pytest.raises(EngineFailed, match="no such version"):
            await in_thread(lambda: rucat.wait_until(bad, S.Running, 60, poll_interval=0.01))
        with pytest.raises(WaitTimeout):
            await in_thread(lambda: rucat.wait_until(ok, S.Terminated, 0.1, poll_interval=0.02))
    finally:
        rucat.close()


async def test_the_sync_client_raises_unauthorized_and_unreachable(start_api: StartApi) -> None:
    async with start_api(AUTH) as api:
        with RucatClient(api.url) as anonymous, pytest.raises(Unauthorized):
            await in_thread(anonymous.list)
        with RucatClient(api.url, token=TOKEN) as authorized:
            assert await in_thread(authorized.list) == []
    url = f"http://127.0.0.1:{free_port()}"
    with RucatClient(url) as nowhere, pytest.raises(ServerUnreachable, match=url):
        nowhere.list()


# --- the Spark Connect URL ------------------------------------------------------


def channel_of(url: str) -> Any:
    from pyspark.sql.connect.client import DefaultChannelBuilder

    return DefaultChannelBuilder(url)


def test_connect_url_routes_by_engine_id_to_the_servers_host_and_the_proxy_port() -> None:
    with RucatClient("http://rucat.example:3000", connect_port=15010) as rucat:
        url = rucat.connect_url("a" * 20)

    assert url == f"sc://rucat.example:15010/;x-rucat-engine-id={'a' * 20}"
    channel = channel_of(url)
    assert channel.endpoint == "rucat.example:15010"
    assert ("x-rucat-engine-id", "a" * 20) in list(channel.metadata())
    assert not channel.secure


def test_connect_url_with_a_token_on_loopback_uses_localhost_so_pyspark_skips_tls() -> None:
    with RucatClient("http://127.0.0.1:3000", token="tok/en;=x") as rucat:
        url = rucat.connect_url("a" * 20)
        tls_url = rucat.connect_url("a" * 20, use_ssl=True, proxy_host="proxy.example")

    channel = channel_of(url)
    assert channel.host == "localhost"
    assert channel.token == "tok/en;=x"
    assert not channel.use_ssl
    assert ("x-rucat-engine-id", "a" * 20) in list(channel.metadata())
    tls = channel_of(tls_url)
    assert tls.use_ssl
    assert tls.host == "proxy.example"
    assert tls.token == "tok/en;=x"


def test_connect_url_arguments_override_the_clients_defaults() -> None:
    with RucatClient("http://127.0.0.1:3000", token="mine") as rucat:
        url = rucat.connect_url("b" * 20, proxy_host="10.0.0.5", proxy_port=443, token="other")
    channel = channel_of(url)
    assert channel.endpoint == "10.0.0.5:443"
    assert channel.token == "other"


async def test_spark_session_fails_at_once_when_no_proxy_listens(api: Api) -> None:
    engine_id = await api.create()
    port = free_port()

    def session() -> None:
        with RucatClient(api.url, connect_port=port) as rucat:
            rucat.spark_session(engine_id)

    with pytest.raises(ServerUnreachable, match=f"127.0.0.1:{port}") as raised:
        await in_thread(session)
    assert "RUCAT_CONNECT_PORT" in raised.value.detail


async def test_spark_session_connects_to_the_servers_connect_url(
    start_api: StartApi,
) -> None:
    port = free_port()
    config = RucatConfig(connect_port=port, public_connect_host="127.0.0.1")
    async with start_api(config) as api:
        engine_id = await api.create()

        def session() -> None:
            with RucatClient(api.url) as rucat:
                rucat.spark_session(engine_id)

        # Nothing listens on the server's proxy port: the client tried exactly that one.
        with pytest.raises(ServerUnreachable, match=f"127.0.0.1:{port}"):
            await in_thread(session)


async def test_connect_takes_the_proxy_from_the_environment(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine_id = await api.create()
    port = free_port()
    monkeypatch.setenv("RUCAT_URL", api.url)
    monkeypatch.setenv("RUCAT_CONNECT_PORT", str(port))
    with pytest.raises(ServerUnreachable, match=f":{port}"):
        await in_thread(lambda: connect(engine_id))
