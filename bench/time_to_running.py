"""Create-to-Running through Rucat, beside starting Spark Connect by hand.

Not a test: prints figures. In one run it measures, alternating so that both
see the same machine load:

- direct: spark-submit of the same Spark Connect server the local platform
  launches (same master, same properties, a token), timed until a real Spark
  Connect call (AnalyzePlan spark_version) answers;
- rucat: POST /engine to a `rucat up` with its default config (check interval
  5 s), timed until GET /engine/{id} says Running.

and prints the medians and their ratio (target: at most 1.05, issue 14).

With ``--platform standalone`` it first starts a Spark standalone cluster from
the installed pyspark (tests/support/standalone.py: a master and one worker of
1 core, 1 GiB, on 127.0.0.1), and both sides run the Connect server in client
mode against that master: `rucat up` with the Standalone platform (Running
also needs the master to list the application), beside a bare spark-submit
with ``--master spark://...`` timed until it answers (target: at most 1.05).

    uv run python bench/time_to_running.py --runs 5
    uv run python bench/time_to_running.py --platform standalone --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _engine_start import (
    create_engine,
    direct_argv,
    rucat_up,
    spawn_direct,
    stop_engine,
    wait_state,
)

from rucat.domain.errors import EngineUnreachable
from rucat.engines.spark_launch import bound_connect_port
from rucat.engines.spark_probe import connect_version

#: The repository, for tests.support (the standalone cluster).
REPO = Path(__file__).resolve().parents[1]
TARGETS = {"local": 1.05, "standalone": 1.05}


def time_direct(workdir: Path, master: str = "local[*]", poll: float = 0.05) -> float:
    """Seconds from spark-submit to the first answered Spark Connect call."""
    token = "bench-token"
    argv = direct_argv(workdir, token=token, app_name="bench-direct", master=master)
    log_path = workdir / "direct.log"
    start = time.monotonic()
    proc = spawn_direct(argv, log_path)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"spark-submit exited: {log_path.read_text()[-2000:]}")
            port = bound_connect_port(log_path.read_text(errors="replace"))
            if port is not None:
                try:
                    asyncio.run(connect_version(f"127.0.0.1:{port}", token=token, timeout=2))
                    return time.monotonic() - start
                except EngineUnreachable:
                    pass
            time.sleep(poll)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        # The master frees the application's cores when the driver is gone.
        time.sleep(2 if master.startswith("spark://") else 0)


def time_rucat(client: httpx.Client, poll: float = 0.05) -> float:
    """Seconds from POST /engine to Running; stops the engine afterwards."""
    start = time.monotonic()
    engine_id = create_engine(client)
    wait_state(client, engine_id, "Running", poll=poll)
    elapsed = time.monotonic() - start
    stop_engine(client, engine_id, delete=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--platform", choices=sorted(TARGETS), default="local")
    args = parser.parse_args()

    cluster = None
    if args.platform == "standalone":
        sys.path.insert(0, str(REPO))
        from tests.support.standalone import start_cluster

        cluster = start_cluster()
        print(f"standalone cluster: {cluster.master_url} (web UI {cluster.master_web_url})")
    try:
        with tempfile.TemporaryDirectory(prefix="rucat-bench-") as tmp:
            workdir = Path(tmp)
            master, config = "local[*]", None
            if cluster is not None:
                master = cluster.master_url
                platform = {
                    "Standalone": {
                        "master_url": cluster.master_url,
                        "master_web_url": cluster.master_web_url,
                    }
                }
                config = {"platform": platform}
            direct, rucat = run_pair(workdir, config, master, args.runs)
    finally:
        if cluster is not None:
            cluster.stop()

    d, r = statistics.median(direct), statistics.median(rucat)
    target = TARGETS[args.platform]
    print(f"platform: {args.platform}")
    print(f"median direct spark-submit to first answer: {d:.2f} s")
    print(f"median rucat create to Running:             {r:.2f} s")
    print(f"ratio rucat/direct: {r / d:.3f} (target <= {target:.2f})")


def run_pair(
    workdir: Path, config: dict[str, Any] | None, master: str, runs: int
) -> tuple[list[float], list[float]]:
    """Alternate direct and Rucat starts against one `rucat up`; their durations."""
    direct: list[float] = []
    rucat: list[float] = []
    with rucat_up(workdir, config=config) as client:
        # Both sides look every `poll` seconds: a standalone start takes a minute or
        # more here, and polling at 20 Hz would take CPU from the JVMs it waits for.
        poll = 0.05 if master == "local[*]" else 0.25
        time_direct(workdir, master, poll)  # warm the page cache for both sides
        for i in range(runs):
            direct.append(time_direct(workdir, master, poll))
            rucat.append(time_rucat(client, poll))
            print(f"run {i + 1}: direct {direct[-1]:.2f} s, rucat {rucat[-1]:.2f} s")
    return direct, rucat


if __name__ == "__main__":
    main()
