"""What the proxy does to bytes and metadata, against a real gRPC upstream (no Java).

The upstream is a real grpc.aio server standing in for an engine: it records
what it received and answers as told. The proxy is the real one over a real
SQLite store, driven by a raw grpc.aio client, so every property here is the
proxy's own: forwarded metadata, status and details, message sizes,
cancellation, token replacement, activity records.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from google.rpc import code_pb2, status_pb2

from rucat.config import (
    AuthProviderConfig,
    DatabaseConfig,
    RucatConfig,
    SqliteConfig,
    StaticAuthConfig,
)
from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine
from rucat.domain.errors import ConfigError
from rucat.domain.state import EngineState
from rucat.server.proxy import Proxy, start_proxy
from rucat.store import EngineStore, open_store
from tests.conftest import FakeClock

CLIENT_TOKEN = "client-token-for-the-proxy"
ENGINE_TOKEN = "engine-token-only-the-proxy-knows"
#: A Spark Connect method the proxy knows (one request, a stream of responses).
METHOD = "/spark.connect.SparkConnectService/ExecutePlan"
#: A method the proxy does not know: forwarded as a bidi stream.
UNKNOWN_METHOD = "/rucat.test.Echo/Chat"


@dataclass
class Upstream:
    """A fake engine: a real gRPC server answering any method."""

    port: int
    server: grpc.aio.Server
    seen_metadata: list[dict[str, str | bytes]] = field(default_factory=list)
    seen_requests: list[list[bytes]] = field(default_factory=list)
    received: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        self.seen_metadata.append(dict(context.invocation_metadata() or ()))
        received = [r async for r in requests]
        self.seen_requests.append(received)
        self.received.set()
        command = received[0][:16] if received else b""
        if command.startswith(b"fail"):
            detail = status_pb2.Status(code=code_pb2.INTERNAL, message="it broke")
            context.set_trailing_metadata(
                (("grpc-status-details-bin", detail.SerializeToString()), ("x-why", "test"))
            )
            await context.abort(grpc.StatusCode.INTERNAL, "it broke")
        if command.startswith(b"hang"):
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        await context.send_initial_metadata((("x-engine-initial", "hello"),))
        if command.startswith(b"big "):  # "big N": one response of N bytes
            yield b"z" * int(command.split()[1])
            return
        for message in received:
            yield message
        # Several responses per request: a server stream.
        yield b"done"
        context.set_trailing_metadata((("x-engine-trailing", "bye"),))


class _AnyMethod:
    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return grpc.stream_stream_rpc_method_handler(self._upstream.handle)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    server = grpc.aio.server(options=options)
    port = server.add_insecure_port("127.0.0.1:0")
    fake = Upstream(port=port, server=server)
    server.add_generic_rpc_handlers((_AnyMethod(fake),))
    await server.start()
    yield fake
    await server.stop(0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EngineStore]:
    opened = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=str(tmp_path / "r.db"))))
    yield opened
    await opened.close()


async def _add(store: EngineStore, upstream: Upstream, **changes: Any) -> Engine:
    request = CreateEngineRequest(name="fake", engine_type=EngineType.Spark, version="4.0.1")
    engine = new_engine(request, platform="Local", now=datetime.now(UTC))
    fields: dict[str, Any] = {
        "state": EngineState.Running,
        "endpoint": f"sc://127.0.0.1:{upstream.port}",
        "connect_token": ENGINE_TOKEN,
        **changes,
    }
    engine = replace(engine, **fields)
    return await store.add(engine=engine, actor="test")


def _config(**changes: Any) -> RucatConfig:
    auth = AuthProviderConfig(StaticAuthProviderConfig=StaticAuthConfig(bearer_token=CLIENT_TOKEN))
    return RucatConfig(**{"connect_port": 0, "auth_provider": auth, **changes})


@contextlib.asynccontextmanager
async def _proxy(store: EngineStore, **kwargs: Any) -> AsyncIterator[Proxy]:
    config = kwargs.pop("config", None) or _config()
    proxy = await start_proxy(config, store=store, **kwargs)
    try:
        yield proxy
    finally:
        await proxy.close(grace=1.0)


@contextlib.asynccontextmanager
async def _channel(proxy: Proxy) -> AsyncIterator[grpc.aio.Channel]:
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{proxy.port}", options=options) as channel:
        yield channel


def _md(engine: Engine, *extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return (
        ("authorization", f"Bearer {CLIENT_TOKEN}"),
        ("x-rucat-engine-id", engine.id),
        *extra,
    )


async def _call(
    channel: grpc.aio.Channel,
    requests: list[bytes],
    metadata: Any,
    *,
    method: str = METHOD,
    **kwargs: Any,
) -> tuple[list[bytes], grpc.aio.StreamStreamCall]:
    call = channel.stream_stream(method)(iter(requests), metadata=metadata, **kwargs)
    return [r async for r in call], call


async def test_an_unknown_methods_messages_and_metadata_pass_through_both_ways(
    store: EngineStore, upstream: Upstream
) -> None:
    engine = await _add(store, upstream)
    async with _proxy(store) as proxy, _channel(proxy) as channel:
        responses, call = await _call(
            channel,
            [b"one", b"two"],
            _md(engine, ("x-client-thing", "kept")),
            method=UNKNOWN_METHOD,
        )
        assert responses == [b"one", b"two", b"done"]
        assert ("x-engine-initial", "hello") in list(await call.initial_metadata())
        assert ("x-engine-trailing", "bye") in list(await call.trailing_metadata())
        assert await call.code() == grpc.StatusCode.OK
    assert upstream.seen_requests == [[b"one", b"two"]]
    seen = upstream.seen_metadata[0]
    assert seen["x-client-thing"] == "kept"


async def test_the_engine_gets_its_own_token_never_the_clients(
    store: EngineStore, upstream: Upstream
) -> None:
    engine = await _add(store, upstream)
    async with _proxy(store) as proxy, _channel(proxy) as channel:
        await _call(channel, [b"x"], _md(engine))
    seen = upstream.seen_metadata[0]
    assert seen["authorization"] == f"Bearer {ENGINE_TOKEN}"
    assert "x-rucat-engine-id" not in seen
    assert CLIENT_TOKEN not in str(upstream.seen_metadata)


async def test_an_engine_without_a_token_gets_no_authorization(
    store: EngineStore, upstream: Upstream
) -> None:
    engine = await _add(store, upstream, connect_token=None)
    async with _proxy(store) as proxy, _channel(proxy) as channel:
        await _call(channel, [b"x"], _md(engine))
    assert "authorization" not in upstream.seen_metadata[0]


async def test_an_error_keeps_its_code_details_and_status_details(
    store: EngineStore, upstream: Upstream
) -> None:
    engine = await _add(store, upstream)
    async with _proxy(store) as proxy, _channel(proxy) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(channel, [b"fail please"], _md(engine))
    error = caught.value
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == "it broke"
    trailing = dict(error.trailing_metadata() or ())
    assert trailing["x-why"] == "test"
    status = status_pb2.Status.FromString(trailing["grpc-status-details-bin"])
    assert (status.code, status.message) == (code_pb2.INTERNAL, "it broke")


async def test_messages_far_beyond_grpcs_default_limit_pass(
    store: EngineStore, upstream: Upstream
) -> None:
    engine = await _add(store, upstream)
    big = bytes(range(256)) * (96 * 1024 * 1024 // 256)  # 96 MiB, both ways
    async with _proxy(store) as proxy, _channel(proxy) as channel:
        responses, _ = await _call(channel, [big], _md(engine))
    assert responses[0] == big


async def test_a_client_cancel_reaches_the_engine(store: EngineStore, upstream: Upstream) -> None:
    engine = await _add(store, upstream)
    async with _proxy(store) as proxy, _channel(proxy) as channel:
        call = channel.stream_stream(METHOD)(iter([b"hang"]), metadata=_md(engine))
        reader = asyncio.ensure_future(call.read())
        await asyncio.wait_for(upstream.received.wait(), 30)
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await asyncio.wait_for(upstream.cancelled.wait(), 30)


async def test_a_client_deadline_reaches_the_engine(store: EngineStore, upstream: Upstream) -> None:
    engine = await _add(store, upstream)
    async with _proxy(store) as proxy, _channel(proxy) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(channel, [b"hang"], _md(engine), timeout=1.0)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.wait_for(upstream.cancelled.wait(), 30)


async def test_refusals_use_codes_pyspark_does_not_retry(
    store: EngineStore, upstream: Upstream
) -> None:
    running = await _add(store, upstream)
    starting = await _add(store, upstream, state=EngineState.StartInProgress)
    cases: list[tuple[Any, grpc.StatusCode, str]] = [
        ((("x-rucat-engine-id", running.id),), grpc.StatusCode.UNAUTHENTICATED, "missing"),
        (
            (("authorization", "Bearer wrong"), ("x-rucat-engine-id", running.id)),
            grpc.StatusCode.UNAUTHENTICATED,
            "wrong",
        ),
        (
            (("authorization", f"Bearer {CLIENT_TOKEN}"),),
            grpc.StatusCode.INVALID_ARGUMENT,
            "x-rucat-engine-id",
        ),
        (
            (("authorization", f"Bearer {CLIENT_TOKEN}"), ("x-rucat-engine-id", "a" * 20)),
            grpc.StatusCode.NOT_FOUND,
            "a" * 20,
        ),
        (_md(starting), grpc.StatusCode.FAILED_PRECONDITION, "StartInProgress"),
    ]
    config = _config(auto_start_on_connect=False)  # with it, a starting engine is waited for
    async with _proxy(store, config=config) as proxy, _channel(proxy) as channel:
        for metadata, code, mention in cases:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _call(channel, [b"x"], metadata)
            assert caught.value.code() == code
            assert mention in (caught.value.details() or "")
    assert upstream.seen_requests == []  # nothing refused reached the engine


async def test_http_basic_credentials_are_accepted_too(
    store: EngineStore, upstream: Upstream
) -> None:
    import base64

    engine = await _add(store, upstream)
    static = StaticAuthConfig(username="ada", password="lovelace")  # type: ignore[arg-type]
    config = RucatConfig(
        connect_port=0, auth_provider=AuthProviderConfig(StaticAuthProviderConfig=static)
    )
    basic = "Basic " + base64.b64encode(b"ada:lovelace").decode()
    async with _proxy(store, config=config) as proxy, _channel(proxy) as channel:
        responses, _ = await _call(
            channel, [b"x"], (("authorization", basic), ("x-rucat-engine-id", engine.id))
        )
        assert responses == [b"x", b"done"]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(channel, [b"x"], _md(engine))  # a bearer token nobody configured
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_activity_is_recorded_at_the_clocks_time(
    store: EngineStore, upstream: Upstream, clock: FakeClock
) -> None:
    engine = await _add(store, upstream)
    async with (
        _proxy(store, clock=clock, activity_interval_secs=0) as proxy,
        _channel(proxy) as channel,
    ):
        await _call(channel, [b"x"], _md(engine))
        first = clock()
        await _eventually_activity(store, engine, first)
        clock.advance(60)
        await _call(channel, [b"x"], _md(engine))
        await _eventually_activity(store, engine, clock())


async def test_activity_within_an_interval_is_written_once_later_not_per_call(
    store: EngineStore, upstream: Upstream, clock: FakeClock
) -> None:
    engine = await _add(store, upstream)
    async with (
        _proxy(store, clock=clock, activity_interval_secs=3600) as proxy,
        _channel(proxy) as channel,
    ):
        await _call(channel, [b"x"], _md(engine))
        first = clock()
        await _eventually_activity(store, engine, first)
        clock.advance(60)
        for _ in range(5):
            await _call(channel, [b"x"], _md(engine))
        # Within the interval: not written per call...
        assert (await store.get(engine_id=engine.id)).last_activity_time == first
    # ...but not dropped either: closing writes the last of it.
    assert (await store.get(engine_id=engine.id)).last_activity_time == clock()


async def _eventually_activity(store: EngineStore, engine: Engine, at: datetime) -> None:
    for _ in range(500):
        if (await store.get(engine_id=engine.id)).last_activity_time == at:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"last_activity_time never became {at}")


async def test_a_changed_endpoint_is_followed(store: EngineStore, upstream: Upstream) -> None:
    other = Upstream(port=0, server=grpc.aio.server())
    other.port = other.server.add_insecure_port("127.0.0.1:0")
    other.server.add_generic_rpc_handlers((_AnyMethod(other),))
    await other.server.start()
    try:
        engine = await _add(store, upstream)
        async with _proxy(store, route_ttl_secs=0) as proxy, _channel(proxy) as channel:
            await _call(channel, [b"x"], _md(engine))
            current = await store.get(engine_id=engine.id)
            moved = replace(current, endpoint=f"sc://127.0.0.1:{other.port}")
            await store.transition(current=current, new=moved, actor="test")
            await _call(channel, [b"y"], _md(engine))
        assert upstream.seen_requests == [[b"x"]]
        assert other.seen_requests == [[b"y"]]
    finally:
        await other.server.stop(0)


async def test_no_connect_port_means_no_proxy(store: EngineStore) -> None:
    with pytest.raises(ConfigError, match="connect_port"):
        await start_proxy(RucatConfig(connect_port=None), store=store)


async def test_a_tls_key_without_a_certificate_is_a_config_error(
    store: EngineStore, tmp_path: Path
) -> None:
    key = tmp_path / "k.pem"
    key.write_text("not a key", encoding="utf-8")
    with pytest.raises(ConfigError, match="together"):
        await start_proxy(_config(connect_tls_key=str(key)), store=store)


async def test_a_port_in_use_is_a_config_error_naming_it(store: EngineStore) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=str(port)):
            await start_proxy(_config(connect_port=port), store=store)


async def test_a_request_over_the_message_limit_is_refused_and_never_reaches_the_engine(
    store: EngineStore, upstream: Upstream
) -> None:
    engine = await _add(store, upstream)
    config = _config(connect_max_message_bytes=1 << 20)
    async with _proxy(store, config=config) as proxy, _channel(proxy) as channel:
        for method in (METHOD, "/spark.connect.SparkConnectService/AnalyzePlan"):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _call(channel, [b"x" * (2 << 20)], _md(engine), method=method)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, method
        responses, _ = await _call(channel, [b"x" * (1 << 19)], _md(engine))
        assert len(responses[0]) == 1 << 19  # under the limit: forwarded
    assert upstream.seen_requests == [[b"x" * (1 << 19)]]


async def test_a_response_over_the_message_limit_is_refused(
    store: EngineStore, upstream: Upstream
) -> None:
    engine = await _add(store, upstream)
    config = _config(connect_max_message_bytes=1 << 20)
    async with _proxy(store, config=config) as proxy, _channel(proxy) as channel:
        responses, _ = await _call(channel, [f"big {1 << 19}".encode()], _md(engine))
        assert len(responses[0]) == 1 << 19
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(channel, [f"big {2 << 20}".encode()], _md(engine))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_unary_method_called_without_a_message_is_invalid(
    store: EngineStore, upstream: Upstream
) -> None:
    engine = await _add(store, upstream)
    async with _proxy(store) as proxy, _channel(proxy) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(channel, [], _md(engine))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "no request message" in (caught.value.details() or "")
    assert upstream.seen_requests == []


async def test_a_connection_that_never_completes_its_handshake_is_closed(
    store: EngineStore,
) -> None:
    async with _proxy(store, config=_config(header_timeout_secs=0.5)) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"PRI * HTTP/2.0\r\n")  # half the client preface, then nothing
        await writer.drain()

        async def until_closed() -> None:
            while await reader.read(4096):
                pass  # the server's SETTINGS frame

        await asyncio.wait_for(until_closed(), 60)  # gRPC's own default: 120 s
        writer.close()
