"""Platforms the platform contract suite runs over.

`PLATFORMS` is a list of (id, PlatformUnderTest). Each entry says how to make
the platform on a data dir, what it needs installed, and how the suite can
look at engines from outside the platform (count the engine's servers, crash
one, reach its endpoint from the test process). Add a platform by appending
one entry.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rucat.config import LocalPlatformConfig, StandalonePlatformConfig
from rucat.domain.engine import Engine
from rucat.engines.spark_launch import app_name
from rucat.platforms import Platform
from rucat.platforms.local.platform import LocalPlatform
from rucat.platforms.standalone import StandalonePlatform
from tests.support import k8s_platforms as k8s
from tests.support import require_java
from tests.support.proc import pids_where
from tests.support.standalone import StandaloneCluster, shared_cluster


@dataclass(frozen=True)
class PlatformUnderTest:
    #: Skips (or fails under CI) when the platform's prerequisites are missing.
    require: Callable[[], None]
    #: A platform keeping its files under the data dir. A second call on the same
    #: dir is what a restarted monitor would open.
    make: Callable[[Path], Platform]
    #: How many Spark Connect servers of the engine run, seen from outside the platform.
    servers: Callable[[Engine], Awaitable[int]]
    #: Kill the engine's server abruptly, as a crash or `kill -9` would.
    crash: Callable[[Engine], Awaitable[None]]
    #: A pyspark connection string for a Ready endpoint, with the engine's token.
    client_url: Callable[[str, str | None], str]
    #: A real Spark Connect server answers at Ready endpoints (False: the query tests skip).
    runs_spark: bool = True
    #: logs() still returns the log after stop() (until forget()).
    keeps_logs_after_stop: bool = True


# --- Local ------------------------------------------------------------------


def local_server_pids(engine: Engine) -> list[int]:
    """Live Spark Connect server JVMs of the engine.

    The server's command line names the engine (spark.app.name=rucat-<id>);
    spark-submit's short-lived launcher JVM carries the same arguments and is left out.
    """
    marker = f"spark.app.name={app_name(engine.id)}".encode()
    return pids_where(
        lambda args: (
            marker in args
            and args[0].endswith(b"java")
            and b"org.apache.spark.launcher.Main" not in args
        )
    )


async def _local_servers(engine: Engine) -> int:
    return len(local_server_pids(engine))


async def _local_crash(engine: Engine) -> None:
    pids = local_server_pids(engine)
    assert pids, f"no server JVM of engine {engine.id} to kill"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0)


def _local_make(data_dir: Path) -> Platform:
    return LocalPlatform(LocalPlatformConfig(stop_grace_secs=15.0), data_dir=data_dir)


def local_client_url(endpoint: str, token: str | None) -> str:
    """pyspark uses TLS with a token unless the host is literally `localhost`."""
    port = urlsplit(endpoint.replace("sc://", "http://", 1)).port
    url = f"sc://localhost:{port}"
    return f"{url}/;token={token}" if token else url


LOCAL = PlatformUnderTest(
    require=require_java,
    make=_local_make,
    servers=_local_servers,
    crash=_local_crash,
    client_url=local_client_url,
)

# --- Standalone -------------------------------------------------------------


def _contract_cluster() -> StandaloneCluster:
    """The suite starts three engines at once: a worker with a core for each (each
    application gets one, by the master's default) and memory for three 512m executors."""
    return shared_cluster(cores=3, memory="2g", default_cores=1)


def _standalone_require() -> None:
    require_java()
    _contract_cluster()


def _standalone_make(data_dir: Path) -> Platform:
    cluster = _contract_cluster()
    config = StandalonePlatformConfig(
        master_url=cluster.master_url,
        master_web_url=cluster.master_web_url,
        stop_grace_secs=15.0,
        poll_interval_secs=1.0,
    )
    return StandalonePlatform(config, data_dir=data_dir)


# Drivers are local processes, so the suite sees them as it sees Local engines.
STANDALONE = PlatformUnderTest(
    require=_standalone_require,
    make=_standalone_make,
    servers=_local_servers,
    crash=_local_crash,
    client_url=local_client_url,
)

# --- Kubernetes (tests/support/k8s_platforms.py) ----------------------------

KUBERNETES_FAKE = PlatformUnderTest(
    require=k8s.fake_require,
    make=k8s.fake_make,
    servers=k8s.fake_servers,
    crash=k8s.fake_crash,
    client_url=k8s.fake_client_url,
    runs_spark=False,
    # A deleted pod takes its log along; the monitor saves it in the store first.
    keeps_logs_after_stop=False,
)

KUBERNETES_REAL = PlatformUnderTest(
    require=k8s.real_require,
    make=k8s.real_make,
    servers=k8s.real_servers,
    crash=k8s.real_crash,
    client_url=k8s.real_client_url,
    keeps_logs_after_stop=False,
)

PLATFORMS: list[tuple[str, PlatformUnderTest]] = [
    ("local", LOCAL),
    ("standalone", STANDALONE),
    ("kubernetes-fake", KUBERNETES_FAKE),
    ("kubernetes-real", KUBERNETES_REAL),
]


def is_process(pid: int, started: int) -> bool:
    """Whether the process (pid, start time) still runs (zombies do not)."""
    from rucat.platforms.local.process import read_stat

    stat = read_stat(pid)
    return stat is not None and stat.start_time == started and stat.running
