"""Personal access tokens over real HTTP (and the proxy's gRPC): made, used, listed, revoked.

Two users from the Users provider: alice (not an admin) and root (an admin).
The API's clock is a FakeClock, so expiry is reached by moving it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import grpc
import httpx
import pytest

from rucat.config import AuthProviderConfig, RucatConfig, StaticAuthConfig, UsersAuthConfig
from rucat.config import UserConfig as User
from rucat.domain.principal import Principal
from rucat.domain.token import new_token
from rucat.server.auth.users import hash_password
from rucat.store import EngineStore
from tests.conftest import FakeClock
from tests.integration import test_proxy_passthrough as passthrough
from tests.integration.conftest import SPARK, Api, StartApi
from tests.integration.test_proxy_passthrough import Upstream, _add, _call, _channel, _proxy

USERS = RucatConfig(
    auth_provider=AuthProviderConfig(
        Users=UsersAuthConfig(
            users=[
                User(name="alice", password_hash=hash_password("alice-pw"), groups=["analytics"]),
                User(name="root", password_hash=hash_password("root-pw"), admin=True),
            ]
        )
    ),
    connect_port=0,
)
ALICE = httpx.BasicAuth("alice", "alice-pw")
ROOT = httpx.BasicAuth("root", "root-pw")

#: The fake engine (a real gRPC server) of the proxy's pass-through tests.
fake_engine = passthrough.upstream


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _create(api: Api, auth: httpx.Auth = ALICE, **body: Any) -> dict[str, Any]:
    response = await api.client.post(
        "/tokens", json={"name": "laptop", "expires_in_days": 90, **body}, auth=auth
    )
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_new_token_is_shown_once_and_stored_only_as_its_hash(
    start_api: StartApi, clock: FakeClock
) -> None:
    async with start_api(USERS) as api:
        created = await _create(api, name="laptop", expires_in_days=7)
        assert set(created) == {"id", "name", "token", "create_time", "expire_time"}
        assert created["name"] == "laptop"
        assert created["token"].startswith("rucat_")
        assert len(created["token"]) >= len("rucat_") + 32
        assert created["create_time"].startswith("2026-01-01T00:00:00")
        assert created["expire_time"].startswith("2026-01-08T00:00:00")
        (stored,) = await api.store.list_tokens()
        assert stored.secret_hash == hashlib.sha256(created["token"].encode()).hexdigest()
        assert created["token"] not in repr(stored)
        listed = (await api.client.get("/tokens", auth=ALICE)).json()
        assert [set(t) for t in listed] == [{"id", "name", "owner", "create_time", "expire_time"}]
        assert created["token"] not in str(listed)


async def test_a_token_acts_as_its_user(start_api: StartApi) -> None:
    async with start_api(USERS) as api:
        token = (await _create(api))["token"]
        created = await api.client.post("/engine", json=SPARK, headers=_bearer(token))
        assert created.status_code == 200, created.text
        engine_id = created.json()["id"]
        events = await api.client.get(f"/engine/{engine_id}/events", headers=_bearer(token))
        assert events.json()[0]["actor"] == "alice"
        listed = await api.client.get("/tokens", headers=_bearer(token))
        assert [t["owner"] for t in listed.json()] == ["alice"]


async def test_a_revoked_token_is_refused_at_once(start_api: StartApi) -> None:
    async with start_api(USERS) as api:
        created = await _create(api)
        assert (await api.client.get("/engines", headers=_bearer(created["token"]))).is_success
        revoked = await api.client.delete(f"/tokens/{created['id']}", auth=ALICE)
        assert revoked.status_code == 200
        assert revoked.json()["id"] == created["id"]
        refused = await api.client.get("/engines", headers=_bearer(created["token"]))
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="rucat"'
        again = await api.client.delete(f"/tokens/{created['id']}", auth=ALICE)
        assert again.status_code == 404


async def test_an_expired_token_is_refused(start_api: StartApi, clock: FakeClock) -> None:
    async with start_api(USERS) as api:
        token = (await _create(api, expires_in_days=1))["token"]
        clock.advance(86400 - 1)
        assert (await api.client.get("/engines", headers=_bearer(token))).status_code == 200
        clock.advance(1)
        refused = await api.client.get("/engines", headers=_bearer(token))
        assert refused.status_code == 401
        assert "expired" in refused.json()["detail"]


@pytest.mark.parametrize(
    "token",
    ["rucat_" + "x" * 43, "rucat_", "not-a-token", "rucat_\u00e9t\u00e9"],
    ids=["unknown", "bare-prefix", "no-prefix", "latin-1"],
)
async def test_unknown_tokens_are_401(start_api: StartApi, token: str) -> None:
    async with start_api(USERS) as api:
        await _create(api)
        header = f"Bearer {token}".encode("latin-1")  # bytes as sent on the wire
        response = await api.client.get("/engines", headers={"Authorization": header})
        assert response.status_code == 401


async def test_users_see_and_revoke_only_their_own_tokens_admins_any(
    start_api: StartApi, clock: FakeClock
) -> None:
    async with start_api(USERS) as api:
        alices = await _create(api, ALICE, name="alice-laptop")
        clock.advance(1)  # listed oldest first
        roots = await _create(api, ROOT, name="root-ci")
        mine = (await api.client.get("/tokens", auth=ALICE)).json()
        assert [t["name"] for t in mine] == ["alice-laptop"]
        # Someone else's token does not exist for a non-admin.
        assert (await api.client.delete(f"/tokens/{roots['id']}", auth=ALICE)).status_code == 404
        for query in ("?all=true", "?owner=root"):
            forbidden = await api.client.get(f"/tokens{query}", auth=ALICE)
            assert forbidden.status_code == 403
            assert "admins" in forbidden.json()["detail"]
        assert (await api.client.get("/tokens?owner=alice", auth=ALICE)).status_code == 200

        everyone = (await api.client.get("/tokens?all=true", auth=ROOT)).json()
        assert [t["name"] for t in everyone] == ["alice-laptop", "root-ci"]
        only_alice = (await api.client.get("/tokens?owner=alice", auth=ROOT)).json()
        assert [t["name"] for t in only_alice] == ["alice-laptop"]
        assert [t["name"] for t in (await api.client.get("/tokens", auth=ROOT)).json()] == [
            "root-ci"
        ]
        assert (await api.client.delete(f"/tokens/{alices['id']}", auth=ROOT)).status_code == 200
        assert (await api.client.get("/engines", headers=_bearer(alices["token"]))).status_code == (
            401
        )


@pytest.mark.parametrize(
    ("body", "mention"),
    [
        ({"name": "", "expires_in_days": 9}, "empty"),
        ({"name": "   ", "expires_in_days": 9}, "empty"),
        ({"name": "x" * 101, "expires_in_days": 9}, "100"),
        ({"name": "bad\x1b[31m", "expires_in_days": 9}, "control"),
        ({"name": "rtl\u202e", "expires_in_days": 9}, "U+202E"),
        ({"name": "ok", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "ok", "expires_in_days": -5}, "expires_in_days"),
        ({"name": "ok", "expires_in_days": 10**9}, "expires_in_days"),
        ({"name": "ok", "expires_in_days": "90"}, "expires_in_days"),
        ({"name": "ok", "expires_in_days": True}, "expires_in_days"),
        ({"expires_in_days": 9}, "name"),
        ({"name": 5}, "name"),
        ({"name": "ok", "owner": "root"}, "owner"),
    ],
    ids=[
        "empty-name",
        "blank-name",
        "long-name",
        "control-char",
        "bidi-override",
        "zero-days",
        "negative-days",
        "huge-days",
        "days-as-text",
        "days-as-bool",
        "no-name",
        "name-not-text",
        "unknown-field",
    ],
)
async def test_bad_token_requests_are_422_naming_the_field_and_store_nothing(
    start_api: StartApi, body: dict[str, Any], mention: str
) -> None:
    async with start_api(USERS) as api:
        response = await api.client.post("/tokens", json=body, auth=ALICE)
        assert response.status_code == 422, response.text
        assert mention in response.json()["detail"]
        assert await api.store.list_tokens() == []


@pytest.mark.parametrize("token_id", ["nope", "tok" + "0" * 16, "x" * 300])
async def test_revoking_an_unknown_token_is_404(start_api: StartApi, token_id: str) -> None:
    async with start_api(USERS) as api:
        response = await api.client.delete(f"/tokens/{token_id}", auth=ALICE)
        assert response.status_code == 404
        assert "not found" in response.json()["detail"]


async def test_tokens_work_beside_the_seeds_static_provider(start_api: StartApi) -> None:
    static = AuthProviderConfig(StaticAuthProviderConfig=StaticAuthConfig(bearer_token="tk"))
    async with start_api(RucatConfig(auth_provider=static), headers=_bearer("tk")) as api:
        token = (await _create(api, auth=None))["token"]  # type: ignore[arg-type]
        response = await api.client.get("/engines", headers=_bearer(token))
        assert response.status_code == 200
        created = await api.client.post("/engine", json=SPARK, headers=_bearer(token))
        events = await api.client.get(f"/engine/{created.json()['id']}/events")
        assert events.json()[0]["actor"] == "admin"


async def test_a_token_works_through_the_proxy_until_revoked(
    store: EngineStore, fake_engine: Upstream, clock: FakeClock
) -> None:
    engine = await _add(store, fake_engine, owner="alice")
    token, secret = new_token(Principal("alice"), name="spark", expires_in_days=1, now=clock())
    await store.add_token(token=token)
    metadata = (("authorization", f"Bearer {secret}"), ("x-rucat-engine-id", engine.id))
    async with _proxy(store, config=USERS, clock=clock) as proxy, _channel(proxy) as channel:
        responses, _ = await _call(channel, [b"x"], metadata)
        assert responses == [b"x", b"done"]
        await store.remove_token(token_id=token.id)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(channel, [b"x"], metadata)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_openapi_documents_the_token_routes_and_bearer_beside_basic(
    start_api: StartApi,
) -> None:
    async with start_api(USERS, auth=ALICE) as api:
        schema = (await api.client.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"] == {
        "basic": {"type": "http", "scheme": "basic"},
        "bearer": {"type": "http", "scheme": "bearer"},
    }
    assert "personal access token" in schema["info"]["description"]
    assert "user list" in schema["info"]["description"]
    assert set(schema["paths"]["/tokens"]) == {"get", "post"}
    assert set(schema["paths"]["/tokens/{token_id}"]) == {"delete"}
    created = schema["paths"]["/tokens"]["post"]["responses"]["200"]["content"]
    ref = created["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][ref]["properties"]) == {
        "id",
        "name",
        "token",
        "create_time",
        "expire_time",
    }


async def test_a_static_bearer_token_that_looks_like_an_access_token_still_works(
    start_api: StartApi,
) -> None:
    lookalike = "rucat_" + "s" * 40
    static = AuthProviderConfig(StaticAuthProviderConfig=StaticAuthConfig(bearer_token=lookalike))
    async with start_api(RucatConfig(auth_provider=static)) as api:
        assert (await api.client.get("/engines", headers=_bearer(lookalike))).status_code == 200
        wrong = await api.client.get("/engines", headers=_bearer(lookalike + "x"))
        assert wrong.status_code == 401
