"""The console's router: builds the shared `Console` and registers every route under /ui.

The routes themselves live by kind: ``pages.py`` (whole pages), ``forms.py``
(form posts: engine actions, create, login, logout) and ``live.py`` (the
fragments htmx polls). Every engine route decides access with
domain/access.py first: an engine the principal may not see answers exactly
like an unknown one (404).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.templating import Jinja2Templates

from rucat.config import RucatConfig
from rucat.domain.policy import Policy
from rucat.platforms import Platform
from rucat.platforms.offer import platform_offer
from rucat.server.auth import Authenticator
from rucat.server.console.context import Console, Redirect, state_kind
from rucat.server.console.forms import add_forms
from rucat.server.console.live import add_live
from rucat.server.console.pages import add_pages
from rucat.server.console.sessions import Sessions
from rucat.store import EngineStore

HERE = Path(__file__).parent


def console_router(
    config: RucatConfig,
    *,
    store: EngineStore,
    platform: Platform | None,
    authenticator: Authenticator,
    sessions: Sessions,
    policy: Policy,
    clock: Callable[[], datetime],
    wrote: Callable[[str], None],
) -> APIRouter:
    """The console's routes under /ui (the app mounts /ui/static itself)."""
    router = APIRouter(prefix="/ui", include_in_schema=False)
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True)
    )
    env.globals["state_kind"] = state_kind
    ui = Console(
        config=config,
        store=store,
        platform=platform,
        authenticator=authenticator,
        sessions=sessions,
        policy=policy,
        clock=clock,
        wrote=wrote,
        offer=platform_offer(config.platform),
        templates=Jinja2Templates(env=env),
        basic="basic" in authenticator.schemes,
    )
    # No two routes match one method and path. Where two match one path (GET and POST
    # /ui/new, GET /ui/engine/x/live and POST /ui/engine/x/{action}), the GET is added
    # first, as before the split, so a 405's Allow header names the same methods.
    add_pages(router, ui)
    add_live(router, ui)
    add_forms(router, ui)
    return router


def install_console_redirects(app: Any) -> None:
    """A console page asked for without a session goes to the login page."""

    async def redirect(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Redirect)
        return RedirectResponse(exc.to, status_code=303)

    app.add_exception_handler(Redirect, redirect)
