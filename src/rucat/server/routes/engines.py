"""The engine routes: the seed's create, get, list, stop, restart and delete, plus
events, logs and versions.

Routes only write user intent to the store (one compare-and-set per action);
the monitor does the rest. The platform, when given, serves engine logs and
forgets an engine's leftovers after DELETE, and nothing else.
"""

# No `from __future__ import annotations`: FastAPI must evaluate the route
# annotations, and `Depends(visible_engine(store, ...))` names a closure variable.

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from rucat.config import RucatConfig
from rucat.domain.access import EngineAction, visibility
from rucat.domain.activity import idle_since, resolve_auto_stop
from rucat.domain.engine import Engine, EngineId, new_engine
from rucat.domain.errors import PlatformError
from rucat.domain.policy import Policy
from rucat.domain.principal import Principal
from rucat.domain.quota import active_limit
from rucat.domain.redaction import engine_secrets, redact_text
from rucat.domain.state import EngineState, UserAction
from rucat.platforms import Platform
from rucat.platforms.offer import platform_offer
from rucat.server.access import connect_url, host_of_header, url_host
from rucat.server.actions import TriggerWait, apply_user_action, restart_check
from rucat.server.auth import principal_of
from rucat.server.pools import PoolDesk
from rucat.server.routes.engine_id import EngineIdPath, visible_engine
from rucat.server.routes.errors import ERRORS
from rucat.server.schemas import (
    CreateEngineBody,
    EngineEventOut,
    EngineIdOut,
    EngineInfo,
    EngineLogs,
    EngineVersions,
    VersionsOut,
)
from rucat.store import EngineStore

log = logging.getLogger("rucat.server")

#: Largest `tail` accepted by GET /engine/{id}/logs.
MAX_LOG_TAIL = 100_000
#: Longer log texts are redacted in a worker thread.
_REDACT_INLINE_CHARS = 64 * 1024
#: Largest page of GET /engines.
MAX_LIST_LIMIT = 10_000


def engine_router(
    config: RucatConfig,
    *,
    store: EngineStore,
    platform: Platform | None,
    policy: Policy,
    clock: Callable[[], datetime],
    wrote: Callable[[EngineId], None],
    trigger_wait: TriggerWait,
    busy_grace: float,
    connect_port: int | None,
    pools: PoolDesk,
) -> APIRouter:
    """The engine routes over `store`; `wrote(engine_id)` runs after every successful write.
    A create matching a warm pool takes an idle engine from `pools`."""
    router = APIRouter(tags=["engines"], responses=ERRORS)
    offer = platform_offer(config.platform)

    def quota_of(principal: Principal) -> int | None:
        return active_limit(principal, config.quotas.max_active_engines_per_user)

    async def act(
        request: Request,
        engine_id: EngineId,
        action: UserAction,
        check: Callable[[Engine], None] | None = None,
    ) -> Engine | None:
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

    @router.post("/engine", response_model=EngineIdOut)
    async def create_engine(body: CreateEngineBody, request: Request) -> EngineIdOut:
        """Ask for a new engine; it starts in WaitToStart, or is Running at once when a warm
        pool it matches (or names) has an idle engine."""
        wanted = pools.request_of(body)
        # Versions the platform runs, and the confs the engine policy allows (400 otherwise).
        wanted = offer.validate(wanted, policy=policy)
        principal = principal_of(request)
        auto_stop = resolve_auto_stop(
            body.auto_stop_minutes,
            default=config.auto_stop.default_minutes,
            maximum=config.auto_stop.max_minutes,
        )
        pool = pools.choose(wanted, named=body.pool)
        if pool is not None:  # a warm engine, Running at once; an empty pool starts cold
            taken = await pools.take(
                pool,
                name=wanted.name,
                owner=principal.name,
                auto_stop_minutes=auto_stop,
                actor=principal.name,
                active_limit=quota_of(principal),
            )
            if taken is not None:
                wrote(taken.id)
                return EngineIdOut(id=taken.id)
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

    @router.get("/engine/{engine_id}", response_model=EngineInfo)
    async def get_engine(
        request: Request,
        engine: Annotated[Engine, Depends(visible_engine(store, EngineAction.GET))],
    ) -> EngineInfo:
        """The engine's info (never its secrets). Needs attach."""
        return info(request, engine)

    @router.get("/engines", response_model=list[EngineIdOut])
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

    @router.post("/engine/{engine_id}/stop", response_model=EngineInfo)
    async def stop_engine(engine_id: EngineIdPath, request: Request) -> EngineInfo:
        """Stop: WaitToStart -> Terminated; StartInProgress, Running -> WaitToTerminate."""
        result = await act(request, engine_id, UserAction.STOP)
        assert result is not None
        return info(request, result)

    @router.post("/engine/{engine_id}/restart", response_model=EngineInfo)
    async def restart_engine(engine_id: EngineIdPath, request: Request) -> EngineInfo:
        """Restart: WaitToTerminate -> Running; Terminated -> WaitToStart."""
        result = await act(request, engine_id, UserAction.RESTART, check=policy_allows)
        assert result is not None
        return info(request, result)

    @router.delete("/engine/{engine_id}", response_model=EngineIdOut)
    async def delete_engine(
        request: Request,
        engine: Annotated[Engine, Depends(visible_engine(store, EngineAction.DELETE))],
    ) -> EngineIdOut:
        """Remove an engine in WaitToStart, Terminated or ErrorClean, with its logs."""
        await act(request, engine.id, UserAction.DELETE)
        if platform is not None:
            try:
                await platform.forget(engine=engine)
            except Exception:  # leftovers only cost disk; the engine is gone from the store
                log.exception("could not forget engine %s on the platform", engine.id)
        return EngineIdOut(id=engine.id)

    @router.get("/engine/{engine_id}/events", response_model=list[EngineEventOut])
    async def engine_events(
        engine: Annotated[Engine, Depends(visible_engine(store, EngineAction.EVENTS))],
    ) -> list[EngineEventOut]:
        """The engine's state transitions, oldest first. Needs attach."""
        secrets = engine_secrets(engine)
        return [
            EngineEventOut.of(e, secrets=secrets) for e in await store.events(engine_id=engine.id)
        ]

    @router.get("/engine/{engine_id}/logs", response_model=EngineLogs)
    async def engine_logs(
        engine: Annotated[Engine, Depends(visible_engine(store, EngineAction.LOGS))],
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
        text = ""
        if platform is not None:
            try:
                text = await platform.logs(engine=engine, tail=tail)
            except PlatformError as e:
                if not engine.saved_logs:
                    raise
                log.warning("platform logs of %s unavailable (%s); using saved logs", engine.id, e)
        if not text and engine.saved_logs:
            text = _tail(engine.saved_logs, tail)
        secrets = engine_secrets(engine)
        if len(text) > _REDACT_INLINE_CHARS:  # linear, but keep long scans off the loop
            text = await asyncio.to_thread(redact_text, text, secrets)
        else:
            text = redact_text(text, secrets)
        return EngineLogs(id=engine.id, logs=text)

    @router.get("/versions", response_model=VersionsOut)
    async def versions() -> VersionsOut:
        """The engine types and versions the configured platform runs (POST /engine takes these)."""
        return VersionsOut(
            platform=config.platform.variant,
            engines=[
                EngineVersions(engine_type=offer.kind.engine_type, versions=list(offer.versions))
            ],
        )

    return router


def _tail(text: str, lines: int | None) -> str:
    if lines is None:
        return text
    kept = text.splitlines(keepends=True)[-lines:]
    return "".join(kept)
