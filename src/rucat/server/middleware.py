"""The one ASGI layer every HTTP request passes: auth, body limit, metrics, access log, 500s.

A plain ASGI middleware (not BaseHTTPMiddleware) so it costs little per
request. In order, for each request:

0. Refuse a Host that is not allowed (400; DNS rebinding) on every path but
   the open ones, and a foreign Origin on state-changing methods (403;
   drive-by requests from a web page). Decisions in domain/request_origin.py.
1. Authenticate (every path but the open ones and the console, whose session
   cookie is resolved here; its pages send a visitor without one to login; the
   cookie also counts on the Spark UI paths, /engine/{id}/sparkui/...) to
   a Principal, kept in ``request.state.principal``; 401 with WWW-Authenticate, 503 when the
   provider cannot decide now.
2. Read the body into memory up to `max_body_bytes`, whatever the framing
   (Content-Length or chunked); one byte more answers 413 without reading on.
3. Run the app with the buffered body. A body that curl's ``-d`` labels
   ``application/x-www-form-urlencoded`` is read as JSON, as a body without a
   Content-Type is: every route takes JSON, and foreign web pages, which could
   send such a body, are refused at step 0.
4. Count the request and its latency under the route TEMPLATE, and write one
   access log line (method, path, route, status, duration; never headers).

An exception escaping the app is a bug: it is logged with its traceback and
answered ``500 {"detail": "internal error"}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from http.cookies import CookieError, SimpleCookie

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rucat.domain.errors import RucatError, Unauthenticated
from rucat.domain.principal import ANONYMOUS_ADMIN
from rucat.domain.request_origin import (
    STATE_CHANGING_METHODS,
    host_allowed,
    origin_allowed,
)
from rucat.server.auth import Authenticator
from rucat.server.console.sessions import COOKIE, Sessions
from rucat.server.errors import error_response, status_for
from rucat.server.metrics import Metrics
from rucat.server.sparkui import is_sparkui_path

access_log = logging.getLogger("rucat.access")
log = logging.getLogger("rucat.server")

#: Paths answered without credentials and whatever the Host (liveness probes:
#: the kubelet sends the pod's IP as Host). They reveal nothing and change nothing.
OPEN_PATHS = frozenset({"/health"})
#: Longest client-supplied header value quoted back in a refusal's detail.
_QUOTED_CHARS = 200
#: Route label for requests that match no route (bounded cardinality).
UNMATCHED = "<unmatched>"
#: Bytes of a refused (413) body read and discarded before answering; past
#: this the connection is closed mid-body.
DRAIN_LIMIT_BYTES = 16 << 20


class _BodyTooLarge(Exception):
    pass


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: Authenticator,
        metrics: Metrics,
        max_body_bytes: int,
        routes: Callable[[], list[object]],
        allowed_hosts: Sequence[str],
        allowed_origins: Sequence[str],
        sessions: Sessions | None = None,
    ) -> None:
        """`sessions`: the console's; a valid session cookie authenticates console
        pages (/ui/...) only, never REST routes."""
        self.app = app
        self.sessions = sessions
        self.allowed_hosts = tuple(allowed_hosts)
        self.allowed_origins = tuple(allowed_origins)
        self.authenticator = authenticator
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_tracked(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
            await send(message)

        try:
            await self._handle(scope, receive, send_tracked)
        except Exception:
            log.exception("internal error on %s %s", scope["method"], scope["path"])
            if not response_started:
                await error_response(500, "internal error")(scope, receive, send_tracked)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        """Metrics and the access log line; never fails the request it describes."""
        try:
            route = self._route_template(scope)
            self.metrics.observe(
                method=scope["method"], route=route, status=status, seconds=seconds
            )
            access_log.info(
                "%s %s %d %.1fms",
                scope["method"],
                scope["path"],
                status,
                seconds * 1000,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                },
            )
        except Exception:
            log.exception("could not record %s %s", scope["method"], scope["path"])

    def _refuse_host_or_origin(self, scope: Scope) -> tuple[int, str] | None:
        """(status, detail) when the Host or Origin is not allowed, else None."""
        host = _header(scope, b"host")
        if scope["path"] not in OPEN_PATHS and not host_allowed(host, self.allowed_hosts):
            shown = "no Host header" if host is None else f"Host {host[:_QUOTED_CHARS]!r}"
            return 400, (
                f"{shown} is not allowed: add the name to the config key allowed_hosts "
                "(env RUCAT_ALLOWED_HOSTS, a JSON list; '*' allows any)"
            )
        origin = _header(scope, b"origin")
        if (
            origin is not None
            and scope["method"] in STATE_CHANGING_METHODS
            and not origin_allowed(
                origin,
                scheme=scope.get("scheme", "http"),
                host_header=host,
                allowed_origins=self.allowed_origins,
            )
        ):
            return 403, (
                f"Origin {origin[:_QUOTED_CHARS]!r} may not change state here: add it to the "
                "config key allowed_origins (env RUCAT_ALLOWED_ORIGINS, a JSON list)"
            )
        return None

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refuse_host_or_origin(scope)
        if refusal is not None:
            await error_response(*refusal)(scope, receive, send)
            return
        principal = ANONYMOUS_ADMIN
        state = scope.setdefault("state", {})
        path = scope["path"]
        session = None
        if self.sessions is not None and is_console_path(path):
            session = self.sessions.find(_cookie(scope, COOKIE))
            state["session"] = session
        if is_console_path(path):
            # The console answers without a session itself (its login page); its
            # pages find the principal here, or none when auth is on.
            console_principal = session.principal if session is not None else None
            if not self.authenticator.enabled:
                console_principal = ANONYMOUS_ADMIN
            state["principal"] = console_principal
            state["actor"] = console_principal.name if console_principal else None
        elif (
            self.sessions is not None
            and is_sparkui_path(path)
            and _header(scope, b"authorization") is None
            and (session := self.sessions.find(_cookie(scope, COOKIE))) is not None
        ):
            # The console links to the engines' Spark UIs (GET and HEAD only):
            # there its session cookie counts as the credentials.
            principal = session.principal
        elif scope["path"] not in OPEN_PATHS:
            try:
                principal = await self.authenticator.authenticate(_header(scope, b"authorization"))
            except Unauthenticated as e:
                response = error_response(
                    401, e.message, {"WWW-Authenticate": self.authenticator.challenge}
                )
                await response(scope, receive, send)
                return
            except RucatError as e:  # the provider cannot decide now (identity provider down)
                log.warning("cannot authenticate %s %s: %s", scope["method"], scope["path"], e)
                await error_response(status_for(e), e.message)(scope, receive, send)
                return
        if not is_console_path(path):
            state["principal"] = principal
            state["actor"] = principal.name

        try:
            body, disconnected = await self._read_body(scope, receive)
        except _BodyTooLarge:
            detail = f"request body is larger than {self.max_body_bytes} bytes"
            # Close the connection: the rest of the body is never read.
            response = error_response(413, detail, {"Connection": "close"})
            await response(scope, receive, send)
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            if disconnected:
                return {"type": "http.disconnect"}
            return await receive()

        if not is_console_path(path):  # the console's forms are read as forms
            _as_json(scope)
        await self.app(scope, replay, send)

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, bool]:
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            if int(declared) <= self._drain_limit:
                await self._drain(receive, 0)
            raise _BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks), True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                if message.get("more_body", False):
                    await self._drain(receive, size)
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False

    @property
    def _drain_limit(self) -> int:
        return max(DRAIN_LIMIT_BYTES, self.max_body_bytes)

    async def _drain(self, receive: Receive, seen: int) -> None:
        """Discard the rest of a refused body (bounded), so the client can read the 413.

        HTTP/1.1 clients send the whole body before reading the answer; a
        server that answers and closes mid-body looks like a network error.
        """
        while seen <= self._drain_limit:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    def _route_template(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
        # Not routed (401, 413): find the template the path would have matched.
        for candidate in self.routes():
            matches = getattr(candidate, "matches", None)
            template = getattr(candidate, "path", None)
            if matches is None or not isinstance(template, str):
                continue
            match, _ = matches(scope)
            if match is not Match.NONE:
                return template
        return UNMATCHED


#: What `curl -d` sends unless told otherwise.
_CURL_DEFAULT_TYPE = b"application/x-www-form-urlencoded"


def _as_json(scope: Scope) -> None:
    """Replace curl's default Content-Type by JSON's in `scope` (see step 3)."""
    headers = scope["headers"]
    if any(k == b"content-type" and v == _CURL_DEFAULT_TYPE for k, v in headers):
        scope["headers"] = [
            (k, b"application/json" if k == b"content-type" and v == _CURL_DEFAULT_TYPE else v)
            for k, v in headers
        ]


def is_console_path(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    try:
        jar = SimpleCookie(raw)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None
