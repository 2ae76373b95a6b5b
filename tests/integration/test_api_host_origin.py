"""DNS rebinding and drive-by requests against a real server: Host and Origin checks.

A web page in the operator's browser can reach a server on localhost. With a
rebound name the browser sends that name as Host (refused: 400); from any page
it sends the page's Origin (refused on state-changing methods: 403). curl and
the SDK send no Origin and keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from pathlib import Path

import httpx
import pytest

from rucat.config import DatabaseConfig, RucatConfig, SqliteConfig
from rucat.server.runner import serve
from rucat.store import open_store
from tests.integration.conftest import SPARK, Api, StartApi

EVIL = "http://evil.example"


async def _engines(api: Api) -> list[object]:
    response = await api.client.get("/engines")
    assert response.status_code == 200
    listed = response.json()
    assert isinstance(listed, list)
    return listed


async def test_a_rebound_host_is_refused_naming_it_and_the_config_key(api: Api) -> None:
    for method, path in (("GET", "/engines"), ("POST", "/engine"), ("GET", "/metrics")):
        response = await api.client.request(
            method, path, json=SPARK, headers={"Host": "evil.example:3000"}
        )
        assert response.status_code == 400, (method, path)
        detail = response.json()["detail"]
        assert "evil.example:3000" in detail and "allowed_hosts" in detail
    assert await _engines(api) == []


async def test_loopback_names_are_allowed_on_any_port(api: Api) -> None:
    for host in ("localhost:1234", "127.0.0.1", "[::1]:3000", "LocalHost"):
        response = await api.client.get("/engines", headers={"Host": host})
        assert response.status_code == 200, host


async def test_health_answers_whatever_the_host_for_probes(api: Api) -> None:
    response = await api.client.get("/health", headers={"Host": "10.1.2.3:3000"})
    assert response.status_code == 200


async def test_configured_hosts_replace_the_default_and_star_allows_any(
    start_api: StartApi,
) -> None:
    config = RucatConfig(allowed_hosts=["rucat.rucat.svc", "*.example.com"])
    async with start_api(config) as api:
        for host, status in (
            ("rucat.rucat.svc:3000", 200),
            ("api.example.com", 200),
            ("localhost", 400),  # the list replaces the default
            ("evil.example", 400),
        ):
            response = await api.client.get("/engines", headers={"Host": host})
            assert response.status_code == status, host
    async with start_api(RucatConfig(allowed_hosts=["*"])) as api:
        response = await api.client.get("/engines", headers={"Host": "anything.example"})
        assert response.status_code == 200


async def test_a_foreign_origin_may_not_change_state(api: Api) -> None:
    engine_id = await api.create()
    attempts = [
        ("POST", "/engine", SPARK),
        ("POST", f"/engine/{engine_id}/stop", None),
        ("POST", f"/engine/{engine_id}/restart", None),
        ("DELETE", f"/engine/{engine_id}", None),
        ("PUT", "/engine", SPARK),
        ("PATCH", f"/engine/{engine_id}", None),
    ]
    for origin in (EVIL, "null", f"{api.url.replace('http:', 'https:')}"):
        for method, path, body in attempts:
            response = await api.client.request(method, path, json=body, headers={"Origin": origin})
            assert response.status_code == 403, (origin, method, path)
            detail = response.json()["detail"]
            assert origin in detail and "allowed_origins" in detail
    engine = await api.engine(engine_id)
    assert engine.state.value == "WaitToStart"  # nothing changed on refusal
    assert len(await _engines(api)) == 1


async def test_a_foreign_origin_may_still_read(api: Api) -> None:
    # Reading is harmless: without CORS headers the page cannot see the answer.
    response = await api.client.get("/engines", headers={"Origin": EVIL})
    assert response.status_code == 200


async def test_the_servers_own_origin_and_listed_origins_may_change_state(
    start_api: StartApi,
) -> None:
    config = RucatConfig(allowed_origins=["https://ui.example"])
    async with start_api(config) as api:
        for origin in (api.url, api.url.replace("127.0.0.1", "localhost"), "https://ui.example"):
            host = origin.removeprefix("http://") if origin.startswith("http:") else None
            headers = {"Origin": origin, **({"Host": host} if host else {})}
            response = await api.client.post("/engine", json=SPARK, headers=headers)
            assert response.status_code == 200, origin
        response = await api.client.post("/engine", json=SPARK, headers={"Origin": EVIL})
        assert response.status_code == 403


async def test_curl_without_content_type_or_origin_keeps_working(api: Api) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("no curl")
    process = await asyncio.create_subprocess_exec(
        curl,
        "-sS",
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        f"{api.url}/engine",
        "-d",
        json.dumps(SPARK),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    body, _, status = out.decode().rpartition("\n")
    assert status == "200", body
    assert len(await _engines(api)) == 1


async def test_a_server_on_every_interface_says_which_hosts_it_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=str(tmp_path / "r.db"))))
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    config = RucatConfig(host="0.0.0.0", port=0, connect_port=None)
    with caplog.at_level(logging.WARNING, logger="rucat.server"):
        task = asyncio.create_task(
            serve(config, store=store, platform=None, on_started=started.set_result)
        )
        try:
            url = await asyncio.wait_for(started, 60)
            port = url.rsplit(":", 1)[1]
            async with httpx.AsyncClient(timeout=30) as client:
                ok = await client.get(f"http://127.0.0.1:{port}/engines")
                refused = await client.get(
                    f"http://127.0.0.1:{port}/engines", headers={"Host": "192.0.2.7"}
                )
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await store.close()
    assert (ok.status_code, refused.status_code) == (200, 400)
    warnings = [r.getMessage() for r in caplog.records if "allowed_hosts" in r.getMessage()]
    assert warnings and "0.0.0.0, localhost, 127.0.0.1, ::1" in warnings[0]
