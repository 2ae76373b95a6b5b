"""A real Rucat REST server for API tests: uvicorn on a free 127.0.0.1 port, a real store.

`api` is an open server over a fresh SQLite file; `start_api` starts one with
any config (auth, body limit) or store. Tests talk HTTP with httpx. The clock
is a FakeClock, so times written by the server are known exactly. Engines are
moved into monitor states through the real store (`force_state`), exactly as
a monitor would write them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from rucat.config import DatabaseConfig, RucatConfig, SqliteConfig
from rucat.domain.engine import Engine
from rucat.domain.state import EngineState
from rucat.platforms import Platform
from rucat.server.actions import TRIGGER_WAIT, TriggerWait
from rucat.server.app import create_app
from rucat.server.auth import Authenticator
from rucat.store import EngineStore, open_store
from tests.conftest import FakeClock
from tests.support.postgres import postgres_database_uri, postgres_server  # noqa: F401 (fixtures)

SPARK = {"name": "test-engine", "engine_type": "Spark", "version": "4.0.1", "configs": {}}


@dataclasses.dataclass
class Api:
    url: str
    store: EngineStore
    clock: FakeClock
    notified: list[str]
    client: httpx.AsyncClient

    async def create(self, **changes: Any) -> str:
        response = await self.client.post("/engine", json={**SPARK, **changes})
        assert response.status_code == 200, response.text
        engine_id = response.json()["id"]
        assert isinstance(engine_id, str)
        return engine_id

    async def engine(self, engine_id: str) -> Engine:
        return await self.store.get(engine_id=engine_id)


async def force_state(
    store: EngineStore, engine_id: str, state: EngineState, **changes: Any
) -> Engine:
    """Write `state` (and `changes`) as a monitor would: one compare-and-set."""
    current = await store.get(engine_id=engine_id)
    new = dataclasses.replace(current, state=state, **changes)
    return await store.transition(current=current, new=new, actor="test-monitor")


@contextlib.asynccontextmanager
async def running_api(
    config: RucatConfig,
    *,
    store: EngineStore,
    platform: Platform | None = None,
    clock: FakeClock | None = None,
    headers: dict[str, str] | None = None,
    auth: httpx.Auth | None = None,
    extra_routes: dict[str, Callable[..., Any]] | None = None,
    allow_internal_errors: bool = False,
    authenticator: Authenticator | None = None,
    trigger_wait: TriggerWait = TRIGGER_WAIT,
) -> AsyncIterator[Api]:
    clock = clock or FakeClock()
    notified: list[str] = []
    app = create_app(
        config,
        store=store,
        platform=platform,
        clock=clock,
        notify=notified.append,
        authenticator=authenticator,
        trigger_wait=trigger_wait,
    )
    for route, handler in (extra_routes or {}).items():
        app.add_api_route(route, handler)
    bugs = _InternalErrors()
    logging.getLogger("rucat.server").addHandler(bugs)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="off"
        )
    )
    # uvicorn would otherwise take over the test process's SIGINT.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(
            base_url=url, headers=headers, auth=auth, timeout=30
        ) as client:
            yield Api(url=url, store=store, clock=clock, notified=notified, client=client)
    finally:
        server.should_exit = True
        await task
        logging.getLogger("rucat.server").removeHandler(bugs)
    # A 500 is a bug: no API test may cause one unless it asks to.
    if not allow_internal_errors:
        assert not bugs.records, [r.getMessage() for r in bugs.records]


class _InternalErrors(logging.Handler):
    """Collects the middleware's 'internal error' records (unexpected exceptions)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("internal error"):
            self.records.append(record)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EngineStore]:
    opened = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=str(tmp_path / "rucat.db"))))
    try:
        yield opened
    finally:
        await opened.close()


StartApi = Callable[..., AbstractAsyncContextManager[Api]]


@pytest.fixture
def start_api(store: EngineStore, clock: FakeClock) -> StartApi:
    """`async with start_api(config=..., headers=...) as api:` over the test's store."""

    def start(config: RucatConfig | None = None, **kwargs: Any) -> AbstractAsyncContextManager[Api]:
        kwargs.setdefault("store", store)
        kwargs.setdefault("clock", clock)
        return running_api(config or RucatConfig(), **kwargs)

    return start


@pytest.fixture
async def api(start_api: StartApi) -> AsyncIterator[Api]:
    """An open (no auth) server over a fresh SQLite store."""
    async with start_api() as running:
        yield running
