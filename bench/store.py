"""Benchmark (not a test): the hot EngineStore operations on every backend, in one run.

Backends: SQLite (a fresh file, the default store), PostgreSQL (an ephemeral
server from the installed binaries, as in the tests; skipped with a note when
there are none), embedded SurrealDB on `mem://` and on `surrealkv://` (a
fresh folder).

Operations, each timed over a bounded number of calls from one task (so the
figure is the latency-bound rate one monitor or server request sees):

* claim      - CAS transition of a due engine WaitToStart -> TriggerStart with a
               lease (revision bump + an event), what a monitor does to take work;
* transition - CAS transition without a state change (next_update_time moves;
               revision bump, no event), a monitor's periodic bookkeeping;
* get        - read one engine by id;
* due backlog - the monitor's poll, due(platform, now, limit=32), while a
               quarter of the `--engines` engines are due (32 come back);
* due idle   - the same poll when nothing is due (the common case).

Then `claim x16`: the same claims from 16 concurrent tasks (distinct engines),
which shows how a backend serialises writers.

Prints operations per second per backend and each figure's ratio to SQLite's.
Each backend runs `--rounds` times, interleaved; the best round counts.

    uv run python bench/store.py [--engines 400] [--gets 2000] [--dues 300] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # for tests.support (free ports, the PostgreSQL helper)

from tests.support import free_port, postgres_bin_dir  # noqa: E402

from rucat.config import (  # noqa: E402
    DatabaseConfig,
    PostgresConfig,
    SqliteConfig,
    SurrealConfig,
)
from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine  # noqa: E402
from rucat.domain.errors import StoreUnavailable  # noqa: E402
from rucat.domain.state import EngineState  # noqa: E402
from rucat.store import EngineStore, open_store  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
OPS = ["claim", "transition", "get", "due backlog", "due idle", "claim x16"]
CONCURRENCY = 16


@asynccontextmanager
async def postgres_config() -> AsyncIterator[DatabaseConfig | None]:
    """A database on a throwaway PostgreSQL server, or None (with a note) if it cannot run."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        print("note: no PostgreSQL binaries (apt-get install postgresql): PostgreSQL skipped")
        yield None
        return
    from tests.support.postgres import PostgresServer

    base_dir = tempfile.mkdtemp(prefix="rucat-bench-pg-")
    server = PostgresServer(bin_dir=bin_dir, base_dir=base_dir, port=free_port())
    try:
        await asyncio.to_thread(server.start)
        uri = await server.create_database()
    except BaseException as e:  # pytest's skip is a BaseException
        await asyncio.to_thread(server.stop)
        print(f"note: PostgreSQL could not start ({e}): PostgreSQL skipped")
        yield None
        return
    try:
        yield DatabaseConfig(Postgres=PostgresConfig(uri=SecretStr(uri)))
    finally:
        await asyncio.to_thread(server.stop)


def engines(count: int, *, round_: int) -> list[Engine]:
    request = CreateEngineRequest(
        name="bench", engine_type=EngineType.Spark, version="4.0.1", configs={"spark.a": "1"}
    )
    out = []
    for i in range(count):
        e = new_engine(request, platform="local", now=T0 + timedelta(milliseconds=i))
        # Half are due now, half later: due() has to skip some.
        later = T0 + timedelta(days=1) if i % 2 else T0
        out.append(replace(e, next_update_time=later, name=f"bench-{round_}-{i}"))
    return out


async def rate(calls: int, body: Callable[[int], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for i in range(calls):
        await body(i)
    return calls / (time.perf_counter() - start)


async def measure(store: EngineStore, args: argparse.Namespace, round_: int) -> dict[str, float]:
    rows = [await store.add(engine=e, actor="bench") for e in engines(args.engines, round_=round_)]
    half = len(rows) // 2
    figures: dict[str, float] = {}

    # claim: the first half, one task.
    claimed: list[Engine] = [rows[0]] * half

    async def claim(i: int) -> None:
        row = rows[i]
        claimed[i] = await store.transition(
            current=row,
            new=replace(
                row,
                state=EngineState.TriggerStart,
                lease_owner="bench-monitor",
                update_time=NOW,
                next_update_time=NOW + timedelta(seconds=60),
            ),
            actor="bench-monitor",
        )

    figures["claim"] = await rate(half, claim)

    # transition: bookkeeping writes on the claimed engines (no state change).
    async def bump(i: int) -> None:
        row = claimed[i]
        claimed[i] = await store.transition(
            current=row,
            new=replace(row, next_update_time=row.next_update_time + timedelta(seconds=1)),
            actor="bench-monitor",
        )

    figures["transition"] = await rate(half, bump)

    ids = [r.id for r in rows]
    figures["get"] = await rate(args.gets, lambda i: store.get(engine_id=ids[i * 7919 % len(ids)]))
    # Now the unclaimed half is left, and half of that is due: a backlog.
    figures["due backlog"] = await rate(
        args.dues, lambda i: store.due(platform="local", now=NOW, limit=32)
    )
    idle = T0 - timedelta(seconds=1)
    figures["due idle"] = await rate(
        args.dues, lambda i: store.due(platform="local", now=idle, limit=32)
    )

    # claim x16: the second half, 16 tasks at once.
    pending = iter(rows[half:])

    async def worker() -> None:
        for row in pending:
            await store.transition(
                current=row,
                new=replace(row, state=EngineState.TriggerStart, lease_owner="w", update_time=NOW),
                actor="bench-monitor",
            )

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    figures["claim x16"] = (len(rows) - half) / (time.perf_counter() - start)
    return figures


def print_table(results: dict[str, dict[str, float]]) -> None:
    names = list(results)
    base = results.get("sqlite")
    width = max(16, *(len(n) + 2 for n in names))
    header = f"{'op/s':<12}" + "".join(f"{n:>{width}}" for n in names)
    print(header)
    print("-" * len(header))
    for op in OPS:
        cells = []
        for name in names:
            value = results[name][op]
            ratio = f" ({value / base[op]:.2f}x)" if base and name != "sqlite" else ""
            cells.append(f"{f'{value:,.0f}{ratio}':>{width}}")
        print(f"{op:<12}" + "".join(cells))
    print("(ratios are to SQLite's figure for the same operation; best of the rounds)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--engines", type=int, default=400, help="engines added per round")
    parser.add_argument("--gets", type=int, default=2000, help="get calls per round")
    parser.add_argument("--dues", type=int, default=300, help="due calls per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, interleaving backends")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="rucat-bench-store-"))
    results: dict[str, dict[str, float]] = {}
    failed: set[str] = set()
    load_before = os.getloadavg()
    try:
        async with AsyncExitStack() as stack:
            pg = await stack.enter_async_context(postgres_config())
            for round_ in range(args.rounds):
                backends: dict[str, DatabaseConfig] = {
                    "sqlite": DatabaseConfig(
                        Sqlite=SqliteConfig(path=str(tmp / f"sqlite-{round_}" / "rucat.db"))
                    ),
                    "surreal-mem": DatabaseConfig(
                        Surreal=SurrealConfig(uri=f"mem://bench-{round_}")
                    ),
                    "surreal-kv": DatabaseConfig(
                        Surreal=SurrealConfig(uri=f"surrealkv://{tmp}/surrealkv-{round_}")
                    ),
                }
                if pg is not None:
                    backends["postgres"] = pg
                for name, config in backends.items():
                    if name in failed:
                        continue
                    try:
                        store = await open_store(config)
                        try:
                            figures = await measure(store, args, round_)
                        finally:
                            await store.close()
                    except StoreUnavailable as e:  # e.g. the PostgreSQL server went away
                        print(f"note: {name} failed in round {round_ + 1}, dropped: {e}")
                        failed.add(name)
                        results.pop(name, None)
                        continue
                    best = results.setdefault(name, figures)
                    for op, value in figures.items():
                        best[op] = max(best[op], value)
                    print(
                        f"round {round_ + 1} {name}: "
                        + ", ".join(f"{op} {v:,.0f}/s" for op, v in figures.items()),
                        flush=True,
                    )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    order = [n for n in ("sqlite", "postgres", "surreal-mem", "surreal-kv") if n in results]
    print()
    print_table({n: results[n] for n in order})
    load_after = os.getloadavg()
    print(
        f"machine load (1-minute average) before/after: {load_before[0]:.1f}/{load_after[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    asyncio.run(main())
