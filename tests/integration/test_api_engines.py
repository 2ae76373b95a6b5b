"""The engine routes over real HTTP and a real SQLite store: shapes, ordering, writes."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from rucat.config import LocalPlatformConfig
from rucat.domain.state import EngineState
from rucat.platforms.local.platform import LocalPlatform
from tests.integration.conftest import SPARK, Api, StartApi, force_state

S = EngineState

SEED_FIELDS = {"name", "engine_type", "version", "state", "configs", "create_time"}
ADDED_FIELDS = {
    "id",
    "message",
    "platform",
    "endpoint",
    "update_time",
    "last_activity_time",
    "auto_stop_minutes",
    "idle_since",
    "owner",
    "connect_url",
    "pool",
}


async def test_create_returns_only_an_id_of_lowercase_letters_and_digits(api: Api) -> None:
    response = await api.client.post("/engine", json=SPARK)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id"}
    assert re.fullmatch(r"[a-z][a-z0-9]{19}", body["id"])


async def test_created_engine_waits_to_start_with_the_seed_fields_and_the_additions(
    api: Api,
) -> None:
    engine_id = await api.create(name="etl", configs={"spark.executor.memory": "1g"})
    response = await api.client.get(f"/engine/{engine_id}")
    assert response.status_code == 200
    info = response.json()
    assert set(info) == SEED_FIELDS | ADDED_FIELDS
    assert info["id"] == engine_id
    assert info["name"] == "etl"
    assert info["engine_type"] == "Spark"
    assert info["version"] == "4.0.1"
    assert info["state"] == "WaitToStart"
    assert info["configs"] == {"spark.executor.memory": "1g"}
    assert info["create_time"] == "2026-01-01T00:00:00Z"
    assert info["update_time"] == "2026-01-01T00:00:00Z"
    assert info["message"] is None
    assert info["platform"] == "Local"
    assert info["endpoint"] is None
    assert info["last_activity_time"] is None


async def test_created_engine_is_due_at_once_and_the_monitor_is_notified(api: Api) -> None:
    engine_id = await api.create()
    engine = await api.engine(engine_id)
    assert engine.next_update_time == api.clock()
    assert api.notified == [engine_id]


async def test_engine_info_never_shows_the_connect_token_or_saved_logs(api: Api) -> None:
    engine_id = await api.create()
    engine = await api.engine(engine_id)
    assert engine.connect_token
    await force_state(api.store, engine_id, S.WaitToStart, saved_logs="secret-log-line")
    text = (await api.client.get(f"/engine/{engine_id}")).text
    assert engine.connect_token not in text
    assert "connect_token" not in text
    assert "secret-log-line" not in text


async def test_get_of_an_unknown_id_is_404_naming_it(api: Api) -> None:
    response = await api.client.get("/engine/a0000000000000000000")
    assert response.status_code == 404
    assert response.json() == {"detail": "engine a0000000000000000000 not found"}


@pytest.mark.parametrize(
    "bad_id", ["UPPERCASE0000000000000", "short", "a" * 300, "with%20space", "..%2F..%2Fetc"]
)
async def test_every_engine_route_answers_404_for_a_malformed_id(api: Api, bad_id: str) -> None:
    for method, path in [
        ("GET", f"/engine/{bad_id}"),
        ("POST", f"/engine/{bad_id}/stop"),
        ("POST", f"/engine/{bad_id}/restart"),
        ("DELETE", f"/engine/{bad_id}"),
        ("GET", f"/engine/{bad_id}/events"),
        ("GET", f"/engine/{bad_id}/logs"),
    ]:
        response = await api.client.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert isinstance(response.json()["detail"], str)


async def test_list_gives_ids_oldest_first(api: Api) -> None:
    ids = []
    for _ in range(4):
        ids.append(await api.create())
        api.clock.advance(1)
    response = await api.client.get("/engines")
    assert response.status_code == 200
    assert response.json() == [{"id": i} for i in ids]


async def test_list_of_an_empty_store_is_an_empty_list(api: Api) -> None:
    response = await api.client.get("/engines")
    assert response.status_code == 200
    assert response.json() == []


async def test_list_pages_with_limit_and_after_keep_the_same_shape(api: Api) -> None:
    ids = []
    for _ in range(5):
        ids.append(await api.create())
        api.clock.advance(1)
    first = (await api.client.get("/engines", params={"limit": 2})).json()
    assert first == [{"id": ids[0]}, {"id": ids[1]}]
    second = (await api.client.get("/engines", params={"limit": 2, "after": ids[1]})).json()
    assert second == [{"id": ids[2]}, {"id": ids[3]}]
    last = (await api.client.get("/engines", params={"limit": 2, "after": ids[3]})).json()
    assert last == [{"id": ids[4]}]


async def test_list_filters_on_one_or_several_states(api: Api) -> None:
    waiting = await api.create()
    api.clock.advance(1)
    running = await api.create()
    await force_state(api.store, running, S.Running, endpoint="sc://127.0.0.1:1")
    api.clock.advance(1)
    stopped = await api.create()
    await api.client.post(f"/engine/{stopped}/stop")

    only_running = await api.client.get("/engines", params={"state": "Running"})
    assert only_running.json() == [{"id": running}]
    both = [("state", "WaitToStart"), ("state", "Terminated")]
    two = await api.client.get("/engines", params=both)
    assert two.json() == [{"id": waiting}, {"id": stopped}]


@pytest.mark.parametrize(
    "params",
    [{"state": "Sleeping"}, {"limit": "0"}, {"limit": "-1"}, {"limit": "many"}],
)
async def test_list_with_bad_query_parameters_is_422(api: Api, params: dict[str, str]) -> None:
    response = await api.client.get("/engines", params=params)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)
    assert "query." in response.json()["detail"]


async def test_list_after_an_unknown_cursor_is_400(api: Api) -> None:
    await api.create()
    response = await api.client.get("/engines", params={"after": "a0000000000000000000"})
    assert response.status_code == 400
    assert isinstance(response.json()["detail"], str)


async def test_stop_returns_the_engine_as_written_and_notifies(api: Api) -> None:
    engine_id = await api.create()
    api.notified.clear()
    response = await api.client.post(f"/engine/{engine_id}/stop")
    assert response.status_code == 200
    assert response.json()["state"] == "Terminated"
    assert response.json()["id"] == engine_id
    assert api.notified == [engine_id]


async def test_a_user_move_makes_the_engine_due_now_unclaimed_and_clears_the_message(
    api: Api,
) -> None:
    engine_id = await api.create()
    await force_state(
        api.store,
        engine_id,
        S.Running,
        endpoint="sc://127.0.0.1:15002",
        lease_owner="monitor-1",
        message="started",
        next_update_time=api.clock() + timedelta(hours=1),
    )
    api.clock.advance(30)
    response = await api.client.post(f"/engine/{engine_id}/stop")
    assert response.status_code == 200
    engine = await api.engine(engine_id)
    assert engine.state is S.WaitToTerminate
    assert engine.next_update_time == api.clock()
    assert engine.update_time == api.clock()
    assert engine.lease_owner is None
    assert engine.message is None
    # Still running until the monitor stops it: the endpoint stays.
    assert engine.endpoint == "sc://127.0.0.1:15002"


async def test_restart_from_terminated_clears_the_old_endpoint(api: Api) -> None:
    engine_id = await api.create()
    await force_state(api.store, engine_id, S.Terminated, endpoint="sc://127.0.0.1:15002")
    response = await api.client.post(f"/engine/{engine_id}/restart")
    assert response.status_code == 200
    assert response.json()["state"] == "WaitToStart"
    assert response.json()["endpoint"] is None


async def test_restart_while_waiting_to_terminate_keeps_it_running_with_its_endpoint(
    api: Api,
) -> None:
    engine_id = await api.create()
    await force_state(api.store, engine_id, S.Running, endpoint="sc://127.0.0.1:15002")
    await api.client.post(f"/engine/{engine_id}/stop")
    response = await api.client.post(f"/engine/{engine_id}/restart")
    assert response.status_code == 200
    assert response.json()["state"] == "Running"
    assert response.json()["endpoint"] == "sc://127.0.0.1:15002"


async def test_delete_removes_the_engine_from_get_list_and_events(api: Api) -> None:
    engine_id = await api.create()
    api.notified.clear()
    response = await api.client.delete(f"/engine/{engine_id}")
    assert response.status_code == 200
    assert response.json() == {"id": engine_id}
    assert (await api.client.get(f"/engine/{engine_id}")).status_code == 404
    assert (await api.client.get(f"/engine/{engine_id}/events")).status_code == 404
    assert (await api.client.get("/engines")).json() == []
    assert api.notified == [engine_id]
    second = await api.client.delete(f"/engine/{engine_id}")
    assert second.status_code == 404


async def test_events_record_every_transition_with_time_states_and_actor(api: Api) -> None:
    engine_id = await api.create()
    api.clock.advance(5)
    await api.client.post(f"/engine/{engine_id}/stop")
    response = await api.client.get(f"/engine/{engine_id}/events")
    assert response.status_code == 200
    assert response.json() == [
        {
            "time": "2026-01-01T00:00:00Z",
            "from_state": None,
            "to_state": "WaitToStart",
            "message": None,
            "actor": "anonymous",
        },
        {
            "time": "2026-01-01T00:00:05Z",
            "from_state": "WaitToStart",
            "to_state": "Terminated",
            "message": None,
            "actor": "anonymous",
        },
    ]


async def test_logs_without_a_platform_come_from_the_saved_logs(api: Api) -> None:
    engine_id = await api.create()
    await force_state(api.store, engine_id, S.Terminated, saved_logs="one\ntwo\nthree\n")
    full = await api.client.get(f"/engine/{engine_id}/logs")
    assert full.status_code == 200
    assert full.json() == {"id": engine_id, "logs": "one\ntwo\nthree\n"}
    tail = await api.client.get(f"/engine/{engine_id}/logs", params={"tail": 2})
    assert tail.json() == {"id": engine_id, "logs": "two\nthree\n"}


async def test_logs_of_an_engine_without_any_log_are_empty(api: Api) -> None:
    engine_id = await api.create()
    response = await api.client.get(f"/engine/{engine_id}/logs")
    assert response.status_code == 200
    assert response.json() == {"id": engine_id, "logs": ""}


@pytest.mark.parametrize("tail", ["0", "-3", "100001", "ten"])
async def test_logs_with_a_tail_outside_1_to_100000_is_422(api: Api, tail: str) -> None:
    engine_id = await api.create()
    response = await api.client.get(f"/engine/{engine_id}/logs", params={"tail": tail})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("query.tail: ")


async def test_with_the_local_platform_logs_fall_back_to_saved_logs_and_delete_forgets(
    start_api: StartApi, tmp_path: Path
) -> None:
    platform = LocalPlatform(LocalPlatformConfig(), data_dir=tmp_path / "data")
    try:
        async with start_api(platform=platform) as api:
            engine_id = await api.create()
            # Never started: the platform has no log, the saved copy is served.
            await force_state(api.store, engine_id, S.Terminated, saved_logs="kept\n")
            logs = await api.client.get(f"/engine/{engine_id}/logs")
            assert logs.json() == {"id": engine_id, "logs": "kept\n"}
            leftovers = tmp_path / "data" / "engines" / engine_id
            leftovers.mkdir(parents=True)
            (leftovers / "scratch").write_text("x")
            assert (await api.client.delete(f"/engine/{engine_id}")).status_code == 200
            assert not leftovers.exists()
    finally:
        await platform.close()
