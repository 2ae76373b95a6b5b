"""What every console route shares: who is looking, rendering a template, finding an engine.

`Console` holds the services the routes use and the helpers they share, so the
page, form and live modules stay small and decide the same way: an engine the
viewer may not see answers exactly like an unknown one (404, domain/access.py),
and a form without the session's CSRF token is refused (403) before anything
else is read from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from rucat.config import RucatConfig
from rucat.domain.access import Allow, EngineAction, Hide, decide_access, visibility
from rucat.domain.activity import idle_since
from rucat.domain.engine import Engine, is_engine_id
from rucat.domain.errors import EngineNotFound, PermissionDenied
from rucat.domain.policy import Policy
from rucat.domain.principal import Principal
from rucat.domain.quota import active_limit
from rucat.domain.redaction import engine_secrets
from rucat.domain.state import ERROR_STATES, EngineState, UserAction, allowed_user_actions
from rucat.platforms import Platform
from rucat.platforms.offer import PlatformOffer
from rucat.server.auth import Authenticator
from rucat.server.console.sessions import COOKIE, CSRF_FIELD, CSRF_HEADER, Session, Sessions
from rucat.server.schemas import EngineEventOut, EngineInfo
from rucat.store import EngineStore

#: The engine actions a console form may post, by their lower-case name in the URL.
ACTIONS = {a.value.lower(): a for a in (UserAction.STOP, UserAction.RESTART, UserAction.DELETE)}
#: The access each of those actions needs.
ENGINE_ACTIONS = {
    UserAction.STOP: EngineAction.STOP,
    UserAction.RESTART: EngineAction.RESTART,
    UserAction.DELETE: EngineAction.DELETE,
}
_STARTING = {"WaitToStart", "TriggerStart", "StartInProgress"}
_STOPPING = {"WaitToTerminate", "TriggerTermination", "TerminateInProgress"}


def state_kind(state: EngineState) -> tuple[str, str]:
    """(css class, shape) for a state: the shape tells states apart without colour."""
    if state is EngineState.Running:
        return "running", "●"
    if state in ERROR_STATES:
        return "error", "✕"
    if state.value in _STARTING:
        return "starting", "◔"
    if state.value in _STOPPING:
        return "stopping", "◑"
    return "stopped", "○"


def _span(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class Redirect(Exception):
    """A console page asked for without a session: answered by a redirect to `to`."""

    def __init__(self, to: str) -> None:
        self.to = to


@dataclass(frozen=True)
class Viewer:
    principal: Principal
    session: Session


def set_cookie(
    request: Request,
    response: Response,
    name: str,
    value: str,
    max_age: float,
    *,
    path: str = "/",
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(max_age),
        path=path,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def parse_form(body: bytes) -> dict[str, str]:
    """A posted form's fields, the last value of each."""
    text = body.decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


@dataclass(frozen=True)
class Console:
    """The console's services and the helpers its routes share."""

    config: RucatConfig
    store: EngineStore
    platform: Platform | None
    authenticator: Authenticator
    sessions: Sessions
    policy: Policy
    clock: Callable[[], datetime]
    wrote: Callable[[str], None]
    offer: PlatformOffer
    templates: Jinja2Templates
    #: Whether the login form offers a user name and password (else tokens only).
    basic: bool

    def render(
        self, request: Request, name: str, viewer: Viewer | None, status: int = 200, **context: Any
    ) -> HTMLResponse:
        context.update(
            viewer=viewer,
            csrf=viewer.session.csrf if viewer else "",
            auth_enabled=self.authenticator.enabled,
        )
        response = self.templates.TemplateResponse(request, name, context, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        if viewer is not None and request.state.session is None:
            set_cookie(
                request, response, COOKIE, viewer.session.id, self.sessions.ttl.total_seconds()
            )
        return response

    def viewer_of(self, request: Request) -> Viewer:
        principal = request.state.principal
        session = getattr(request.state, "session", None)
        if principal is None:
            raise Redirect("/ui/login")
        if session is None:  # open mode: a session only to carry the CSRF token
            session = self.sessions.start(principal)
        return Viewer(principal=principal, session=session)

    async def form_of(self, request: Request, viewer: Viewer | None) -> dict[str, str]:
        """The posted form; refused (403) without the session's CSRF token."""
        fields = parse_form(await request.body())
        offered = request.headers.get(CSRF_HEADER) or fields.get(CSRF_FIELD)
        if (
            viewer is None
            or request.state.session is None
            or not viewer.session.csrf_matches(offered)
        ):
            raise PermissionDenied("missing or wrong CSRF token: reload the page and try again")
        return fields

    async def visible(self, viewer: Viewer, engine_id: str, action: EngineAction) -> Engine:
        if not is_engine_id(engine_id):
            raise EngineNotFound(engine_id[:64])
        engine = await self.store.get(engine_id=engine_id)
        decision = decide_access(viewer.principal, action, owner=engine.owner, grants=engine.grants)
        if isinstance(decision, Hide):
            raise EngineNotFound(engine_id)
        if not isinstance(decision, Allow):
            raise PermissionDenied(decision.reason)
        return engine

    def may(self, viewer: Viewer, engine: Engine, action: UserAction) -> bool:
        decision = decide_access(
            viewer.principal, ENGINE_ACTIONS[action], owner=engine.owner, grants=engine.grants
        )
        return isinstance(decision, Allow) and action in allowed_user_actions(engine.state)

    def quota_of(self, principal: Principal) -> int | None:
        return active_limit(principal, self.config.quotas.max_active_engines_per_user)

    def row(self, engine: Engine) -> dict[str, Any]:
        now = self.clock()
        info = EngineInfo.of(engine)
        busy_grace = 2 * self.config.auto_stop.busy_refresh_secs
        quiet = idle_since(engine, now=now, busy_grace=busy_grace)
        idle = _span((now - quiet).total_seconds()) if quiet is not None else None
        return {
            "info": info,
            "owner": engine.owner or "—",
            "age": _span((now - engine.create_time).total_seconds()),
            "idle": idle,
        }

    def state_filter(self, request: Request) -> EngineState | None:
        wanted = request.query_params.get("state") or ""
        try:
            return EngineState(wanted) if wanted else None
        except ValueError:
            return None

    async def rows(self, viewer: Viewer, state: EngineState | None) -> list[dict[str, Any]]:
        engines = await self.store.list(
            states=[state] if state else None, visible_to=visibility(viewer.principal)
        )
        return [self.row(e) for e in reversed(engines)]  # newest first

    def signature(self, found: list[dict[str, Any]]) -> str:
        """What the list shows, to the minute: the rows fragment answers 204 while it holds."""
        minute = int(self.clock().timestamp() // 60)
        parts = [f"{r['info'].id}:{r['info'].state.value}:{r['info'].update_time}" for r in found]
        return f"{minute}|{'|'.join(parts)}"

    def engine_context(self, viewer: Viewer, engine: Engine) -> dict[str, Any]:
        actions = [name for name, a in ACTIONS.items() if self.may(viewer, engine, a)]
        return {
            "row": self.row(engine),
            "engine": EngineInfo.of(engine),
            "engine_rev": engine.revision,
            "actions": actions,
        }

    async def events_of(self, engine: Engine) -> list[EngineEventOut]:
        found = await self.store.events(engine_id=engine.id)
        return [EngineEventOut.of(e, secrets=engine_secrets(engine)) for e in reversed(found)]
