"""Root fixtures. Suite-specific fixtures live in each folder's conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.standalone import StandaloneCluster


class FakeClock:
    """An injectable clock: tests move time instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now_value = start or datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now_value

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now_value = self.now_value + timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def standalone_cluster() -> Iterator[StandaloneCluster]:
    """A real Spark standalone cluster (one master, one worker of 1 core and 1 GiB) on
    127.0.0.1, shared by the session; ended with every shared cluster at its end."""
    from tests.support import require_java
    from tests.support.standalone import shared_cluster, stop_shared_clusters

    require_java()
    try:
        yield shared_cluster()
    finally:
        stop_shared_clusters()


@pytest.fixture(autouse=True)
def _forget_spark_sessions() -> Iterator[None]:
    """pyspark keeps the first session created as the process's default and active
    one until it is stopped, and `udf()` asks that session for a conf. A session a
    test left open to an engine or server that has since gone would then make a
    later test's `udf()` retry for minutes against a closed port. Forget them."""
    yield
    import sys

    session_module = sys.modules.get("pyspark.sql.connect.session")
    if session_module is None:
        return
    connect_session = session_module.SparkSession
    connect_session._default_session = None
    connect_session._active_session.session = None
