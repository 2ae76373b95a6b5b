"""GET /versions: what POST /engine accepts, for the console's form and the CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from rucat.cli import app as cli_app
from rucat.client import AsyncRucatClient
from rucat.config import RucatConfig
from rucat.engines.spark_versions import bundled_spark_version
from tests.integration.conftest import Api, StartApi


async def test_versions_lists_the_bundled_spark_and_every_configured_spark_home(
    start_api: StartApi, tmp_path: Path
) -> None:
    config = RucatConfig.model_validate(
        {"platform": {"Local": {"spark_homes": {"3.5.7": str(tmp_path)}}}}
    )
    async with start_api(config=config) as api:
        response = await api.client.get("/versions")
    assert response.status_code == 200
    assert response.json() == {
        "platform": "Local",
        "engines": [{"engine_type": "Spark", "versions": ["3.5.7", bundled_spark_version()]}],
    }


async def test_every_listed_version_is_accepted_by_post_engine(api: Api) -> None:
    listed = (await api.client.get("/versions")).json()["engines"][0]["versions"]
    for version in listed:
        await api.create(version=version)
    refused = await api.client.post(
        "/engine", json={"name": "x", "engine_type": "Spark", "version": "1.0"}
    )
    assert refused.status_code == 400
    assert ", ".join(listed) in refused.json()["detail"]


async def test_the_sdk_returns_versions_by_engine_type(api: Api) -> None:
    async with AsyncRucatClient(api.url) as rucat:
        assert await rucat.versions() == {"Spark": [bundled_spark_version()]}


async def test_the_cli_prints_versions(api: Api) -> None:
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, cli_app, ["engine", "versions", "--url", api.url]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Spark\t{bundled_spark_version()}\n"
