"""Warm pools without Java: the keeper fills and trims pools in a real store, the REST API
hands idle engines to matching creates, and racing creates never share one.

A real server (uvicorn, real HTTP) and the monitor's pool keeper over one
store (SQLite, and PostgreSQL for the races). Nothing is launched: pool
engines are moved to Running through the real store exactly as a monitor
writes them (`force_state`); tests/e2e/test_pools_spark.py runs real engines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from rucat.config import (
    AuthProviderConfig,
    DatabaseConfig,
    LocalPlatformConfig,
    PoolConfig,
    PostgresConfig,
    QuotasConfig,
    RucatConfig,
    UserConfig,
    UsersAuthConfig,
)
from rucat.domain.activity import KeepRunning, decide_idle
from rucat.domain.engine import Engine
from rucat.domain.state import EngineState
from rucat.monitor.pools import PoolKeeper
from rucat.platforms.local.platform import LocalPlatform
from rucat.platforms.pool_profiles import pool_profiles
from rucat.store import EngineStore, open_store
from tests.conftest import FakeClock
from tests.integration.conftest import StartApi, force_state

S = EngineState
CONFIGS = {"spark.sql.shuffle.partitions": "4"}
SMALL = PoolConfig(name="small", version="4.0.1", configs=CONFIGS, min_idle=2, max_idle=3)
#: A create of the small pool's profile, without naming it.
MATCHING = {"name": "mine", "engine_type": "Spark", "version": "4.0.1", "configs": CONFIGS}


def pool_config(*pools: PoolConfig, **changes: Any) -> RucatConfig:
    return RucatConfig(pools=list(pools or [SMALL]), **changes)


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[LocalPlatform]:
    local = LocalPlatform(LocalPlatformConfig(), data_dir=tmp_path / "data")
    try:
        yield local
    finally:
        await local.close()


def keeper_of(
    config: RucatConfig, store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> PoolKeeper:
    return PoolKeeper(
        store=store,
        platform=platform,
        profiles=pool_profiles(config),
        check_interval=0.1,
        clock=clock,
    )


async def members(store: EngineStore, pool: str = "small") -> list[Engine]:
    return await store.list(pool=pool)


async def make_running(store: EngineStore, engines: list[Engine]) -> None:
    """What the monitor does to each new pool engine, written as it writes it."""
    for engine in engines:
        await force_state(store, engine.id, S.Running, endpoint="sc://127.0.0.1:1")


async def filled(
    config: RucatConfig, store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> list[Engine]:
    """A pool filled by its keeper, its engines Running: the idle engines."""
    await keeper_of(config, store, platform, clock).run_once()
    await make_running(store, await members(store))
    return await members(store)


# --- the keeper ----------------------------------------------------------------


async def test_the_keeper_fills_an_empty_pool_with_min_idle_ownerless_engines(
    store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    keeper = keeper_of(pool_config(), store, platform, clock)
    await keeper.run_once()
    engines = await members(store)
    assert len(engines) == 2
    for engine in engines:
        assert engine.state is S.WaitToStart  # the reconciler starts it like any other
        assert (engine.pool, engine.owner, engine.name) == ("small", None, "pool-small")
        assert (engine.version, engine.configs) == ("4.0.1", CONFIGS)
    await keeper.run_once()
    assert len(await members(store)) == 2  # engines on their way count: nothing doubled


async def test_idle_pool_engines_are_exempt_from_auto_stop(
    store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    (engine, _) = await filled(pool_config(), store, platform, clock)
    clock.advance(10 * 24 * 3600)
    assert decide_idle(engine, now=clock(), busy_grace=10) == KeepRunning(recheck_after=None)


async def test_a_pool_engine_that_dies_while_idle_is_replaced(
    store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    config = pool_config()
    dead, alive = await filled(config, store, platform, clock)
    await force_state(store, dead.id, S.ErrorWaitToClean, message="engine died")

    await keeper_of(config, store, platform, clock).run_once()

    states = {e.id: e.state for e in await members(store)}
    assert states.pop(dead.id) is S.ErrorWaitToClean
    assert states.pop(alive.id) is S.Running
    assert list(states.values()) == [S.WaitToStart]  # its replacement


async def test_a_restarted_keeper_adopts_the_idle_engines_and_starts_no_extra_ones(
    store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    config = pool_config()
    before = await filled(config, store, platform, clock)
    restarted = keeper_of(config, store, platform, clock)
    await restarted.run_once()
    assert restarted.started == 0
    assert await members(store) == before


async def test_a_pool_above_max_idle_stops_the_surplus(
    store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    await filled(pool_config(), store, platform, clock)
    smaller = PoolConfig(name="small", version="4.0.1", configs=CONFIGS, min_idle=1, max_idle=1)
    await keeper_of(pool_config(smaller), store, platform, clock).run_once()
    states = sorted(e.state.value for e in await members(store))
    assert states == [S.Running.value, S.WaitToTerminate.value]


async def test_stopped_pool_engines_are_removed_and_replaced(
    store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    config = pool_config()
    stopped, _ = await filled(config, store, platform, clock)
    await force_state(store, stopped.id, S.Terminated)
    await keeper_of(config, store, platform, clock).run_once()
    assert stopped.id not in {e.id for e in await members(store)}
    assert len(await members(store)) == 2


async def test_engines_of_a_changed_profile_are_stopped_and_replaced(
    store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    old = await filled(pool_config(), store, platform, clock)
    changed = PoolConfig(name="small", version="4.0.1", configs={}, min_idle=2, max_idle=3)
    await keeper_of(pool_config(changed), store, platform, clock).run_once()
    now = {e.id: e for e in await members(store)}
    assert {now[e.id].state for e in old} == {S.WaitToTerminate}
    fresh = [e for e in now.values() if e.id not in {o.id for o in old}]
    assert [(e.state, e.configs) for e in fresh] == [(S.WaitToStart, {})] * 2


async def test_a_restarted_keeper_retires_the_engines_of_a_pool_no_longer_configured(
    store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    running, stopped = await filled(pool_config(), store, platform, clock)
    await force_state(store, stopped.id, S.Terminated)
    # With no pool left to keep, run() retires the removed pool's engines and returns.
    await keeper_of(RucatConfig(), store, platform, clock).run()
    assert [(e.id, e.state) for e in await members(store)] == [(running.id, S.WaitToTerminate)]


# --- hand-outs over REST ----------------------------------------------------------


async def test_a_matching_create_gets_an_idle_pool_engine_running_at_once(
    start_api: StartApi, store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    config = pool_config()
    idle = await filled(config, store, platform, clock)
    async with start_api(config=config) as api:
        created = await api.client.post("/engine", json={**MATCHING, "auto_stop_minutes": 7})
        assert created.status_code == 200, created.text
        engine_id = created.json()["id"]
        assert engine_id in {e.id for e in idle}
        info = (await api.client.get(f"/engine/{engine_id}")).json()
        assert info["state"] == "Running"
        assert info["name"] == "mine"
        assert info["owner"] == "anonymous"  # the open server's caller
        assert info["pool"] is None
        assert info["auto_stop_minutes"] == 7
        assert info["endpoint"] == "sc://127.0.0.1:1"
        assert len(await members(store)) == 1  # it left the pool
        metrics = (await api.client.get("/metrics")).text
        assert 'rucat_pool_hand_outs_total{pool="small"} 1.0' in metrics
        assert 'rucat_pool_idle_engines{pool="small"} 1.0' in metrics


async def test_the_pool_refills_to_min_idle_after_a_hand_out(
    start_api: StartApi, store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    config = pool_config()
    await filled(config, store, platform, clock)
    async with start_api(config=config) as api:
        handed = await api.create(**MATCHING)
    keeper = keeper_of(config, store, platform, clock)
    await keeper.run_once()
    assert keeper.started == 1
    pool = await members(store)
    assert handed not in {e.id for e in pool}
    assert sorted(e.state.value for e in pool) == [S.Running.value, S.WaitToStart.value]


async def test_a_handed_out_engine_stops_and_is_never_handed_out_again(
    start_api: StartApi, store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    config = pool_config(PoolConfig(name="small", configs=CONFIGS, min_idle=1, max_idle=1))
    await filled(config, store, platform, clock)
    async with start_api(config=config) as api:
        handed = await api.create(**MATCHING)
        stopped = await api.client.post(f"/engine/{handed}/stop")
        assert stopped.json()["state"] == "WaitToTerminate"
        await force_state(store, handed, S.Running)  # even Running again, it is not the pool's
        second = await api.create(**MATCHING)
        assert second != handed
        assert (await api.engine(second)).state is S.WaitToStart  # the pool was empty: cold


async def test_a_non_matching_create_starts_cold_and_leaves_the_pool_alone(
    start_api: StartApi, store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    config = pool_config()
    idle = await filled(config, store, platform, clock)
    async with start_api(config=config) as api:
        engine_id = await api.create(**{**MATCHING, "configs": {}})
        engine = await api.engine(engine_id)
        assert engine_id not in {e.id for e in idle}
        assert (engine.state, engine.pool, engine.owner) == (S.WaitToStart, None, "anonymous")
        assert await members(store) == idle
        metrics = (await api.client.get("/metrics")).text
        assert 'rucat_pool_misses_total{pool="small"} 0.0' in metrics


async def test_with_the_pool_drained_a_create_still_succeeds_cold_with_the_pools_profile(
    start_api: StartApi, store: EngineStore
) -> None:
    config = pool_config()  # nothing fills it: no keeper runs
    async with start_api(config=config) as api:
        response = await api.client.post("/engine", json={"name": "named", "pool": "small"})
        assert response.status_code == 200, response.text
        engine = await api.engine(response.json()["id"])
        assert (engine.state, engine.pool, engine.name) == (S.WaitToStart, None, "named")
        assert (engine.version, engine.configs) == ("4.0.1", CONFIGS)
        cold = await api.create(**MATCHING)
        assert (await api.engine(cold)).state is S.WaitToStart
        metrics = (await api.client.get("/metrics")).text
        assert 'rucat_pool_misses_total{pool="small"} 2.0' in metrics


async def test_naming_a_pool_takes_its_engine_without_repeating_its_profile(
    start_api: StartApi, store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    config = pool_config()
    idle = await filled(config, store, platform, clock)
    async with start_api(config=config) as api:
        engine_id = await api.client.post("/engine", json={"name": "by-name", "pool": "small"})
        assert engine_id.status_code == 200, engine_id.text
        assert engine_id.json()["id"] in {e.id for e in idle}


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"name": "x", "pool": "huge"}, 400, "unknown pool 'huge'; pools: small"),
        (
            {"name": "x", "pool": "small", "configs": {"spark.sql.shuffle.partitions": "8"}},
            400,
            "spark.sql.shuffle.partitions differ",
        ),
        ({"name": "x", "pool": "small", "version": "3.5.4"}, 400, "Spark 3.5.4 is not available"),
        ({"name": "x"}, 422, "body.version: Field required"),
        ({"name": "x", "engine_type": "Spark", "version": None}, 400, "are required (or name"),
        ({"name": "x", "pool": 5}, 422, "string"),
    ],
    ids=[
        "unknown-pool",
        "other-configs",
        "other-version",
        "no-profile-no-pool",
        "null-version-no-pool",
        "not-a-string",
    ],
)
async def test_bad_pool_requests_are_refused_and_take_nothing(
    start_api: StartApi,
    store: EngineStore,
    platform: LocalPlatform,
    clock: FakeClock,
    body: dict[str, Any],
    status: int,
    detail: str,
) -> None:
    config = pool_config()
    idle = await filled(config, store, platform, clock)
    async with start_api(config=config) as api:
        response = await api.client.post("/engine", json=body)
        assert response.status_code == status, response.text
        assert detail in str(response.json()["detail"])
        assert await members(store) == idle
        assert len(await store.list()) == len(idle)


async def test_get_pools_shows_each_pools_profile_and_idle_engines(
    start_api: StartApi, store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    other = PoolConfig(
        name="secret",
        version="4.0.1",
        configs={"spark.hadoop.fs.s3a.secret.key": "hunter2"},
        min_idle=0,
        max_idle=1,
    )
    config = pool_config(SMALL, other)
    await filled(config, store, platform, clock)
    async with start_api(config=config) as api:
        await api.create(**MATCHING)
        response = await api.client.get("/pools")
    assert response.status_code == 200, response.text
    small, secret = response.json()
    assert small == {
        "name": "small",
        "engine_type": "Spark",
        "version": "4.0.1",
        "configs": CONFIGS,
        "min_idle": 2,
        "max_idle": 3,
        "idle": 1,
        "warm": 0,
        "starting": 0,
        "hand_outs": 1,
        "misses": 0,
    }
    assert secret["name"] == "secret"
    assert "hunter2" not in response.text


# --- users: authentication and quotas ------------------------------------------

_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
USERS = [UserConfig(name="alice", password_hash=_HASHER.hash("alice-pw"))]


def users_config(**changes: Any) -> RucatConfig:
    return pool_config(
        auth_provider=AuthProviderConfig(Users=UsersAuthConfig(users=USERS)), **changes
    )


async def test_get_pools_needs_authentication(start_api: StartApi) -> None:
    async with start_api(config=users_config()) as api:
        response = await api.client.get("/pools")
        assert response.status_code == 401
        seen = await api.client.get("/pools", auth=("alice", "alice-pw"))
        assert seen.status_code == 200


async def test_idle_pool_engines_count_against_no_quota_and_a_hand_out_against_the_callers(
    start_api: StartApi, store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    config = users_config(quotas=QuotasConfig(max_active_engines_per_user=1))
    idle = await filled(config, store, platform, clock)
    async with start_api(config=config, auth=("alice", "alice-pw")) as api:
        first = await api.create(**MATCHING)  # two idle engines did not count against alice
        assert (await api.engine(first)).owner == "alice"
        refused = await api.client.post("/engine", json=MATCHING)
        assert refused.status_code == 429, refused.text
        assert "max_active_engines_per_user is 1" in refused.json()["detail"]
        (left,) = await members(store)
        assert left.id in {e.id for e in idle} and left.owner is None


async def test_an_unauthenticated_create_takes_no_pool_engine(
    start_api: StartApi, store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    config = users_config()
    idle = await filled(config, store, platform, clock)
    async with start_api(config=config) as api:
        response = await api.client.post("/engine", json=MATCHING)
        assert response.status_code == 401
    assert await members(store) == idle


# --- races -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def postgres_store(uri: str) -> AsyncIterator[EngineStore]:
    store = await open_store(DatabaseConfig(Postgres=PostgresConfig(uri=uri)))  # type: ignore[arg-type]
    try:
        yield store
    finally:
        await store.close()


async def ten_racing_creates_share_no_engine(
    start_api: StartApi, store: EngineStore, platform: LocalPlatform
) -> None:
    config = pool_config(PoolConfig(name="small", configs=CONFIGS, min_idle=3, max_idle=3))
    idle = await filled(config, store, platform, FakeClock(datetime.now(UTC)))
    async with (
        start_api(config=config, store=store) as first,
        start_api(config=config, store=store) as second,
    ):
        clients = [first.client, second.client]

        async def create(n: int) -> str:
            body = {**MATCHING, "name": f"race-{n}"}
            response = await clients[n % 2].post("/engine", json=body)
            assert response.status_code == 200, response.text
            return str(response.json()["id"])

        ids = await asyncio.gather(*(create(n) for n in range(10)))
    assert len(set(ids)) == 10
    engines = {engine_id: await store.get(engine_id=engine_id) for engine_id in ids}
    warm = [e for e in engines.values() if e.state is S.Running]
    # Every idle engine went to exactly one create, renamed for it; the rest started cold.
    assert sorted(e.id for e in warm) == sorted(e.id for e in idle)
    assert sorted(e.name for e in engines.values()) == sorted(f"race-{n}" for n in range(10))
    assert [e.state for e in engines.values()].count(S.WaitToStart) == 7
    assert await members(store) == []
    for engine in warm:  # one hand-out each: no second write renamed it
        assert engine.revision == idle[0].revision + 1


async def test_ten_racing_matching_creates_never_share_a_pool_engine_on_sqlite(
    start_api: StartApi, store: EngineStore, platform: LocalPlatform
) -> None:
    await ten_racing_creates_share_no_engine(start_api, store, platform)


async def test_ten_racing_matching_creates_never_share_a_pool_engine_on_postgres(
    start_api: StartApi, postgres_database_uri: str, platform: LocalPlatform
) -> None:
    async with postgres_store(postgres_database_uri) as store:
        await ten_racing_creates_share_no_engine(start_api, store, platform)


# --- the CLI ---------------------------------------------------------------------


async def test_rucat_pool_list_prints_the_pools_as_a_table_and_as_json(
    start_api: StartApi, store: EngineStore, platform: LocalPlatform, clock: FakeClock
) -> None:
    from typer.testing import CliRunner

    from rucat.cli import app

    config = pool_config()
    await filled(config, store, platform, clock)
    async with start_api(config=config) as api:

        def run(*args: str) -> str:
            result = CliRunner().invoke(app, ["pool", "list", *args], env={"RUCAT_URL": api.url})
            assert result.exit_code == 0, (result.stdout, result.stderr)
            return result.stdout

        table = await asyncio.to_thread(run)
        listed = await asyncio.to_thread(run, "-o", "json")
    assert "small" in table and "Spark 4.0.1" in table
    assert "spark.sql.shuffle.partitions=4" in table
    (small,) = json.loads(listed)
    assert (small["name"], small["idle"], small["min_idle"], small["max_idle"]) == (
        "small",
        2,
        2,
        3,
    )
