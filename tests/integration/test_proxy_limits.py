"""The proxy under an unauthenticated client sending huge messages (no Java).

The proxy runs in a process of its own (tests.support.proxy), so its resident
memory, read from /proc, is its own; the client is a real grpc.aio channel.
Before the fix, one unauthenticated 120 MiB AnalyzePlan made the proxy read
(and hold) the whole message before it checked the credentials.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
import grpc.aio
import pytest

from rucat.config import DatabaseConfig, SqliteConfig
from rucat.domain.engine import CreateEngineRequest, EngineType, new_engine
from rucat.domain.state import EngineState
from rucat.store import open_store
from tests.support.proxy import ProxyProcess, proxy_env

pytestmark = pytest.mark.timeout(300)

MiB = 1 << 20
CLIENT_TOKEN = "limits-test-client-token"
ANALYZE = "/spark.connect.SparkConnectService/AnalyzePlan"


def _memory_mib(pid: int) -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (peak resident) of a process, in MiB."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024  # kB
    return found


def _reset_peak(pid: int) -> None:
    """Make VmHWM start again from the current VmRSS (Linux >= 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5", encoding="ascii")


async def _running_engine(db: Path) -> str:
    """A Running engine in the store, so the id the client names is a real one."""
    store = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=str(db))))
    try:
        request = CreateEngineRequest(name="target", engine_type=EngineType.Spark, version="4.0.1")
        engine = new_engine(request, platform="Local", now=datetime.now(UTC))
        engine = replace(
            engine, state=EngineState.Running, endpoint="sc://127.0.0.1:9", connect_token="t"
        )
        await store.add(engine=engine, actor="test")
        return engine.id
    finally:
        await store.close()


async def test_an_unauthenticated_120_mib_message_is_refused_before_it_is_read(
    tmp_path: Path,
) -> None:
    db = tmp_path / "rucat.db"
    engine_id = await _running_engine(db)
    big = b"\x00" * (120 * MiB)
    options = [("grpc.max_send_message_length", -1)]
    attempts = {"no credentials": (), "wrong credentials": (("authorization", "Bearer wrong"),)}
    with ProxyProcess(proxy_env(sqlite_path=db, bearer_token=CLIENT_TOKEN)) as proxy:
        pid = proxy.process.pid
        async with grpc.aio.insecure_channel(f"127.0.0.1:{proxy.port}", options=options) as channel:
            call = channel.unary_unary(ANALYZE)
            for what, credentials in attempts.items():
                metadata = (("x-rucat-engine-id", engine_id), *credentials)
                # Warm up: the first call on a connection sets up gRPC's own state.
                with pytest.raises(grpc.aio.AioRpcError):
                    await call(b"", metadata=metadata, timeout=60)
                _reset_peak(pid)
                before = _memory_mib(pid)["VmRSS"]
                began = time.perf_counter()
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call(big, metadata=metadata, timeout=60)
                seconds = time.perf_counter() - began
                after = _memory_mib(pid)
                growth = max(after["VmHWM"], after["VmRSS"]) - before
                print(f"{what}: refused in {seconds:.3f} s; proxy memory grew {growth:.1f} MiB")
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, what
                assert growth < 32, f"{what}: the proxy's memory grew by {growth:.1f} MiB"
