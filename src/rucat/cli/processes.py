"""The long-running processes: `rucat monitor` and `rucat up`.

Each opens the store and the platform named by the config, runs until
cancelled (Ctrl-C, SIGTERM), and closes what it opened. `up` runs the REST
server and a monitor in one event loop; the server wakes the monitor in
process after every write, so engines start without waiting for a poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from rucat.config import RucatConfig
from rucat.domain.engine import Engine
from rucat.domain.errors import ConfigError
from rucat.monitor.reconciler import Monitor, utc_now
from rucat.monitor.runner import build_monitor, build_pool_keeper, run_with_pools
from rucat.monitor.shutdown import stop_engines_on_exit
from rucat.platforms import Platform, open_platform
from rucat.server.metrics import AUTO_STOPS, count_in
from rucat.server.runner import serve
from rucat.store import EngineStore, open_store

log = logging.getLogger("rucat")


async def _with_store_and_platform(
    config: RucatConfig, body: Callable[[EngineStore, Platform], Awaitable[None]]
) -> None:
    store = await open_store(config.database)
    try:
        platform = open_platform(config.platform, data_dir=Path(config.data_dir))
        try:
            await body(store, platform)
        finally:
            await platform.close()
    finally:
        await store.close()


async def run_server(config: RucatConfig) -> None:
    """`rucat server`: serve the API until cancelled."""

    async def body(store: EngineStore, platform: Platform) -> None:
        await serve(config, store=store, platform=platform)

    await _with_store_and_platform(config, body)


async def run_monitor(config: RucatConfig) -> None:
    """`rucat monitor`: reconcile until cancelled."""

    async def body(store: EngineStore, platform: Platform) -> None:
        monitor = build_monitor(config, store=store, platform=platform)
        keeper = build_pool_keeper(config, store=store, platform=platform, monitor=monitor)
        if config.monitor_metrics_port is None:
            await run_with_pools(monitor, keeper)
            return
        served = _serve_monitor_metrics(config, monitor)
        try:
            await run_with_pools(monitor, keeper)
        finally:
            served.shutdown()
            served.server_close()

    await _with_store_and_platform(config, body)


async def run_up(
    config: RucatConfig,
    *,
    on_started: Callable[[str, int | None], None],
    keep_engines: bool = False,
    on_stopping: Callable[[Engine], None] = lambda _engine: None,
) -> None:
    """`rucat up`: the server and a monitor in one process, until cancelled.

    `on_started` gets the REST URL and the proxy's bound port (None: no proxy).
    When cancelled (SIGINT, SIGTERM), it stops its engines (telling
    `on_stopping` of each) unless `keep_engines`; see monitor/shutdown.py.
    """
    proxy_port: list[int] = []

    async def body(store: EngineStore, platform: Platform) -> None:
        monitor = build_monitor(config, store=store, platform=platform)
        keeper = build_pool_keeper(config, store=store, platform=platform, monitor=monitor)

        def notify(engine_id: str) -> None:
            monitor.wake(engine_id)
            keeper.wake(engine_id)  # a hand-out leaves a slot to refill

        # Fail with the platform's own words (no Java, ...) before serving anything.
        await platform.check()
        server = asyncio.create_task(
            serve(
                config,
                store=store,
                platform=platform,
                notify=notify,
                on_started=lambda url: on_started(url, proxy_port[0] if proxy_port else None),
                on_proxy_started=proxy_port.append,
                auto_stops=lambda: monitor.auto_stops,
            ),
            name="rucat-server",
        )
        reconciler = asyncio.create_task(run_with_pools(monitor, keeper), name="rucat-monitor")
        # Only a clean shutdown (SIGINT, SIGTERM: cancellation) stops the engines; a
        # failure to start (a port in use) leaves the previous run's engines alone.
        clean_exit = False
        try:
            done, _ = await asyncio.wait({server, reconciler}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise what stopped it
        except asyncio.CancelledError:
            clean_exit = True
            raise
        finally:
            for task in (server, reconciler):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(server, reconciler, return_exceptions=True)
            if clean_exit and not keep_engines:
                await stop_engines_on_exit(
                    store=store,
                    platform=platform,
                    clock=utc_now,
                    timeout=_stop_grace(config) + _STOP_MARGIN_SECS,
                    on_stopping=on_stopping,
                )

    await _with_store_and_platform(config, body)


def _serve_monitor_metrics(config: RucatConfig, monitor: Monitor) -> WSGIServer:
    """The monitor's counters over HTTP (a thread of prometheus_client's)."""
    registry = CollectorRegistry(auto_describe=True)
    count_in(registry, AUTO_STOPS, lambda: monitor.auto_stops)
    port = config.monitor_metrics_port
    assert port is not None
    try:
        server, _thread = start_http_server(port, addr=config.host, registry=registry)
    except OSError as e:
        raise ConfigError(
            f"monitor_metrics_port: cannot listen on {config.host}:{port}: {e.strerror or e}"
        ) from e
    log.info("monitor metrics on http://%s:%d/metrics", config.host, server.server_port)
    return server


#: Beyond the grace period: SIGKILL and the store writes.
_STOP_MARGIN_SECS = 5.0


def _stop_grace(config: RucatConfig) -> float:
    """Seconds a platform's stop waits between SIGTERM and SIGKILL."""
    local = config.platform.Local or config.platform.Standalone
    return local.stop_grace_secs if local is not None else 10.0
