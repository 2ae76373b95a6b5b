"""The Spark Connect proxy: one authenticated gRPC port for every engine.

Clients connect to ``sc://<server>:<connect_port>/;x-rucat-engine-id=<id>``
and the proxy forwards each RPC, as raw bytes, to that engine's own Spark
Connect endpoint. This module is the glue around the data path
(server/proxy_forward.py): the server's lifecycle, admission of each RPC
(credentials, then the engine's route) and the cache of upstream channels.
The security decisions live in server/proxy_auth.py.

Invariants:

- No request message is read before the caller is authenticated and its
  engine found (the data path asks `Proxy.admit` first).
- Refusals fail fast with a status pyspark does not retry: UNAUTHENTICATED
  (missing/wrong credentials, checked first so ids cannot be probed),
  INVALID_ARGUMENT (no engine id), NOT_FOUND (unknown engine),
  FAILED_PRECONDITION (engine not Running, naming its state). Never
  UNAVAILABLE, which pyspark retries for minutes; only a store outage answers
  UNAVAILABLE, because retrying that is right.
- The client's ``authorization`` header never reaches the engine; the proxy
  sends the engine's own ``connect_token`` instead, so only the proxy can
  talk to a Spark 4 engine. Tokens are never logged.
- One cached upstream channel per engine, replaced when the engine's
  endpoint or token changes and dropped when the engine stops or is idle.
- Activity is recorded in the store in the background, and refreshed while
  an engine has RPCs in flight (server/proxy_activity.py): that is what tells
  auto-stop an engine is busy.
- A call for a Terminated engine starts it, after the call was admitted
  (server/proxy_start.py), unless `auto_start_on_connect` is off; then, and
  for engines in error states, a call for an engine that is not Running
  answers FAILED_PRECONDITION.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from rucat.config import RucatConfig
from rucat.domain.access import Allow, EngineAction, Grant, decide_access
from rucat.domain.connect import dial_target
from rucat.domain.engine import Engine, EngineId, is_engine_id
from rucat.domain.errors import ConfigError, EngineNotFound, StoreUnavailable
from rucat.domain.principal import Principal
from rucat.domain.state import ERROR_STATES, EngineState
from rucat.server.actions import restart_check
from rucat.server.auth import Authenticator
from rucat.server.proxy_activity import ActivityTracker
from rucat.server.proxy_auth import ENGINE_ID_KEY, ProxyCredentials, Refused, forwardable
from rucat.server.proxy_forward import ForwardingHandler, Route, server_options, upstream_options
from rucat.server.proxy_start import HOLD_SECS, AutoStarter
from rucat.store import EngineStore

__all__ = ["ENGINE_ID_KEY", "Proxy", "start_proxy"]

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Proxy:
    """A running proxy. Build it with `start_proxy`; `close()` stops it."""

    def __init__(
        self,
        *,
        store: EngineStore,
        credentials: ProxyCredentials,
        clock: Callable[[], datetime],
        route_ttl_secs: float,
        activity_interval_secs: float,
        idle_channel_secs: float,
        max_message_bytes: int,
        handshake_timeout_secs: float,
        auto_start: bool,
        auto_start_hold_secs: float,
        auto_start_check: Callable[[Engine], None] | None,
        auto_start_max_active: int | None = None,
    ) -> None:
        self._store = store
        self._credentials = credentials
        self._clock = clock
        self._route_ttl = route_ttl_secs
        self._idle_channel_secs = idle_channel_secs
        self._upstream_options = upstream_options(max_message_bytes)
        self._server_options = server_options(max_message_bytes, handshake_timeout_secs)
        self._routes: dict[EngineId, Route] = {}
        self._activity = ActivityTracker(
            store=store, clock=clock, refresh_secs=activity_interval_secs
        )
        self._starter = (
            AutoStarter(
                store=store,
                clock=clock,
                hold_secs=auto_start_hold_secs,
                check=auto_start_check,
                max_active_engines_per_user=auto_start_max_active,
            )
            if auto_start
            else None
        )
        self._background: set[asyncio.Task[None]] = set()
        self._server: grpc.aio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.port = 0
        self.tls = False
        #: RPCs forwarded to an engine since start (refusals not counted).
        self.rpcs_forwarded = 0

    # --- lifecycle ----------------------------------------------------------

    async def _start(self, *, host: str, port: int, tls: tuple[bytes, bytes] | None) -> None:
        server = grpc.aio.server(options=self._server_options)
        server.add_generic_rpc_handlers((ForwardingHandler(self),))
        address = f"{host}:{port}"
        try:
            if tls is not None:
                creds = grpc.ssl_server_credentials([(tls[1], tls[0])])
                bound = server.add_secure_port(address, creds)
            else:
                bound = server.add_insecure_port(address)
        except RuntimeError as e:
            raise ConfigError(f"connect_port: cannot listen on {address}: {e}") from e
        if bound == 0:
            raise ConfigError(f"connect_port: cannot listen on {address}")
        await server.start()
        self._server = server
        self.port = bound
        self.tls = tls is not None
        self._sweeper = asyncio.create_task(self._sweep_idle_channels())
        self._activity.start()
        log.info(
            "Spark Connect proxy listening on %s:%d (%s, auth %s)",
            host,
            bound,
            "TLS" if self.tls else "plaintext",
            "required" if self._credentials.required else "off",
        )

    async def close(self, *, grace: float = 5.0) -> None:
        """Stop accepting RPCs, let running ones finish for `grace` s, close channels."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        routes, self._routes = list(self._routes.values()), {}
        for route in routes:
            await route.channel.close()
        # Last activity records; a slow store must not hold up shutdown for long.
        await self._activity.close(grace=grace)
        if self._background:
            await asyncio.wait(set(self._background), timeout=grace)

    @property
    def auto_starts(self) -> int:
        """Engines this proxy started on a call since it started."""
        return self._starter.auto_starts if self._starter is not None else 0

    # --- routing ------------------------------------------------------------

    async def _route(self, engine_id: EngineId, principal: Principal) -> Route:
        """The route to `engine_id` on behalf of `principal` (who asks)."""
        now = time.monotonic()
        route = self._routes.get(engine_id)
        # A cached route admits only whom its cached grants admit; anyone else
        # is checked against the store (a grant just given works at once; a
        # revoked one lasts at most the route's TTL).
        if (
            route is not None
            and now - route.checked_at < self._route_ttl
            and _may_connect(principal, owner=route.owner, grants=route.grants)
        ):
            return route
        try:
            engine = await self._store.get(engine_id=engine_id)
        except EngineNotFound:
            self._evict(engine_id)
            raise _not_found(engine_id) from None
        except StoreUnavailable as e:
            raise Refused(grpc.StatusCode.UNAVAILABLE, f"store unavailable: {e.message}") from e
        # Before the state: a caller with no level must not learn the engine's state.
        _check_access(principal, engine_id, owner=engine.owner, grants=engine.grants)
        if self._starter is not None and engine.state is not EngineState.Running:
            engine = await self._starter.until_running(engine, caller=principal)
        target, token = self._check_running(engine)
        # No await from here on: the check and the cache update are atomic.
        route = self._routes.get(engine_id)
        if route is not None and (route.target != target or route.token != token):
            self._evict(engine_id)
            route = None
        if route is None:
            channel = grpc.aio.insecure_channel(target, options=self._upstream_options)
            auth = (("authorization", f"Bearer {token}"),) if token else ()
            route = Route(
                target=target,
                token=token,
                channel=channel,
                checked_at=now,
                last_used=now,
                upstream_metadata=auth,
            )
            self._routes[engine_id] = route
        route.checked_at = now
        route.owner, route.grants = engine.owner, engine.grants
        return route

    def _check_running(self, engine: Engine) -> tuple[str, str | None]:
        if engine.state is not EngineState.Running:
            self._evict(engine.id)
            why = f": {engine.message}" if engine.state in ERROR_STATES and engine.message else ""
            raise Refused(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"engine {engine.id} is {engine.state.value}, not Running{why}",
            )
        if not engine.endpoint:
            raise Refused(
                grpc.StatusCode.FAILED_PRECONDITION, f"engine {engine.id} has no endpoint yet"
            )
        return dial_target(engine.endpoint), engine.connect_token

    def _evict(self, engine_id: EngineId) -> None:
        self._activity.forget(engine_id)
        route = self._routes.pop(engine_id, None)
        if route is not None:
            # Calls still on it finish or fail on their own; the engine moved or stopped.
            self._spawn(route.channel.close(grace=30.0))

    async def _sweep_idle_channels(self) -> None:
        interval = max(1.0, min(60.0, self._idle_channel_secs / 2))
        while True:
            await asyncio.sleep(interval)
            cutoff = time.monotonic() - self._idle_channel_secs
            for engine_id, route in list(self._routes.items()):
                if route.in_flight == 0 and route.last_used < cutoff:
                    self._evict(engine_id)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- one RPC --------------------------------------------------------------

    async def admit(
        self, *, method: str, context: grpc.aio.ServicerContext
    ) -> tuple[EngineId, Route, tuple[tuple[str, Any], ...]]:
        """Check the caller and find its engine, or end the RPC with a refusal.

        Returns the engine id, its route (counted in flight until `release`)
        and the metadata to send upstream.
        """
        metadata = context.invocation_metadata() or ()
        engine_id: str | None = None
        presented: str | None = None
        for key, value in metadata:
            if key == ENGINE_ID_KEY and isinstance(value, str):
                engine_id = value
            elif key == "authorization" and isinstance(value, str):
                presented = value
        try:
            principal = await self._credentials.principal(presented)
            if not engine_id:
                raise Refused(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"no engine id: add ;{ENGINE_ID_KEY}=<engine id> to the sc:// connection "
                    "string",
                )
            if not is_engine_id(engine_id):
                raise _not_found(engine_id[:64])
            route = await self._route(engine_id, principal)
        except Refused as refusal:
            log.debug("refused %s for engine %r: %s", method, engine_id, refusal.code.name)
            await context.abort(refusal.code, refusal.details)
            raise AssertionError("unreachable: abort raises") from None
        self._activity.begin(engine_id)
        self.rpcs_forwarded += 1
        route.in_flight += 1
        route.last_used = time.monotonic()
        return engine_id, route, (*forwardable(metadata), *route.upstream_metadata)

    def release(self, *, engine_id: EngineId, route: Route, call: Any) -> None:
        # Reached on success, on upstream failure, and when the client cancels
        # (then the upstream call is cancelled too; otherwise this is a no-op).
        # `call` is None when the RPC ended before the engine was called.
        if call is not None:
            call.cancel()
        route.in_flight -= 1
        route.last_used = time.monotonic()
        self._activity.end(engine_id)


def _not_found(engine_id: str) -> Refused:
    """The refusal for an unknown engine, and for one the caller may not see (the same)."""
    return Refused(grpc.StatusCode.NOT_FOUND, str(EngineNotFound(engine_id)))


def _may_connect(principal: Principal, *, owner: str | None, grants: tuple[Grant, ...]) -> bool:
    """Attach suffices to connect."""
    decision = decide_access(principal, EngineAction.CONNECT, owner=owner, grants=grants)
    return isinstance(decision, Allow)


def _check_access(
    principal: Principal, engine_id: EngineId, *, owner: str | None, grants: tuple[Grant, ...]
) -> None:
    """Refuse as NOT_FOUND, exactly as for an unknown id, unless `principal` may connect."""
    if not _may_connect(principal, owner=owner, grants=grants):
        raise _not_found(engine_id)


def _read_tls(config: RucatConfig) -> tuple[bytes, bytes] | None:
    cert, key = config.connect_tls_cert, config.connect_tls_key
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("connect_tls_cert and connect_tls_key must be given together")
    try:
        return Path(cert).read_bytes(), Path(key).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read the proxy's TLS certificate or key: {e}") from e


async def start_proxy(
    config: RucatConfig,
    *,
    store: EngineStore,
    authenticator: Authenticator | None = None,
    clock: Callable[[], datetime] = _utc_now,
    route_ttl_secs: float = 1.0,
    activity_interval_secs: float | None = None,
    idle_channel_secs: float = 300.0,
    auto_start_hold_secs: float = HOLD_SECS,
) -> Proxy:
    """Listen on config.host:config.connect_port (0: any free port) and forward.

    `authenticator` checks callers (the REST API's, so both accept the same
    credentials); default: one built from config.auth_provider.
    `route_ttl_secs` is how long an engine's Running state and endpoint are
    trusted before the store is asked again (0: every RPC asks);
    `activity_interval_secs` how often activity of engines with RPCs in
    flight is refreshed (default: config.auto_stop.busy_refresh_secs);
    `auto_start_hold_secs` how long a call for a starting engine waits for it.
    Raises ConfigError when connect_port is None, the TLS files cannot be
    read, or the port cannot be bound.
    """
    if config.connect_port is None:
        raise ConfigError("connect_port is null: the Spark Connect proxy is disabled")
    tls = _read_tls(config)
    proxy = Proxy(
        store=store,
        credentials=ProxyCredentials(
            authenticator or Authenticator(config.auth_provider, tokens=store, clock=clock)
        ),
        clock=clock,
        route_ttl_secs=route_ttl_secs,
        activity_interval_secs=(
            activity_interval_secs
            if activity_interval_secs is not None
            else config.auto_stop.busy_refresh_secs
        ),
        idle_channel_secs=idle_channel_secs,
        max_message_bytes=config.connect_max_message_bytes,
        handshake_timeout_secs=config.header_timeout_secs,
        auto_start=config.auto_start_on_connect,
        auto_start_hold_secs=auto_start_hold_secs,
        auto_start_check=restart_check(config),
        auto_start_max_active=config.quotas.max_active_engines_per_user,
    )
    await proxy._start(host=config.host, port=config.connect_port, tls=tls)
    return proxy
