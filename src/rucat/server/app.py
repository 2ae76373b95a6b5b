"""The REST API: the seed's routes and shapes, exactly, plus additive routes.

`create_app` builds one FastAPI app over an EngineStore. Routes only write
user intent to the store (one compare-and-set per action); the monitor does
the rest. The platform, when given, serves engine logs and forgets an
engine's leftovers after DELETE, and nothing else.

Cross-cutting concerns live in their own modules: auth (auth.py), status
codes (errors.py), metrics (metrics.py), the per-request layer
(middleware.py), the state-machine loop for user actions (actions.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from rucat.config import RucatConfig
from rucat.domain.access import EngineAction, visibility
from rucat.domain.activity import idle_since, resolve_auto_stop
from rucat.domain.engine import (
    CreateEngineRequest,
    Engine,
    EngineId,
    EngineType,
    is_engine_id,
    new_engine,
)
from rucat.domain.errors import EngineNotFound, PlatformError, StoreUnavailable
from rucat.domain.principal import Principal
from rucat.domain.quota import active_limit
from rucat.domain.redaction import engine_secrets, redact_text
from rucat.domain.request_origin import default_allowed_hosts
from rucat.domain.state import EngineState, UserAction
from rucat.engines.spark import available_versions, validate_request
from rucat.engines.spark_policy import engine_policy
from rucat.platforms import Platform
from rucat.server.access import authorize, connect_url, host_of_header, url_host
from rucat.server.actions import (
    TRIGGER_WAIT,
    TriggerWait,
    apply_user_action,
    replace_grants,
    restart_check,
)
from rucat.server.auth import Authenticator, principal_of
from rucat.server.console import Sessions, console_router, install_console_redirects
from rucat.server.console.routes import HERE as CONSOLE_DIR
from rucat.server.errors import install_error_handlers
from rucat.server.metrics import CONTENT_TYPE_LATEST, Metrics
from rucat.server.middleware import RequestMiddleware
from rucat.server.schemas import (
    CreateEngineBody,
    EngineEventOut,
    EngineIdOut,
    EngineInfo,
    EngineLogs,
    EngineVersions,
    PermissionsBody,
    PermissionsOut,
    Status,
    VersionsOut,
)
from rucat.server.sparkui import sparkui_router
from rucat.server.tokens import token_router
from rucat.store import EngineStore

log = logging.getLogger("rucat.server")

#: Largest `tail` accepted by GET /engine/{id}/logs.
MAX_LOG_TAIL = 100_000
#: Longer log texts are redacted in a worker thread.
_REDACT_INLINE_CHARS = 64 * 1024
#: Largest page of GET /engines.
MAX_LIST_LIMIT = 10_000

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"example": {"detail": text}}}}
    for status, text in {
        400: "Bad input",
        401: "Unauthenticated",
        403: "The caller sees the engine but lacks the level this action needs",
        404: "Unknown engine (or one the caller may not see)",
        409: "Not allowed in the engine's current state",
        422: "Malformed input",
        429: "The caller's quota of active engines is used up",
        503: "Store unavailable",
    }.items()
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    config: RucatConfig,
    *,
    store: EngineStore,
    platform: Platform | None,
    clock: Callable[[], datetime] = _utc_now,
    notify: Callable[[str], None] | None = None,
    authenticator: Authenticator | None = None,
    auto_starts: Callable[[], int] | None = None,
    auto_stops: Callable[[], int] | None = None,
    trigger_wait: TriggerWait = TRIGGER_WAIT,
    connect_port: int | None = None,
) -> FastAPI:
    """The REST API over `store`. `notify(engine_id)` runs after every successful write.

    `authenticator` checks callers (share the proxy's); default: one built from
    config.auth_provider. `auto_starts` and `auto_stops` read the counters of
    this process's proxy and monitor, for /metrics (None: not in this process).
    `trigger_wait`: how STOP and RESTART wait for a monitor to leave a trigger state.
    `connect_port`: the port the proxy actually bound (when config.connect_port
    is 0), shown in engine info's connect_url.
    """
    app = FastAPI(
        title="Rucat",
        summary="A control plane for Spark Connect engines.",
        version="0.1.0",
        # A body without Content-Type is read as JSON (curl users forget -H).
        strict_content_type=False,
    )
    authenticator = authenticator or Authenticator(config.auth_provider, tokens=store, clock=clock)
    policy = engine_policy(config.platform.variant, config.engine_policy)
    busy_grace = 2 * config.auto_stop.busy_refresh_secs
    metrics = Metrics(busy_grace=busy_grace, auto_starts=auto_starts, auto_stops=auto_stops)
    sessions = Sessions(ttl=timedelta(minutes=config.console_session_minutes), clock=clock)
    app.state.www_authenticate = authenticator.challenge
    install_error_handlers(app)
    app.add_middleware(
        RequestMiddleware,
        authenticator=authenticator,
        metrics=metrics,
        max_body_bytes=config.max_body_bytes,
        routes=lambda: list(app.routes),
        allowed_hosts=(
            config.allowed_hosts
            if config.allowed_hosts is not None
            else default_allowed_hosts(config.host)
        ),
        allowed_origins=config.allowed_origins,
        sessions=sessions,
    )

    _document_security(app, authenticator)

    def wrote(engine_id: EngineId) -> None:
        if notify is not None:
            try:
                notify(engine_id)
            except Exception:  # a wake-up only shortens a wait; never fail the request
                log.exception("notify(%s) failed", engine_id)

    def actor_of(request: Request) -> str:
        return principal_of(request).name

    def quota_of(principal: Principal) -> int | None:
        return active_limit(principal, config.quotas.max_active_engines_per_user)

    async def load(request: Request, engine_id: str, action: EngineAction) -> Engine:
        """The engine, if the caller may do `action` to it (else 404 as if unknown, or 403)."""
        if not is_engine_id(engine_id):
            raise EngineNotFound(engine_id[:64])
        engine = await store.get(engine_id=engine_id)
        return authorize(principal_of(request), engine, action)

    async def act(
        request: Request,
        engine_id: str,
        action: UserAction,
        check: Callable[[Engine], None] | None = None,
    ) -> Engine | None:
        if not is_engine_id(engine_id):
            raise EngineNotFound(engine_id[:64])
        principal = principal_of(request)
        result = await apply_user_action(
            store,
            engine_id=engine_id,
            action=action,
            principal=principal,
            clock=clock,
            check=check,
            trigger_wait=trigger_wait,
            active_limit=quota_of(principal),
        )
        wrote(engine_id)
        return result

    # Confs never change after create, but the policy may have: an engine stored
    # before a rule refused its confs does not start again with them.
    policy_allows = restart_check(config)

    def info(request: Request, engine: Engine) -> EngineInfo:
        return EngineInfo.of(
            engine,
            idle_since=idle_since(engine, now=clock(), busy_grace=busy_grace),
            connect_url=connect_url_of(request, engine.id),
        )

    def connect_url_of(request: Request, engine_id: EngineId) -> str | None:
        port = connect_port if connect_port is not None else config.connect_port
        if port is None:
            return None
        host = config.public_connect_host
        if host is None:
            host = host_of_header(request.headers.get("host")) or url_host(config.host)
        return connect_url(
            engine_id, host=host or "localhost", port=port, tls=config.connect_tls_cert is not None
        )

    @app.post("/engine", response_model=EngineIdOut, responses=_ERRORS, tags=["engines"])
    async def create_engine(body: CreateEngineBody, request: Request) -> EngineIdOut:
        """Ask for a new engine; it starts in WaitToStart."""
        wanted = CreateEngineRequest(
            name=body.name,
            engine_type=body.engine_type,
            version=body.version,
            configs=dict(body.configs),
        )
        # Versions the platform runs, and the confs the engine policy allows (400 otherwise).
        wanted = validate_request(wanted, config.platform, policy=policy)
        principal = principal_of(request)
        auto_stop = resolve_auto_stop(
            body.auto_stop_minutes,
            default=config.auto_stop.default_minutes,
            maximum=config.auto_stop.max_minutes,
        )
        engine = new_engine(
            wanted,
            platform=config.platform.variant,
            now=clock(),
            auto_stop_minutes=auto_stop,
            owner=principal.name,
        )
        stored = await store.add(
            engine=engine, actor=principal.name, active_limit=quota_of(principal)
        )
        log.info(
            "engine %s created",
            stored.id,
            extra={"engine_id": stored.id, "to_state": stored.state.value},
        )
        wrote(stored.id)
        return EngineIdOut(id=stored.id)

    @app.get("/engine/{engine_id}", response_model=EngineInfo, responses=_ERRORS, tags=["engines"])
    async def get_engine(engine_id: str, request: Request) -> EngineInfo:
        """The engine's info (never its secrets). Needs attach."""
        return info(request, await load(request, engine_id, EngineAction.GET))

    @app.get("/engines", response_model=list[EngineIdOut], responses=_ERRORS, tags=["engines"])
    async def list_engines(
        request: Request,
        state: Annotated[list[EngineState] | None, Query(description="Only these states.")] = None,
        limit: Annotated[
            int | None, Query(ge=1, le=MAX_LIST_LIMIT, description="Page size.")
        ] = None,
        after: Annotated[
            str | None, Query(max_length=64, description="Id of the last engine of the last page.")
        ] = None,
        owner: Annotated[
            str | None, Query(max_length=255, description="Only engines this user owns.")
        ] = None,
    ) -> list[EngineIdOut]:
        """Ids of the engines the caller may see (admins: all), oldest first."""
        engines = await store.list(
            states=state or None,
            limit=limit,
            after=after,
            owner=owner,
            visible_to=visibility(principal_of(request)),
        )
        return [EngineIdOut(id=e.id) for e in engines]

    @app.post(
        "/engine/{engine_id}/stop", response_model=EngineInfo, responses=_ERRORS, tags=["engines"]
    )
    async def stop_engine(engine_id: str, request: Request) -> EngineInfo:
        """Stop: WaitToStart -> Terminated; StartInProgress, Running -> WaitToTerminate."""
        result = await act(request, engine_id, UserAction.STOP)
        assert result is not None
        return info(request, result)

    @app.post(
        "/engine/{engine_id}/restart",
        response_model=EngineInfo,
        responses=_ERRORS,
        tags=["engines"],
    )
    async def restart_engine(engine_id: str, request: Request) -> EngineInfo:
        """Restart: WaitToTerminate -> Running; Terminated -> WaitToStart."""
        result = await act(request, engine_id, UserAction.RESTART, check=policy_allows)
        assert result is not None
        return info(request, result)

    @app.delete(
        "/engine/{engine_id}", response_model=EngineIdOut, responses=_ERRORS, tags=["engines"]
    )
    async def delete_engine(engine_id: str, request: Request) -> EngineIdOut:
        """Remove an engine in WaitToStart, Terminated or ErrorClean, with its logs."""
        engine = await load(request, engine_id, EngineAction.DELETE)
        await act(request, engine_id, UserAction.DELETE)
        if platform is not None:
            try:
                await platform.forget(engine=engine)
            except Exception:  # leftovers only cost disk; the engine is gone from the store
                log.exception("could not forget engine %s on the platform", engine_id)
        return EngineIdOut(id=engine_id)

    @app.get(
        "/engine/{engine_id}/events",
        response_model=list[EngineEventOut],
        responses=_ERRORS,
        tags=["engines"],
    )
    async def engine_events(engine_id: str, request: Request) -> list[EngineEventOut]:
        """The engine's state transitions, oldest first. Needs attach."""
        engine = await load(request, engine_id, EngineAction.EVENTS)
        secrets = engine_secrets(engine)
        return [
            EngineEventOut.of(e, secrets=secrets) for e in await store.events(engine_id=engine_id)
        ]

    @app.get(
        "/engine/{engine_id}/permissions",
        response_model=PermissionsOut,
        responses=_ERRORS,
        tags=["permissions"],
    )
    async def get_permissions(engine_id: str, request: Request) -> PermissionsOut:
        """The engine's owner and grants. Needs manage."""
        return PermissionsOut.of(await load(request, engine_id, EngineAction.PERMISSIONS))

    @app.put(
        "/engine/{engine_id}/permissions",
        response_model=PermissionsOut,
        responses=_ERRORS,
        tags=["permissions"],
    )
    async def put_permissions(
        engine_id: str, body: PermissionsBody, request: Request
    ) -> PermissionsOut:
        """Replace the engine's grants (the owner and admins always have manage).
        Needs manage."""
        if not is_engine_id(engine_id):
            raise EngineNotFound(engine_id[:64])
        written = await replace_grants(
            store,
            engine_id=engine_id,
            grants=body.domain_grants(),
            principal=principal_of(request),
        )
        return PermissionsOut.of(written)

    @app.get(
        "/engine/{engine_id}/logs", response_model=EngineLogs, responses=_ERRORS, tags=["engines"]
    )
    async def engine_logs(
        engine_id: str,
        request: Request,
        tail: Annotated[
            int | None, Query(ge=1, le=MAX_LOG_TAIL, description="Only the last N lines.")
        ] = None,
    ) -> EngineLogs:
        """The engine's log, kept after it stops until DELETE.

        At most its last 1 MiB, `tail` or not: a longer whole log starts with a
        line saying how many earlier bytes are left out, and a longer single
        line keeps its end after a marker. The platform's full log stays on
        its disk (local: `engine.log` and `engine.log.1`, capped by
        `platform.Local.log_max_bytes`). Needs attach."""
        engine = await load(request, engine_id, EngineAction.LOGS)
        text = ""
        if platform is not None:
            try:
                text = await platform.logs(engine=engine, tail=tail)
            except PlatformError as e:
                if not engine.saved_logs:
                    raise
                log.warning("platform logs of %s unavailable (%s); using saved logs", engine_id, e)
        if not text and engine.saved_logs:
            text = _tail(engine.saved_logs, tail)
        secrets = engine_secrets(engine)
        if len(text) > _REDACT_INLINE_CHARS:  # linear, but keep long scans off the loop
            text = await asyncio.to_thread(redact_text, text, secrets)
        else:
            text = redact_text(text, secrets)
        return EngineLogs(id=engine.id, logs=text)

    token_errors = {
        **_ERRORS,
        403: {"description": "Admins only"},
        404: {"description": "Unknown token (or another user's)"},
    }
    app.include_router(token_router(store=store, clock=clock, responses=token_errors))

    @app.get("/versions", response_model=VersionsOut, responses=_ERRORS, tags=["engines"])
    async def versions() -> VersionsOut:
        """The engine types and versions the configured platform runs (POST /engine takes these)."""
        return VersionsOut(
            platform=config.platform.variant,
            engines=[
                EngineVersions(
                    engine_type=EngineType.Spark, versions=available_versions(config.platform)
                )
            ],
        )

    app.include_router(sparkui_router(store=store, platform=platform))

    app.mount("/ui/static", StaticFiles(directory=CONSOLE_DIR / "static"), name="console-static")
    app.include_router(
        console_router(
            config,
            store=store,
            platform=platform,
            authenticator=authenticator,
            sessions=sessions,
            policy=policy,
            clock=clock,
            wrote=wrote,
        )
    )
    install_console_redirects(app)

    @app.get("/health", response_model=Status, tags=["operations"])
    async def health() -> Status:
        """Liveness: the process answers (no auth, no store)."""
        return Status(status="ok")

    @app.get("/ready", response_model=Status, responses=_ERRORS, tags=["operations"])
    async def ready() -> Status:
        """Readiness: the store answers, else 503."""
        await store.ping()
        return Status(status="ready")

    @app.get("/metrics", response_class=Response, tags=["operations"])
    async def prometheus_metrics() -> Response:
        """Prometheus text: engines per state, busy and idle Running engines, auto-starts and
        auto-stops, requests and latencies per route."""
        try:
            # Counted in the store; only Running rows are read (for busy and idle).
            counts = await store.count_by_state()
            running = await store.list(states=[EngineState.Running])
        except StoreUnavailable as e:
            # Request metrics stay scrapeable while the store is down.
            log.warning("metrics without engine counts: %s", e.message)
            return Response(metrics.render(None, now=clock()), media_type=CONTENT_TYPE_LATEST)
        return Response(
            metrics.render((counts, running), now=clock()), media_type=CONTENT_TYPE_LATEST
        )

    return app


def _document_security(app: FastAPI, authenticator: Authenticator) -> None:
    """Declare the accepted auth schemes in /openapi.json (so /docs can send them)."""
    schemes = authenticator.schemes
    if not schemes:
        return

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=f"Authentication: {authenticator.description}",
                routes=app.routes,
            )
            components = schema.setdefault("components", {})
            components["securitySchemes"] = {
                name: {"type": "http", "scheme": name} for name in schemes
            }
            schema["security"] = [{name: []} for name in schemes]
            schema["paths"]["/health"]["get"]["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _tail(text: str, lines: int | None) -> str:
    if lines is None:
        return text
    kept = text.splitlines(keepends=True)[-lines:]
    return "".join(kept)
