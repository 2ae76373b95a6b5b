"""Fixtures of the store contract suite: a fresh store per backend per test.

`BACKENDS` is the list the suite runs over: (id, async factory). A factory
prepares a fresh, empty database for one test and returns the DatabaseConfig
that opens it; every store opened from that config shares the database. Add a
backend by appending one entry.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from rucat.config import (
    DatabaseConfig,
    PostgresConfig,
    SqliteConfig,
    SurrealConfig,
    SurrealCredentials,
)
from rucat.store import EngineStore, open_store
from tests.support.postgres import (  # noqa: F401 - fixtures used by the backends
    PostgresServer,
    postgres_database_uri,
    postgres_server,
    postgres_uri,
)

#: Prepares a fresh database for one test; returns the config that opens it.
BackendFactory = Callable[[pytest.FixtureRequest, Path], Awaitable[DatabaseConfig]]
#: Opens one more store on the test's database (closed at teardown).
StoreOpener = Callable[[], Awaitable[EngineStore]]


async def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseConfig:
    return DatabaseConfig(Sqlite=SqliteConfig(path=str(tmp_path / "store" / "rucat.db")))


async def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseConfig:
    server: PostgresServer = request.getfixturevalue("postgres_server")
    uri = await server.create_database()
    return DatabaseConfig(Postgres=PostgresConfig(uri=SecretStr(uri)))


async def _surreal_mem(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseConfig:
    # mem://NAME: an in-memory database shared by this process's stores that name it.
    return DatabaseConfig(Surreal=SurrealConfig(uri=f"mem://{uuid.uuid4().hex}"))


async def _surreal_kv(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseConfig:
    return DatabaseConfig(Surreal=SurrealConfig(uri=f"surrealkv://{tmp_path}/db"))


async def _surreal_remote(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseConfig:
    """A fresh database on the SurrealDB server at RUCAT_TEST_SURREAL_URL (optional service).

    RUCAT_TEST_SURREAL_USER / RUCAT_TEST_SURREAL_PASSWORD sign in when set.
    """
    url = os.environ.get("RUCAT_TEST_SURREAL_URL")
    if not url:
        pytest.skip(
            "optional SurrealDB server not given: set RUCAT_TEST_SURREAL_URL "
            "(e.g. ws://127.0.0.1:8000) to run the contract suite against it"
        )
    user = os.environ.get("RUCAT_TEST_SURREAL_USER")
    credentials = None
    if user:
        password = SecretStr(os.environ.get("RUCAT_TEST_SURREAL_PASSWORD", ""))
        credentials = SurrealCredentials(username=user, password=password)
    return DatabaseConfig(
        Surreal=SurrealConfig(
            uri=url,
            credentials=credentials,
            namespace="rucat_test",
            database=f"t{uuid.uuid4().hex}",
        )
    )


BACKENDS: list[tuple[str, BackendFactory]] = [
    ("sqlite", _sqlite),
    ("postgres", _postgres),
    ("surreal-mem", _surreal_mem),
    ("surreal-kv", _surreal_kv),
    ("surreal-remote", _surreal_remote),
]


@pytest.fixture(params=[factory for _, factory in BACKENDS], ids=[id_ for id_, _ in BACKENDS])
async def database_config(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseConfig:
    """The config of a fresh, empty database of one backend."""
    factory: BackendFactory = request.param
    return await factory(request, tmp_path)


@pytest.fixture
async def open_another_store(database_config: DatabaseConfig) -> AsyncIterator[StoreOpener]:
    """Opens a further store on the same database (another pool: other connections)."""
    opened: list[EngineStore] = []

    async def opener() -> EngineStore:
        store = await open_store(database_config)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_another_store: StoreOpener) -> EngineStore:
    """A freshly opened store on an empty database, closed after the test."""
    return await open_another_store()
