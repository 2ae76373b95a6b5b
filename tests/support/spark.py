"""A bare Spark 4 Connect server for tests and benchmarks, started with spark-submit.

This is deliberately not Rucat's local platform: proxy tests need an engine
with a known token and port and nothing else. The token goes in a properties
file readable only by its owner, never on the command line.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).parent
CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the test process dies (Linux).

    A test killed by a timeout must not leave a JVM behind.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class SparkConnectServer:
    """One running Spark Connect server on 127.0.0.1:`port` requiring `token`."""

    port: int
    token: str
    workdir: Path
    process: subprocess.Popen[bytes]
    _log: object = field(repr=False, default=None)

    @property
    def endpoint(self) -> str:
        return f"sc://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return (self.workdir / "engine.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            # spark-submit runs in its own session: signal the whole group (java and all).
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_spark_connect(
    port: int,
    *,
    token: str | None = None,
    extra_confs: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> SparkConnectServer:
    """Start a Spark Connect server and wait until its port accepts connections."""
    token = token or secrets.token_urlsafe(32)
    workdir = Path(tempfile.mkdtemp(prefix="rucat-spark-"))
    props = workdir / "spark.properties"
    confs = {
        "spark.connect.authenticate.token": token,
        "spark.connect.grpc.binding.port": str(port),
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.local.dir": str(workdir / "tmp"),
        "spark.sql.warehouse.dir": str(workdir / "warehouse"),
        **(extra_confs or {}),
    }
    fd = os.open(props, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for key, value in confs.items():
            f.write(f"{key}={value}\n")
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("SPARK_CONNECT_AUTHENTICATE_TOKEN", None)
    argv = [
        str(SPARK_HOME / "bin" / "spark-submit"),
        "--class",
        CONNECT_SERVER_CLASS,
        "--master",
        "local[2]",
        "--properties-file",
        str(props),
        "spark-internal",
    ]
    log = open(workdir / "engine.log", "wb")  # noqa: SIM115 - lives as long as the engine
    process = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=workdir,
        env=env,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    server = SparkConnectServer(port=port, token=token, workdir=workdir, process=process, _log=log)
    deadline = time.monotonic() + timeout
    while not _port_open(port):
        if process.poll() is not None:
            raise RuntimeError(f"Spark Connect server exited early:\n{server.log_tail()}")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(
                f"Spark Connect server not up after {timeout}s:\n{server.log_tail()}"
            )
        time.sleep(0.2)
    return server


_REAPER = """
import os, sys
from pathlib import Path
sys.stdin.read()  # returns at EOF: the parent closed the pipe or died
from tests.support.processes import kill_engines_under
kill_engines_under(Path(os.environ["RUCAT_REAP_UNDER"]))
"""


class EngineReaper:
    """Kills every engine under `folder` once this process is done with them, or dies.

    Local engines outlive their starter by design. A test process killed by a
    timeout runs no teardown, so a child waits on a pipe from us and kills
    the engines' process groups when the pipe closes, whatever closed it.
    """

    def __init__(self, folder: Path) -> None:
        root = Path(__file__).resolve().parents[2]
        self.process = subprocess.Popen(
            [sys.executable, "-c", _REAPER],
            stdin=subprocess.PIPE,
            cwd=root,
            env={**os.environ, "RUCAT_REAP_UNDER": str(folder)},
            start_new_session=True,  # a signal to our group does not stop it early
        )

    def reap(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)
