"""The REST API: the seed's routes and shapes, exactly, plus additive routes.

`create_app` builds one FastAPI app over an EngineStore: the per-request layer
(middleware.py: auth, limits, metrics), the error answers (errors.py), and
the routers of server/routes/ (engines, permissions, tokens, operations), the
warm pools' (pools.py) and the console. Routes only write user intent to the store; the monitor does
the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from rucat.config import RucatConfig
from rucat.domain.engine import EngineId
from rucat.domain.request_origin import default_allowed_hosts
from rucat.platforms import Platform
from rucat.platforms.offer import platform_offer
from rucat.platforms.pool_profiles import pool_profiles
from rucat.server.actions import TRIGGER_WAIT, TriggerWait
from rucat.server.auth import Authenticator
from rucat.server.console import Sessions, console_router, install_console_redirects
from rucat.server.console.routes import HERE as CONSOLE_DIR
from rucat.server.errors import install_error_handlers
from rucat.server.metrics import Metrics
from rucat.server.middleware import RequestMiddleware
from rucat.server.pools import PoolDesk
from rucat.server.routes.engines import engine_router
from rucat.server.routes.errors import ERRORS
from rucat.server.routes.operations import operations_router
from rucat.server.routes.permissions import permission_router
from rucat.server.routes.pools import pool_router
from rucat.server.routes.tokens import token_router
from rucat.server.sparkui import Upstreams, sparkui_router
from rucat.store import EngineStore

log = logging.getLogger("rucat.server")


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
    sparkui_upstreams: Upstreams | None = None,
) -> FastAPI:
    """The REST API over `store`. `notify(engine_id)` runs after every successful write.

    `authenticator` checks callers (share the proxy's); default: one built from
    config.auth_provider. `auto_starts` and `auto_stops` read the counters of
    this process's proxy and monitor, for /metrics (None: not in this process).
    `trigger_wait`: how STOP and RESTART wait for a monitor to leave a trigger state.
    `connect_port`: the port the proxy actually bound (when config.connect_port
    is 0), shown in engine info's connect_url.
    `sparkui_upstreams`: the client the Spark UI proxy reaches drivers with (the
    caller closes it; default: one of this app's own, closed with the process).
    """
    app = FastAPI(
        title="Rucat",
        summary="A control plane for Spark Connect engines.",
        version="0.1.0",
        # A body without Content-Type is read as JSON (curl users forget -H).
        strict_content_type=False,
    )
    authenticator = authenticator or Authenticator(config.auth_provider, tokens=store, clock=clock)
    policy = platform_offer(config.platform).policy(config.engine_policy)
    busy_grace = 2 * config.auto_stop.busy_refresh_secs
    pools = PoolDesk(store, pool_profiles(config, policy=policy), clock=clock)
    metrics = Metrics(
        busy_grace=busy_grace,
        auto_starts=auto_starts,
        auto_stops=auto_stops,
        pools=pools.counts,
        pool_names=[p.name for p in pools.profiles],
    )
    sessions = Sessions(ttl=timedelta(minutes=config.console_session_minutes), clock=clock)
    app.state.www_authenticate = authenticator.challenge
    install_error_handlers(app)
    app.add_middleware(
        RequestMiddleware,
        authenticator=authenticator,
        metrics=metrics,
        max_body_bytes=config.max_body_bytes,
        # Included routers are not routes with a template: the middleware labels
        # refused requests (401, 413) by their routers' own routes (no prefixes).
        routes=lambda: [*app.routes, *(r for router in routers for r in router.routes)],
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

    token_errors = {
        **ERRORS,
        403: {"description": "Admins only"},
        404: {"description": "Unknown token (or another user's)"},
    }
    console = console_router(
        config,
        store=store,
        platform=platform,
        authenticator=authenticator,
        sessions=sessions,
        policy=policy,
        clock=clock,
        wrote=wrote,
    )
    routers: list[APIRouter] = [
        engine_router(
            config,
            store=store,
            platform=platform,
            policy=policy,
            clock=clock,
            wrote=wrote,
            trigger_wait=trigger_wait,
            busy_grace=busy_grace,
            connect_port=connect_port,
            pools=pools,
        ),
        pool_router(pools),
        permission_router(store=store),
        token_router(store=store, clock=clock, responses=token_errors),
        sparkui_router(store=store, platform=platform, upstreams=sparkui_upstreams or Upstreams()),
        console,
        operations_router(store=store, metrics=metrics, clock=clock),
    ]
    app.mount("/ui/static", StaticFiles(directory=CONSOLE_DIR / "static"), name="console-static")
    for router in routers:
        app.include_router(router)
    install_console_redirects(app)
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
