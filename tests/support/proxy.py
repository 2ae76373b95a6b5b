"""Rucat's Spark Connect proxy in a process of its own, for tests and benchmarks.

Why a process: pyspark's `SparkSession.__del__` shuts down a thread pool
shared by every session of the process and waits for its ReleaseExecute
calls. If the garbage collector runs that on the thread of the proxy's event
loop, the loop waits for calls only it can answer: a deadlock. A proxy in its
own process also has its own CPU time, which the benchmark measures.

The child reads its config from the environment (`RUCAT_*`, as any Rucat
process can), opens the store, starts the proxy, prints ``port N``, and then
answers ``stats`` on stdin with ``stats <rpcs forwarded> <cpu seconds>``
until stdin closes or says ``quit``.

    python -m tests.support.proxy [ROUTE_TTL_SECS]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from rucat.config import load_config
from rucat.server.proxy import start_proxy
from rucat.store import open_store

ROOT = Path(__file__).resolve().parents[2]


async def _serve(route_ttl_secs: float) -> None:
    # Everything Rucat logs, so tests can check what never appears in it.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("rucat").setLevel(logging.DEBUG)
    config = load_config()
    store = await open_store(config.database)
    proxy = await start_proxy(config, store=store, route_ttl_secs=route_ttl_secs)
    print(f"port {proxy.port}", flush=True)
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if line in ("", "quit"):
                break
            if line == "stats":
                print(f"stats {proxy.rpcs_forwarded} {time.process_time()}", flush=True)
    finally:
        await proxy.close(grace=1.0)
        await store.close()


class ProxyProcess:
    """A child process serving the proxy; `port` is where it listens."""

    def __init__(
        self, env: Mapping[str, str], *, route_ttl_secs: float = 1.0, log: Path | None = None
    ) -> None:
        """`log`: where the child's stderr (its log) goes; default: this process's stderr."""
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("RUCAT_")}
        child_env.update(env)
        stderr = open(log, "ab") if log is not None else None  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.proxy", str(route_ttl_secs)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=ROOT,
                env=child_env,
            )
        finally:
            if stderr is not None:
                stderr.close()  # the child holds its own copy
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("port "):
            self.process.kill()
            raise RuntimeError(f"the proxy process did not start (it said {line!r})")
        self.port = int(line.split()[1])

    def stats(self) -> tuple[int, float]:
        """(RPCs forwarded so far, CPU seconds the proxy process used so far)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        _, rpcs, cpu = self.process.stdout.readline().split()
        return int(rpcs), float(cpu)

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def proxy_env(
    *,
    sqlite_path: str | Path,
    bearer_token: str | None,
    tls: tuple[Path, Path] | None = None,
) -> dict[str, str]:
    """The RUCAT_* variables of a proxy on a free port over this SQLite file."""
    env = {
        "RUCAT_CONNECT_PORT": "0",
        "RUCAT_DATABASE__SQLITE__PATH": str(sqlite_path),
        # These proxies are about forwarding and refusals: a call for an engine that is
        # not Running is refused at once, not held while it starts (auto-start has its
        # own tests, tests/integration/test_proxy_auto_start.py and tests/e2e).
        "RUCAT_AUTO_START_ON_CONNECT": "false",
    }
    if bearer_token is not None:
        env["RUCAT_AUTH_PROVIDER__STATICAUTHPROVIDERCONFIG__BEARER_TOKEN"] = bearer_token
    if tls is not None:
        env["RUCAT_CONNECT_TLS_CERT"], env["RUCAT_CONNECT_TLS_KEY"] = str(tls[0]), str(tls[1])
    return env


if __name__ == "__main__":
    asyncio.run(_serve(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0))
