"""What the SQL store does beyond the EngineStore contract.

Opening (migrations, folders, bad URIs, unreachable servers), failures turned
into StoreUnavailable without leaking passwords, SQLite shared between OS
processes, and PostgreSQL connections dropped under a running store.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import SecretStr
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from rucat.config import DatabaseConfig, PostgresConfig, SqliteConfig
from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine
from rucat.domain.errors import ConfigError, InvalidRequest, StoreUnavailable
from rucat.domain.state import EngineState
from rucat.store import EngineStore, open_store
from rucat.store.sql.hot import is_closed, terminate_quietly
from rucat.store.sql.schema import SCHEMA_REVISION, VERSION_TABLE, metadata
from rucat.store.sql.store import SqlEngineStore
from tests.support import free_port, require_postgres
from tests.support.postgres import PASSWORD, PostgresServer

T0 = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def make_engine(**changes: Any) -> Engine:
    request = CreateEngineRequest(name="0", engine_type=EngineType.Spark, version="4.0.1")
    return replace(new_engine(request, platform="local", now=T0), **changes)


def sqlite_config(path: Path) -> DatabaseConfig:
    return DatabaseConfig(Sqlite=SqliteConfig(path=str(path)))


def postgres_config(uri: str) -> DatabaseConfig:
    return DatabaseConfig(Postgres=PostgresConfig(uri=SecretStr(uri)))


@pytest.fixture(params=["sqlite", "postgres"])
async def fresh_config(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[DatabaseConfig, str]:
    """A fresh SQL database: its config and a SQLAlchemy async URL to inspect it."""
    if request.param == "sqlite":
        path = tmp_path / "rucat.db"
        return sqlite_config(path), f"sqlite+aiosqlite:///{path}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    uri = await server.create_database()
    return postgres_config(uri), uri.replace("postgresql://", "postgresql+asyncpg://", 1)


# --- opening ------------------------------------------------------------------


async def test_schema_made_by_the_migrations_matches_the_tables_the_queries_use(
    fresh_config: tuple[DatabaseConfig, str],
) -> None:
    config, url = fresh_config
    store = await open_store(config)
    await store.close()

    def differences(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        return list(compare_metadata(context, metadata))

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            diffs = await conn.run_sync(differences)
    finally:
        await engine.dispose()
    assert diffs == []


def test_schema_revision_constant_is_the_newest_migration() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from rucat.store.sql.dialects import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")

    assert ScriptDirectory.from_config(config).get_heads() == [SCHEMA_REVISION]


async def test_opening_a_database_migrated_by_a_newer_rucat_is_a_config_error(
    fresh_config: tuple[DatabaseConfig, str],
) -> None:
    config, url = fresh_config
    store = await open_store(config)
    await store.close()
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    finally:
        await engine.dispose()

    with pytest.raises(ConfigError, match="9999"):
        await open_store(config)


async def test_stores_opened_at_once_on_a_fresh_database_migrate_it_once(
    fresh_config: tuple[DatabaseConfig, str],
) -> None:
    config, _ = fresh_config

    stores = await asyncio.gather(*(open_store(config) for _ in range(4)))
    try:
        engine = await stores[0].add(engine=make_engine(), actor="test")
        for store in stores:
            assert await store.get(engine_id=engine.id) == engine
    finally:
        for store in stores:
            await store.close()


async def test_reopening_a_database_keeps_its_engines_and_history(
    fresh_config: tuple[DatabaseConfig, str],
) -> None:
    config, _ = fresh_config
    store = await open_store(config)
    engine = await store.add(engine=make_engine(), actor="test")
    moved = await store.transition(
        current=engine, new=replace(engine, state=EngineState.TriggerStart), actor="m"
    )
    await store.close()

    reopened = await open_store(config)
    try:
        assert await reopened.get(engine_id=engine.id) == moved
        assert len(await reopened.events(engine_id=engine.id)) == 2
    finally:
        await reopened.close()


async def test_engines_stored_before_owners_upgrade_to_engines_without_owner_or_grants(
    fresh_config: tuple[DatabaseConfig, str],
) -> None:
    """A database at revision 0001 (before owners) with an engine in it, then opened."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from rucat.store.sql.dialects import MIGRATIONS_DIR

    config, url = fresh_config
    engine = create_async_engine(url)

    def to_0001_with_one_engine(conn: Connection) -> None:
        alembic = AlembicConfig()
        alembic.set_main_option("script_location", str(MIGRATIONS_DIR))
        alembic.attributes["connection"] = conn
        command.upgrade(alembic, "0001")
        conn.execute(
            text(
                "INSERT INTO rucat_engines (id, name, engine_type, version, configs, state,"
                " platform, create_time, update_time, next_update_time, revision) VALUES"
                " ('aold0000000000000000', 'old', 'Spark', '4.0.1', '{}', 'Terminated',"
                " 'Local', :t, :t, :t, 3)"
            ),
            {"t": datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)},
        )

    try:
        async with engine.begin() as conn:
            await conn.run_sync(to_0001_with_one_engine)
    finally:
        await engine.dispose()

    store = await open_store(config)
    try:
        old = await store.get(engine_id="aold0000000000000000")
        assert (old.owner, old.grants, old.revision) == (None, (), 3)
        assert await store.list(owner="alice") == []
    finally:
        await store.close()


async def test_naive_datetimes_are_refused_as_invalid_requests(
    fresh_config: tuple[DatabaseConfig, str],
) -> None:
    config, _ = fresh_config
    store = await open_store(config)
    try:
        with pytest.raises(InvalidRequest, match="tz-aware"):
            await store.add(engine=make_engine(create_time=datetime(2026, 1, 1)), actor="t")
        with pytest.raises(InvalidRequest, match="tz-aware"):
            await store.due(platform="local", now=datetime(2026, 1, 1), limit=1)
        assert await store.list() == []
    finally:
        await store.close()


async def test_record_activity_never_moves_the_last_activity_back(
    fresh_config: tuple[DatabaseConfig, str],
) -> None:
    config, _ = fresh_config
    store = await open_store(config)
    try:
        engine = await store.add(engine=make_engine(), actor="test")
        later = T0 + timedelta(minutes=5)

        await store.record_activity(engine_id=engine.id, at=later)
        await store.record_activity(engine_id=engine.id, at=T0 + timedelta(minutes=1))

        assert (await store.get(engine_id=engine.id)).last_activity_time == later
    finally:
        await store.close()


# --- SQLite -------------------------------------------------------------------


async def test_sqlite_creates_the_missing_folder_and_puts_the_file_in_wal_mode(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a" / "b" / "rucat.db"

    store = await open_store(sqlite_config(path))
    await store.ping()
    await store.close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_sqlite_path_whose_folder_cannot_be_made_raises_store_unavailable(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    with pytest.raises(StoreUnavailable, match="cannot create folder"):
        await open_store(sqlite_config(blocker / "rucat.db"))


async def test_sqlite_in_memory_is_refused_as_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a file path"):
        await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=":memory:")))


async def test_sqlite_file_that_is_not_a_database_raises_store_unavailable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rucat.db"
    path.write_bytes(b"this is not an SQLite database, just some text" * 100)

    with pytest.raises(StoreUnavailable, match=str(path)):
        await open_store(sqlite_config(path))


_COUNTER = textwrap.dedent(
    """
    import asyncio, sys
    from dataclasses import replace
    from rucat.config import DatabaseConfig, SqliteConfig
    from rucat.domain.errors import StoreConflict
    from rucat.store import open_store

    async def main(path, engine_id, count):
        store = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=path)))
        try:
            for _ in range(count):
                while True:
                    current = await store.get(engine_id=engine_id)
                    new = replace(current, name=str(int(current.name) + 1))
                    try:
                        await store.transition(current=current, new=new, actor="counter")
                        break
                    except StoreConflict:
                        pass
        finally:
            await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_writers_in_three_processes_on_one_sqlite_file_lose_no_update(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    store = await open_store(sqlite_config(path))
    try:
        engine = await store.add(engine=make_engine(name="0"), actor="test")
        per_process = 40

        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _COUNTER,
                str(path),
                engine.id,
                str(per_process),
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(3)
        ]
        outcomes = [await p.communicate() for p in processes]

        for process, (_, stderr) in zip(processes, outcomes, strict=True):
            assert process.returncode == 0, stderr.decode()
        final = await store.get(engine_id=engine.id)
        assert final.name == str(3 * per_process)
        assert final.revision == 3 * per_process
    finally:
        await store.close()


# --- PostgreSQL ---------------------------------------------------------------


async def test_postgres_on_a_closed_port_raises_store_unavailable_naming_the_database() -> None:
    port = free_port()
    uri = f"postgresql://rucat:hunter2-secret@127.0.0.1:{port}/enginesdb"

    with pytest.raises(StoreUnavailable) as caught:
        await open_store(postgres_config(uri))

    assert f"127.0.0.1:{port}" in caught.value.message
    assert "enginesdb" in caught.value.message
    assert "hunter2" not in str(caught.value)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.mark.timeout(60)
async def test_postgres_that_never_answers_fails_with_store_unavailable_instead_of_hanging(
    silent_server: int,
) -> None:
    uri = f"postgresql://rucat:pw@127.0.0.1:{silent_server}/rucat"

    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{silent_server}"):
        await open_store(postgres_config(uri))


@pytest.fixture
def server(request: pytest.FixtureRequest) -> PostgresServer:
    """The session's PostgreSQL server (`postgres_server`, from tests/integration/conftest.py)."""
    found: PostgresServer = request.getfixturevalue("postgres_server")
    return found


async def test_postgres_with_a_wrong_password_raises_store_unavailable_without_the_password(
    server: PostgresServer,
) -> None:
    uri = server.uri("postgres", password="wrong-" + PASSWORD)

    with pytest.raises(StoreUnavailable) as caught:
        await open_store(postgres_config(uri))

    assert "password authentication failed" in caught.value.message
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    "uri", ["mysql://u:p@127.0.0.1/db", "not a uri at all", "sqlite:///tmp/x.db"]
)
async def test_postgres_uri_of_another_kind_is_a_config_error(uri: str) -> None:
    with pytest.raises(ConfigError, match=r"database\.Postgres\.uri"):
        await open_store(postgres_config(uri))


async def test_postgres_store_recovers_when_the_server_drops_its_connections(
    server: PostgresServer,
) -> None:
    uri = await server.create_database()
    database = uri.rsplit("/", 1)[1]
    store = await open_store(postgres_config(uri))
    try:
        engine = await store.add(engine=make_engine(), actor="test")
        admin = await asyncpg.connect(server.uri("postgres"))
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
                database,
            )
        finally:
            await admin.close()
        assert killed >= 1

        # The read meets a dead connection and is retried on a fresh one; the
        # failure also made the pool discard the other dead connections.
        assert await store.get(engine_id=engine.id) == engine
        moved = await store.transition(
            current=engine, new=replace(engine, state=EngineState.TriggerStart), actor="m"
        )
        assert moved.revision == 1
    finally:
        await store.close()


async def test_a_connection_asyncpg_gave_back_to_its_pool_counts_as_closed_and_ends_quietly(
    server: PostgresServer,
) -> None:
    # asyncpg gives a connection that closes back to its pool by itself, which
    # detaches the proxy the hot path holds: CI once saw the read's error handler
    # fail on it ("released back to the pool") instead of retrying the read.
    pool = await asyncpg.create_pool(server.uri("postgres"), min_size=0, max_size=1)
    try:
        conn = await pool.acquire()
        await pool.release(conn)
        with pytest.raises(asyncpg.InterfaceError):
            conn.is_closed()  # what the handler called
        assert is_closed(conn)
        terminate_quietly(conn)
        assert await pool.fetchval("SELECT 1") == 1  # the pool's connection lives on
    finally:
        await pool.close()


@pytest.fixture
async def own_postgres_server(tmp_path: Path) -> AsyncIterator[PostgresServer]:
    """A server of this test's own, so the test may stop it."""
    server = PostgresServer(
        bin_dir=require_postgres(), base_dir=tempfile.mkdtemp(prefix="rucat-pg-"), port=free_port()
    )
    try:
        await asyncio.to_thread(server.start)
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def test_postgres_store_whose_server_stopped_raises_store_unavailable(
    own_postgres_server: PostgresServer,
) -> None:
    uri = await own_postgres_server.create_database()
    store: EngineStore = await open_store(postgres_config(uri))
    try:
        engine = await store.add(engine=make_engine(), actor="test")
        await asyncio.to_thread(own_postgres_server.stop)

        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{own_postgres_server.port}"):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.get(engine_id=engine.id)
    finally:
        await store.close()


# --- data the backends treat differently ----------------------------------------


async def test_nul_characters_in_logs_and_messages_are_stored_as_replacement_characters(
    fresh_config: tuple[DatabaseConfig, str],
) -> None:
    config, _ = fresh_config
    store = await open_store(config)
    try:
        engine = await store.add(
            engine=make_engine(saved_logs="before\x00after", message="a\x00b"), actor="t"
        )
        moved = await store.transition(
            current=engine,
            new=replace(engine, state=EngineState.ErrorClean, message="died\x00"),
            actor="m",
        )

        assert engine.message == "a\ufffdb"
        got = await store.get(engine_id=engine.id)
        assert got.saved_logs == "before\ufffdafter"
        assert got == moved
        assert (await store.events(engine_id=engine.id))[-1].message == "died\ufffd"
    finally:
        await store.close()


async def test_a_transition_whose_event_cannot_be_written_changes_nothing(
    fresh_config: tuple[DatabaseConfig, str],
) -> None:
    config, _ = fresh_config
    store = await open_store(config)
    try:
        engine = await store.add(engine=make_engine(), actor="test")

        # A missing actor breaks the event insert, which comes after the row update.
        with pytest.raises(InvalidRequest):
            await store.transition(
                current=engine,
                new=replace(engine, state=EngineState.TriggerStart),
                actor=None,  # type: ignore[arg-type]
            )

        assert await store.get(engine_id=engine.id) == engine
        assert len(await store.events(engine_id=engine.id)) == 1
    finally:
        await store.close()


# --- wake-ups -------------------------------------------------------------------


async def first_change(watched: SqlEngineStore, writer: EngineStore, engine: Engine) -> str:
    """STOP and RESTART `engine` through `writer` until `watched.changes()` announces it."""
    changes = watched.changes()
    pending = asyncio.ensure_future(anext(changes))
    current = await writer.transition(
        current=engine, new=replace(engine, state=EngineState.Running), actor="test"
    )
    try:
        for _ in range(100):
            # Into WaitToTerminate (a monitor must act: announced), then back.
            for state in (EngineState.WaitToTerminate, EngineState.Running):
                current = await writer.transition(
                    current=current, new=replace(current, state=state), actor="test"
                )
            done, _ = await asyncio.wait({pending}, timeout=0.2)
            if done:
                return pending.result()
        raise AssertionError("no change was announced")
    finally:
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pending
        await changes.aclose()


async def test_sqlite_store_announces_its_own_writes(tmp_path: Path) -> None:
    store = await SqlEngineStore.open_sqlite(SqliteConfig(path=str(tmp_path / "rucat.db")))
    try:
        engine = await store.add(engine=make_engine(), actor="test")

        assert await first_change(store, store, engine) == engine.id
    finally:
        await store.close()


async def test_sqlite_store_announces_added_engines(tmp_path: Path) -> None:
    store = await SqlEngineStore.open_sqlite(SqliteConfig(path=str(tmp_path / "rucat.db")))
    changes = store.changes()
    try:
        # The subscription starts when the iterator is first awaited, which
        # the event loop does before the add below gets back from its thread.
        pending = asyncio.ensure_future(anext(changes))
        engine = await store.add(engine=make_engine(), actor="test")

        assert await asyncio.wait_for(pending, timeout=30) == engine.id
    finally:
        await changes.aclose()
        await store.close()


async def test_postgres_store_announces_writes_of_another_store(server: PostgresServer) -> None:
    config = PostgresConfig(uri=SecretStr(await server.create_database()))
    watcher = await SqlEngineStore.open_postgres(config)
    writer = await open_store(DatabaseConfig(Postgres=config))
    try:
        engine = await writer.add(engine=make_engine(), actor="test")

        assert await first_change(watcher, writer, engine) == engine.id
    finally:
        await writer.close()
        await watcher.close()


async def test_postgres_wake_ups_resume_after_the_listening_connection_drops(
    server: PostgresServer,
) -> None:
    uri = await server.create_database()
    config = PostgresConfig(uri=SecretStr(uri))
    watcher = await SqlEngineStore.open_postgres(config)
    writer = await open_store(DatabaseConfig(Postgres=config))
    try:
        engine = await writer.add(engine=make_engine(), actor="test")
        assert await first_change(watcher, writer, engine) == engine.id

        admin = await asyncpg.connect(server.uri("postgres"))
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND query LIKE 'LISTEN%'",
                uri.rsplit("/", 1)[1],
            )
        finally:
            await admin.close()
        assert killed == 1

        engine = await writer.get(engine_id=engine.id)
        assert await first_change(watcher, writer, engine) == engine.id
    finally:
        await writer.close()
        await watcher.close()


async def test_listing_by_a_state_name_that_does_not_exist_is_an_invalid_request(
    tmp_path: Path,
) -> None:
    store = await open_store(sqlite_config(tmp_path / "rucat.db"))
    try:
        with pytest.raises(InvalidRequest, match="Sleeping"):
            await store.list(states=["Sleeping"])  # type: ignore[list-item]
        assert await store.list(states=["Running"]) == []  # type: ignore[list-item]
    finally:
        await store.close()
