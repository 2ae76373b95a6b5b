"""Operational routes (/health, /ready, /metrics, OpenAPI) and the embeddable runner."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket

import httpx
import pytest

from rucat.config import DatabaseConfig, PostgresConfig, RucatConfig
from rucat.domain.state import EngineState
from rucat.server.runner import serve
from rucat.store import EngineStore, open_store
from tests.integration.conftest import SPARK, Api, StartApi, force_state
from tests.support import eventually
from tests.support.postgres import PostgresServer

S = EngineState


async def test_health_says_ok(api: Api) -> None:
    response = await api.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_the_store_answers(api: Api) -> None:
    response = await api.client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_ready_is_503_when_the_database_is_gone_while_health_stays_ok(
    postgres_server: PostgresServer, start_api: StartApi
) -> None:
    uri = await postgres_server.create_database()
    store = await open_store(DatabaseConfig(Postgres=PostgresConfig(uri=uri)))  # type: ignore[arg-type]
    try:
        async with start_api(store=store) as api:
            assert (await api.client.get("/ready")).status_code == 200
            database = uri.rsplit("/", 1)[1]
            await _drop_database(postgres_server, database)
            response = await api.client.get("/ready")
            assert response.status_code == 503
            assert isinstance(response.json()["detail"], str)
            assert "rucat-test-" not in response.text  # never the password
            assert (await api.client.get("/health")).status_code == 200
            failed_write = await api.client.post("/engine", json=SPARK)
            assert failed_write.status_code == 503
            metrics = await api.client.get("/metrics")
            assert metrics.status_code == 200
            assert _sample(metrics.text, "rucat_store_up") is None  # no labels: plain line
            assert "rucat_store_up 0.0" in metrics.text
            assert "rucat_engines{" not in metrics.text
            assert _sample(metrics.text, "rucat_http_requests_total", route="/ready", status="503")
    finally:
        await store.close()


async def _drop_database(server: PostgresServer, database: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server.uri("postgres"), timeout=10)
    try:
        await conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
    finally:
        await conn.close()


def _sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.rsplit("} ", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_metrics_count_engines_per_state_at_scrape_time(api: Api) -> None:
    running = await api.create()
    await force_state(api.store, running, S.Running, endpoint="sc://127.0.0.1:1")
    await api.create()
    await api.create()
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert _sample(text, "rucat_engines", state="WaitToStart") == 2
    assert _sample(text, "rucat_engines", state="Running") == 1
    assert _sample(text, "rucat_engines", state="ErrorClean") == 0
    assert "rucat_store_up 1.0" in text
    for state in EngineState:
        assert _sample(text, "rucat_engines", state=state.value) is not None


async def test_metrics_label_requests_by_route_template_never_by_raw_path(api: Api) -> None:
    engine_id = await api.create()
    await api.client.get(f"/engine/{engine_id}")
    await api.client.get(f"/engine/{engine_id}")
    await api.client.get("/engine/a0000000000000000000")
    await api.client.get("/some/random/path")
    text = (await api.client.get("/metrics")).text
    assert engine_id not in text
    assert "/some/random/path" not in text
    template = "/engine/{engine_id}"
    assert (
        _sample(text, "rucat_http_requests_total", method="GET", route=template, status="200") == 2
    )
    assert (
        _sample(text, "rucat_http_requests_total", method="GET", route=template, status="404") == 1
    )
    assert (
        _sample(text, "rucat_http_requests_total", method="POST", route="/engine", status="200")
        == 1
    )
    assert _sample(text, "rucat_http_requests_total", route="<unmatched>", status="404") == 1
    assert (
        _sample(text, "rucat_http_request_duration_seconds_count", method="GET", route=template)
        == 3
    )


async def test_metrics_label_refused_requests_by_the_route_they_aimed_at(
    start_api: StartApi,
) -> None:
    from tests.integration.test_api_auth import BOTH

    async with start_api(BOTH) as api:
        await api.client.get("/engine/a0000000000000000000")
        text = (
            await api.client.get("/metrics", headers={"Authorization": "Bearer t0ken-value"})
        ).text
    assert (
        _sample(text, "rucat_http_requests_total", route="/engine/{engine_id}", status="401") == 1
    )


async def test_openapi_documents_the_seed_routes(api: Api) -> None:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths["/engine"]) == {"post"}
    assert set(paths["/engine/{engine_id}"]) == {"get", "delete"}
    assert set(paths["/engines"]) == {"get"}
    for route in ("stop", "restart"):
        assert set(paths[f"/engine/{{engine_id}}/{route}"]) == {"post"}
    for route in ("events", "logs"):
        assert set(paths[f"/engine/{{engine_id}}/{route}"]) == {"get"}
    docs = await api.client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_one_access_log_line_per_request_without_headers(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rucat.access")
    engine_id = await api.create()
    await api.client.get(f"/engine/{engine_id}", headers={"X-Secret-Header": "hidden-value"})

    async def two_lines() -> list[logging.LogRecord] | None:
        # The line is written just after the answer is sent: wait for it.
        found = [r for r in caplog.records if r.name == "rucat.access"]
        return found if len(found) >= 2 else None

    lines = await eventually(two_lines, timeout=10, what="two access log lines")
    assert [(r.method, r.route, r.status) for r in lines] == [  # type: ignore[attr-defined]
        ("POST", "/engine", 200),
        ("GET", "/engine/{engine_id}", 200),
    ]
    assert "hidden-value" not in caplog.text


async def test_transitions_written_by_the_server_are_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rucat.server")
    engine_id = await api.create()
    await api.client.post(f"/engine/{engine_id}/stop")
    messages = [r.getMessage() for r in caplog.records if r.name == "rucat.server"]
    assert f"engine {engine_id} created" in messages
    assert f"engine {engine_id}: WaitToStart -> Terminated" in messages


async def test_serve_reports_the_bound_port_and_stops_when_cancelled(store: EngineStore) -> None:
    urls: list[str] = []
    task = asyncio.create_task(
        serve(
            RucatConfig(port=0, connect_port=None),
            store=store,
            platform=None,
            on_started=urls.append,
        )
    )
    for _ in range(500):
        if urls or task.done():
            break
        await asyncio.sleep(0.02)
    assert urls, "serve never reported its URL"
    url = urls[0]
    port = int(url.rsplit(":", 1)[1])
    assert url == f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/health")).status_code == 200
        created = await client.post("/engine", json=SPARK)
        assert created.status_code == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


async def test_serve_on_a_port_in_use_fails_with_a_config_error(store: EngineStore) -> None:
    from rucat.domain.errors import ConfigError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=str(port)):
            await asyncio.wait_for(
                serve(RucatConfig(port=port, connect_port=None), store=store, platform=None), 30
            )


def test_json_log_lines_are_one_object_each() -> None:
    import io

    from rucat.server.logs import configure_logging

    stream = io.StringIO()
    configure_logging("json", stream=stream)
    try:
        logging.getLogger("rucat.access").info(
            "GET /x 200", extra={"method": "GET", "status": 200, "duration_ms": 1.5}
        )
        logging.getLogger("rucat.server").warning("two\nlines")
    finally:
        configure_logging("text")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "GET /x 200"
    assert first["method"] == "GET"
    assert first["status"] == 200
    assert first["level"] == "INFO"
    assert first["logger"] == "rucat.access"
    # Escaped even in JSON: `jq -r .message` must not print a forged second line.
    assert second["message"] == "two\\nlines"


async def test_an_unexpected_exception_is_a_logged_500_with_a_json_detail(
    start_api: StartApi, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom() -> None:
        raise RuntimeError("a bug with a secret inside: hunter2")

    caplog.set_level(logging.ERROR, logger="rucat.server")
    async with start_api(extra_routes={"/boom": boom}, allow_internal_errors=True) as api:
        response = await api.client.get("/boom")
        assert response.status_code == 500
        assert response.json() == {"detail": "internal error"}
        assert "hunter2" not in response.text
        text = (await api.client.get("/metrics")).text
    assert _sample(text, "rucat_http_requests_total", route="/boom", status="500") == 1
    errors = [r for r in caplog.records if r.getMessage().startswith("internal error")]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
