"""How the SQL store connects to each database, and how it migrates one.

`sqlite_engine()` and `postgres_engine()` turn a config into a `Runner`
that executes one synchronous SQLAlchemy Core function per store operation,
set up for the store's invariants (see rucat.store.sql.store):

* SQLite: pysqlite in a small thread pool (one thread hop per operation), WAL
  mode, a busy timeout, foreign keys, and Rucat's own BEGIN, so that write
  transactions are ``BEGIN IMMEDIATE``.
* PostgreSQL: a connect timeout (an unreachable server fails in seconds),
  reads in autocommit (one round trip, retried once on a dropped
  connection), writes in READ COMMITTED transactions; the hottest read and
  the create also on asyncpg directly (`rucat.store.sql.hot`).

Descriptions name the database for messages and never hold a password.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    QueuePool,
    String,
    column,
    create_engine,
    event,
    inspect,
    select,
    table,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from rucat.config import PostgresConfig, SqliteConfig
from rucat.domain.errors import ConfigError, StoreUnavailable
from rucat.store.changes import ListenConnector
from rucat.store.sql.hot import PostgresHotPath
from rucat.store.sql.schema import SCHEMA_REVISION, VERSION_TABLE

log = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: How long a SQLite writer waits for another process's write lock.
SQLITE_BUSY_TIMEOUT_SECS = 30.0
#: Threads (and connections) running one SQLite store's operations.
SQLITE_WORKERS = 8
#: How long opening a PostgreSQL connection may take before it is an error.
POSTGRES_CONNECT_TIMEOUT_SECS = 5.0
#: How long one PostgreSQL statement may take before it is an error.
POSTGRES_COMMAND_TIMEOUT_SECS = 60.0
#: PostgreSQL connections kept open per store, and how many more a burst may open.
#: Sized for a monitor's default concurrency (32 platform actions at once):
#: connections beyond the pool are opened and closed per use, which is slow.
POSTGRES_POOL_SIZE = 16
POSTGRES_MAX_OVERFLOW = 16
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
        _make_private_dir(path.parent)
    except OSError as e:
        raise StoreUnavailable(
            f"SQLite database {path}: cannot create folder {path.parent}: {e.strerror or e}"
        ) from e
    try:
        _make_private_database(path)
    except OSError as e:
        raise StoreUnavailable(f"SQLite database {path}: {e.strerror or e}") from e
    return path


def _make_private_dir(path: Path) -> None:
    """Create `path` and its missing parents 0700, whatever the umask."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
            os.chmod(folder, 0o700)
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))


def _make_private_database(path: Path) -> None:
    """The database file exists and is 0600, and so are its WAL and SHM files.

    It holds every engine's token. SQLite creates the -wal, -shm and -journal
    files with the database file's own mode (not the umask), so creating that
    file 0600 before SQLite opens it keeps them all private. Files an older
    Rucat left wider are tightened, and each change is logged.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    os.close(fd)
    for name in (path, *(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm", "-journal"))):
        try:
            mode = stat.S_IMODE(os.lstat(name).st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(name, mode & 0o600)
            log.warning("made %s private: mode %o -> %o", name, mode, mode & 0o600)


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


def schema_is_current(conn: Connection) -> bool:
    """Whether the database is already at `SCHEMA_REVISION` (then Alembic is not needed)."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return False
    versions = conn.scalars(select(column("version_num", String)).select_from(table(VERSION_TABLE)))
    return list(versions) == [SCHEMA_REVISION]


def migrate(conn: Connection) -> None:
    """Inside a write transaction: upgrade the schema to Alembic's head."""
    if conn.dialect.name == "postgresql":
        # Two processes opening one fresh database migrate it once.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    upgrade_to_head(conn)


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


def _call(
    conn: Connection, fn: Callable[[Connection], T], write_options: Mapping[str, Any] | None
) -> T:
    """Run `fn` on `conn`: in one transaction if `write_options` is given."""
    if write_options is None:
        return fn(conn)
    conn = conn.execution_options(**write_options)
    with conn.begin():
        return fn(conn)


class Runner(Protocol):
    """Runs a synchronous database function without blocking the event loop."""

    async def run(self, fn: Callable[[Connection], T], *, write: bool) -> T: ...

    async def dispose(self) -> None: ...


class ThreadRunner:
    """SQLite: the whole function in one worker thread on a pysqlite connection.

    One thread hop per operation instead of one per driver call (aiosqlite),
    which is what a SQLite operation costs most under load.
    """

    def __init__(self, engine: Engine, write_options: Mapping[str, Any], workers: int) -> None:
        self._engine = engine
        self._write_options = dict(write_options)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="rucat-sqlite")

    async def run(self, fn: Callable[[Connection], T], *, write: bool) -> T:
        options = self._write_options if write else None
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._run, fn, options
        )

    def _run(self, fn: Callable[[Connection], T], options: Mapping[str, Any] | None) -> T:
        with self._engine.connect() as conn:
            return _call(conn, fn, options)

    async def dispose(self) -> None:
        def shut() -> None:
            self._executor.shutdown(wait=True)
            self._engine.dispose()

        await asyncio.to_thread(shut)


class GreenletRunner:
    """PostgreSQL: the function runs on asyncpg through SQLAlchemy's greenlet bridge.

    Pooled connections are not pinged before use (that would double the round
    trips of a read), but one asyncpg already saw closed is replaced at
    checkout. A connection the server dropped (restart, failover,
    idle timeout) fails on first use, and SQLAlchemy then discards every
    pooled connection: a read is retried once on a fresh one, a write raises
    (StoreUnavailable, retryable) because whether it committed is unknown.
    """

    def __init__(self, engine: AsyncEngine, write_options: Mapping[str, Any]) -> None:
        self._engine = engine
        self._write_options = dict(write_options)

    async def run(self, fn: Callable[[Connection], T], *, write: bool) -> T:
        options = self._write_options if write else None
        try:
            return await self._run(fn, options)
        except DBAPIError as e:
            if write or not e.connection_invalidated:
                raise
        return await self._run(fn, options)

    async def _run(self, fn: Callable[[Connection], T], options: Mapping[str, Any] | None) -> T:
        async with self._engine.connect() as conn:
            return await conn.run_sync(_call, fn, options)

    async def dispose(self) -> None:
        await self._engine.dispose()


def _discard_closed_connection(_dbapi: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    """Pool checkout: a connection asyncpg already knows is closed (the server
    dropped it) is replaced before use, at no round trip; SQLAlchemy then
    checks out another."""
    if record.driver_connection is not None and record.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection")


@dataclass(frozen=True)
class SqlDatabase:
    """A database and how the store must use it."""

    runner: Runner
    #: Names the database in messages; never contains a password.
    description: str
    #: Queue this process's writes on one lock (SQLite has one writer anyway).
    serialise_writes: bool
    #: Opens a raw connection for LISTEN (PostgreSQL only).
    listen: ListenConnector | None = None
    #: The hot statements on asyncpg directly (PostgreSQL only).
    hot: PostgresHotPath | None = None


def sqlite_engine(config: SqliteConfig) -> SqlDatabase:
    """A SQLite database on `config.path`, its folder created (blocking: run in a thread)."""
    path = _prepare_sqlite_path(config.path)
    engine = create_engine(
        URL.create("sqlite+pysqlite", database=str(path)),
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECS, "check_same_thread": False},
        poolclass=QueuePool,
        # One connection per worker thread: a worker never waits for the pool.
        pool_size=SQLITE_WORKERS,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT_SECS,
        hide_parameters=True,
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return SqlDatabase(
        runner=ThreadRunner(engine, {_WRITE_OPTION: True}, SQLITE_WORKERS),
        description=f"SQLite database {path}",
        serialise_writes=True,
    )


def postgres_engine(config: PostgresConfig) -> SqlDatabase:
    """A PostgreSQL database on `config.uri` (connects lazily)."""
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
        pool_size=POSTGRES_POOL_SIZE,
        max_overflow=POSTGRES_MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_SECS,
        # Reads are single statements and need no BEGIN/ROLLBACK round
        # trips; writes switch to READ COMMITTED transactions.
        isolation_level="AUTOCOMMIT",
        hide_parameters=True,
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed_connection)
    return SqlDatabase(
        runner=GreenletRunner(engine, {"isolation_level": "READ COMMITTED"}),
        description=(
            f"PostgreSQL database {url.database or '(default)'!r} at "
            f"{url.host or 'localhost'}:{url.port or 5432}"
        ),
        serialise_writes=False,
        listen=listen,
        # Without closing: no I/O on connections that are most likely dead.
        hot=PostgresHotPath(dsn, connect_args, on_dropped=lambda: engine.dispose(close=False)),
    )
