"""The web console over real HTTP: sessions, CSRF, visibility, forms and live fragments."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import aclosing

import httpx
import pytest

from rucat.config import AuthProviderConfig, QuotasConfig, RucatConfig, UsersAuthConfig
from rucat.config import UserConfig as User
from rucat.domain.state import EngineState
from rucat.server.auth.users import hash_password
from tests.integration.conftest import Api, StartApi, force_state

USERS = RucatConfig(
    auth_provider=AuthProviderConfig(
        Users=UsersAuthConfig(
            users=[
                User(name="alice", password_hash=hash_password("alice-pw")),
                User(name="bob", password_hash=hash_password("bob-pw")),
            ]
        )
    ),
)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def logged_in(url: str, user: str, password: str) -> httpx.AsyncClient:
    browser = httpx.AsyncClient(base_url=url)
    form = await browser.get("/ui/login")
    response = await browser.post(
        "/ui/login",
        data={"username": user, "password": password, "csrf_token": csrf_of(form.text)},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/ui/"
    return browser


async def create(browser: httpx.AsyncClient, name: str, configs: str = "") -> str:
    form = await browser.get("/ui/new")
    response = await browser.post(
        "/ui/new",
        data={
            "name": name,
            "version": "4.0.1",
            "configs": configs,
            "csrf_token": csrf_of(form.text),
        },
    )
    assert response.status_code == 303, response.text
    return str(response.headers["location"]).rsplit("/", 1)[1]


@pytest.fixture
async def users_api(start_api: StartApi) -> AsyncIterator[Api]:
    async with start_api(config=USERS) as api:
        yield api


async def test_without_a_session_every_page_leads_to_the_login_form(users_api: Api) -> None:
    async with httpx.AsyncClient(base_url=users_api.url) as browser:
        for path in ("/ui/", "/ui/new", "/ui/engine/a0000000000000000000"):
            response = await browser.get(path)
            assert response.status_code == 303
            assert response.headers["location"] == "/ui/login"
        page = await browser.get("/ui/login")
        assert 'name="password"' in page.text and 'name="token"' in page.text


async def test_a_login_gives_an_httponly_strict_expiring_session_cookie(users_api: Api) -> None:
    async with httpx.AsyncClient(base_url=users_api.url) as browser:
        form = await browser.get("/ui/login")
        response = await browser.post(
            "/ui/login",
            data={"username": "alice", "password": "alice-pw", "csrf_token": csrf_of(form.text)},
        )
        cookie = response.headers["set-cookie"]
        assert "rucat_session=" in cookie
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=28800" in cookie
        assert "Secure" not in cookie  # plain HTTP here; Secure is set over TLS
        assert "alice" in (await browser.get("/ui/")).text


async def test_a_wrong_password_is_refused_with_the_form_again(users_api: Api) -> None:
    async with httpx.AsyncClient(base_url=users_api.url) as browser:
        form = await browser.get("/ui/login")
        response = await browser.post(
            "/ui/login",
            data={"username": "alice", "password": "nope", "csrf_token": csrf_of(form.text)},
        )
        assert response.status_code == 401
        assert "Wrong user name, password or token" in response.text
        assert "rucat_session" not in response.headers.get("set-cookie", "")


async def test_logout_ends_the_session_on_the_server(users_api: Api) -> None:
    browser = await logged_in(users_api.url, "alice", "alice-pw")
    async with aclosing(browser):
        session = browser.cookies["rucat_session"]
        page = await browser.get("/ui/")
        await browser.post("/ui/logout", data={"csrf_token": csrf_of(page.text)})
        async with httpx.AsyncClient(
            base_url=users_api.url, cookies={"rucat_session": session}
        ) as thief:
            replayed = await thief.get("/ui/")
        assert replayed.status_code == 303  # the old id no longer logs anyone in


async def test_a_state_changing_call_without_the_csrf_token_changes_nothing(
    users_api: Api,
) -> None:
    browser = await logged_in(users_api.url, "alice", "alice-pw")
    async with aclosing(browser):
        engine_id = await create(browser, "mine")
        for data in ({}, {"csrf_token": "forged"}):
            response = await browser.post(f"/ui/engine/{engine_id}/stop", data=data)
            assert response.status_code == 403
            assert "CSRF" in response.json()["detail"]
        refused = await browser.post("/ui/new", data={"name": "x", "version": "4.0.1"})
        assert refused.status_code == 403
    assert (await users_api.engine(engine_id)).state is EngineState.WaitToStart
    assert [e.name for e in await users_api.store.list()] == ["mine"]


async def test_a_second_user_sees_the_engine_neither_in_the_list_nor_by_url(
    users_api: Api,
) -> None:
    alice = await logged_in(users_api.url, "alice", "alice-pw")
    bob = await logged_in(users_api.url, "bob", "bob-pw")
    async with aclosing(alice), aclosing(bob):
        engine_id = await create(alice, "alices-engine")
        assert engine_id in (await alice.get("/ui/")).text
        assert engine_id not in (await bob.get("/ui/")).text
        assert engine_id not in (await bob.get("/ui/rows")).text
        for path in ("", "/live", "/log"):
            assert (await bob.get(f"/ui/engine/{engine_id}{path}")).status_code == 404
        page = await bob.get("/ui/")
        stop = await bob.post(
            f"/ui/engine/{engine_id}/stop", data={"csrf_token": csrf_of(page.text)}
        )
        assert stop.status_code == 404
    assert (await users_api.engine(engine_id)).owner == "alice"


async def test_the_engine_page_offers_only_the_actions_its_state_allows(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as browser:
        engine_id = await create(
            browser, "e", configs="spark.executor.memory=1g\nspark.password=hunter2"
        )
        page = (await browser.get(f"/ui/engine/{engine_id}")).text
        assert re.findall(r">(Stop|Restart|Delete)</button>", page) == ["Stop", "Delete"]
        assert "hunter2" not in page and "redacted" in page
        assert f"x-rucat-engine-id={engine_id}" in page
        await force_state(api.store, engine_id, EngineState.Running)
        page = (await browser.get(f"/ui/engine/{engine_id}")).text
        assert re.findall(r">(Stop|Restart|Delete)</button>", page) == ["Stop"]
        stop = await browser.post(
            f"/ui/engine/{engine_id}/stop", data={"csrf_token": csrf_of(page)}
        )
        assert stop.status_code == 303, stop.text
    assert (await api.engine(engine_id)).state is EngineState.WaitToTerminate


async def test_a_live_fragment_answers_204_until_the_engine_changes(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as browser:
        engine_id = await create(browser, "e")
        revision = (await api.engine(engine_id)).revision
        same = await browser.get(f"/ui/engine/{engine_id}/live?rev={revision}")
        assert same.status_code == 204
        await force_state(api.store, engine_id, EngineState.Running)
        changed = await browser.get(f"/ui/engine/{engine_id}/live?rev={revision}")
        assert changed.status_code == 200
        assert 'data-state="Running"' in changed.text


async def test_create_form_errors_are_shown_next_to_their_field(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as browser:
        form = await browser.get("/ui/new")
        assert '<option value="4.0.1" selected>' in form.text
        cases = {
            "name-error": {"name": " ", "version": "4.0.1", "configs": ""},
            "version-error": {"name": "a", "version": "9.9.9", "configs": ""},
            "configs-error": {"name": "a", "version": "4.0.1", "configs": "no-equals-sign"},
            "auto_stop-error": {"name": "a", "version": "4.0.1", "configs": "", "auto_stop": "-1"},
        }
        for field, data in cases.items():
            response = await browser.post(
                "/ui/new", data={**data, "csrf_token": csrf_of(form.text)}
            )
            assert response.status_code == 400
            assert f'id="{field}"' in response.text, field
    assert await api.store.list() == []


async def test_the_create_form_takes_auto_stop_minutes(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as browser:
        form = await browser.get("/ui/new")
        response = await browser.post(
            "/ui/new",
            data={
                "name": "a",
                "version": "4.0.1",
                "auto_stop": "7.5",
                "csrf_token": csrf_of(form.text),
            },
        )
        assert response.status_code == 303, response.text
    (engine,) = await api.store.list()
    assert engine.auto_stop_minutes == 7.5


async def test_the_console_is_open_without_login_in_open_mode(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as browser:
        page = await browser.get("/ui/")
        assert page.status_code == 200
        assert "anonymous" in page.text and "Log out" not in page.text
        assert (await browser.get("/ui/login")).headers["location"] == "/ui/"
        assert (await browser.get("/ui/static/htmx.min.js")).status_code == 200


async def test_the_rest_api_still_takes_basic_auth_and_ignores_console_cookies(
    users_api: Api,
) -> None:
    browser = await logged_in(users_api.url, "alice", "alice-pw")
    async with aclosing(browser):
        assert (await browser.get("/engines")).status_code == 401
        basic = await browser.get("/engines", auth=httpx.BasicAuth("alice", "alice-pw"))
        assert basic.status_code == 200


async def test_the_engine_page_links_to_its_spark_ui_while_it_runs(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as browser:
        engine_id = await create(browser, "e")
        link = f'href="/engine/{engine_id}/sparkui/"'
        assert link not in (await browser.get(f"/ui/engine/{engine_id}")).text
        await force_state(api.store, engine_id, EngineState.Running)
        assert link in (await browser.get(f"/ui/engine/{engine_id}")).text
        await force_state(api.store, engine_id, EngineState.WaitToTerminate)
        assert link not in (await browser.get(f"/ui/engine/{engine_id}/live")).text


async def test_console_create_and_restart_obey_the_callers_quota(start_api: StartApi) -> None:
    config = USERS.model_copy(update={"quotas": QuotasConfig(max_active_engines_per_user=1)})
    async with start_api(config=config) as api:
        alice = await logged_in(api.url, "alice", "alice-pw")
        async with aclosing(alice):
            first = await create(alice, "first")
            form = await alice.get("/ui/new")
            refused = await alice.post(
                "/ui/new",
                data={"name": "second", "version": "4.0.1", "csrf_token": csrf_of(form.text)},
            )
            assert refused.status_code == 429
            assert "quota exceeded: alice has 1 active engines" in refused.text
            assert len(await api.store.list()) == 1
            await force_state(api.store, first, EngineState.Terminated)
            second = await create(alice, "second")
            page = await alice.get(f"/ui/engine/{first}")
            restart = await alice.post(
                f"/ui/engine/{first}/restart", data={"csrf_token": csrf_of(page.text)}
            )
            assert restart.status_code == 303
            assert "quota%20exceeded" in restart.headers["location"]
            assert (await api.engine(first)).state is EngineState.Terminated
            assert (await api.engine(second)).state is EngineState.WaitToStart
