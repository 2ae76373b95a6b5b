"""Auto-stop over the REST API: the value an engine gets, keeps, and how idle it shows."""

from __future__ import annotations

import re

import pytest

from rucat.config import AutoStopConfig, RucatConfig
from rucat.domain.state import EngineState
from tests.integration.conftest import Api, StartApi, force_state

S = EngineState


async def test_an_engine_created_without_auto_stop_gets_the_configured_default(
    api: Api,
) -> None:
    engine_id = await api.create()
    info = (await api.client.get(f"/engine/{engine_id}")).json()
    assert info["auto_stop_minutes"] == 60
    assert (await api.engine(engine_id)).auto_stop_minutes == 60


@pytest.mark.parametrize("minutes", [0, 0.1, 30, 1440], ids=str)
async def test_an_engine_keeps_the_auto_stop_it_asked_for(api: Api, minutes: float) -> None:
    engine_id = await api.create(auto_stop_minutes=minutes)
    assert (await api.client.get(f"/engine/{engine_id}")).json()["auto_stop_minutes"] == minutes


async def test_an_auto_stop_above_the_maximum_is_400_naming_it_and_nothing_is_stored(
    start_api: StartApi,
) -> None:
    config = RucatConfig(auto_stop=AutoStopConfig(default_minutes=10, max_minutes=120))
    async with start_api(config) as api:
        response = await api.client.post(
            "/engine",
            json={
                "name": "e",
                "engine_type": "Spark",
                "version": "4.0.1",
                "auto_stop_minutes": 121,
            },
        )
        assert response.status_code == 400
        assert "auto_stop_minutes" in response.json()["detail"]
        assert "at most 120" in response.json()["detail"]
        assert await api.store.list() == []


@pytest.mark.parametrize("bad", [-1, "30", True, None], ids=["negative", "string", "bool", "null"])
async def test_an_auto_stop_that_is_not_a_number_at_least_zero_is_refused(
    api: Api, bad: object
) -> None:
    body = {"name": "e", "engine_type": "Spark", "version": "4.0.1", "auto_stop_minutes": bad}
    response = await api.client.post("/engine", json=body)
    if bad is None:  # JSON null means "the default", as leaving it out does
        assert response.status_code == 200
        return
    assert response.status_code == 422
    assert "auto_stop_minutes" in response.json()["detail"]


async def test_a_restart_keeps_the_auto_stop(api: Api) -> None:
    engine_id = await api.create(auto_stop_minutes=0.1)
    await force_state(api.store, engine_id, S.Terminated)
    response = await api.client.post(f"/engine/{engine_id}/restart")
    assert response.status_code == 200
    assert response.json()["state"] == "WaitToStart"
    assert response.json()["auto_stop_minutes"] == 0.1


async def test_a_running_engine_is_idle_since_it_became_running_then_since_its_last_call(
    api: Api,
) -> None:
    engine_id = await api.create()
    running_at = api.clock()
    await force_state(api.store, engine_id, S.Running, update_time=running_at)
    api.clock.advance(100)
    info = (await api.client.get(f"/engine/{engine_id}")).json()
    assert info["idle_since"] == "2026-01-01T00:00:00Z"

    await api.store.record_activity(engine_id=engine_id, at=api.clock())
    info = (await api.client.get(f"/engine/{engine_id}")).json()
    assert info["idle_since"] is None  # busy: a proxy just recorded activity

    api.clock.advance(60)
    info = (await api.client.get(f"/engine/{engine_id}")).json()
    assert info["idle_since"] == "2026-01-01T00:01:40Z"


async def test_an_engine_that_is_not_running_is_never_idle(api: Api) -> None:
    engine_id = await api.create()
    api.clock.advance(1000)
    assert (await api.client.get(f"/engine/{engine_id}")).json()["idle_since"] is None


def _sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.rsplit(" ", 1)[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


async def test_metrics_count_running_engines_that_are_busy_and_idle(api: Api) -> None:
    busy, idle = await api.create(), await api.create()
    await api.create()  # not Running: neither busy nor idle
    for engine_id in (busy, idle):
        await force_state(api.store, engine_id, S.Running, update_time=api.clock())
    api.clock.advance(600)
    await api.store.record_activity(engine_id=busy, at=api.clock())
    text = (await api.client.get("/metrics")).text
    assert _sample(text, "rucat_running_engines", activity="busy") == 1
    assert _sample(text, "rucat_running_engines", activity="idle") == 1
