"""The fragments htmx polls: the engine list's rows, one engine's live part, its log tail.

A fragment answers 204 when nothing changed since the version the page holds
(the list's signature, the engine's revision), so a refresh never replaces the
DOM under the keyboard focus. The log is read from the platform, or else the
tail saved before the engine stopped, and always redacted.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from rucat.domain.access import EngineAction
from rucat.domain.errors import PlatformError
from rucat.domain.redaction import engine_secrets, redact_text
from rucat.server.console.context import Console

log = logging.getLogger("rucat.console")

#: How many lines of an engine's log the console shows.
LOG_TAIL_LINES = 500


def add_live(router: APIRouter, ui: Console) -> None:
    """Register the console's polled fragments on `router` (prefix /ui)."""

    @router.get("/rows", response_class=HTMLResponse)
    async def engines_rows(request: Request) -> Response:
        viewer = ui.viewer_of(request)
        state = ui.state_filter(request)
        found = await ui.rows(viewer, state)
        sig = ui.signature(found)
        if request.query_params.get("sig") == sig:
            return Response(status_code=204)
        return ui.render(
            request,
            "_rows.html",
            viewer,
            rows=found,
            sig=sig,
            state=state.value if state else "",
        )

    @router.get("/engine/{engine_id}/live", response_class=HTMLResponse)
    async def engine_live(request: Request, engine_id: str) -> Response:
        viewer = ui.viewer_of(request)
        engine = await ui.visible(viewer, engine_id, EngineAction.GET)
        if request.query_params.get("rev") == str(engine.revision):
            return Response(status_code=204)
        return ui.render(
            request,
            "_engine_live.html",
            viewer,
            events=await ui.events_of(engine),
            **ui.engine_context(viewer, engine),
        )

    @router.get("/engine/{engine_id}/log", response_class=HTMLResponse)
    async def engine_log(request: Request, engine_id: str) -> Response:
        viewer = ui.viewer_of(request)
        engine = await ui.visible(viewer, engine_id, EngineAction.LOGS)
        text = ""
        if ui.platform is not None:
            try:
                text = await ui.platform.logs(engine=engine, tail=LOG_TAIL_LINES)
            except PlatformError as e:
                log.warning("console: logs of %s unavailable (%s)", engine.id, e)
        if not text and engine.saved_logs:
            text = "".join(engine.saved_logs.splitlines(keepends=True)[-LOG_TAIL_LINES:])
        return ui.render(
            request, "_log.html", viewer, log=redact_text(text, engine_secrets(engine))
        )
