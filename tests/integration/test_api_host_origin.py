"""DNS rebinding and drive-by requests against a real server: Host and Origin checks.

A web page in the operator's browser can reach a server on localhost. With a
rebound name the browser sends that name as Host (refused: 400); from any page
it sends the page's Origin (refused on state-changing methods: 403). curl and
the SDK send no Origin and keep working.
"""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from rucat.config import RucatConfig
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
