"""A warm-pool hit beside a cold start: POST /engine to the first `select 1` answered.

Not a test: prints figures. One `rucat up` (local platform, check interval
0.5 s) keeps a pool of the bundled Spark with `min_idle` 1 and `max_idle` 2.
Each measurement is the time a user waits, from POST /engine until a new
pyspark Connect session, opened through Rucat's proxy, answers `select 1`:

- hit: a create whose type, version and configs equal the pool's, made once
  the pool has a warm idle engine (the wait for the refill and warm-up is not timed);
- cold: a create with other configs, which starts a new engine.

Both poll GET /engine/{id} every 50 ms until Running, then query (a hit is
Running at the first GET). Hits and cold starts alternate so that both see
the same machine load; every engine is stopped and deleted after its query.
Prints the medians and their ratio (target: a hit under 0.5 s, median of 10), and where
a hit's time goes: POST to Running, and a second new session's `select 1` on the same
engine (what the first one costs once the engine's JVM has answered a query).

    uv run python bench/pool.py --hits 10 --colds 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from _engine_start import create_engine, free_port, rucat_up, stop_engine, wait_state

from rucat.engines.spark_versions import bundled_spark_version

TARGET_HIT_SECS = 0.5
POOL_CONFIGS = {"spark.sql.shuffle.partitions": "4"}


@dataclass(frozen=True)
class Timed:
    """One create: POST /engine to Running, to the first `select 1` answered, and a second
    new session's `select 1` on the same engine (its JVM warm by then)."""

    running: float
    first_answer: float
    second_session: float


def select_one(url: str) -> None:
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(url).create()
    try:
        assert spark.sql("select 1 as one").collect()[0]["one"] == 1
    finally:
        spark.stop()


def timed_create(client: httpx.Client, connect_port: int, configs: dict[str, str]) -> Timed:
    """Times one create (see Timed); then the engine is stopped and deleted."""
    start = time.monotonic()
    engine_id = create_engine(client, configs=configs)
    wait_state(client, engine_id, "Running", poll=0.05)
    running = time.monotonic() - start
    url = f"sc://127.0.0.1:{connect_port}/;x-rucat-engine-id={engine_id}"
    select_one(url)
    answered = time.monotonic() - start
    again = time.monotonic()
    select_one(url)
    second = time.monotonic() - again
    stop_engine(client, engine_id, delete=True)
    return Timed(running=running, first_answer=answered, second_session=second)


def wait_warm(client: httpx.Client, timeout: float = 600.0) -> None:
    """Until the pool has a warm idle engine (a refill, then its warm-up query)."""
    deadline = time.monotonic() + timeout
    while True:
        (small,) = client.get("/pools").json()
        if int(small["warm"]) >= 1:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"no warm idle pool engine within {timeout:g} s")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hits", type=int, default=10)
    parser.add_argument("--colds", type=int, default=3)
    args = parser.parse_args()
    import pyspark.sql.connect.session  # noqa: F401 - imported before any timing

    with tempfile.TemporaryDirectory(prefix="rucat-bench-pool-") as tmp:
        config = {
            "check_interval_secs": 0.5,
            "pools": [
                {
                    "name": "small",
                    "version": bundled_spark_version(),
                    "configs": POOL_CONFIGS,
                    "min_idle": 1,
                    "max_idle": 2,
                }
            ],
        }
        connect_port = free_port()
        hits: list[Timed] = []
        colds: list[Timed] = []
        with rucat_up(Path(tmp), config=config, connect_port=connect_port) as client:
            # Hits and colds interleaved: a cold start after every few hits.
            every = max(1, args.hits // max(1, args.colds))
            for i in range(args.hits):
                wait_warm(client)
                hits.append(timed_create(client, connect_port, POOL_CONFIGS))
                print(f"hit {i + 1}: {hits[-1]}", flush=True)
                if len(colds) < args.colds and (i + 1) % every == 0:
                    colds.append(timed_create(client, connect_port, {}))
                    print(f"cold {len(colds)}: {colds[-1]}", flush=True)
            while len(colds) < args.colds:
                colds.append(timed_create(client, connect_port, {}))
                print(f"cold {len(colds)}: {colds[-1]}", flush=True)

    def median(runs: list[Timed], field: str) -> float:
        return float(statistics.median(getattr(t, field) for t in runs))

    hit, cold = median(hits, "first_answer"), median(colds, "first_answer")
    print(f"median pool hit, POST /engine to first select 1:   {hit:.3f} s ({len(hits)} runs)")
    print(f"median cold start, POST /engine to first select 1: {cold:.3f} s ({len(colds)} runs)")
    print(f"ratio hit/cold: {hit / cold:.3f}")
    print(f"hit target < {TARGET_HIT_SECS} s: {'met' if hit < TARGET_HIT_SECS else 'missed'}")
    print(
        f"median POST /engine to Running: hit {median(hits, 'running'):.3f} s, "
        f"cold {median(colds, 'running'):.3f} s"
    )
    print(
        "median second session's select 1 on the same engine (JVM warm): "
        f"hit {median(hits, 'second_session'):.3f} s, cold {median(colds, 'second_session'):.3f} s"
    )


if __name__ == "__main__":
    main()
