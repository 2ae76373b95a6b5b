"""A person's whole round in a real browser, against a real `rucat up` and a real engine.

Debian's chromium (driven by Playwright) logs in, creates an engine through the
form and watches it reach Running without a reload; pyspark runs a query
through Rucat's Spark Connect proxy; the browser follows the engine page's
link to its Spark UI (reverse-proxied by Rucat, on the console's session
cookie) and finds the query's job listed; then it stops the engine from the
console and sees Terminated. Screenshots land in tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from rucat.server.auth.users import hash_password
from tests.integration.test_console_browser import ARGS, ARTIFACTS, CHROMIUM, log_in
from tests.support import require_java
from tests.support.processes import rucat_up

pytestmark = [
    pytest.mark.java,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium"),
    pytest.mark.timeout(600),
]

#: Generous: this machine's Spark starts in seconds when idle, minutes when loaded.
START_MS = 300_000
PAGE_MS = 60_000
FAST = {"check_interval_secs": 0.5, "lease_secs": 5, "resync_interval_secs": 2}


def count_through_the_proxy(connect_port: int, engine_id: str, token: str) -> list[Any]:
    from pyspark.sql import SparkSession

    url = f"sc://localhost:{connect_port}/;x-rucat-engine-id={engine_id};token={token}"
    spark = SparkSession.builder.remote(url).create()
    try:
        return [tuple(row) for row in spark.sql("SELECT count(*) FROM range(1000)").collect()]
    finally:
        spark.stop()


async def test_log_in_create_query_open_the_spark_ui_and_stop(tmp_path: Path) -> None:
    require_java()
    ARTIFACTS.mkdir(exist_ok=True)
    users = [{"name": "alice", "password_hash": hash_password("alice-pw")}]
    config = {**FAST, "auth_provider": {"Users": {"users": users}}}
    with rucat_up(tmp_path, config) as (_process, url, connect_port):
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 800})
                await log_in(page, url, "alice", "alice-pw")
                await page.get_by_role("link", name="New engine").first.click()
                await page.get_by_label("Name").fill("ui-round")
                await page.get_by_label("Configs").fill(
                    "spark.executor.memory=512m\nspark.sql.shuffle.partitions=2"
                )
                await page.get_by_role("button", name="Create").click()
                await expect(page).to_have_url(re.compile(rf"{url}/ui/engine/[a-z0-9]{{20}}$"))
                engine_id = page.url.rsplit("/", 1)[1]
                state = page.locator("#live [data-state]")
                # No reload: the page follows the engine to Running by itself.
                await expect(state).to_have_text("● Running", timeout=START_MS)
                link = page.get_by_role("link", name="Spark UI")
                await expect(link).to_have_attribute("href", f"/engine/{engine_id}/sparkui/")
                await page.screenshot(path=ARTIFACTS / "round-engine-page.png", full_page=True)
                await page.set_viewport_size({"width": 390, "height": 844})
                await page.screenshot(path=ARTIFACTS / "round-engine-page-390.png", full_page=True)
                await page.set_viewport_size({"width": 1280, "height": 800})

                async with httpx.AsyncClient(auth=("alice", "alice-pw"), timeout=60) as rest:
                    created = await rest.post(f"{url}/tokens", json={"name": "round"})
                assert created.status_code == 200, created.text
                rows = await asyncio.to_thread(
                    count_through_the_proxy, connect_port, engine_id, created.json()["token"]
                )
                assert rows == [(1000,)]

                await link.focus()  # by keyboard, as without a mouse
                await page.keyboard.press("Enter")
                # A driver's first page render can take long on a loaded machine.
                await expect(page).to_have_url(
                    f"{url}/engine/{engine_id}/sparkui/jobs/", timeout=PAGE_MS
                )
                await expect(page.locator("body")).to_contain_text(
                    "Completed Jobs", timeout=PAGE_MS
                )
                # The query's job: Spark Connect names it by its session and plan.
                jobs = page.locator("#completedJob-table tbody tr")
                await expect(jobs.first).to_contain_text("Spark Connect - session_id")
                await expect(jobs.first).to_contain_text("sql { query")
                # Its links and assets stay under the prefix (spark.ui.proxyBase).
                hrefs = await page.evaluate(
                    "[...document.querySelectorAll('link[href], script[src]')]"
                    ".map(e => e.getAttribute('href') || e.getAttribute('src'))"
                )
                assert hrefs and all(h.startswith(f"/engine/{engine_id}/sparkui/") for h in hrefs)
                await page.screenshot(path=ARTIFACTS / "round-spark-ui.png", full_page=True)

                await page.goto(f"{url}/ui/engine/{engine_id}")
                await page.get_by_role("button", name="Stop").click()
                await expect(state).to_have_text("○ Terminated", timeout=START_MS)
                await expect(page.get_by_role("link", name="Spark UI")).to_have_count(0)
                gone = await page.request.get(f"{url}/engine/{engine_id}/sparkui/jobs/")
                assert gone.status == 409
                assert "is not Running" in (await gone.json())["detail"]

                await page.goto(f"{url}/ui/")
                row = page.locator(f'tr[data-engine-id="{engine_id}"]')
                await expect(row).to_contain_text("Terminated")
                await page.screenshot(path=ARTIFACTS / "round-engines-list.png", full_page=True)
            finally:
                await browser.close()
