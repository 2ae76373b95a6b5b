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
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from rucat.engines.spark import bundled_spark_version

RUCAT = str(Path(sys.executable).parent / "rucat")
TARGET_HIT_SECS = 0.5
POOL_CONFIGS = {"spark.sql.shuffle.partitions": "4"}
#: Seconds a refill or a cold start may take on a loaded machine.
START_TIMEOUT = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(what: str, probe: object, timeout: float = START_TIMEOUT, poll: float = 0.05) -> None:
    assert callable(probe)
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:g} s")
        time.sleep(poll)


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
    body = {
        "name": "bench",
        "engine_type": "Spark",
        "version": bundled_spark_version(),
        "configs": configs,
    }
    start = time.monotonic()
    engine_id = client.post("/engine", json=body).raise_for_status().json()["id"]
    while True:
        state = client.get(f"/engine/{engine_id}").json()["state"]
        if state == "Running":
            running = time.monotonic() - start
            break
        if state.startswith("Error"):
            raise RuntimeError(f"engine failed: {client.get(f'/engine/{engine_id}').json()}")
        time.sleep(0.05)
    url = f"sc://127.0.0.1:{connect_port}/;x-rucat-engine-id={engine_id}"
    select_one(url)
    answered = time.monotonic() - start
    again = time.monotonic()
    select_one(url)
    second = time.monotonic() - again
    client.post(f"/engine/{engine_id}/stop").raise_for_status()
    wait(
        f"engine {engine_id} Terminated",
        lambda: client.get(f"/engine/{engine_id}").json()["state"] == "Terminated",
        poll=0.2,
    )
    client.delete(f"/engine/{engine_id}").raise_for_status()
    return Timed(running=running, first_answer=answered, second_session=second)


def warm_in_pool(client: httpx.Client) -> int:
    (small,) = client.get("/pools").json()
    return int(small["warm"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hits", type=int, default=10)
    parser.add_argument("--colds", type=int, default=3)
    args = parser.parse_args()
    import pyspark.sql.connect.session  # noqa: F401 - imported before any timing

    with tempfile.TemporaryDirectory(prefix="rucat-bench-pool-") as tmp:
        workdir = Path(tmp)
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
        (workdir / "config.json").write_text(json.dumps(config), encoding="utf-8")
        port, connect_port = free_port(), free_port()
        up = subprocess.Popen(
            [
                RUCAT,
                "up",
                "--config-path",
                str(workdir / "config.json"),
                "--data-dir",
                str(workdir / "data"),
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "up.log").open("wb"),
            env={**os.environ, "RUCAT_CONNECT_PORT": str(connect_port)},
            start_new_session=True,
        )
        hits: list[Timed] = []
        colds: list[Timed] = []
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

                def healthy() -> bool:
                    try:
                        return client.get("/health").status_code == 200
                    except httpx.HTTPError:
                        return False

                wait("rucat up answering", healthy, timeout=60, poll=0.1)
                # Hits and colds interleaved: a cold start after every few hits.
                every = max(1, args.hits // max(1, args.colds))
                for i in range(args.hits):
                    wait("a warm idle pool engine", lambda: warm_in_pool(client) >= 1, poll=0.2)
                    hits.append(timed_create(client, connect_port, POOL_CONFIGS))
                    print(f"hit {i + 1}: {hits[-1]}", flush=True)
                    if len(colds) < args.colds and (i + 1) % every == 0:
                        colds.append(timed_create(client, connect_port, {}))
                        print(f"cold {len(colds)}: {colds[-1]}", flush=True)
                while len(colds) < args.colds:
                    colds.append(timed_create(client, connect_port, {}))
                    print(f"cold {len(colds)}: {colds[-1]}", flush=True)
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=120)

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
