"""Run the REST API under uvicorn as an ordinary asyncio coroutine.

`serve` is embeddable: it installs no signal handlers (the caller owns
signals: `rucat server` maps SIGINT/SIGTERM to cancelling it, `rucat up`
runs it beside a monitor) and cancelling it shuts uvicorn down gracefully,
closing the listening socket, before the CancelledError propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Generator

import uvicorn
from fastapi import FastAPI

from rucat.config import RucatConfig
from rucat.domain.errors import ConfigError
from rucat.domain.request_origin import default_allowed_hosts
from rucat.platforms import Platform
from rucat.server.app import create_app
from rucat.server.auth import Authenticator
from rucat.server.connections import (
    ACCEPT_BATCH,
    LISTEN_BACKLOG,
    AcceptFailureLog,
    connection_limit,
    guarded_protocol,
)
from rucat.server.proxy import start_proxy
from rucat.server.sparkui import Upstreams
from rucat.store import EngineStore

log = logging.getLogger("rucat.server")

#: Seconds open connections get to finish when the server stops.
GRACEFUL_SHUTDOWN_SECS = 5


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handling: the embedding program owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _listen(host: str, port: int) -> socket.socket:
    """Bind here, not in uvicorn: uvicorn calls sys.exit() when it cannot bind,
    which an embedding program cannot catch from a task."""
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        return socket.create_server(address[:2], family=family, backlog=LISTEN_BACKLOG)
    except OSError as e:
        raise ConfigError(f"cannot serve the REST API on {host}:{port}: {e.strerror or e}") from e


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def serve(
    config: RucatConfig,
    *,
    store: EngineStore,
    platform: Platform | None,
    notify: Callable[[str], None] | None = None,
    on_started: Callable[[str], None] | None = None,
    on_proxy_started: Callable[[int], None] | None = None,
    auto_stops: Callable[[], int] | None = None,
) -> None:
    """Serve the API on config.host:config.port until cancelled (or uvicorn fails to start),
    and the Spark Connect proxy on config.connect_port unless that is None.

    `on_started` receives the base URL with the port actually bound (port 0
    picks a free one); `on_proxy_started` the proxy's bound port.
    `auto_stops` reads the auto-stop counter of a monitor in this process.
    """
    # One Authenticator for both paths: the same credentials, the same caches.
    authenticator = Authenticator(config.auth_provider, tokens=store)
    proxy = (
        await start_proxy(config, store=store, authenticator=authenticator)
        if config.connect_port is not None
        else None
    )
    if proxy is not None and on_proxy_started is not None:
        on_proxy_started(proxy.port)
    upstreams = Upstreams()
    try:
        app = create_app(
            config,
            store=store,
            platform=platform,
            notify=notify,
            authenticator=authenticator,
            auto_starts=(lambda: proxy.auto_starts) if proxy is not None else None,
            auto_stops=auto_stops,
            connect_port=proxy.port if proxy is not None else None,
            sparkui_upstreams=upstreams,
        )
        await _serve_rest(config, app=app, on_started=on_started)
    finally:
        await upstreams.aclose()
        if proxy is not None:
            await proxy.close()


async def _serve_rest(
    config: RucatConfig, *, app: FastAPI, on_started: Callable[[str], None] | None
) -> None:
    max_connections = connection_limit(config.max_connections)
    if max_connections < config.max_connections:
        log.warning(
            "max_connections lowered from %d to %d to stay within the process's file limit",
            config.max_connections,
            max_connections,
        )
    server = _EmbeddedServer(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            http=guarded_protocol(
                max_connections=max_connections,
                header_timeout_secs=config.header_timeout_secs,
            ),
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECS,
            # asyncio's accept batch; uvicorn also listen()s with it (restored below).
            backlog=ACCEPT_BATCH,
        )
    )
    sock = _listen(config.host, config.port)
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(AcceptFailureLog(previous_handler))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="rucat-rest")
    try:
        while not server.started:
            if task.done():
                await task  # re-raises why uvicorn stopped
                raise ConfigError(
                    f"the REST API stopped before serving on {config.host}:{config.port}"
                )
            await asyncio.sleep(0.02)
        # uvicorn's listen(ACCEPT_BATCH) shortened the kernel's queue; a second
        # listen() on a listening socket only sets its length again.
        sock.listen(LISTEN_BACKLOG)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = _url(config.host, port)
        log.info("REST API listening on %s", url, extra={"url": url})
        if config.allowed_hosts is None and config.host in ("0.0.0.0", "::", ""):
            log.warning(
                "the REST API listens on every interface but answers only the Host names "
                "%s: set allowed_hosts to the names clients use",
                ", ".join(default_allowed_hosts(config.host)),
            )
        if on_started is not None:
            on_started(url)
        # shield: a cancellation reaches this coroutine, not uvicorn's, which
        # then shuts down in order in the finally below.
        await asyncio.shield(task)
    finally:
        if not task.done():
            server.should_exit = True
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        sock.close()
        loop.set_exception_handler(previous_handler)
