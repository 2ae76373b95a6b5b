"""Benchmark (not a test): REST throughput and latency of Rucat beside a bare FastAPI app.

Starts, each as its own process on 127.0.0.1:

* ``rucat server`` over SQLite (a fresh file),
* ``rucat server`` over PostgreSQL (an ephemeral server from the installed
  binaries, as in the tests; skipped with a note when there are none),
* a bare FastAPI app on the same server stack (uvicorn, same loop and HTTP
  implementation) whose routes validate the same pydantic models and keep
  engines in a dict,

* ``rucat server`` over SQLite with the Users auth provider, driven with HTTP
  Basic (``rucat-users``) and with a personal access token made on it
  (``rucat-token``),

then drives each from a separate load process (httpx, a bounded number of
requests at a bounded concurrency) and prints requests/s, p50 and p99 of
``GET /engine/{id}`` and ``POST /engine``, and Rucat's throughput as a ratio of
the bare app's. Target: ratio >= 0.5. The authenticated GETs are also given as
a ratio to the open SQLite server in the same run. Target: >= 0.8.

    uv run python bench/api.py [--requests 2000] [--concurrency 16] [--no-postgres]
        [--only sqlite|users|postgres ...]
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # for tests.support (free ports, the PostgreSQL helper)

from tests.support import free_port, postgres_bin_dir  # noqa: E402

RUCAT = str(Path(sys.executable).parent / "rucat")
BODY = {"name": "bench", "engine_type": "Spark", "version": "4.0.1", "configs": {"a.b": "c"}}


# --- the bare app (runs in its own process: `api.py bare --port N`) ----------


def run_bare(port: int) -> None:
    import secrets
    from datetime import UTC, datetime

    import uvicorn
    from fastapi import FastAPI, HTTPException

    from rucat.server.schemas import CreateEngineBody, EngineIdOut, EngineInfo

    app = FastAPI()
    engines: dict[str, EngineInfo] = {}

    @app.post("/engine", response_model=EngineIdOut)
    async def create(body: CreateEngineBody) -> EngineIdOut:
        engine_id = secrets.token_hex(10)
        now = datetime.now(UTC)
        engines[engine_id] = EngineInfo(
            id=engine_id,
            name=body.name,
            engine_type=body.engine_type,
            version=body.version,
            state="WaitToStart",  # type: ignore[arg-type]
            configs=body.configs,
            create_time=now,
            update_time=now,
            platform="Local",
        )
        return EngineIdOut(id=engine_id)

    @app.get("/engine/{engine_id}", response_model=EngineInfo)
    async def get(engine_id: str) -> EngineInfo:
        if engine_id not in engines:
            raise HTTPException(404, "not found")
        return engines[engine_id]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- the load (runs in its own process: `api.py load ...`) ------------------


async def drive(url: str, kind: str, requests: int, concurrency: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    # Credentials come through the environment, never the command line.
    authorization = os.environ.get("RUCAT_BENCH_AUTHORIZATION")
    headers = {"Authorization": authorization} if authorization else None
    async with httpx.AsyncClient(
        base_url=url, limits=limits, timeout=60, headers=headers
    ) as client:
        created = await client.post("/engine", json=BODY)
        created.raise_for_status()
        engine_id = created.json()["id"]

        async def one() -> float:
            started = time.perf_counter()
            if kind == "get":
                response = await client.get(f"/engine/{engine_id}")
            else:
                response = await client.post("/engine", json=BODY)
            if response.status_code != 200:
                raise RuntimeError(f"{kind}: {response.status_code} {response.text}")
            return time.perf_counter() - started

        async def worker(count: int, out: list[float]) -> None:
            for _ in range(count):
                out.append(await one())

        async def run(total: int) -> tuple[list[float], float]:
            latencies: list[float] = []
            shares = [total // concurrency + (i < total % concurrency) for i in range(concurrency)]
            started = time.perf_counter()
            await asyncio.gather(*(worker(n, latencies) for n in shares))
            return latencies, time.perf_counter() - started

        await run(min(200, requests))  # warm-up: connections, caches, JIT-free but lazy imports
        latencies, elapsed = await run(requests)
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def load(
    url: str, kind: str, requests: int, concurrency: int, authorization: str | None = None
) -> dict[str, float]:
    """Run the load from a second process and return its figures."""
    env = dict(os.environ)
    if authorization:
        env["RUCAT_BENCH_AUTHORIZATION"] = authorization
    out = subprocess.run(
        [sys.executable, __file__, "load", url, kind, str(requests), str(concurrency)],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load process failed: {out.stderr[-3000:]}")
    result: dict[str, float] = json.loads(out.stdout)
    return result


# --- the servers under test ------------------------------------------------


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 300  # a busy shared machine starts Python slowly
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer: {log.read_text()[-2000:]}")


@dataclass(frozen=True)
class Target:
    url: str
    pid: int
    #: The Authorization header the load sends (None: an open server).
    authorization: str | None = None
    #: Routes driven: ("get", "post") or just ("get",).
    kinds: tuple[str, ...] = ("get", "post")

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def process(argv: list[str], log: Path, url: str) -> Iterator[Target]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUCAT_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_healthy(proc, url, log)
            yield Target(url, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def rucat_server(
    tmp: Path, name: str, database: dict[str, Any], auth: dict[str, Any] | None = None
) -> Iterator[Target]:
    port = free_port()
    config = tmp / f"{name}.json"
    fields: dict[str, Any] = {
        "database": database,
        "data_dir": str(tmp / "data"),
        "connect_port": None,
    }
    if auth is not None:
        fields["auth_provider"] = auth
    config.write_text(json.dumps(fields))
    argv = [RUCAT, "server", "--config-path", str(config), "--port", str(port)]
    with process(argv, tmp / f"{name}.log", f"http://127.0.0.1:{port}") as target:
        yield target


@contextmanager
def bare_server(tmp: Path) -> Iterator[Target]:
    port = free_port()
    argv = [sys.executable, __file__, "bare", str(port)]
    with process(argv, tmp / "bare.log", f"http://127.0.0.1:{port}") as target:
        yield target


@contextmanager
def postgres() -> Iterator[str | None]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        yield None
        return
    from tests.support.postgres import PostgresServer

    # Its own folder under /tmp (as in the tests): PostgreSQL runs as another user.
    base_dir = tempfile.mkdtemp(prefix="rucat-bench-pg-")
    server = PostgresServer(bin_dir=bin_dir, base_dir=base_dir, port=free_port())
    server.start()
    try:
        yield asyncio.run(server.create_database())
    finally:
        server.stop()


BENCH_USER, BENCH_PASSWORD = "bench", "bench-password"


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def authenticated_targets(stack: ExitStack, tmp: Path) -> dict[str, Target]:
    """A Users-provider server, driven with Basic and with a token made on it (GET only)."""
    from dataclasses import replace

    from rucat.server.auth.users import hash_password

    user = {"name": BENCH_USER, "password_hash": hash_password(BENCH_PASSWORD)}
    users = {"Users": {"users": [user]}}
    server = stack.enter_context(
        rucat_server(tmp, "users", {"Sqlite": {"path": str(tmp / "users.db")}}, auth=users)
    )
    basic = _basic(BENCH_USER, BENCH_PASSWORD)
    made = httpx.post(
        f"{server.url}/tokens",
        json={"name": "bench", "expires_in_days": 1},
        headers={"Authorization": basic},
        timeout=60,
    )
    made.raise_for_status()
    token = made.json()["token"]
    return {
        "rucat-users": replace(server, authorization=basic, kinds=("get",)),
        "rucat-token": replace(server, authorization=f"Bearer {token}", kinds=("get",)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per case and round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="targets alternate each round")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL server")
    parser.add_argument(
        "--only",
        choices=("sqlite", "users", "postgres"),
        action="append",
        help="drive only these Rucat servers beside the bare app (repeatable; default: all)",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="rucat-bench-"))
    # (target, kind) -> one figures dict per round
    rounds: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        with ExitStack() as stack:
            # All servers run for the whole benchmark; only one is under load at a time.
            # Rounds interleave the targets so that a change in the machine's load
            # (it is shared) hits all of them alike.
            wanted = set(args.only or ("sqlite", "users", "postgres"))
            targets = {"bare-fastapi": stack.enter_context(bare_server(tmp))}
            if "sqlite" in wanted:
                targets["rucat-sqlite"] = stack.enter_context(
                    rucat_server(tmp, "sqlite", {"Sqlite": {"path": str(tmp / "rucat.db")}})
                )
            if "users" in wanted:
                targets.update(authenticated_targets(stack, tmp))
            if "postgres" not in wanted:
                args.no_postgres = True
            uri = None if args.no_postgres else stack.enter_context(postgres())
            if uri is None and not args.no_postgres:
                print("no PostgreSQL binaries: apt-get install postgresql", file=sys.stderr)
            elif uri is not None:
                targets["rucat-postgres"] = stack.enter_context(
                    rucat_server(tmp, "postgres", {"Postgres": {"uri": uri}})
                )
            for number in range(args.rounds):
                for name, target in targets.items():
                    for kind in target.kinds:
                        cpu_before = target.cpu_seconds()
                        figures = load(
                            target.url, kind, args.requests, args.concurrency, target.authorization
                        )
                        # Server CPU per request (warm-up included): robust on a busy machine.
                        served = args.requests + min(200, args.requests) + 1
                        figures["cpu_ms"] = (target.cpu_seconds() - cpu_before) / served * 1000
                        rounds.setdefault((name, kind), []).append(figures)
                print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(rounds, args)


def _median_round(figures: list[dict[str, float]]) -> dict[str, float]:
    """The round with the median throughput (its latencies come with it)."""
    return sorted(figures, key=lambda f: f["rps"])[len(figures) // 2]


def report(rounds: dict[tuple[str, str], list[dict[str, float]]], args: Any) -> None:
    chosen = {key: _median_round(figures) for key, figures in rounds.items()}
    print(
        f"\n{args.requests} requests per case and round at concurrency {args.concurrency}, "
        f"median of {args.rounds} interleaved rounds, load from a separate process, "
        f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f})\n"
    )
    header = (
        f"{'target':<16} {'route':<18} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'ratio':>6} {'cpu ms/req':>10} {'cpu ratio':>9}"
    )
    print(header)
    print("-" * len(header))
    ratios = []
    for (name, kind), figures in chosen.items():
        route = "GET /engine/{id}" if kind == "get" else "POST /engine"
        bare = chosen[("bare-fastapi", kind)]
        ratio = figures["rps"] / bare["rps"]
        cpu_ratio = bare["cpu_ms"] / figures["cpu_ms"]
        if name != "bare-fastapi":
            ratios.append(ratio)
        print(
            f"{name:<16} {route:<18} {figures['rps']:>7.0f} {figures['p50_ms']:>7.2f} "
            f"{figures['p99_ms']:>7.2f} {ratio:>6.2f} {figures['cpu_ms']:>10.2f} {cpu_ratio:>9.2f}"
        )
    worst = min(ratios)
    verdict = "meets" if worst >= 0.5 else "misses"
    print(
        "\nratio: req/s relative to the bare app; cpu ratio: the bare app's server CPU per "
        "request over this one's (the throughput ratio when the server is CPU-bound)."
        f"\nworst ratio to the bare app: {worst:.2f} ({verdict} the 0.5 target)"
    )
    open_get = chosen.get(("rucat-sqlite", "get"))
    if open_get is None:
        return
    print("\nGET /engine/{id} with authentication, relative to the open SQLite server:")
    cases = (("rucat-users", "Users provider, HTTP Basic"), ("rucat-token", "access token"))
    for name, what in cases:
        figures = chosen.get((name, "get"))
        if figures is None:
            continue
        ratio = figures["rps"] / open_get["rps"]
        cpu_ratio = open_get["cpu_ms"] / figures["cpu_ms"]
        verdict = "meets" if ratio >= 0.8 else "misses"
        print(
            f"  {what:<28} {figures['rps']:>7.0f} req/s  ratio {ratio:.2f} "
            f"(cpu ratio {cpu_ratio:.2f}; {verdict} the 0.8 target)"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bare":
        run_bare(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "load":
        url, kind, requests, concurrency = sys.argv[2:6]
        print(json.dumps(asyncio.run(drive(url, kind, int(requests), int(concurrency)))))
    else:
        main()
