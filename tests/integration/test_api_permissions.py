"""Owners, grants, visibility, quotas and connect_url on the REST API, with the Users provider.

alice and bob are plain users (bob in group "ops"), root is an admin. Each
test runs a real HTTP server in process over a fresh SQLite store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from rucat.config import (
    AuthProviderConfig,
    QuotasConfig,
    RucatConfig,
    UserConfig,
    UsersAuthConfig,
)
from rucat.domain.state import EngineState
from tests.integration.conftest import SPARK, Api, StartApi, force_state

S = EngineState
#: Cheap argon2id parameters: the tests are about access, not hashing cost.
_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
USERS = [
    UserConfig(name="alice", password_hash=_HASHER.hash("alice-pw"), groups=["analytics"]),
    UserConfig(name="bob", password_hash=_HASHER.hash("bob-pw"), groups=["ops"]),
    UserConfig(name="root", password_hash=_HASHER.hash("root-pw"), admin=True),
]
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw"}
#: A well-formed id no engine has.
UNKNOWN = "z" * 20


def users_config(**changes: Any) -> RucatConfig:
    return RucatConfig(
        auth_provider=AuthProviderConfig(Users=UsersAuthConfig(users=USERS)), **changes
    )


class People:
    """One HTTP client per user on one server."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self._clients = {
            name: httpx.AsyncClient(base_url=api.url, auth=(name, pw), timeout=30)
            for name, pw in PASSWORDS.items()
        }
        self.alice = self._clients["alice"]
        self.bob = self._clients["bob"]
        self.root = self._clients["root"]

    async def create(self, client: httpx.AsyncClient) -> str:
        self.api.clock.advance(1)  # lists are oldest first: one second apart
        response = await client.post("/engine", json=SPARK)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    async def share(self, engine_id: str, *grants: dict[str, str]) -> httpx.Response:
        response = await self.alice.put(
            f"/engine/{engine_id}/permissions", json={"grants": list(grants)}
        )
        assert response.status_code == 200, response.text
        return response

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()


@pytest.fixture
async def people(start_api: StartApi) -> AsyncIterator[People]:
    async with start_api(users_config()) as api:
        people = People(api)
        yield people
        await people.close()


#: Every route of one engine: (method, path suffix, JSON body).
ENGINE_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "", None),
    ("GET", "/events", None),
    ("GET", "/logs", None),
    ("POST", "/stop", None),
    ("POST", "/restart", None),
    ("DELETE", "", None),
    ("GET", "/permissions", None),
    ("PUT", "/permissions", {"grants": []}),
]


async def _call(client: httpx.AsyncClient, engine_id: str, route: tuple[str, str, Any]) -> Any:
    method, suffix, body = route
    return await client.request(method, f"/engine/{engine_id}{suffix}", json=body)


# --- ownership and visibility -------------------------------------------------


async def test_engine_info_names_the_creator_as_owner(people: People) -> None:
    engine_id = await people.create(people.alice)

    info = (await people.alice.get(f"/engine/{engine_id}")).json()

    assert info["owner"] == "alice"
    events = (await people.alice.get(f"/engine/{engine_id}/events")).json()
    assert events[0]["actor"] == "alice"


@pytest.mark.parametrize(
    "route", ENGINE_ROUTES, ids=[f"{m} {p or '/'}" for m, p, _ in ENGINE_ROUTES]
)
async def test_a_stranger_gets_exactly_what_an_unknown_id_gets_on_every_route(
    people: People, route: tuple[str, str, Any]
) -> None:
    engine_id = await people.create(people.alice)

    hidden = await _call(people.bob, engine_id, route)
    unknown = await _call(people.bob, UNKNOWN, route)

    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json() == {"detail": f"engine {engine_id} not found"}
    assert unknown.json() == {"detail": f"engine {UNKNOWN} not found"}
    assert (await people.alice.get(f"/engine/{engine_id}")).json()["state"] == "WaitToStart"


async def test_lists_show_each_user_what_they_may_see_and_admins_everything(
    people: People,
) -> None:
    a1 = await people.create(people.alice)
    b1 = await people.create(people.bob)
    a2 = await people.create(people.alice)

    async def ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
        response = await client.get("/engines", params=params)
        assert response.status_code == 200, response.text
        assert all(set(item) == {"id"} for item in response.json())
        return [item["id"] for item in response.json()]

    assert await ids(people.alice) == [a1, a2]
    assert await ids(people.bob) == [b1]
    assert await ids(people.root) == [a1, b1, a2]
    assert await ids(people.root, owner="alice") == [a1, a2]
    assert await ids(people.root, owner="alice", limit=1) == [a1]
    assert await ids(people.root, owner="alice", after=a1) == [a2]
    assert await ids(people.bob, owner="alice") == []
    bad_cursor = await people.bob.get("/engines", params={"after": a1})
    assert bad_cursor.status_code == 400
    await people.share(a2, {"user": "bob", "level": "attach"})
    assert await ids(people.bob) == [b1, a2]
    assert await ids(people.bob, owner="alice") == [a2]
    await force_state(people.api.store, a2, S.TriggerStart)
    assert await ids(people.bob, state="TriggerStart") == [a2]


async def test_attach_lets_bob_read_but_not_stop_and_names_the_level_needed(
    people: People,
) -> None:
    engine_id = await people.create(people.alice)
    await people.share(engine_id, {"user": "bob", "level": "attach"})

    for suffix in ("", "/events", "/logs"):
        response = await people.bob.get(f"/engine/{engine_id}{suffix}")
        assert response.status_code == 200, (suffix, response.text)
    for method, suffix, body in ENGINE_ROUTES[3:]:
        refused = await people.bob.request(method, f"/engine/{engine_id}{suffix}", json=body)
        assert refused.status_code == 403, (method, suffix, refused.text)
        assert "needs the manage level" in refused.json()["detail"]
        assert "bob has attach" in refused.json()["detail"]
    info = (await people.alice.get(f"/engine/{engine_id}")).json()
    assert info["state"] == "WaitToStart"


async def test_manage_through_a_group_lets_bob_stop_and_the_event_names_him(
    people: People,
) -> None:
    engine_id = await people.create(people.alice)
    await people.share(engine_id, {"group": "ops", "level": "manage"})

    stopped = await people.bob.post(f"/engine/{engine_id}/stop")

    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["state"] == "Terminated"
    events = (await people.alice.get(f"/engine/{engine_id}/events")).json()
    assert events[-1]["actor"] == "bob"
    permissions = await people.bob.get(f"/engine/{engine_id}/permissions")
    assert permissions.json() == {
        "owner": "alice",
        "grants": [{"group": "ops", "level": "manage"}],
    }


async def test_revoking_a_grant_hides_the_engine_again(people: People) -> None:
    engine_id = await people.create(people.alice)
    await people.share(engine_id, {"user": "bob", "level": "attach"})
    assert (await people.bob.get(f"/engine/{engine_id}")).status_code == 200

    await people.share(engine_id)

    assert (await people.bob.get(f"/engine/{engine_id}")).status_code == 404
    assert (await people.alice.get(f"/engine/{engine_id}/permissions")).json() == {
        "owner": "alice",
        "grants": [],
    }


async def test_admins_see_and_manage_every_engine(people: People) -> None:
    engine_id = await people.create(people.alice)

    assert (await people.root.get(f"/engine/{engine_id}")).status_code == 200
    shared = await people.root.put(
        f"/engine/{engine_id}/permissions", json={"grants": [{"user": "bob", "level": "attach"}]}
    )
    assert shared.status_code == 200, shared.text
    assert (await people.root.post(f"/engine/{engine_id}/stop")).status_code == 200
    assert (await people.root.delete(f"/engine/{engine_id}")).status_code == 200


async def test_an_engine_from_before_owners_is_visible_to_admins_only(people: People) -> None:
    engine_id = await people.create(people.alice)
    await force_state(people.api.store, engine_id, S.WaitToStart, owner=None)

    assert (await people.alice.get(f"/engine/{engine_id}")).status_code == 404
    assert (await people.alice.get("/engines")).json() == []
    info = await people.root.get(f"/engine/{engine_id}")
    assert info.json()["owner"] is None


BAD_PERMISSIONS: list[tuple[str, Any, str]] = [
    ("not-an-object", [], "body must be a JSON object"),
    ("no-grants-key", {}, "body.grants"),
    ("grants-not-a-list", {"grants": {"user": "bob"}}, "body.grants"),
    ("neither-user-nor-group", {"grants": [{"level": "attach"}]}, "exactly one of"),
    ("both", {"grants": [{"user": "a", "group": "b", "level": "attach"}]}, "exactly one of"),
    ("unknown-level", {"grants": [{"user": "bob", "level": "owner"}]}, "level"),
    ("unknown-key", {"grants": [{"user": "bob", "level": "attach", "x": 1}]}, "x"),
    ("bad-name", {"grants": [{"user": "bo:b", "level": "attach"}]}, "must not contain ':'"),
    ("name-not-string", {"grants": [{"user": 5, "level": "attach"}]}, "user"),
    (
        "duplicate",
        {"grants": [{"user": "bob", "level": "attach"}, {"user": "bob", "level": "manage"}]},
        "named more than once",
    ),
    ("extra-top-level-key", {"grants": [], "owner": "bob"}, "owner"),
]


@pytest.mark.parametrize(
    ("body", "says"), [c[1:] for c in BAD_PERMISSIONS], ids=[c[0] for c in BAD_PERMISSIONS]
)
async def test_bad_permissions_are_refused_with_a_detail_and_change_nothing(
    people: People, body: Any, says: str
) -> None:
    engine_id = await people.create(people.alice)
    await people.share(engine_id, {"user": "bob", "level": "attach"})

    refused = await people.alice.put(f"/engine/{engine_id}/permissions", json=body)

    assert refused.status_code in (400, 422), refused.text
    assert says in refused.json()["detail"]
    kept = (await people.alice.get(f"/engine/{engine_id}/permissions")).json()
    assert kept["grants"] == [{"user": "bob", "level": "attach"}]


# --- quotas -------------------------------------------------------------------


async def test_a_create_beyond_the_quota_is_429_naming_limit_and_count(
    start_api: StartApi,
) -> None:
    config = users_config(quotas=QuotasConfig(max_active_engines_per_user=2))
    async with start_api(config) as api:
        people = People(api)
        first = await people.create(people.alice)
        await people.create(people.alice)

        refused = await people.alice.post("/engine", json=SPARK)

        assert refused.status_code == 429, refused.text
        detail = refused.json()["detail"]
        assert "max_active_engines_per_user is 2" in detail
        assert "alice has 2 active engines" in detail
        assert len((await people.alice.get("/engines")).json()) == 2
        # Others and admins are not held by alice's count.
        await people.create(people.bob)
        for _ in range(3):
            await people.create(people.root)
        # A stopped engine frees a place; restarting it needs one again.
        assert (await people.alice.post(f"/engine/{first}/stop")).status_code == 200
        third = await people.create(people.alice)
        restart = await people.alice.post(f"/engine/{first}/restart")
        assert restart.status_code == 429, restart.text
        assert (await people.alice.get(f"/engine/{first}")).json()["state"] == "Terminated"
        assert (await people.alice.post(f"/engine/{third}/stop")).status_code == 200
        assert (await people.alice.post(f"/engine/{first}/restart")).status_code == 200
        await people.close()


async def test_twenty_parallel_creates_with_a_quota_of_three_leave_three(
    start_api: StartApi,
) -> None:
    config = users_config(quotas=QuotasConfig(max_active_engines_per_user=3))
    async with start_api(config) as api:
        people = People(api)
        responses = await asyncio.gather(
            *(people.bob.post("/engine", json=SPARK) for _ in range(20))
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] * 3 + [429] * 17
        assert len((await people.bob.get("/engines")).json()) == 3
        await people.close()


# --- connect_url --------------------------------------------------------------


async def test_connect_url_uses_the_host_the_request_came_in_on(start_api: StartApi) -> None:
    hosts = ["rucat.example.com", "::1", "10.1.2.3", "127.0.0.1"]
    async with start_api(users_config(allowed_hosts=hosts)) as api:
        people = People(api)
        await _connect_url_follows_the_host_header(people)
        await people.close()


async def _connect_url_follows_the_host_header(people: People) -> None:
    engine_id = await people.create(people.alice)

    for host, shown in (
        ("rucat.example.com:3000", "rucat.example.com"),
        ("rucat.example.com", "rucat.example.com"),
        ("[::1]:3000", "[::1]"),
        ("10.1.2.3:80", "10.1.2.3"),
    ):
        info = await people.alice.get(f"/engine/{engine_id}", headers={"Host": host})
        assert info.json()["connect_url"] == (
            f"sc://{shown}:15002/;x-rucat-engine-id={engine_id}"
        ), host
    assert info.json()["endpoint"] is None  # the engine's own address is kept apart


async def test_connect_url_prefers_the_configured_public_host_and_says_use_ssl_behind_tls(
    start_api: StartApi, tmp_path: Any
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("unused here")
    key.write_text("unused here")
    config = users_config(
        public_connect_host="spark.example.com",
        connect_port=443,
        connect_tls_cert=str(cert),
        connect_tls_key=str(key),
    )
    async with start_api(config) as api:
        people = People(api)
        engine_id = await people.create(people.alice)
        info = (await people.alice.get(f"/engine/{engine_id}")).json()
        assert info["connect_url"] == (
            f"sc://spark.example.com:443/;x-rucat-engine-id={engine_id};use_ssl=true"
        )
        await people.close()


async def test_connect_url_is_null_when_the_proxy_is_off(start_api: StartApi) -> None:
    async with start_api(users_config(connect_port=None)) as api:
        people = People(api)
        engine_id = await people.create(people.alice)
        assert (await people.alice.get(f"/engine/{engine_id}")).json()["connect_url"] is None
        await people.close()
