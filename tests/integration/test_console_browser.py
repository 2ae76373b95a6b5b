"""The console in a real browser (Debian's chromium driven by Playwright) over a real server.

The server is the real REST app with the console on a real SQLite store; the
engine's monitor states are written through the store exactly as a monitor
writes them, so the page must follow them live (htmx polling) without a
reload. Screenshots land in tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from rucat.domain.state import EngineState
from tests.integration.conftest import StartApi, force_state
from tests.integration.test_console import USERS

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent.parent / "artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)"
    ),
    pytest.mark.timeout(240),
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def log_in(page: Page, url: str, user: str, password: str) -> None:
    await page.goto(f"{url}/ui/")
    await expect(page).to_have_url(f"{url}/ui/login")
    await page.get_by_label("User name").fill(user)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(f"{url}/ui/")


async def test_a_user_logs_in_creates_an_engine_follows_it_and_stops_it(
    start_api: StartApi, browser: Browser
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    async with start_api(config=USERS) as api:
        alice = await browser.new_page(viewport={"width": 1280, "height": 800})
        await log_in(alice, api.url, "alice", "alice-pw")
        await alice.get_by_role("link", name="New engine").first.click()
        await alice.get_by_label("Name").fill("reports")
        await alice.get_by_label("Configs").fill("spark.executor.memory=1g\nspark.password=hunter2")
        await alice.get_by_role("button", name="Create").click()
        await expect(alice.locator("#live [data-state]")).to_have_text("◔ WaitToStart")
        engine_id = alice.url.rsplit("/", 1)[1]
        assert "hunter2" not in await alice.content()

        await force_state(api.store, engine_id, EngineState.Running)
        # No reload: the page follows the store.
        await expect(alice.locator("#live [data-state]")).to_have_text("● Running")
        await expect(alice.get_by_role("button", name="Delete")).to_have_count(0)
        await alice.screenshot(path=ARTIFACTS / "engine-page.png", full_page=True)

        await alice.get_by_role("button", name="Stop").click()
        await expect(alice.locator("#live [data-state]")).to_have_text("◑ WaitToTerminate")
        await force_state(api.store, engine_id, EngineState.Terminated)
        await expect(alice.locator("#live [data-state]")).to_have_text("○ Terminated")
        await expect(alice.get_by_role("button", name="Restart")).to_be_visible()

        await alice.goto(f"{api.url}/ui/")
        row = alice.locator(f'tr[data-engine-id="{engine_id}"]')
        await expect(row).to_contain_text("Terminated")
        await expect(row).to_contain_text("alice")
        await alice.screenshot(path=ARTIFACTS / "engines-list.png", full_page=True)
        await alice.set_viewport_size({"width": 390, "height": 844})
        await alice.screenshot(path=ARTIFACTS / "engines-list-390.png", full_page=True)

        bob = await browser.new_page()
        await log_in(bob, api.url, "bob", "bob-pw")
        await expect(bob.locator("tbody#rows")).not_to_contain_text(engine_id)
        response = await bob.goto(f"{api.url}/ui/engine/{engine_id}")
        assert response is not None and response.status == 404

        # A state-changing call without the CSRF token is refused (from alice's own page).
        await alice.goto(f"{api.url}/ui/engine/{engine_id}")
        status = await alice.evaluate(
            f"fetch('/ui/engine/{engine_id}/restart', {{method: 'POST'}}).then(r => r.status)"
        )
        assert status == 403
        assert (await api.engine(engine_id)).state is EngineState.Terminated


async def test_the_list_updates_live_and_filters_by_state(
    start_api: StartApi, browser: Browser
) -> None:
    async with start_api() as api:
        page = await browser.new_page()
        await page.goto(f"{api.url}/ui/")  # open mode: no login
        await expect(page.locator(".who")).to_contain_text("anonymous")
        engine_id = await api.create(name="appears-live")
        row = page.locator(f'tr[data-engine-id="{engine_id}"]')
        await expect(row).to_contain_text("WaitToStart")
        await force_state(api.store, engine_id, EngineState.ErrorClean, message="driver died: OOM")
        await expect(row).to_contain_text("✕ ErrorClean")
        await expect(row).to_contain_text("driver died: OOM")
        await page.get_by_label("State").select_option("Running")
        await expect(page).to_have_url(f"{api.url}/ui/?state=Running")
        await expect(row).to_have_count(0)
        await page.keyboard.press("Tab")  # keyboard: the skip link comes first
        focused = await page.evaluate("document.activeElement.textContent")
        assert focused == "Skip to content"
        timestamps = await page.evaluate(
            "JSON.stringify([...document.querySelectorAll('time')].map(t => t.title))"
        )
        assert all(t.endswith("UTC") for t in json.loads(timestamps))
