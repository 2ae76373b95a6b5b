"""An ephemeral PostgreSQL server for tests, from the installed binaries.

`initdb` into a fresh temporary folder, `postgres` on a free 127.0.0.1 port
with its own unix socket folder, stopped and deleted at the end of the
session. initdb refuses to run as root, so as root the binaries run as the
`postgres` system user (Debian's package creates it).

TCP logins need a password (scram-sha-256), so tests can check what happens
with a wrong one; the URIs handed out carry the right one.

Fixtures: `postgres_server` (session), `postgres_uri` (session: one database),
`postgres_database_uri` (a fresh, empty database per test).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from tests.support import free_port, require, require_postgres

SUPERUSER = "postgres"
PASSWORD = "rucat-test-" + secrets.token_hex(8)


def _run_as() -> dict[str, Any]:
    """subprocess arguments that drop root to the `postgres` user (none if not root)."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        require(False, "running as root needs a 'postgres' system user: apt-get install postgresql")
        raise AssertionError("unreachable") from None
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


class _ExitedAtStart(RuntimeError):
    pass


@dataclass
class PostgresServer:
    """A running throwaway server; `uri(db)` gives a postgresql:// URI."""

    bin_dir: str
    base_dir: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    _databases: int = field(default=0)

    @property
    def data_dir(self) -> str:
        return os.path.join(self.base_dir, "data")

    @property
    def socket_dir(self) -> str:
        return os.path.join(self.base_dir, "sock")

    @property
    def log_file(self) -> str:
        return os.path.join(self.base_dir, "postgres.log")

    def uri(self, database: str, *, password: str = PASSWORD) -> str:
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"

    def _bin(self, name: str) -> str:
        return os.path.join(self.bin_dir, name)

    def start(self) -> None:
        run_as = _run_as()
        os.makedirs(self.socket_dir)
        pwfile = os.path.join(self.base_dir, "pwfile")
        with open(pwfile, "w", encoding="utf-8") as f:
            f.write(PASSWORD + "\n")
        if run_as:
            for path in (self.base_dir, self.socket_dir, pwfile):
                os.chown(path, run_as["user"], run_as["group"])
        initdb = subprocess.run(
            [
                self._bin("initdb"),
                "--pgdata",
                self.data_dir,
                "--username",
                SUPERUSER,
                "--pwfile",
                pwfile,
                "--auth-local",
                "trust",
                "--auth-host",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--no-sync",
            ],
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            **run_as,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{initdb.stdout.decode(errors='replace')}")
        os.unlink(pwfile)
        # The free port may be taken by someone else before postgres binds it:
        # try a few.
        for attempt in range(3):
            if attempt:
                self.port = free_port()
            self._launch(run_as)
            try:
                self._wait_ready()
                return
            except _ExitedAtStart:
                if attempt == 2:
                    raise

    def _launch(self, run_as: dict[str, Any]) -> None:
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the server process
        if run_as:
            os.chown(self.log_file, run_as["user"], run_as["group"])
        self.process = subprocess.Popen(
            [
                self._bin("postgres"),
                "-D",
                self.data_dir,
                "-p",
                str(self.port),
                "-k",
                self.socket_dir,
                "-c",
                "listen_addresses=127.0.0.1",
                # A throwaway server: durability buys nothing, speed does.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            **run_as,
        )
        log.close()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise _ExitedAtStart(f"postgres exited at start:\n{self._log_tail()}")
            ready = subprocess.run(
                [self._bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                check=False,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres not ready after {timeout}s:\n{self._log_tail()}")
            time.sleep(0.1)

    def _log_tail(self) -> str:
        try:
            with open(self.log_file, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-30:])
        except OSError:
            return "(no log)"

    async def create_database(self) -> str:
        """A fresh, empty database; returns its URI."""
        self._databases += 1
        name = f"rucat_test_{self._databases}_{secrets.token_hex(4)}"
        conn = await asyncpg.connect(self.uri("postgres"), timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.uri(name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # SIGINT: PostgreSQL's "fast" shutdown (rolls back, disconnects).
            self.process.send_signal(2)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.base_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = require_postgres()
    _run_as()  # skips (or fails under CI) before anything is created
    base_dir = tempfile.mkdtemp(prefix="rucat-pg-")
    server = PostgresServer(bin_dir=bin_dir, base_dir=base_dir, port=free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_uri(postgres_server: PostgresServer) -> str:
    """One database shared by the whole session."""
    conn_uri = postgres_server.uri("postgres")

    async def create() -> None:
        conn = await asyncpg.connect(conn_uri, timeout=10)
        try:
            await conn.execute('CREATE DATABASE "rucat"')
        finally:
            await conn.close()

    asyncio.run(create())
    return postgres_server.uri("rucat")


@pytest.fixture
async def postgres_database_uri(postgres_server: PostgresServer) -> str:
    """A fresh, empty database for this test."""
    return await postgres_server.create_database()
