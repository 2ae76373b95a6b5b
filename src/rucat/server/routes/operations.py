"""The operations routes: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Response

from rucat.domain.errors import StoreUnavailable
from rucat.domain.state import EngineState
from rucat.server.metrics import CONTENT_TYPE_LATEST, Metrics
from rucat.server.routes.errors import ERRORS
from rucat.server.schemas import Status
from rucat.store import EngineStore

log = logging.getLogger("rucat.server")


def operations_router(
    *, store: EngineStore, metrics: Metrics, clock: Callable[[], datetime]
) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health", response_model=Status)
    async def health() -> Status:
        """Liveness: the process answers (no auth, no store)."""
        return Status(status="ok")

    @router.get("/ready", response_model=Status, responses=ERRORS)
    async def ready() -> Status:
        """Readiness: the store answers, else 503."""
        await store.ping()
        return Status(status="ready")

    @router.get("/metrics", response_class=Response)
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

    return router
