"""Auto-start on connect: a pyspark query to a Terminated engine, beside a plain create.

Not a test: prints figures. Against one `rucat up` (default config), each
round measures, one right after the other so both see the same machine load:

- create: POST /engine, timed until GET /engine/{id} says Running (the
  engine is then stopped and waited for until Terminated);
- auto-start: a pyspark session through the proxy runs `select 1` on that
  Terminated engine, timed until the result is back. The proxy starts the
  engine (the first call answers UNAVAILABLE, pyspark retries, the retry is
  held until the engine runs).

and prints the medians and their ratio auto-start/create (target: at most 1.2).

It also times, on the just-Running engine of each create, a pyspark session
and the same query through the proxy ("first query"): a fresh engine's first
query (session, parser, codegen) is part of the auto-start figure and of no
create figure, so (create + first query) / create is the ratio an auto-start
with no cost of its own would reach.

    uv run python bench/auto_start.py --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _engine_start import create_engine, free_port, rucat_up, stop_engine, wait_state


def time_create(client: httpx.Client, connect_port: int) -> tuple[str, float, float]:
    """(engine id, seconds from POST /engine to Running, seconds of a first query
    on it once Running); the engine is then stopped."""
    start = time.monotonic()
    engine_id = create_engine(client)
    wait_state(client, engine_id, "Running", poll=0.05)
    elapsed = time.monotonic() - start
    first_query = time_query(connect_port, engine_id)
    stop_engine(client, engine_id, delete=False)
    return engine_id, elapsed, first_query


def time_query(connect_port: int, engine_id: str) -> float:
    """Seconds from a new pyspark session to the result of its first query."""
    from pyspark.sql import SparkSession

    url = f"sc://localhost:{connect_port}/;x-rucat-engine-id={engine_id}"
    start = time.monotonic()
    spark = SparkSession.builder.remote(url).create()
    try:
        rows = spark.sql("select 1 as one").collect()
        elapsed = time.monotonic() - start
    finally:
        spark.stop()
    assert rows[0]["one"] == 1, rows
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rucat-bench-") as tmp:
        connect_port = free_port()
        created, started, firsts = [], [], []
        with rucat_up(Path(tmp), connect_port=connect_port) as client:
            for i in range(args.runs):
                engine_id, create, first = time_create(client, connect_port)
                auto = time_query(connect_port, engine_id)  # it is Terminated
                created.append(create)
                started.append(auto)
                firsts.append(first)
                print(
                    f"run {i + 1}: create {create:.2f} s (first query then {first:.2f} s), "
                    f"auto-start {auto:.2f} s",
                    flush=True,
                )
                stop_engine(client, engine_id, delete=True)

    c, a = statistics.median(created), statistics.median(started)
    f = statistics.median(firsts)
    print(f"median create to Running:                       {c:.2f} s")
    print(f"median first query on a just-Running engine:    {f:.2f} s")
    print(f"median pyspark query to a Terminated engine:    {a:.2f} s")
    print(f"ratio auto-start/create: {a / c:.3f} (target <= 1.2)")
    print(f"floor (create + first query)/create: {(c + f) / c:.3f}")


if __name__ == "__main__":
    main()
