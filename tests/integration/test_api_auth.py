"""The seed's static auth provider over real HTTP: Basic and Bearer, 401s, open routes."""

from __future__ import annotations

import base64
import logging

import httpx
import pytest

from rucat.config import AuthProviderConfig, RucatConfig, StaticAuthConfig
from tests.integration.conftest import SPARK, StartApi

BOTH = RucatConfig(
    auth_provider=AuthProviderConfig(
        StaticAuthProviderConfig=StaticAuthConfig(
            username="admin", password="s3cret-pass", bearer_token="t0ken-value"
        )
    )
)
BASIC_ONLY = RucatConfig(
    auth_provider=AuthProviderConfig(
        StaticAuthProviderConfig=StaticAuthConfig(username="admin", password="s3cret-pass")
    )
)
BEARER_ONLY = RucatConfig(
    auth_provider=AuthProviderConfig(
        StaticAuthProviderConfig=StaticAuthConfig(bearer_token="t0ken-value")
    )
)

PROTECTED = [
    ("GET", "/engines"),
    ("POST", "/engine"),
    ("GET", "/engine/a0000000000000000000"),
    ("POST", "/engine/a0000000000000000000/stop"),
    ("POST", "/engine/a0000000000000000000/restart"),
    ("DELETE", "/engine/a0000000000000000000"),
    ("GET", "/engine/a0000000000000000000/events"),
    ("GET", "/engine/a0000000000000000000/logs"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/no/such/route"),
]


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_basic_credentials_open_every_route(start_api: StartApi) -> None:
    async with start_api(BOTH, auth=httpx.BasicAuth("admin", "s3cret-pass")) as api:
        engine_id = await api.create()
        assert (await api.client.get(f"/engine/{engine_id}")).status_code == 200
        assert (await api.client.get("/engines")).status_code == 200
        assert (await api.client.get("/metrics")).status_code == 200


async def test_bearer_token_opens_every_route(start_api: StartApi) -> None:
    async with start_api(BOTH, headers={"Authorization": "Bearer t0ken-value"}) as api:
        engine_id = await api.create()
        assert (await api.client.get(f"/engine/{engine_id}")).status_code == 200


async def test_writes_record_the_authenticated_user_as_actor(start_api: StartApi) -> None:
    async with start_api(BOTH, auth=httpx.BasicAuth("admin", "s3cret-pass")) as api:
        engine_id = await api.create()
        events = (await api.client.get(f"/engine/{engine_id}/events")).json()
        assert events[0]["actor"] == "admin"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        _basic("admin", "wrong-pass"),
        _basic("intruder", "s3cret-pass"),
        _basic("", ""),
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic not-base64!!"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"Authorization": "Digest username=admin"},
        {"Authorization": "t0ken-value"},
    ],
    ids=[
        "missing",
        "wrong-password",
        "wrong-user",
        "empty-basic",
        "wrong-bearer",
        "empty-bearer",
        "malformed-basic",
        "basic-without-colon",
        "other-scheme",
        "bare-token",
    ],
)
async def test_bad_or_missing_credentials_are_401_with_a_challenge_and_store_nothing(
    start_api: StartApi, headers: dict[str, str]
) -> None:
    async with start_api(BOTH) as api:
        response = await api.client.post("/engine", json=SPARK, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="rucat", Bearer'
        assert isinstance(response.json()["detail"], str)
        assert await api.store.list() == []


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_every_route_but_health_needs_credentials(
    start_api: StartApi, method: str, path: str
) -> None:
    async with start_api(BOTH) as api:
        response = await api.client.request(method, path)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/json"


async def test_health_is_open_even_when_auth_is_configured(start_api: StartApi) -> None:
    async with start_api(BOTH) as api:
        response = await api.client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


async def test_basic_only_refuses_a_bearer_token_and_challenges_basic_only(
    start_api: StartApi,
) -> None:
    async with start_api(BASIC_ONLY, headers={"Authorization": "Bearer s3cret-pass"}) as api:
        response = await api.client.get("/engines")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="rucat"'


async def test_bearer_only_refuses_basic_and_challenges_bearer_only(start_api: StartApi) -> None:
    async with start_api(BEARER_ONLY, auth=httpx.BasicAuth("admin", "t0ken-value")) as api:
        response = await api.client.get("/engines")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
    async with start_api(BEARER_ONLY, headers={"Authorization": "bearer t0ken-value"}) as api:
        assert (await api.client.get("/engines")).status_code == 200


async def test_without_an_auth_provider_every_route_is_open(start_api: StartApi) -> None:
    async with start_api(RucatConfig()) as api:
        assert (await api.client.get("/engines")).status_code == 200
        assert (await api.client.get("/openapi.json")).status_code == 200


async def test_credentials_never_reach_the_logs(
    start_api: StartApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with start_api(BOTH) as api:
        await api.client.get("/engines", auth=httpx.BasicAuth("admin", "s3cret-pass"))
        await api.client.get("/engines", auth=httpx.BasicAuth("admin", "guessed-pass"))
        await api.client.get("/engines", headers={"Authorization": "Bearer t0ken-value"})
        await api.client.get("/engines", headers={"Authorization": "Bearer guessed-token"})
    text = caplog.text + repr([r.__dict__ for r in caplog.records])
    assert "GET /engines" in caplog.text
    for secret in ("s3cret-pass", "guessed-pass", "t0ken-value", "guessed-token"):
        assert secret not in text
    for header in (
        base64.b64encode(b"admin:s3cret-pass").decode(),
        base64.b64encode(b"admin:guessed-pass").decode(),
    ):
        assert header not in text


async def test_openapi_declares_the_configured_schemes_and_leaves_health_open(
    start_api: StartApi,
) -> None:
    async with start_api(BOTH, headers={"Authorization": "Bearer t0ken-value"}) as api:
        schema = (await api.client.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"] == {
        "basic": {"type": "http", "scheme": "basic"},
        "bearer": {"type": "http", "scheme": "bearer"},
    }
    assert schema["security"] == [{"basic": []}, {"bearer": []}]
    assert schema["paths"]["/health"]["get"]["security"] == []
