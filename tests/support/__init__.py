"""Helpers shared by the test suites: prerequisites, free ports, polling."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

#: Under CI a missing prerequisite is a failure, never a silent skip.
REQUIRE_ALL = os.environ.get("RUCAT_REQUIRE_ALL", "") not in ("", "0", "false")


def require(ok: bool, what: str) -> None:
    """Skip (or, under RUCAT_REQUIRE_ALL=1, fail) with `what` to install."""
    if ok:
        return
    if REQUIRE_ALL:
        pytest.fail(f"prerequisite missing under RUCAT_REQUIRE_ALL: {what}", pytrace=False)
    pytest.skip(what)


def postgres_bin_dir() -> str | None:
    """Folder with initdb/pg_ctl/postgres, from PATH or Debian's layout."""
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    base = "/usr/lib/postgresql"
    if os.path.isdir(base):
        for version in sorted(os.listdir(base), reverse=True):
            candidate = os.path.join(base, version, "bin")
            if os.path.exists(os.path.join(candidate, "initdb")):
                return candidate
    return None


def require_postgres() -> str:
    bin_dir = postgres_bin_dir()
    require(bin_dir is not None, "PostgreSQL server binaries not found: apt-get install postgresql")
    assert bin_dir is not None
    return bin_dir


def require_java() -> None:
    require(
        shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME")),
        "no Java runtime: apt-get install openjdk-17-jre-headless",
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll `probe` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)
