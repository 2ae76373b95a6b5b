"""The console's form posts: an engine action, a create, login and logout.

Forms post as plain HTML forms (they work with the keyboard and without
script). Every state-changing post checks the session's CSRF token before
anything else (login, before there is a session, checks its own cookie's);
each then makes the same decision through the same functions as its REST
route, so the console can do nothing the API cannot.
"""

from __future__ import annotations

import base64
import logging
import secrets
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from rucat.domain.activity import resolve_auto_stop
from rucat.domain.engine import CreateEngineRequest, Engine, new_engine
from rucat.domain.errors import (
    EngineNotFound,
    InvalidRequest,
    QuotaExceeded,
    RucatError,
    StateConflict,
    Unauthenticated,
)
from rucat.domain.state import UserAction
from rucat.server.actions import apply_user_action
from rucat.server.console.context import (
    ACTIONS,
    ENGINE_ACTIONS,
    Console,
    parse_form,
    set_cookie,
)
from rucat.server.console.pages import LOGIN_COOKIE, create_form, login_form
from rucat.server.console.sessions import COOKIE, CSRF_FIELD

log = logging.getLogger("rucat.console")


def add_forms(router: APIRouter, ui: Console) -> None:
    """Register the console's form posts on `router` (prefix /ui)."""

    def policy_allows(engine: Engine) -> None:
        ui.policy.check(
            engine.configs,
            context=f"engine {engine.id} cannot restart: the engine policy refuses its confs: ",
        )

    @router.post("/engine/{engine_id}/{action}")
    async def engine_action(request: Request, engine_id: str, action: str) -> Response:
        viewer = ui.viewer_of(request)
        await ui.form_of(request, viewer)
        wanted = ACTIONS.get(action)
        if wanted is None:
            raise EngineNotFound(engine_id[:64])
        engine = await ui.visible(viewer, engine_id, ENGINE_ACTIONS[wanted])
        page = f"/ui/engine/{engine.id}"
        try:
            await apply_user_action(
                ui.store,
                engine_id=engine.id,
                action=wanted,
                principal=viewer.principal,
                clock=ui.clock,
                check=policy_allows if wanted is UserAction.RESTART else None,
                active_limit=ui.quota_of(viewer.principal),  # as POST /engine/{id}/restart
            )
        except (StateConflict, InvalidRequest, QuotaExceeded) as e:
            return RedirectResponse(f"{page}?error={quote(e.message)}", status_code=303)
        ui.wrote(engine.id)
        if wanted is UserAction.DELETE:
            if ui.platform is not None:
                try:
                    await ui.platform.forget(engine=engine)
                except Exception:  # leftovers only cost disk
                    log.exception("could not forget engine %s on the platform", engine.id)
            return RedirectResponse("/ui/", status_code=303)
        return RedirectResponse(page, status_code=303)

    @router.post("/new")
    async def create_engine(request: Request) -> Response:
        viewer = ui.viewer_of(request)
        fields = await ui.form_of(request, viewer)
        values = {k: fields.get(k, "") for k in ("name", "version", "configs", "auto_stop")}
        config = ui.config
        try:
            configs = _parse_configs(values["configs"])
            wanted = CreateEngineRequest(
                name=values["name"],
                engine_type=ui.offer.kind.engine_type,
                version=values["version"],
                configs=configs,
            )
            wanted = ui.offer.validate(wanted, policy=ui.policy)
            auto_stop = resolve_auto_stop(
                _minutes(values["auto_stop"]),
                default=config.auto_stop.default_minutes,
                maximum=config.auto_stop.max_minutes,
            )
            engine = new_engine(
                wanted,
                platform=config.platform.variant,
                now=ui.clock(),
                owner=viewer.principal.name,
                auto_stop_minutes=auto_stop,
            )
            stored = await ui.store.add(
                engine=engine,
                actor=viewer.principal.name,
                active_limit=ui.quota_of(viewer.principal),  # as POST /engine
            )
        except QuotaExceeded as e:  # about no one field: shown above the button
            return create_form(ui, request, viewer, 429, values=values, errors={"form": e.message})
        except RucatError as e:
            if not isinstance(e, InvalidRequest):
                raise
            field = _field_of(e.message)
            return create_form(ui, request, viewer, 400, values=values, errors={field: e.message})
        log.info("engine %s created from the console", stored.id, extra={"engine_id": stored.id})
        ui.wrote(stored.id)
        return RedirectResponse(f"/ui/engine/{stored.id}", status_code=303)

    @router.post("/login")
    async def login(request: Request) -> Response:
        fields = parse_form(await request.body())
        expected = request.cookies.get(LOGIN_COOKIE)
        offered = fields.get(CSRF_FIELD, "")
        if not expected or not secrets.compare_digest(expected.encode(), offered.encode()):
            return login_form(ui, request, "The login form expired: please try again.", 403)
        token = fields.get("token", "").strip()
        if token:
            authorization = f"Bearer {token}"
        elif ui.basic and fields.get("username"):
            pair = f"{fields.get('username', '')}:{fields.get('password', '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            return login_form(ui, request, "Give a user name and password, or a token.", 400)
        try:
            principal = await ui.authenticator.authenticate(authorization)
        except Unauthenticated:
            return login_form(ui, request, "Wrong user name, password or token.", 401)
        old = request.cookies.get(COOKIE)
        ui.sessions.end(old)
        session = ui.sessions.start(principal)
        response = RedirectResponse("/ui/", status_code=303)
        set_cookie(request, response, COOKIE, session.id, ui.sessions.ttl.total_seconds())
        response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        viewer = ui.viewer_of(request)
        await ui.form_of(request, viewer)
        ui.sessions.end(viewer.session.id)
        response = RedirectResponse("/ui/login" if ui.authenticator.enabled else "/ui/", 303)
        response.delete_cookie(COOKIE, path="/")
        return response


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
