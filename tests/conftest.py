"""Root fixtures. Suite-specific fixtures live in each folder's conftest.py."""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.standalone import StandaloneCluster


#: Longest a test's teardown may take. pytest-timeout stops its timer once a test
#: has failed (its pytest_exception_interact hook), so a teardown stuck after a
#: failure (an event loop's close waiting for a thread blocked in a read, say)
#: would hold the whole run for ever: this ends the test process instead, as a
#: timeout does, and xdist reports the test and carries on with a new worker.
TEARDOWN_LIMIT_SECS = 300.0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    watchdog = threading.Timer(TEARDOWN_LIMIT_SECS, _end_stuck_teardown, args=(item,))
    watchdog.daemon = True
    watchdog.start()
    try:
        return (yield)
    finally:
        watchdog.cancel()


def _end_stuck_teardown(item: pytest.Item) -> None:
    capture = item.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=True)
    stderr = sys.__stderr__
    assert stderr is not None
    stderr.write(
        f"\n+++ the teardown of {item.nodeid} still runs after "
        f"{TEARDOWN_LIMIT_SECS:.0f} s: ending this test process; its threads:\n"
    )
    stderr.flush()
    faulthandler.dump_traceback(file=stderr, all_threads=True)
    os._exit(1)


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
