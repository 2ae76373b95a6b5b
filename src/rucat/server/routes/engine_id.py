"""The one engine-id dependency of every ``/engine/{engine_id}`` route.

`EngineIdPath` checks the id's format: anything that is not an engine id is
an unknown engine (404, detail ``engine <id> not found``, the id cut to 64
characters), before any store read. `visible_engine(store, action)` then
loads the engine and decides access: an engine the caller may not see gets
exactly that 404, one it sees without the level needed gets 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from rucat.domain.access import EngineAction
from rucat.domain.engine import Engine, EngineId, is_engine_id
from rucat.domain.errors import EngineNotFound
from rucat.server.access import authorize
from rucat.server.auth import principal_of
from rucat.store import EngineStore


def engine_id_of(engine_id: str) -> EngineId:
    """The path's engine id, if it has an engine id's format; else EngineNotFound."""
    if not is_engine_id(engine_id):
        raise EngineNotFound(engine_id[:64])
    return engine_id


async def _engine_id_dependency(engine_id: str) -> EngineId:
    # async although it never awaits: FastAPI runs a plain `def` dependency in
    # a worker thread, a thread hop (about 0.3 ms of CPU) on every request.
    return engine_id_of(engine_id)


#: The path's engine id, its format checked.
EngineIdPath = Annotated[EngineId, Depends(_engine_id_dependency)]


async def load_visible(
    store: EngineStore, request: Request, engine_id: str, action: EngineAction
) -> Engine:
    """The engine `engine_id`, if the caller may do `action` to it (else 404 or 403).

    For routes that cannot take the dependency (the Spark UI proxy loads it
    per request path); the others use `visible_engine`."""
    engine = await store.get(engine_id=engine_id_of(engine_id))
    return authorize(principal_of(request), engine, action)


def visible_engine(
    store: EngineStore, action: EngineAction
) -> Callable[[Request, EngineId], Awaitable[Engine]]:
    """A dependency: the path's engine, if the caller may do `action` to it."""

    async def load(request: Request, engine_id: EngineIdPath) -> Engine:
        return await load_visible(store, request, engine_id, action)

    return load
