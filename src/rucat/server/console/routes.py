"""The console's routes: pages, the fragments htmx polls, login/logout and engine actions.

Every state-changing route checks the session's CSRF token before anything
else, and every engine route decides access with domain/access.py first: an
engine the principal may not see answers exactly like an unknown one (404).
Forms post as plain HTML forms (they work with the keyboard and without
script); htmx only refreshes the live parts, and a fragment answers 204 when
nothing changed, so a refresh never steals the keyboard focus.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.templating import Jinja2Templates

from rucat.config import RucatConfig
from rucat.domain.access import Allow, EngineAction, Hide, decide_access, visibility
from rucat.domain.activity import idle_since, resolve_auto_stop
from rucat.domain.engine import CreateEngineRequest, Engine, is_engine_id, new_engine
from rucat.domain.errors import (
    EngineNotFound,
    InvalidRequest,
    PermissionDenied,
    PlatformError,
    QuotaExceeded,
    RucatError,
    StateConflict,
    Unauthenticated,
)
from rucat.domain.policy import Policy
from rucat.domain.principal import Principal
from rucat.domain.quota import active_limit
from rucat.domain.redaction import engine_secrets, redact_text
from rucat.domain.state import ERROR_STATES, EngineState, UserAction, allowed_user_actions
from rucat.platforms import Platform
from rucat.platforms.offer import platform_offer
from rucat.server.actions import apply_user_action
from rucat.server.auth import Authenticator
from rucat.server.console.sessions import COOKIE, CSRF_FIELD, CSRF_HEADER, Session, Sessions
from rucat.server.schemas import EngineEventOut, EngineInfo
from rucat.store import EngineStore

log = logging.getLogger("rucat.console")

HERE = Path(__file__).parent
LOGIN_COOKIE = "rucat_login_csrf"
LOG_TAIL_LINES = 500
_ACTIONS = {a.value.lower(): a for a in (UserAction.STOP, UserAction.RESTART, UserAction.DELETE)}
_ENGINE_ACTIONS = {
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


class _Redirect(Exception):
    def __init__(self, to: str) -> None:
        self.to = to


@dataclass(frozen=True)
class _Viewer:
    principal: Principal
    session: Session


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
    offer = platform_offer(config.platform)
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True)
    )
    env.globals["state_kind"] = state_kind
    templates = Jinja2Templates(env=env)
    basic = "basic" in authenticator.schemes

    def render(
        request: Request, name: str, viewer: _Viewer | None, status: int = 200, **context: Any
    ) -> HTMLResponse:
        context.update(
            viewer=viewer,
            csrf=viewer.session.csrf if viewer else "",
            auth_enabled=authenticator.enabled,
        )
        response = templates.TemplateResponse(request, name, context, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        if viewer is not None and request.state.session is None:
            _set_cookie(request, response, COOKIE, viewer.session.id, sessions.ttl.total_seconds())
        return response

    def viewer_of(request: Request) -> _Viewer:
        principal = request.state.principal
        session = getattr(request.state, "session", None)
        if principal is None:
            raise _Redirect("/ui/login")
        if session is None:  # open mode: a session only to carry the CSRF token
            session = sessions.start(principal)
        return _Viewer(principal=principal, session=session)

    async def form_of(request: Request, viewer: _Viewer | None) -> dict[str, str]:
        """The posted form; refused (403) without the session's CSRF token."""
        body = (await request.body()).decode("utf-8", errors="replace")
        fields = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
        offered = request.headers.get(CSRF_HEADER) or fields.get(CSRF_FIELD)
        if (
            viewer is None
            or request.state.session is None
            or not viewer.session.csrf_matches(offered)
        ):
            raise PermissionDenied("missing or wrong CSRF token: reload the page and try again")
        return fields

    async def visible(viewer: _Viewer, engine_id: str, action: EngineAction) -> Engine:
        if not is_engine_id(engine_id):
            raise EngineNotFound(engine_id[:64])
        engine = await store.get(engine_id=engine_id)
        decision = decide_access(viewer.principal, action, owner=engine.owner, grants=engine.grants)
        if isinstance(decision, Hide):
            raise EngineNotFound(engine_id)
        if not isinstance(decision, Allow):
            raise PermissionDenied(decision.reason)
        return engine

    def may(viewer: _Viewer, engine: Engine, action: UserAction) -> bool:
        decision = decide_access(
            viewer.principal, _ENGINE_ACTIONS[action], owner=engine.owner, grants=engine.grants
        )
        return isinstance(decision, Allow) and action in allowed_user_actions(engine.state)

    def row(engine: Engine) -> dict[str, Any]:
        now = clock()
        info = EngineInfo.of(engine)
        quiet = idle_since(engine, now=now, busy_grace=2 * config.auto_stop.busy_refresh_secs)
        idle = _span((now - quiet).total_seconds()) if quiet is not None else None
        return {
            "info": info,
            "owner": engine.owner or "—",
            "age": _span((now - engine.create_time).total_seconds()),
            "idle": idle,
        }

    def state_filter(request: Request) -> EngineState | None:
        wanted = request.query_params.get("state") or ""
        try:
            return EngineState(wanted) if wanted else None
        except ValueError:
            return None

    async def rows(viewer: _Viewer, state: EngineState | None) -> list[dict[str, Any]]:
        engines = await store.list(
            states=[state] if state else None, visible_to=visibility(viewer.principal)
        )
        return [row(e) for e in reversed(engines)]  # newest first

    def signature(found: list[dict[str, Any]]) -> str:
        minute = int(clock().timestamp() // 60)
        parts = [f"{r['info'].id}:{r['info'].state.value}:{r['info'].update_time}" for r in found]
        return f"{minute}|{'|'.join(parts)}"

    @router.get("")
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=303)

    @router.get("/", response_class=HTMLResponse)
    async def engines_page(request: Request) -> Response:
        viewer = viewer_of(request)
        state = state_filter(request)
        found = await rows(viewer, state)
        return render(
            request,
            "engines.html",
            viewer,
            rows=found,
            sig=signature(found),
            state=state.value if state else "",
            states=[s.value for s in EngineState],
        )

    @router.get("/rows", response_class=HTMLResponse)
    async def engines_rows(request: Request) -> Response:
        viewer = viewer_of(request)
        state = state_filter(request)
        found = await rows(viewer, state)
        sig = signature(found)
        if request.query_params.get("sig") == sig:
            return Response(status_code=204)
        return render(
            request,
            "_rows.html",
            viewer,
            rows=found,
            sig=sig,
            state=state.value if state else "",
        )

    def engine_context(viewer: _Viewer, engine: Engine) -> dict[str, Any]:
        actions = [name for name, a in _ACTIONS.items() if may(viewer, engine, a)]
        return {
            "row": row(engine),
            "engine": EngineInfo.of(engine),
            "engine_rev": engine.revision,
            "actions": actions,
        }

    @router.get("/engine/{engine_id}", response_class=HTMLResponse)
    async def engine_page(request: Request, engine_id: str) -> Response:
        viewer = viewer_of(request)
        engine = await visible(viewer, engine_id, EngineAction.GET)
        events = await events_of(engine)
        return render(
            request,
            "engine.html",
            viewer,
            events=events,
            snippet=snippet(request, engine, viewer),
            error=request.query_params.get("error"),
            **engine_context(viewer, engine),
        )

    async def events_of(engine: Engine) -> list[EngineEventOut]:
        found = await store.events(engine_id=engine.id)
        return [EngineEventOut.of(e, secrets=engine_secrets(engine)) for e in reversed(found)]

    @router.get("/engine/{engine_id}/live", response_class=HTMLResponse)
    async def engine_live(request: Request, engine_id: str) -> Response:
        viewer = viewer_of(request)
        engine = await visible(viewer, engine_id, EngineAction.GET)
        if request.query_params.get("rev") == str(engine.revision):
            return Response(status_code=204)
        return render(
            request,
            "_engine_live.html",
            viewer,
            events=await events_of(engine),
            **engine_context(viewer, engine),
        )

    @router.get("/engine/{engine_id}/log", response_class=HTMLResponse)
    async def engine_log(request: Request, engine_id: str) -> Response:
        viewer = viewer_of(request)
        engine = await visible(viewer, engine_id, EngineAction.LOGS)
        text = ""
        if platform is not None:
            try:
                text = await platform.logs(engine=engine, tail=LOG_TAIL_LINES)
            except PlatformError as e:
                log.warning("console: logs of %s unavailable (%s)", engine.id, e)
        if not text and engine.saved_logs:
            text = "".join(engine.saved_logs.splitlines(keepends=True)[-LOG_TAIL_LINES:])
        return render(request, "_log.html", viewer, log=redact_text(text, engine_secrets(engine)))

    def snippet(request: Request, engine: Engine, viewer: _Viewer) -> str | None:
        if config.connect_port is None:
            return None
        host = request.url.hostname or "localhost"
        if host in ("127.0.0.1", "::1"):
            host = "localhost"  # pyspark keeps plain text with a token only for "localhost"
        port = config.connect_port or "PROXY_PORT"
        url = f"sc://{host}:{port}/;x-rucat-engine-id={quote(engine.id, safe='')}"
        if authenticator.enabled:
            url += ";token=YOUR_TOKEN"
        return (
            "from pyspark.sql import SparkSession\n\n"
            f'spark = SparkSession.builder.remote("{url}").getOrCreate()\n'
            'spark.sql("SELECT 1").show()'
        )

    @router.post("/engine/{engine_id}/{action}")
    async def engine_action(request: Request, engine_id: str, action: str) -> Response:
        viewer = viewer_of(request)
        await form_of(request, viewer)
        wanted = _ACTIONS.get(action)
        if wanted is None:
            raise EngineNotFound(engine_id[:64])
        engine = await visible(viewer, engine_id, _ENGINE_ACTIONS[wanted])
        page = f"/ui/engine/{engine.id}"
        try:
            await apply_user_action(
                store,
                engine_id=engine.id,
                action=wanted,
                principal=viewer.principal,
                clock=clock,
                check=policy_allows if wanted is UserAction.RESTART else None,
                active_limit=quota_of(viewer.principal),  # as POST /engine/{id}/restart
            )
        except (StateConflict, InvalidRequest, QuotaExceeded) as e:
            return RedirectResponse(f"{page}?error={quote(e.message)}", status_code=303)
        wrote(engine.id)
        if wanted is UserAction.DELETE:
            if platform is not None:
                try:
                    await platform.forget(engine=engine)
                except Exception:  # leftovers only cost disk
                    log.exception("could not forget engine %s on the platform", engine.id)
            return RedirectResponse("/ui/", status_code=303)
        return RedirectResponse(page, status_code=303)

    def quota_of(principal: Principal) -> int | None:
        return active_limit(principal, config.quotas.max_active_engines_per_user)

    def policy_allows(engine: Engine) -> None:
        policy.check(
            engine.configs,
            context=f"engine {engine.id} cannot restart: the engine policy refuses its confs: ",
        )

    def create_form(
        request: Request, viewer: _Viewer, status: int = 200, **context: Any
    ) -> HTMLResponse:
        versions = list(offer.versions)
        context.setdefault("values", {"version": versions[-1] if versions else ""})
        context.setdefault("auto_stop_default", config.auto_stop.default_minutes)
        context.setdefault("errors", {})
        return render(request, "create.html", viewer, status, versions=versions, **context)

    @router.get("/new", response_class=HTMLResponse)
    async def create_page(request: Request) -> Response:
        return create_form(request, viewer_of(request))

    @router.post("/new")
    async def create_engine(request: Request) -> Response:
        viewer = viewer_of(request)
        fields = await form_of(request, viewer)
        values = {k: fields.get(k, "") for k in ("name", "version", "configs", "auto_stop")}
        try:
            configs = _parse_configs(values["configs"])
            wanted = CreateEngineRequest(
                name=values["name"],
                engine_type=offer.kind.engine_type,
                version=values["version"],
                configs=configs,
            )
            wanted = offer.validate(wanted, policy=policy)
            auto_stop = resolve_auto_stop(
                _minutes(values["auto_stop"]),
                default=config.auto_stop.default_minutes,
                maximum=config.auto_stop.max_minutes,
            )
            engine = new_engine(
                wanted,
                platform=config.platform.variant,
                now=clock(),
                owner=viewer.principal.name,
                auto_stop_minutes=auto_stop,
            )
            stored = await store.add(
                engine=engine,
                actor=viewer.principal.name,
                active_limit=quota_of(viewer.principal),  # as POST /engine
            )
        except QuotaExceeded as e:  # about no one field: shown above the button
            return create_form(request, viewer, 429, values=values, errors={"form": e.message})
        except RucatError as e:
            if not isinstance(e, InvalidRequest):
                raise
            field = _field_of(e.message)
            return create_form(request, viewer, 400, values=values, errors={field: e.message})
        log.info("engine %s created from the console", stored.id, extra={"engine_id": stored.id})
        wrote(stored.id)
        return RedirectResponse(f"/ui/engine/{stored.id}", status_code=303)

    @router.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        if not authenticator.enabled:
            return RedirectResponse("/ui/", status_code=303)
        return login_form(request)

    def login_form(request: Request, error: str | None = None, status: int = 200) -> Response:
        token = secrets.token_urlsafe(32)
        response = render(
            request, "login.html", None, status, basic=basic, error=error, login_csrf=token
        )
        _set_cookie(request, response, LOGIN_COOKIE, token, 600, path="/ui/login")
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        body = (await request.body()).decode("utf-8", errors="replace")
        fields = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
        expected = request.cookies.get(LOGIN_COOKIE)
        offered = fields.get(CSRF_FIELD, "")
        if not expected or not secrets.compare_digest(expected.encode(), offered.encode()):
            return login_form(request, "The login form expired: please try again.", 403)
        token = fields.get("token", "").strip()
        if token:
            authorization = f"Bearer {token}"
        elif basic and fields.get("username"):
            pair = f"{fields.get('username', '')}:{fields.get('password', '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            return login_form(request, "Give a user name and password, or a token.", 400)
        try:
            principal = await authenticator.authenticate(authorization)
        except Unauthenticated:
            return login_form(request, "Wrong user name, password or token.", 401)
        old = request.cookies.get(COOKIE)
        sessions.end(old)
        session = sessions.start(principal)
        response = RedirectResponse("/ui/", status_code=303)
        _set_cookie(request, response, COOKIE, session.id, sessions.ttl.total_seconds())
        response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        viewer = viewer_of(request)
        await form_of(request, viewer)
        sessions.end(viewer.session.id)
        response = RedirectResponse("/ui/login" if authenticator.enabled else "/ui/", 303)
        response.delete_cookie(COOKIE, path="/")
        return response

    return router


def _parse_configs(text: str) -> dict[str, str]:
    configs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise InvalidRequest(f"config line {number} is not key=value: {line[:80]!r}")
        configs[key.strip()] = value.strip()
    return configs


def _minutes(text: str) -> float | None:
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError as e:
        raise InvalidRequest(f"auto_stop_minutes must be a number of minutes, got {text!r}") from e


def _field_of(message: str) -> str:
    """Which form field an API error is about (shown next to it)."""
    if message.startswith("auto_stop_minutes"):
        return "auto_stop"
    if message.startswith("name"):
        return "name"
    if "version" in message or message.startswith("Spark "):
        return "version"
    return "configs"


def _set_cookie(
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


def install_console_redirects(app: Any) -> None:
    """A console page asked for without a session goes to the login page."""

    async def redirect(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _Redirect)
        return RedirectResponse(exc.to, status_code=303)

    app.add_exception_handler(_Redirect, redirect)
