"""The console's full pages: the engine list, one engine, the create form and the login form.

A page is a GET that renders a whole template. The create and login forms are
also rendered again by their POST routes (``forms.py``) with the user's values
and the error next to its field, so their renderers live here.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from rucat.domain.access import EngineAction
from rucat.domain.engine import Engine
from rucat.domain.state import EngineState
from rucat.server.console.context import Console, Viewer, set_cookie

#: The cookie holding the login form's own CSRF token (there is no session yet).
LOGIN_COOKIE = "rucat_login_csrf"


def create_form(
    ui: Console, request: Request, viewer: Viewer, status: int = 200, **context: Any
) -> HTMLResponse:
    versions = list(ui.offer.versions)
    context.setdefault("values", {"version": versions[-1] if versions else ""})
    context.setdefault("auto_stop_default", ui.config.auto_stop.default_minutes)
    context.setdefault("errors", {})
    return ui.render(request, "create.html", viewer, status, versions=versions, **context)


def login_form(
    ui: Console, request: Request, error: str | None = None, status: int = 200
) -> Response:
    token = secrets.token_urlsafe(32)
    response = ui.render(
        request, "login.html", None, status, basic=ui.basic, error=error, login_csrf=token
    )
    set_cookie(request, response, LOGIN_COOKIE, token, 600, path="/ui/login")
    return response


def _snippet(ui: Console, request: Request, engine: Engine) -> str | None:
    """The pyspark lines that connect to `engine` through the proxy (None without one)."""
    if ui.config.connect_port is None:
        return None
    host = request.url.hostname or "localhost"
    if host in ("127.0.0.1", "::1"):
        host = "localhost"  # pyspark keeps plain text with a token only for "localhost"
    port = ui.config.connect_port or "PROXY_PORT"
    url = f"sc://{host}:{port}/;x-rucat-engine-id={quote(engine.id, safe='')}"
    if ui.authenticator.enabled:
        url += ";token=YOUR_TOKEN"
    return (
        "from pyspark.sql import SparkSession\n\n"
        f'spark = SparkSession.builder.remote("{url}").getOrCreate()\n'
        'spark.sql("SELECT 1").show()'
    )


def add_pages(router: APIRouter, ui: Console) -> None:
    """Register the console's pages on `router` (prefix /ui)."""

    @router.get("")
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=303)

    @router.get("/", response_class=HTMLResponse)
    async def engines_page(request: Request) -> Response:
        viewer = ui.viewer_of(request)
        state = ui.state_filter(request)
        found = await ui.rows(viewer, state)
        return ui.render(
            request,
            "engines.html",
            viewer,
            rows=found,
            sig=ui.signature(found),
            state=state.value if state else "",
            states=[s.value for s in EngineState],
        )

    @router.get("/engine/{engine_id}", response_class=HTMLResponse)
    async def engine_page(request: Request, engine_id: str) -> Response:
        viewer = ui.viewer_of(request)
        engine = await ui.visible(viewer, engine_id, EngineAction.GET)
        events = await ui.events_of(engine)
        return ui.render(
            request,
            "engine.html",
            viewer,
            events=events,
            snippet=_snippet(ui, request, engine),
            error=request.query_params.get("error"),
            **ui.engine_context(viewer, engine),
        )

    @router.get("/new", response_class=HTMLResponse)
    async def create_page(request: Request) -> Response:
        return create_form(ui, request, ui.viewer_of(request))

    @router.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        if not ui.authenticator.enabled:
            return RedirectResponse("/ui/", status_code=303)
        return login_form(ui, request)
