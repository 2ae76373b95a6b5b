"""Create-to-Running through Rucat, beside starting Spark Connect by hand.

Not a test: prints figures. In one run it measures, alternating so that both
see the same machine load:

- direct: spark-submit of the same Spark Connect server the local platform
  launches (same master, same properties, a token), timed until a real Spark
  Connect call (AnalyzePlan spark_version) answers;
- rucat: POST /engine to a `rucat up` with its default config (check interval
  5 s), timed until GET /engine/{id} says Running.

and prints the medians and their ratio (target: at most 1.10).

    uv run python bench/time_to_running.py --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from rucat.engines.spark import (
    bound_connect_port,
    bundled_spark_home,
    bundled_spark_version,
    connect_properties,
    connect_server_argv,
    connect_version,
    properties_text,
)

RUCAT = str(Path(sys.executable).parent / "rucat")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_direct(workdir: Path) -> float:
    """Seconds from spark-submit to the first answered Spark Connect call."""
    token = "bench-token"
    props = workdir / "engine.properties"
    props.write_text(
        properties_text(connect_properties(token=token, address="127.0.0.1", port=0)),
        encoding="utf-8",
    )
    props.chmod(0o600)
    argv = connect_server_argv(
        bundled_spark_home(),
        master="local[*]",
        confs={"spark.app.name": "bench-direct"},
        properties_file=props,
    )
    log_path = workdir / "direct.log"
    start = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True
        )
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"spark-submit exited: {log_path.read_text()[-2000:]}")
            port = bound_connect_port(log_path.read_text(errors="replace"))
            if port is not None:
                try:
                    asyncio.run(connect_version(f"127.0.0.1:{port}", token=token, timeout=2))
                    return time.monotonic() - start
                except ConnectionError:
                    pass
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def time_rucat(client: httpx.Client) -> float:
    """Seconds from POST /engine to Running; stops the engine afterwards."""
    body = {"name": "bench", "engine_type": "Spark", "version": bundled_spark_version()}
    start = time.monotonic()
    engine_id = client.post("/engine", json=body).raise_for_status().json()["id"]
    while True:
        state = client.get(f"/engine/{engine_id}").json()["state"]
        if state == "Running":
            elapsed = time.monotonic() - start
            break
        if state.startswith("Error"):
            raise RuntimeError(f"engine failed: {client.get(f'/engine/{engine_id}').json()}")
        time.sleep(0.05)
    client.post(f"/engine/{engine_id}/stop").raise_for_status()
    while client.get(f"/engine/{engine_id}").json()["state"] != "Terminated":
        time.sleep(0.2)
    client.delete(f"/engine/{engine_id}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rucat-bench-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        up = subprocess.Popen(
            [RUCAT, "up", "--port", str(port), "--data-dir", str(workdir / "data")],
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "up.log").open("wb"),
            env={**os.environ, "RUCAT_CONNECT_PORT": str(free_port())},
            start_new_session=True,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                for _ in range(300):
                    try:
                        client.get("/health")
                        break
                    except httpx.HTTPError:
                        time.sleep(0.1)
                time_direct(workdir)  # warm the page cache for both sides
                direct, rucat = [], []
                for i in range(args.runs):
                    direct.append(time_direct(workdir))
                    rucat.append(time_rucat(client))
                    print(f"run {i + 1}: direct {direct[-1]:.2f} s, rucat {rucat[-1]:.2f} s")
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=60)

    d, r = statistics.median(direct), statistics.median(rucat)
    print(f"median direct spark-submit to first answer: {d:.2f} s")
    print(f"median rucat create to Running:             {r:.2f} s")
    print(f"ratio rucat/direct: {r / d:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
