"""Root fixtures. Suite-specific fixtures live in each folder's conftest.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest


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
