"""How the SQL store connects to each database, and how it migrates one.

`sqlite_engine()` and `postgres_engine()` turn a config into a SQLAlchemy
async engine set up for the store's invariants (see rucat.store.sql):

* SQLite: WAL mode, a busy timeout, foreign keys, and Rucat's own BEGIN, so
  that write transactions are ``BEGIN IMMEDIATE``.
* PostgreSQL: a connect timeout (an unreachable server fails in seconds),
  pre-ping (dropped connections are replaced unseen), reads in autocommit
  (one round trip), writes in READ COMMITTED transactions.

Descriptions name the database for messages and never hold a password.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from rucat.config import PostgresConfig, SqliteConfig
from rucat.domain.errors import ConfigError, StoreUnavailable
from rucat.store.sql_notify import ListenConnector

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: How long a SQLite writer waits for another process's write lock.
SQLITE_BUSY_TIMEOUT_SECS = 30.0
#: How long opening a PostgreSQL connection may take before it is an error.
POSTGRES_CONNECT_TIMEOUT_SECS = 5.0
#: How long one PostgreSQL statement may take before it is an error.
POSTGRES_COMMAND_TIMEOUT_SECS = 60.0
#: How long a task waits for a pooled connection.
POOL_TIMEOUT_SECS = 30.0
#: pg_advisory_xact_lock key that serialises migrations ("rucat" in ASCII).
MIGRATION_LOCK_KEY = 0x7275636174

#: Execution option marking a connection that will write (SQLite: BEGIN IMMEDIATE).
_WRITE_OPTION = "rucat_write"


def _prepare_sqlite_path(configured: str) -> Path:
    """The absolute database path, its folder created; ConfigError/StoreUnavailable."""
    if configured in ("", ":memory:") or configured.startswith("file:"):
        raise ConfigError(
            f"database.Sqlite.path: {configured!r} is not a file path; "
            "SQLite is shared between processes through a file"
        )
    path = Path(configured).expanduser().absolute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreUnavailable(
            f"SQLite database {path}: cannot create folder {path.parent}: {e.strerror or e}"
        ) from e
    return path


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Rucat issues BEGIN itself (see _sqlite_on_begin); the driver must not.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        mode = cursor.fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            log.warning("SQLite refused WAL mode (got %s); concurrent access will be slower", mode)
        # NORMAL is durable in WAL mode except for the last commits at power loss.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A writer takes the write lock up front (waiting up to the busy timeout)
    # instead of upgrading a read lock later, which SQLite would refuse at once.
    write = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def upgrade_to_head(connection: Connection) -> None:
    # Imported here: Alembic takes a second to import and is rarely needed.
    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _postgres_url(uri: str) -> tuple[URL, dict[str, Any]]:
    """The asyncpg URL for a postgresql:// URI, plus connect arguments from its query."""
    try:
        url = make_url(uri)
    except ArgumentError as e:
        raise ConfigError("database.Postgres.uri is not a valid URI") from e
    if url.drivername not in ("postgresql", "postgres", "postgresql+asyncpg"):
        raise ConfigError(
            f"database.Postgres.uri must start with postgresql://, not {url.drivername}://"
        )
    query = dict(url.query)
    connect_args: dict[str, Any] = {}
    # libpq's sslmode is asyncpg's ssl.
    sslmode = query.pop("sslmode", None)
    if sslmode is not None:
        connect_args["ssl"] = sslmode if isinstance(sslmode, str) else sslmode[0]
    return url.set(drivername="postgresql+asyncpg", query=query), connect_args


@dataclass(frozen=True)
class SqlDatabase:
    """An engine and how the store must use it."""

    engine: AsyncEngine
    #: Names the database in messages; never contains a password.
    description: str
    #: Queue this process's writes on one lock (SQLite has one writer anyway).
    serialise_writes: bool
    #: Execution options that make a connection's transaction a write transaction.
    write_options: Mapping[str, Any]
    #: Opens a raw connection for LISTEN (PostgreSQL only).
    listen: ListenConnector | None = None


def sqlite_engine(config: SqliteConfig) -> SqlDatabase:
    """A SQLite engine on `config.path`, its folder created (blocking: run in a thread)."""
    path = _prepare_sqlite_path(config.path)
    engine = create_async_engine(
        URL.create("sqlite+aiosqlite", database=str(path)),
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECS},
        pool_timeout=POOL_TIMEOUT_SECS,
        hide_parameters=True,
    )
    event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return SqlDatabase(
        engine=engine,
        description=f"SQLite database {path}",
        serialise_writes=True,
        write_options={_WRITE_OPTION: True},
    )


def postgres_engine(config: PostgresConfig) -> SqlDatabase:
    """A PostgreSQL engine on `config.uri` (connects lazily)."""
    url, connect_args = _postgres_url(config.uri.get_secret_value())
    connect_args = {
        "timeout": POSTGRES_CONNECT_TIMEOUT_SECS,
        "command_timeout": POSTGRES_COMMAND_TIMEOUT_SECS,
        "server_settings": {"application_name": "rucat"},
        **connect_args,
    }
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def listen() -> Any:
        import asyncpg

        return await asyncpg.connect(dsn, **connect_args)

    engine = create_async_engine(
        url,
        connect_args=connect_args,
        pool_timeout=POOL_TIMEOUT_SECS,
        # A server restart or failover drops pooled connections; checking
        # each one before use makes that invisible to callers.
        pool_pre_ping=True,
        # Reads are single statements and need no BEGIN/ROLLBACK round
        # trips; writes switch to READ COMMITTED transactions.
        isolation_level="AUTOCOMMIT",
        hide_parameters=True,
    )
    return SqlDatabase(
        engine=engine,
        description=(
            f"PostgreSQL database {url.database or '(default)'!r} at "
            f"{url.host or 'localhost'}:{url.port or 5432}"
        ),
        serialise_writes=False,
        write_options={"isolation_level": "READ COMMITTED"},
        listen=listen,
    )
