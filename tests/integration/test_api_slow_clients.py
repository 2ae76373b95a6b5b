"""Slow, idle and half-open clients against a real REST server.

A client that opens a connection and never finishes its request head used to
hold a file descriptor for ever; a few hundred of them exhausted a 256-file
limit and nobody was served. Here the server is `rucat server` in a process of
its own with that limit, or `serve()` in this process with small limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rucat.config import (
    AuthProviderConfig,
    DatabaseConfig,
    RucatConfig,
    SqliteConfig,
    StaticAuthConfig,
)
from rucat.server.connections import AcceptFailureLog, connection_limit
from rucat.server.runner import serve
from rucat.store import open_store
from tests.support import free_port
from tests.support.processes import RUCAT, RucatProcess, write_config

pytestmark = pytest.mark.timeout(300)

#: A request head that never ends (no blank line).
UNFINISHED_HEAD = b"GET /engines HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
HALF_OPEN = 500
SERVER_FILE_LIMIT = 256


def _raise_own_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"this test opens {needed} sockets; the file limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@contextlib.contextmanager
def _half_open(port: int, count: int) -> Iterator[list[socket.socket]]:
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(UNFINISHED_HEAD)
            sockets.append(s)
        yield sockets
    finally:
        for s in sockets:
            s.close()


def test_health_answers_a_new_connection_while_500_half_open_ones_are_held(
    tmp_path: Path,
) -> None:
    _raise_own_file_limit(HALF_OPEN + 200)
    port = free_port()
    config = write_config(
        tmp_path / "server.json",
        port=port,
        connect_port=None,
        data_dir=str(tmp_path / "data"),
        database={"Sqlite": {"path": str(tmp_path / "rucat.db")}},
    )
    # The server gets a small file limit of its own, as in the report.
    limited = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({SERVER_FILE_LIMIT}, {SERVER_FILE_LIMIT})); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    argv = [sys.executable, "-c", limited, RUCAT, "server", "--config-path", str(config)]
    server = RucatProcess(argv, tmp_path / "server.log", env=dict(os.environ))
    try:
        url = f"http://127.0.0.1:{port}"
        server.wait_http(url)
        with _half_open(port, HALF_OPEN):
            began = time.perf_counter()
            response = httpx.get(f"{url}/health", timeout=120)
            seconds = time.perf_counter() - began
        log_bytes = server.log_path.stat().st_size
        print(f"/health answered in {seconds:.3f} s beside {HALF_OPEN} half-open connections")
        print(f"server log: {log_bytes} bytes")
        assert response.status_code == 200
        # Accepting never ran out of file descriptors (each time it did, asyncio
        # stopped accepting for a second): the bound made room in time.
        assert "cannot accept connections" not in server.log_path.read_text()
    finally:
        server.kill()


# --- in this process, with small limits ----------------------------------------------


@contextlib.asynccontextmanager
async def _server(tmp_path: Path, **changes: Any) -> AsyncIterator[tuple[str, int]]:
    store = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=str(tmp_path / "r.db"))))
    config = RucatConfig(port=0, connect_port=None, **changes)
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(config, store=store, platform=None, on_started=started.set_result)
    )
    try:
        url = await asyncio.wait_for(started, 60)
        yield url, int(url.rsplit(":", 1)[1])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()


async def _closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), 60)


async def test_a_connection_that_never_finishes_its_head_is_closed(tmp_path: Path) -> None:
    async with _server(tmp_path, header_timeout_secs=0.2) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(UNFINISHED_HEAD)
        await writer.drain()
        assert await _closed_by_server(reader) == b""
        writer.close()


async def test_an_idle_keep_alive_connection_gets_the_same_deadline_for_its_next_head(
    tmp_path: Path,
) -> None:
    async with _server(tmp_path, header_timeout_secs=0.2) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
        assert head.startswith(b"HTTP/1.1 200")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await asyncio.wait_for(reader.readexactly(length), 60)
        # One byte of the next request cancels uvicorn's keep-alive timer; ours holds.
        writer.write(b"G")
        await writer.drain()
        assert await _closed_by_server(reader) == b""
        writer.close()


async def test_a_body_still_trickling_after_its_401_does_not_hold_the_connection(
    tmp_path: Path,
) -> None:
    static = StaticAuthConfig(bearer_token="secret-token")  # type: ignore[arg-type]
    auth = AuthProviderConfig(StaticAuthProviderConfig=static)
    async with _server(tmp_path, auth_provider=auth, header_timeout_secs=0.3) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /engine HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n{")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
        assert head.startswith(b"HTTP/1.1 401")
        closed = asyncio.ensure_future(reader.read())  # the 401's body, then EOF
        for _ in range(600):  # one byte every 0.1 s: never done within the test
            if closed.done():
                break
            with contextlib.suppress(ConnectionError):
                writer.write(b" ")
                await writer.drain()
            await asyncio.sleep(0.1)
        assert closed.done(), "the server kept the connection of a trickling body"
        assert b"HTTP/1.1" not in await closed
        writer.close()


async def test_beyond_the_bound_the_oldest_half_open_connection_makes_room(
    tmp_path: Path,
) -> None:
    async with _server(tmp_path, max_connections=3, header_timeout_secs=600) as (url, port):
        opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        for _, writer in opened:
            writer.write(UNFINISHED_HEAD)
            await writer.drain()
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.get(f"{url}/health")
        assert response.status_code == 200
        oldest_reader, _ = opened[0]
        assert await _closed_by_server(oldest_reader) == b""
        for _, writer in opened:
            writer.close()


async def test_when_every_connection_is_busy_a_new_one_gets_503(tmp_path: Path) -> None:
    async with _server(tmp_path, max_connections=2, header_timeout_secs=600) as (url, port):
        busy = []
        for _ in range(2):  # heads sent, bodies never: requests in progress
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /engine HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{"
            )
            await writer.drain()
            busy.append((reader, writer))
        await asyncio.sleep(0)  # let the server parse both heads
        async with httpx.AsyncClient(timeout=60) as client:
            for _ in range(100):
                response = await client.get(f"{url}/health")
                if response.status_code == 503:
                    break
                await asyncio.sleep(0.05)  # the heads may not have been parsed yet
        assert response.status_code == 503
        assert "too many connections" in response.json()["detail"]
        for _, writer in busy:
            writer.close()


def test_the_bound_leaves_room_below_the_file_limit() -> None:
    assert connection_limit(1000, fd_limit=256) == 192
    assert connection_limit(1000, fd_limit=20000) == 1000
    assert connection_limit(100, fd_limit=1024) == 100
    assert connection_limit(1000, fd_limit=resource.RLIM_INFINITY) == 1000
    assert connection_limit(1000, fd_limit=10) == 1


def test_accept_failures_are_logged_at_most_once_a_second(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    others: list[dict[str, Any]] = []
    handler = AcceptFailureLog(lambda _loop, context: others.append(context), clock=lambda: now[0])
    loop = asyncio.new_event_loop()
    failure = {
        "message": "socket.accept() out of system resource",
        "exception": OSError(24, "Too many open files"),
    }
    try:
        with caplog.at_level(logging.ERROR, logger="rucat.server"):
            for _ in range(50):  # one burst
                handler(loop, failure)
                now[0] += 0.01
            now[0] += 1.0
            handler(loop, failure)
            handler(loop, {"message": "something else"})
    finally:
        loop.close()
    lines = [r.getMessage() for r in caplog.records if "cannot accept" in r.getMessage()]
    assert len(lines) == 2
    assert "Too many open files" in lines[0]
    assert "49 more" in lines[1]
    assert others == [{"message": "something else"}]
