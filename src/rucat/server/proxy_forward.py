"""The proxy's data path: one RPC's bytes, from a client to an engine and back.

Kept apart from the routing and auth glue (server/proxy.py) because this is
the part every message crosses, so the part whose cost is measured
(bench/proxy_cpu.py, bench/proxy.py). It never parses a message: requests and
responses stay bytes, so there is no protobuf cost. Initial metadata,
trailing metadata (including ``grpc-status-details-bin``, which carries an
AnalysisException's error class), status code and details pass through
unchanged.

Any method is forwarded. On the wire a unary or one-sided streaming call is a
bidirectional stream with one message on a side, so a bidi pass-through
carries every method; for Spark Connect's known methods (`METHOD_SHAPES`) the
proxy calls the engine with gRPC's cheaper unary multi-callables instead,
which halves its per-RPC CPU.

Every handler is registered with a *streaming request side*, even for a
unary method: gRPC reads a unary request whole before it calls the handler,
so an unauthenticated client could make the proxy buffer a message of any
size. A streaming handler runs as soon as the call's metadata arrives; it
asks its `Admission` (the caller's credentials, the engine's route) first,
and only then reads the (one) request message. Messages beyond the
configured maximum are refused by gRPC itself with RESOURCE_EXHAUSTED, in
both directions.

Cost (bench/proxy_cpu.py): nearly all of a forwarded RPC's CPU is grpc.aio's
own (its completion-queue thread, the event loop's wake-ups, the copies of
each message into and out of Python bytes); the handlers are one coroutine
per RPC, built once per method, with no per-RPC lookups beyond the route.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
import grpc.aio

from rucat.domain.access import Grant
from rucat.domain.engine import EngineId
from rucat.server.proxy_auth import forwardable

__all__ = [
    "METHOD_SHAPES",
    "Admission",
    "ForwardingHandler",
    "Route",
    "Shape",
    "server_options",
    "upstream_options",
]


class Shape(enum.Enum):
    """How many messages each side of a method sends: one (unary) or a stream."""

    UNARY_UNARY = "unary_unary"
    UNARY_STREAM = "unary_stream"
    STREAM_UNARY = "stream_unary"
    STREAM_STREAM = "stream_stream"


_SERVICE = "/spark.connect.SparkConnectService/"

#: Spark Connect's methods (Spark 3.4 to 4.0) and their shapes, as in its
#: base.proto; tests check this against the installed pyspark. A method not
#: listed (a newer Spark's) is forwarded as a bidi stream, which fits any shape.
METHOD_SHAPES: dict[str, Shape] = {
    _SERVICE + "ExecutePlan": Shape.UNARY_STREAM,
    _SERVICE + "AnalyzePlan": Shape.UNARY_UNARY,
    _SERVICE + "Config": Shape.UNARY_UNARY,
    _SERVICE + "AddArtifacts": Shape.STREAM_UNARY,
    _SERVICE + "ArtifactStatus": Shape.UNARY_UNARY,
    _SERVICE + "Interrupt": Shape.UNARY_UNARY,
    _SERVICE + "ReattachExecute": Shape.UNARY_STREAM,
    _SERVICE + "ReleaseExecute": Shape.UNARY_UNARY,
    _SERVICE + "ReleaseSession": Shape.UNARY_UNARY,
    _SERVICE + "FetchErrorDetails": Shape.UNARY_UNARY,
}

#: Spark Connect has about a dozen methods; anything beyond is not worth caching
#: (method paths come from clients, so every per-path cache is bounded by this).
_MAX_CACHED_METHODS = 32


def _channel_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    """What a side receives is limited; what it sends was received, so already limited."""
    return [
        ("grpc.max_send_message_length", -1),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def server_options(max_message_bytes: int, handshake_timeout_secs: float) -> list[tuple[str, Any]]:
    """Options of the proxy's own gRPC server (the client side of the data path)."""
    return [
        *_channel_options(max_message_bytes),
        # Without this a second server could silently bind the same port.
        ("grpc.so_reuseport", 0),
        # A connection that never completes its HTTP/2 (and TLS) handshake is
        # closed after this, not gRPC's default 120 s: half-open sockets must
        # not use up the process's files.
        ("grpc.server_handshake_timeout_ms", max(1, int(handshake_timeout_secs * 1000))),
    ]


def upstream_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    """Options of a channel to an engine (the engine side of the data path)."""
    return [
        *_channel_options(max_message_bytes),
        ("grpc.primary_user_agent", "rucat-proxy"),
        # The proxy forwards; the client decides whether to retry.
        ("grpc.enable_retries", 0),
    ]


@dataclass
class Route:
    """An engine's upstream channel and what it was built from."""

    target: str
    token: str | None
    channel: grpc.aio.Channel
    checked_at: float
    last_used: float
    in_flight: int = 0
    upstream_metadata: tuple[tuple[str, str], ...] = field(default=())
    #: Who may use the route: the engine's owner and grants as last read
    #: (trusted for the route's TTL, like its state).
    owner: str | None = None
    grants: tuple[Grant, ...] = ()
    #: Raw-bytes multi-callables of this channel, by method path.
    methods: dict[str, Any] = field(default_factory=dict)

    def method(self, path: str, shape: Shape) -> Any:
        found = self.methods.get(path)
        if found is None:
            # No (de)serializers: requests and responses stay bytes.
            found = getattr(self.channel, shape.value)(path)
            if len(self.methods) < _MAX_CACHED_METHODS:
                self.methods[path] = found
        return found


class Admission(Protocol):
    """Who decides whether an RPC may go on, and where (server/proxy.py's Proxy)."""

    async def admit(
        self, *, method: str, context: grpc.aio.ServicerContext
    ) -> tuple[EngineId, Route, tuple[tuple[str, Any], ...]]:
        """(engine id, its route, the metadata to send upstream), or end the RPC refused.

        The route counts the RPC in flight until `release`. Reads no request message.
        """
        ...

    def release(self, *, engine_id: EngineId, route: Route, call: Any) -> None:
        """The RPC ended; `call` (the upstream call, None if not made) is cancelled."""
        ...


async def _one_request(context: grpc.aio.ServicerContext) -> bytes:
    """The single request message of a unary method, read only after admission."""
    request = await context.read()
    if not isinstance(request, bytes):  # EOF: the client sent no message
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no request message")
        raise AssertionError("unreachable: abort raises")
    return request


async def _pass_initial(context: grpc.aio.ServicerContext, call: Any) -> None:
    initial = forwardable(await call.initial_metadata())
    if initial:
        await context.send_initial_metadata(initial)


def _pass_trailing(
    context: grpc.aio.ServicerContext, trailing: Sequence[tuple[str, str | bytes]] | None
) -> None:
    forwarded = forwardable(trailing)
    if forwarded:
        context.set_trailing_metadata(forwarded)


async def _abort_as_upstream(
    context: grpc.aio.ServicerContext, route: Route, error: grpc.aio.AioRpcError
) -> None:
    """End the client's RPC exactly as the engine ended ours."""
    if error.code() == grpc.StatusCode.UNAVAILABLE:
        # The engine may have moved or died: look it up again next time.
        route.checked_at = float("-inf")
    await context.abort(
        error.code(),
        error.details() or "",
        trailing_metadata=tuple(forwardable(error.trailing_metadata())),
    )


def _unary_response(admission: Admission, method: str, shape: Shape) -> Callable[..., Any]:
    """The behaviour of `method` when the engine answers one message."""
    one_request = shape is Shape.UNARY_UNARY

    async def forward(requests: Any, context: grpc.aio.ServicerContext) -> bytes:
        engine_id, route, metadata = await admission.admit(method=method, context=context)
        call: Any = None
        try:
            request = await _one_request(context) if one_request else requests
            call = route.method(method, shape)(
                request, metadata=metadata, timeout=context.time_remaining()
            )
            response: bytes = await call
            await _pass_initial(context, call)
            _pass_trailing(context, await call.trailing_metadata())
            return response
        except grpc.aio.AioRpcError as e:
            await _abort_as_upstream(context, route, e)
            raise AssertionError("unreachable: abort raises") from e
        finally:
            admission.release(engine_id=engine_id, route=route, call=call)

    return forward


def _streamed_response(admission: Admission, method: str, shape: Shape) -> Callable[..., Any]:
    """The behaviour of `method` when the engine answers a stream."""
    one_request = shape is Shape.UNARY_STREAM

    async def forward(requests: Any, context: grpc.aio.ServicerContext) -> None:
        engine_id, route, metadata = await admission.admit(method=method, context=context)
        call: Any = None
        try:
            request = await _one_request(context) if one_request else requests
            call = route.method(method, shape)(
                request, metadata=metadata, timeout=context.time_remaining()
            )
            await _pass_initial(context, call)
            # context.write, not an async generator: one await less per message.
            read, write, eof = call.read, context.write, grpc.aio.EOF
            while (response := await read()) is not eof:
                await write(response)
            _pass_trailing(context, await call.trailing_metadata())
        except grpc.aio.AioRpcError as e:
            await _abort_as_upstream(context, route, e)
        finally:
            admission.release(engine_id=engine_id, route=route, call=call)

    return forward


#: How each method shape is forwarded and registered: always with a streaming
#: request side, so the handler runs before gRPC reads any request message.
_SHAPES: dict[
    Shape,
    tuple[
        Callable[[Admission, str, Shape], Callable[..., Any]],
        Callable[..., grpc.RpcMethodHandler],
    ],
] = {
    Shape.UNARY_UNARY: (_unary_response, grpc.stream_unary_rpc_method_handler),
    Shape.STREAM_UNARY: (_unary_response, grpc.stream_unary_rpc_method_handler),
    Shape.UNARY_STREAM: (_streamed_response, grpc.stream_stream_rpc_method_handler),
    Shape.STREAM_STREAM: (_streamed_response, grpc.stream_stream_rpc_method_handler),
}


class ForwardingHandler:
    """Any method, whatever its name, goes to the engine with its bytes untouched.

    A grpc.GenericRpcHandler by shape (gRPC checks for `service`).
    """

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        #: gRPC asks for a handler on every RPC: each method's is built once.
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        handler = self._handlers.get(method)
        if handler is None:
            shape = METHOD_SHAPES.get(method, Shape.STREAM_STREAM)
            behavior, register = _SHAPES[shape]
            # No (de)serializers: messages stay bytes end to end.
            handler = register(behavior(self._admission, method, shape))
            if len(self._handlers) < _MAX_CACHED_METHODS:
                self._handlers[method] = handler
        return handler
