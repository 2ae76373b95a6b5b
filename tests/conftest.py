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
