"""The Spark Connect proxy's cost: direct to an engine vs through Rucat's proxy.

Not a test: prints figures. In one run, against one real Spark 4 Connect
engine (started with spark-submit, token required) and a proxy running in its
own process (so its CPU time is its own), it measures, alternating direct and
proxied so both see the same machine load:

- latency: the median of `spark.sql('select 1').collect()` (target ratio
  proxied/direct at most 1.15);
- throughput: MB/s of a ~200 MB `toArrow()` of `spark.range(N)` with four
  8-byte columns, in adjacent direct/proxied pairs; the ratio is the median
  of the pairs' ratios (target at least 0.9);
- proxy CPU: CPU seconds the proxy process spent per forwarded RPC during the
  latency loop (target at most 0.5 ms), and per MB during the throughput runs
  (target at most 1.5 ms), each with its ratio to the target. CPU time does
  not depend on the machine's load (much: a crowded machine inflates it a
  little through caches and context switches).

    uv run python bench/proxy.py [--queries 200] [--mb 200] [--transfers 5]

The proxy process is tests.support.proxy: it opens the SQLite store this
script wrote, starts the proxy on a free port and answers `stats` on stdin
with its forwarded-RPC count and process CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from rucat.config import DatabaseConfig, SqliteConfig
from rucat.domain.engine import CreateEngineRequest, EngineType, new_engine
from rucat.domain.state import EngineState
from rucat.store import open_store

#: The repository, for tests.support (bare Spark Connect server, proxy process).
ROOT = Path(__file__).resolve().parents[1]

CLIENT_TOKEN = "bench-client-token"
#: Issue 14's targets for the proxy process's CPU: seconds per RPC, per MB.
RPC_TARGET = 0.0005
MB_TARGET = 0.0015
MB = 1024 * 1024
ROW_BYTES = 32  # four 8-byte columns


# --- measurements ---------------------------------------------------------------------


def latencies(spark: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        began = time.perf_counter()
        spark.sql("select 1").collect()  # type: ignore[attr-defined]
        out.append(time.perf_counter() - began)
    return out


def transfer(spark: object, rows: int) -> float:
    """Seconds for a toArrow() of `rows` rows of four longs; checks the size."""
    df = spark.range(0, rows, 1, 8).selectExpr(  # type: ignore[attr-defined]
        "id", "id * 2 as b", "id % 1000 as c", "id + 7 as d"
    )
    began = time.perf_counter()
    table = df.toArrow()
    seconds = time.perf_counter() - began
    assert table.num_rows == rows
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=200, help="select 1 runs per side")
    parser.add_argument("--mb", type=int, default=200, help="size of each toArrow() (MB)")
    parser.add_argument("--transfers", type=int, default=5, help="toArrow() runs per side")
    args = parser.parse_args()

    from pyspark.sql import SparkSession

    sys.path.insert(0, str(ROOT))
    from tests.support import free_port
    from tests.support.proxy import ProxyProcess, proxy_env
    from tests.support.spark import start_spark_connect

    workdir = Path(tempfile.mkdtemp(prefix="rucat-bench-proxy-"))
    engine_server = start_spark_connect(
        free_port(), extra_confs={"spark.driver.memory": "3g"}, timeout=300
    )
    proxy: ProxyProcess | None = None
    try:
        db = workdir / "rucat.db"

        async def record() -> str:
            store = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=str(db))))
            request = CreateEngineRequest(
                name="bench", engine_type=EngineType.Spark, version="4.0.1"
            )
            engine = new_engine(request, platform="Local", now=datetime.now(UTC))
            engine = replace(
                engine,
                state=EngineState.Running,
                endpoint=engine_server.endpoint,
                connect_token=engine_server.token,
            )
            await store.add(engine=engine, actor="bench")
            await store.close()
            return engine.id

        engine_id = asyncio.run(record())
        proxy = ProxyProcess(proxy_env(sqlite_path=db, bearer_token=CLIENT_TOKEN))
        direct = SparkSession.builder.remote(
            f"sc://localhost:{engine_server.port}/;token={engine_server.token}"
        ).create()
        proxied = SparkSession.builder.remote(
            f"sc://localhost:{proxy.port}/;token={CLIENT_TOKEN};x-rucat-engine-id={engine_id}"
        ).create()

        # Warm up both paths (JIT, channels, sessions).
        for spark in (direct, proxied):
            latencies(spark, 20)
            transfer(spark, 100_000)

        # Latency, alternating in blocks of 10 so both see the same load.
        direct_lat: list[float] = []
        proxied_lat: list[float] = []
        rpcs_before, cpu_before = proxy.stats()
        proxied_seconds = 0.0
        for _ in range(max(1, args.queries // 10)):
            direct_lat += latencies(direct, 10)
            began = time.perf_counter()
            proxied_lat += latencies(proxied, 10)
            proxied_seconds += time.perf_counter() - began
        rpcs_after, cpu_after = proxy.stats()
        rpcs = rpcs_after - rpcs_before
        cpu_per_rpc = (cpu_after - cpu_before) / max(1, rpcs)

        # Throughput.
        rows = args.mb * MB // ROW_BYTES
        direct_s: list[float] = []
        proxied_s: list[float] = []
        transfer_rpcs_before, cpu_before = proxy.stats()
        for i in range(args.transfers):
            # Adjacent pairs, alternating which side goes first, so a change in
            # the machine's load hits both sides of a pair alike.
            if i % 2 == 0:
                direct_s.append(transfer(direct, rows))
                proxied_s.append(transfer(proxied, rows))
            else:
                proxied_s.append(transfer(proxied, rows))
                direct_s.append(transfer(direct, rows))
        transfer_rpcs_after, cpu_after = proxy.stats()
        proxy_cpu_per_mb = (cpu_after - cpu_before) / (args.transfers * args.mb)
        # pyspark answers every response of a stream with a ReleaseExecute (its
        # reattach.py): a transfer is one stream and hundreds of unary RPCs.
        transfer_rpcs = (transfer_rpcs_after - transfer_rpcs_before) / args.transfers
        unary_share_per_mb = transfer_rpcs * cpu_per_rpc / args.mb

        d_med, p_med = statistics.median(direct_lat), statistics.median(proxied_lat)
        d_tp = args.mb / statistics.median(direct_s)
        p_tp = args.mb / statistics.median(proxied_s)
        lat_ratio = p_med / d_med
        # Throughput ratio: the median of the pairs' ratios (direct time / proxied time).
        pair_ratios = [d / p for d, p in zip(direct_s, proxied_s, strict=True)]
        tp_ratio = statistics.median(pair_ratios)

        print(f"select 1 latency, median of {len(direct_lat)}:")
        print(f"  direct   {d_med * 1000:8.2f} ms   (p90 {_p90(direct_lat) * 1000:.2f} ms)")
        print(f"  proxied  {p_med * 1000:8.2f} ms   (p90 {_p90(proxied_lat) * 1000:.2f} ms)")
        print(f"  ratio    {lat_ratio:8.3f}      target <= 1.15  {_verdict(lat_ratio <= 1.15)}")
        print(f"toArrow() of {args.mb} MB ({rows} rows x 4 longs), median of {args.transfers}:")
        print(f"  direct   {d_tp:8.1f} MB/s ({statistics.median(direct_s):.2f} s)")
        print(f"  proxied  {p_tp:8.1f} MB/s ({statistics.median(proxied_s):.2f} s)")
        print(f"  ratio    {tp_ratio:8.3f}      target >= 0.9   {_verdict(tp_ratio >= 0.9)}")
        print("  (median of pair ratios: " + ", ".join(f"{r:.3f}" for r in pair_ratios) + ")")
        print("proxy CPU (its own process, time.process_time in it):")
        print(
            f"  {cpu_per_rpc * 1000:6.3f} ms per RPC   {cpu_per_rpc / RPC_TARGET:5.2f}x the target "
            f"{RPC_TARGET * 1000:.1f} ms  {_verdict(cpu_per_rpc <= RPC_TARGET)}   ({rpcs} RPCs for "
            f"{len(proxied_lat)} queries, {rpcs / max(1, len(proxied_lat)):.1f} per query)"
        )
        print(
            f"  {proxy_cpu_per_mb * 1000:6.3f} ms per MB    "
            f"{proxy_cpu_per_mb / MB_TARGET:5.2f}x the target {MB_TARGET * 1000:.1f} ms  "
            f"{_verdict(proxy_cpu_per_mb <= MB_TARGET)}   "
            f"({100 * (cpu_after - cpu_before) / max(1e-9, sum(proxied_s)):.0f}% of a core "
            "while streaming)"
        )
        print(
            f"  {transfer_rpcs:.0f} RPCs per toArrow() (its ReleaseExecutes): at the unary cost "
            f"above, {unary_share_per_mb * 1000:.3f} ms of each MB's CPU"
        )
        print("  (the floor of a Python gRPC hop, without a JVM: uv run python bench/proxy_cpu.py)")
        direct.stop()
        proxied.stop()
    finally:
        if proxy is not None:
            proxy.close()
        engine_server.stop()


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


if __name__ == "__main__":
    main()
