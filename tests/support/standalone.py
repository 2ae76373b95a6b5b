"""A real Spark standalone cluster for tests and benchmarks, from the installed pyspark.

pyspark's wheel ships ``bin/spark-class`` and the Master and Worker classes (but no
``sbin/`` start scripts), so the cluster is two JVMs started here directly: a
master and one worker of 1 core and 1 GiB, on free ports of 127.0.0.1. Each
runs in its own process group and gets SIGKILL if the process that started it
dies (a test killed by a timeout runs no teardown); `stop()` ends both groups.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import free_port
from tests.support.spark import SPARK_HOME, _die_with_parent

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
#: Start-up took 10-40 s on the shared 2-core test machines.
START_TIMEOUT = 180.0


def master_state(web_url: str, timeout: float = 5.0) -> dict[str, Any]:
    """The master's JSON (``<web_url>/json/``); raises OSError when it does not answer."""
    with urllib.request.urlopen(f"{web_url}/json/", timeout=timeout) as response:
        state: dict[str, Any] = json.load(response)
    return state


def _spark_class(
    main_class: str,
    args: list[str],
    log_path: Path,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    env = {
        **(extra_env or {}),
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(workdir / "logs"),
        "SPARK_PID_DIR": str(workdir),
    }
    # The cluster's daemons use a small heap: they share 2 cores with the suite.
    env["SPARK_DAEMON_MEMORY"] = "512m"
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [str(SPARK_HOME / "bin" / "spark-class"), main_class, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            start_new_session=True,  # its own group: stop() ends the JVM and its children
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )


@dataclass
class StandaloneCluster:
    """One master and one worker on 127.0.0.1."""

    master_port: int
    master_web_port: int
    worker_web_port: int
    workdir: Path
    master: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes] | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    @property
    def master_web_url(self) -> str:
        return f"http://127.0.0.1:{self.master_web_port}"

    @property
    def worker_web_url(self) -> str:
        return f"http://127.0.0.1:{self.worker_web_port}"

    def state(self) -> dict[str, Any]:
        return master_state(self.master_web_url)

    def worker_state(self) -> dict[str, Any]:
        """The worker's own JSON: it lists the executors it runs, with their app ids."""
        return master_state(self.worker_web_url)

    def log_tail(self, chars: int = 3000) -> str:
        out = []
        for name in ("master.log", "worker.log"):
            try:
                out.append(f"--- {name}\n{(self.workdir / name).read_text(errors='replace')}")
            except OSError:
                continue
        return "\n".join(text[-chars:] for text in out)

    def kill_master(self) -> None:
        """End the master abruptly (SIGKILL to its group), as a crashed host would."""
        _end_group(self.master, signal.SIGKILL)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for process in (self.worker, self.master):
            if process is not None:
                _end_group(process, signal.SIGTERM)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _end_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    # The JVM may have forked children (a worker's executors): end the rest of the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def start_cluster(
    *,
    cores: int = 1,
    memory: str = "1g",
    default_cores: int | None = None,
    timeout: float = START_TIMEOUT,
) -> StandaloneCluster:
    """Start a master and one worker of `cores` and `memory` (default: 1 core, 1 GiB);
    return once the master lists the worker ALIVE. Raises RuntimeError (after ending
    both) when they do not come up. `default_cores` is the master's
    spark.deploy.defaultCores: the cores an application gets unless it sets
    spark.cores.max (Spark's default: all of them)."""
    workdir = Path(tempfile.mkdtemp(prefix="rucat-standalone-"))
    master_port, master_web_port, worker_web_port = free_port(), free_port(), free_port()
    master = _spark_class(
        MASTER_CLASS,
        ["--host", "127.0.0.1", "--port", str(master_port), "--webui-port", str(master_web_port)],
        workdir / "master.log",
        workdir,
        (
            {"SPARK_MASTER_OPTS": f"-Dspark.deploy.defaultCores={default_cores}"}
            if default_cores is not None
            else None
        ),
    )
    cluster = StandaloneCluster(master_port, master_web_port, worker_web_port, workdir, master)
    try:
        _wait(cluster, timeout, lambda s: s.get("status") == "ALIVE", "the master")
        (workdir / "work").mkdir()
        cluster.worker = _spark_class(
            WORKER_CLASS,
            [
                "--host",
                "127.0.0.1",
                "--webui-port",
                str(worker_web_port),
                "--cores",
                str(cores),
                "--memory",
                memory,
                "--work-dir",
                str(workdir / "work"),
                cluster.master_url,
            ],
            workdir / "worker.log",
            workdir,
        )
        _wait(cluster, timeout, lambda s: s.get("aliveworkers", 0) >= 1, "the worker")
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait(cluster: StandaloneCluster, timeout: float, done: Any, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for process in (cluster.master, cluster.worker):
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{what} exited early:\n{cluster.log_tail()}")
        try:
            if done(cluster.state()):
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not up after {timeout}s:\n{cluster.log_tail()}")
        time.sleep(0.5)


_SHARED: dict[tuple[int, str, int | None], StandaloneCluster] = {}


def shared_cluster(
    *, cores: int = 1, memory: str = "1g", default_cores: int | None = None
) -> StandaloneCluster:
    """One cluster of this shape per test process, started on first use (start-up is
    slow) and ended by `stop_shared_clusters` (the session fixture) or at exit."""
    key = (cores, memory, default_cores)
    cluster = _SHARED.get(key)
    if cluster is None or cluster.master.poll() is not None:
        cluster = start_cluster(cores=cores, memory=memory, default_cores=default_cores)
        _SHARED[key] = cluster
        atexit.register(cluster.stop)
    return cluster


def stop_shared_clusters() -> None:
    while _SHARED:
        _SHARED.popitem()[1].stop()
