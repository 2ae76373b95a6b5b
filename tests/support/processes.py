"""Real Rucat processes for end-to-end tests: `rucat up`, `server`, `monitor`.

Each runs the installed `rucat` entry point in its own process group, logs to
a file, and is killed (with its group) on exit. Helpers also find the JVMs
of an engine by its Spark app name, to count what really runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support import free_port
from tests.support.proc import pids_where

RUCAT = str(Path(sys.executable).parent / "rucat")


def write_config(path: Path, **fields: Any) -> Path:
    path.write_text(json.dumps(fields), encoding="utf-8")
    return path


class RucatProcess:
    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.argv = argv
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the process (not its engines: those live in their own sessions)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()

    def wait_http(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.argv} exited early:\n{self.output()}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{url} did not answer within {timeout}s:\n{self.output()}")


@contextmanager
def rucat(
    *args: str, tmp: Path, name: str, env: dict[str, str] | None = None
) -> Iterator[RucatProcess]:
    full_env = {**os.environ, **(env or {})}
    process = RucatProcess([RUCAT, *args], tmp / f"{name}.log", full_env)
    try:
        yield process
    finally:
        process.kill(signal.SIGTERM)


def kill_engines_under(folder: Path) -> None:
    """Kill the process groups of every engine whose command line names `folder`.

    Local engines outlive Rucat by design; a test that fails half way must not
    leave its JVMs running for the rest of the suite.
    """
    marker = str(folder).encode()
    for pid in pids_where(lambda args: any(marker in a for a in args)):
        with contextlib.suppress(OSError):  # gone meanwhile
            os.killpg(os.getpgid(pid), signal.SIGKILL)


@contextmanager
def rucat_up(tmp: Path, config: dict[str, Any]) -> Iterator[tuple[RucatProcess, str, int]]:
    """`rucat up` with `config`; yields (process, base URL, proxy port)."""
    port, connect_port = free_port(), free_port()
    cfg = write_config(tmp / "up.json", **{"connect_port": connect_port, **config})
    with rucat(
        "up",
        "--config-path",
        str(cfg),
        "--port",
        str(port),
        "--data-dir",
        str(tmp / "data"),
        tmp=tmp,
        name="up",
    ) as process:
        url = f"http://127.0.0.1:{port}"
        try:
            process.wait_http(url)
            yield process, url, connect_port
        finally:
            process.kill(signal.SIGTERM)
            kill_engines_under(tmp / "data")


def engine_jvms(engine_id: str) -> list[int]:
    """Pids of live JVMs whose command line names the engine (app name, files)."""
    marker = engine_id.encode()
    return pids_where(lambda args: b"java" in args[0] and any(marker in a for a in args))


def wait_state(
    client: httpx.Client, engine_id: str, states: set[str], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    info: dict[str, Any] = {}
    while time.monotonic() < deadline:
        info = client.get(f"/engine/{engine_id}").json()
        if info.get("state") in states:
            return info
        time.sleep(0.25)
    raise AssertionError(f"engine {engine_id} not in {states} after {timeout}s: {info}")
