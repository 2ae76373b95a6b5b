"""What the engine start benches share: `rucat up`, one engine through it, a bare Spark.

Not a bench: bench/time_to_running.py, bench/pool.py, bench/auto_start.py
and bench/cold_start_trace.py import it as a sibling (`uv run python
bench/<script>.py` puts bench/ first on sys.path). It holds the routine they
each time: start a `rucat up`, POST /engine for the bundled Spark, poll
GET /engine/{id} until Running, stop (and delete) the engine; and the bare
spark-submit of the same Spark Connect server that two of them compare with.
Nothing here takes a time: each script reads its clock around these calls.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from rucat.engines.spark_confs import connect_properties, properties_text
from rucat.engines.spark_launch import connect_server_argv
from rucat.engines.spark_versions import bundled_spark_home, bundled_spark_version

RUCAT = str(Path(sys.executable).parent / "rucat")
#: Seconds a start or a stop may take on a loaded machine.
STATE_TIMEOUT = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def rucat_up(
    workdir: Path, *, config: dict[str, Any] | None = None, connect_port: int | None = None
) -> Iterator[httpx.Client]:
    """A `rucat up` (data in `workdir`/data, its stderr in `workdir`/up.log, `config`
    written to `workdir`/config.json when given) with its proxy on `connect_port` (a free
    one when None); yields a client of its REST API once /health answers. On exit the
    server gets SIGTERM, which stops the engines still running."""
    port = free_port()
    argv = [RUCAT, "up", "--data-dir", str(workdir / "data"), "--port", str(port)]
    if config is not None:
        (workdir / "config.json").write_text(json.dumps(config), encoding="utf-8")
        argv += ["--config-path", str(workdir / "config.json")]
    up = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "up.log").open("wb"),
        env={**os.environ, "RUCAT_CONNECT_PORT": str(connect_port or free_port())},
        start_new_session=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 60
            while not _healthy(client):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"rucat up did not answer within 60 s: see {workdir}/up.log")
                time.sleep(0.1)
            yield client
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=120)


def _healthy(client: httpx.Client) -> bool:
    try:
        return client.get("/health").status_code == 200
    except httpx.HTTPError:
        return False


def create_engine(client: httpx.Client, *, configs: dict[str, str] | None = None) -> str:
    """POST /engine for the bundled Spark (with `configs` when given); the engine's id."""
    body: dict[str, Any] = {
        "name": "bench",
        "engine_type": "Spark",
        "version": bundled_spark_version(),
    }
    if configs is not None:
        body["configs"] = configs
    return str(client.post("/engine", json=body).raise_for_status().json()["id"])


def wait_state(
    client: httpx.Client,
    engine_id: str,
    state: str,
    *,
    poll: float,
    timeout: float = STATE_TIMEOUT,
) -> None:
    """GET /engine/{id} every `poll` seconds until it is in `state`; an Error* state or
    `timeout` seconds raise RuntimeError."""
    deadline = time.monotonic() + timeout
    while True:
        info = client.get(f"/engine/{engine_id}").json()
        if info["state"] == state:
            return
        if info["state"].startswith("Error"):
            raise RuntimeError(f"engine failed: {info}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"engine {engine_id} not {state} after {timeout:g} s: {info}")
        time.sleep(poll)


def stop_engine(client: httpx.Client, engine_id: str, *, delete: bool) -> None:
    """Stop the engine and wait until it is Terminated; then delete it if `delete`."""
    client.post(f"/engine/{engine_id}/stop").raise_for_status()
    wait_state(client, engine_id, "Terminated", poll=0.2)
    if delete:
        client.delete(f"/engine/{engine_id}").raise_for_status()


def direct_argv(workdir: Path, *, token: str, app_name: str, master: str = "local[*]") -> list[str]:
    """spark-submit of the Spark Connect server the Local platform launches (same
    properties, a token, any free port), its properties file written in `workdir`."""
    props = workdir / f"{app_name}.properties"
    props.write_text(
        properties_text(connect_properties(token=token, address="127.0.0.1", port=0)),
        encoding="utf-8",
    )
    props.chmod(0o600)
    return connect_server_argv(
        bundled_spark_home(),
        master=master,
        # What the Local and Standalone platforms set besides the endpoint.
        confs={
            "spark.app.name": app_name,
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
        },
        properties_file=props,
    )


def spawn_direct(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Run `argv` (a `direct_argv`) in its own session, logging to `log_path`; its
    folder is the working directory. Stop it with os.killpg(proc.pid, ...)."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=log_path.parent,
            env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"},
            start_new_session=True,
        )
