"""The API over a real PostgreSQL store: the lifecycle, races and refusals hold there too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from rucat.config import DatabaseConfig, PostgresConfig
from rucat.domain.state import EngineState
from rucat.store import EngineStore, open_store
from tests.integration.conftest import Api, StartApi, force_state

S = EngineState


@pytest.fixture
async def pg_store(postgres_database_uri: str) -> AsyncIterator[EngineStore]:
    config = DatabaseConfig(Postgres=PostgresConfig(uri=postgres_database_uri))  # type: ignore[arg-type]
    store = await open_store(config)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def pg_api(start_api: StartApi, pg_store: EngineStore) -> AsyncIterator[Api]:
    async with start_api(store=pg_store) as api:
        yield api


async def test_lifecycle_create_get_list_stop_restart_delete_on_postgres(pg_api: Api) -> None:
    api = pg_api
    first = await api.create(name="one")
    api.clock.advance(1)
    second = await api.create(name="two")
    assert (await api.client.get("/engines")).json() == [{"id": first}, {"id": second}]
    info = (await api.client.get(f"/engine/{first}")).json()
    assert (info["name"], info["state"], info["create_time"]) == (
        "one",
        "WaitToStart",
        "2026-01-01T00:00:00Z",
    )
    assert (await api.client.post(f"/engine/{first}/stop")).json()["state"] == "Terminated"
    assert (await api.client.post(f"/engine/{first}/restart")).json()["state"] == "WaitToStart"
    assert (await api.client.post(f"/engine/{first}/restart")).status_code == 409
    events = (await api.client.get(f"/engine/{first}/events")).json()
    assert [e["to_state"] for e in events] == ["WaitToStart", "Terminated", "WaitToStart"]
    assert (await api.client.delete(f"/engine/{first}")).status_code == 200
    assert (await api.client.get(f"/engine/{first}")).status_code == 404
    assert (await api.client.get("/engines")).json() == [{"id": second}]


async def test_concurrent_stops_on_postgres_write_one_transition(pg_api: Api) -> None:
    engine_id = await pg_api.create()
    await force_state(pg_api.store, engine_id, S.Running, endpoint="sc://127.0.0.1:1")
    responses = await asyncio.gather(
        *(pg_api.client.post(f"/engine/{engine_id}/stop") for _ in range(10))
    )
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 1, codes
    assert set(codes) <= {200, 409}, codes


async def test_delete_of_a_running_engine_is_409_on_postgres(pg_api: Api) -> None:
    engine_id = await pg_api.create()
    await force_state(pg_api.store, engine_id, S.Running, endpoint="sc://127.0.0.1:1")
    response = await pg_api.client.delete(f"/engine/{engine_id}")
    assert response.status_code == 409
    assert "Running" in response.json()["detail"]


async def test_bad_input_stores_nothing_on_postgres(pg_api: Api) -> None:
    response = await pg_api.client.post(
        "/engine",
        json={"name": "", "engine_type": "Spark", "version": "4.0.1", "configs": {}},
    )
    assert response.status_code == 422
    assert await pg_api.store.list() == []
