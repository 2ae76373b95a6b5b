"""The engines' Spark UIs, reverse-proxied under ``/engine/{id}/sparkui/``.

Why: on Kubernetes an engine's UI is only reachable inside the cluster, and on
every platform it has no auth of its own. Rucat serves it behind the same auth
and visibility as the engine: a principal who may not see the engine gets the
404 an unknown id gets. The console's session cookie authenticates these paths
too (the middleware resolves it), so the UI is one click from the engine page.

Spark writes its links under the prefix because every platform starts it with
``spark.ui.proxyBase=/engine/<id>/sparkui`` (a reserved conf); it still serves
its pages at its own root, so the prefix is stripped on the way in.

Invariants (hostile input):

- The proxy only ever talks to ``http://<host of the engine's recorded
  endpoint>:<the platform's ui_port>``. The URL is built from those parts and
  the request's path, never by joining strings that could carry an authority;
  a path with dot segments, backslashes, empty segments or control
  characters is refused (400) before anything is sent.
- Only an allowlist of request headers is forwarded: never the caller's
  Authorization or Cookie, never hop-by-hop headers, never X-Forwarded-*.
- Responses lose hop-by-hop headers, Set-Cookie (an engine sets no cookie on
  Rucat's origin) and WWW-Authenticate. A redirect's Location is rewritten
  into the prefix; a redirect to any other host is refused (502).
- Only GET and HEAD: the UI's kill links (POST) would change state outside
  the console's CSRF protection.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpx
from fastapi import APIRouter, HTTPException, Path, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.background import BackgroundTask

from rucat.domain.access import EngineAction
from rucat.domain.engine import Engine
from rucat.domain.errors import StateConflict
from rucat.domain.state import EngineState
from rucat.engines.kind import ui_path as ui_proxy_base
from rucat.platforms import Platform
from rucat.server.routes.engine_id import load_visible
from rucat.store import EngineStore

log = logging.getLogger("rucat.server.sparkui")

_PATH_RE = re.compile(r"^/engine/[^/]+/sparkui(?:/|$)")

#: Request headers passed to Spark; everything else (Authorization, Cookie,
#: Host, hop-by-hop, X-Forwarded-*) stays here.
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "if-modified-since",
        "if-none-match",
        "pragma",
        "range",
        "user-agent",
    }
)
#: RFC 9110 7.6.1, plus the ones every proxy drops.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_DROPPED_RESPONSE_HEADERS = HOP_BY_HOP | {"set-cookie", "set-cookie2", "www-authenticate"}

#: Connecting to a driver is fast or never; its pages may take a while to render.
TIMEOUT = httpx.Timeout(connect=5.0, read=60.0, write=10.0, pool=5.0)
#: Idle connections kept to drivers: a page's assets follow it within a second.
#: No bound on open ones: the REST server's max_connections bounds the callers.
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=32, keepalive_expiry=5.0)


class Upstreams:
    """The one HTTP client every driver's UI is reached with, so that a page's
    assets reuse its connection instead of a new client and connect each.

    Made at the first request, in the event loop that serves it (a client's
    connections belong to one loop); `aclose()` when the server stops.
    `transport`: how httpx reaches the drivers (default: the network).
    """

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # Plain HTTP only, so no TLS context: loading the CA bundle for one
            # would cost ~30 ms of CPU (measured here), more than a page's proxying.
            self._client = httpx.AsyncClient(
                transport=self._transport,
                timeout=TIMEOUT,
                limits=LIMITS,
                trust_env=False,
                follow_redirects=False,
                verify=False,  # noqa: S501 (never used: the URL is always http://)
            )
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def is_sparkui_path(path: str) -> bool:
    """Whether `path` is under some engine's /engine/{id}/sparkui prefix."""
    return _PATH_RE.match(path) is not None


def upstream_host(endpoint: str) -> str | None:
    """The host of a recorded ``sc://host:port`` endpoint (IPv6 without brackets)."""
    authority = endpoint.removeprefix("sc://").split("/", 1)[0]
    host, sep, port = authority.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def upstream_path(raw_path: bytes, prefix: str) -> str:
    """The path to ask Spark for: `raw_path` (as the client sent it, still
    percent-encoded) without `prefix`. Raises HTTPException(400) for anything
    that is not a plain path on the UI's own server."""
    try:
        text = raw_path.decode("ascii")
    except UnicodeDecodeError as e:
        raise HTTPException(400, "the Spark UI path must be ASCII (percent-encoded)") from e
    if not text.startswith(prefix):
        raise HTTPException(400, "the Spark UI path does not match its engine")
    rest = text[len(prefix) :] or "/"
    decoded = unquote(rest)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded) or "\\" in decoded:
        raise HTTPException(400, "the Spark UI path must not contain control characters or '\\'")
    segments = decoded.split("/")[1:]
    if any(s in (".", "..") for s in segments) or any(not s for s in segments[:-1]):
        raise HTTPException(400, "the Spark UI path must not contain '.', '..' or empty segments")
    return rest


def rewrite_location(
    location: str, *, authority: str, request_path: str, prefix: str
) -> str | None:
    """A Spark redirect's target as a path under `prefix`; None when it leads
    off the engine's UI (another host, another scheme, or above the prefix).

    `authority` is the ``host:port`` Rucat asked; `request_path` the path it
    asked there (relative targets resolve against it).
    """
    parts = urlsplit(location)
    if parts.scheme or parts.netloc:
        if parts.scheme.lower() not in ("http", "https"):
            return None
        if parts.netloc.lower() != authority.lower():
            return None
        path = parts.path or "/"
    elif location.startswith("/"):
        path = parts.path
    else:
        # Resolved as a browser would on the UI's own server (dots clamp at its root).
        path = urlsplit(urljoin(f"http://ui{request_path}", location)).path or "/"
    if unquote(path).startswith("//") or "/../" in unquote(path) + "/":
        return None
    if not (path == prefix or path.startswith(prefix + "/")):
        path = prefix + path  # Spark wrote it without its proxyBase
    return urlunsplit(("", "", path, parts.query, parts.fragment))


def _request_headers(request: Request) -> list[tuple[str, str]]:
    return [
        (key, value)
        for key, value in request.headers.items()
        if key.lower() in FORWARDED_REQUEST_HEADERS
    ]


def _response_headers(
    upstream: httpx.Response, *, authority: str, request_path: str, prefix: str
) -> list[tuple[str, str]]:
    named_hop = {
        token.strip().lower()
        for value in upstream.headers.get_list("connection")
        for token in value.split(",")
    }
    out: list[tuple[str, str]] = []
    for key, value in upstream.headers.multi_items():
        lower = key.lower()
        if lower in _DROPPED_RESPONSE_HEADERS or lower in named_hop:
            continue
        if lower == "location":
            rewritten = rewrite_location(
                value, authority=authority, request_path=request_path, prefix=prefix
            )
            if rewritten is None:
                raise HTTPException(502, "the engine's Spark UI redirected outside the engine")
            value = rewritten
        out.append((lower, value))
    return out


def sparkui_router(
    *,
    store: EngineStore,
    platform: Platform | None,
    upstreams: Upstreams,
) -> APIRouter:
    """GET and HEAD of ``/engine/{engine_id}/sparkui`` and everything under it,
    reaching the drivers with `upstreams`."""
    router = APIRouter(tags=["engines"])

    async def target(request: Request, engine_id: str) -> tuple[Engine, str, int]:
        engine = await load_visible(store, request, engine_id, EngineAction.SPARK_UI)
        if engine.state is not EngineState.Running:
            raise StateConflict(
                f"engine {engine.id} is not Running (it is {engine.state.value}): "
                "its Spark UI is served only while it runs",
                current=engine,
            )
        host = upstream_host(engine.endpoint or "")
        if host is None:
            raise HTTPException(503, f"engine {engine.id} has no recorded endpoint yet")
        if platform is None:
            raise HTTPException(503, "this server has no platform to find Spark UIs on")
        port = await platform.ui_port(engine=engine)
        if port is None:
            raise HTTPException(
                503,
                f"engine {engine.id} has no Spark UI (not bound yet, or spark.ui.enabled=false)",
            )
        return engine, host, port

    @router.api_route(
        "/engine/{engine_id}/sparkui",
        methods=["GET", "HEAD"],
        include_in_schema=False,
    )
    async def sparkui_root(engine_id: str, request: Request) -> Response:
        await target(request, engine_id)  # the same answers as below, before a redirect
        return RedirectResponse(f"{ui_proxy_base(engine_id)}/", status_code=307)

    @router.api_route(
        "/engine/{engine_id}/sparkui/{path:path}",
        methods=["GET", "HEAD"],
        summary="The engine's Spark UI",
    )
    async def sparkui(
        engine_id: str,
        request: Request,
        path: Annotated[str, Path(description="A page, asset or /api/v1 path of the UI.")],
    ) -> Response:
        """The engine's Spark UI (pages, static assets, /api/v1), reverse-proxied while
        it is Running (409 otherwise). Needs attach; the console's session cookie counts."""
        engine, host, port = await target(request, engine_id)
        prefix = ui_proxy_base(engine.id)
        raw_path = request.scope.get("raw_path") or request.url.path.encode("ascii", "replace")
        rest = upstream_path(raw_path, prefix)
        query = request.scope.get("query_string", b"")
        url = httpx.URL(scheme="http", host=host, port=port, raw_path=rest.encode("ascii"))
        if query:
            url = url.copy_with(query=query)
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        client = upstreams.client()
        try:
            upstream = await client.send(
                client.build_request(request.method, url, headers=_request_headers(request)),
                stream=True,
            )
        except httpx.HTTPError as e:
            log.warning("Spark UI of engine %s at %s did not answer: %r", engine.id, authority, e)
            raise HTTPException(
                502, f"the Spark UI of engine {engine.id} does not answer: {type(e).__name__}"
            ) from e

        async def close() -> None:
            await upstream.aclose()  # back to the pool, or closed if unfinished

        try:
            headers = _response_headers(
                upstream, authority=authority, request_path=rest.split("?")[0], prefix=prefix
            )
        except HTTPException:
            await close()
            raise

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            except httpx.HTTPError as e:  # the driver went away mid-body: end it there
                log.warning("Spark UI of engine %s broke off: %r", engine.id, e)
            finally:  # also when the caller went away first
                await close()

        response = StreamingResponse(
            body(), status_code=upstream.status_code, background=BackgroundTask(close)
        )
        response.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        return response

    return router
