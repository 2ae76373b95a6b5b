"""The Standalone platform against masters that are not there or do not answer (no Java).

A real cluster's behaviour is in tests/e2e/test_standalone_engines.py and the
platform contract suite; these are the refusals that need no Spark at all.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rucat.config import PlatformConfig, StandalonePlatformConfig, load_config
from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine
from rucat.domain.errors import ConfigError, PlatformRejected
from rucat.engines import spark_versions
from rucat.platforms import Absent, open_platform
from rucat.platforms.offer import platform_offer
from rucat.platforms.standalone import StandalonePlatform
from rucat.platforms.standalone.master import MasterClient, MasterUnreachable
from tests.support import free_port


def engine() -> Engine:
    request = CreateEngineRequest(
        name="e", engine_type=EngineType.Spark, version=spark_versions.bundled_spark_version()
    )
    return new_engine(request, platform="Standalone", now=datetime.now(UTC))


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung master)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def test_the_config_names_the_master_and_its_web_ui(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        '{"platform": {"Standalone": {"master_url": "spark://m:7077",'
        ' "master_web_url": "http://m:8080", "spark_homes": {"3.5.3": "/opt/spark-3.5.3"}}}}'
    )
    config = load_config(path).platform.Standalone
    assert config is not None
    assert (config.master_url, config.master_web_url) == ("spark://m:7077", "http://m:8080")
    assert platform_offer(PlatformConfig(Standalone=config)).versions[0] == "3.5.3"


@pytest.mark.parametrize(
    ("key", "value"),
    [("master_url", "http://m:7077"), ("master_web_url", "spark://m:8080")],
    ids=["master-url-not-spark", "web-url-not-http"],
)
def test_a_master_address_of_the_wrong_kind_is_refused_naming_the_key(
    tmp_path: Path, key: str, value: str
) -> None:
    path = tmp_path / "c.json"
    path.write_text(f'{{"platform": {{"Standalone": {{"{key}": "{value}"}}}}}}')
    with pytest.raises(ConfigError, match=f"platform.Standalone.{key}"):
        load_config(path)


async def test_open_platform_opens_the_standalone_platform(tmp_path: Path) -> None:
    platform = open_platform(
        PlatformConfig(Standalone=StandalonePlatformConfig()), data_dir=tmp_path
    )
    try:
        assert isinstance(platform, StandalonePlatform)
        assert platform.name == "Standalone"
    finally:
        await platform.close()


async def test_a_start_against_a_master_that_is_not_there_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    web_url = f"http://127.0.0.1:{free_port()}"
    config = StandalonePlatformConfig(
        master_url=f"spark://127.0.0.1:{free_port()}", master_web_url=web_url
    )
    platform = StandalonePlatform(config, data_dir=tmp_path)
    target = engine()
    try:
        with pytest.raises(PlatformRejected) as refused:
            await platform.start(engine=target)
        assert refused.value.message.startswith(
            f"the standalone master at {web_url} refuses connections"
        )
        assert await platform.inspect(engine=target) == Absent()  # no driver was started
        await platform.stop(engine=target)  # and stopping is fine without a master
    finally:
        await platform.close()


async def test_a_master_that_never_answers_is_unreachable_but_not_refusing(
    silent_port: int,
) -> None:
    client = MasterClient(f"http://127.0.0.1:{silent_port}", timeout=0.5)
    try:
        with pytest.raises(MasterUnreachable) as unreachable:
            await client.view()
        assert not unreachable.value.refused
        assert unreachable.value.message == "did not answer within 0.5s"
    finally:
        await client.aclose()
