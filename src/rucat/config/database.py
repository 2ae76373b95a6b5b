"""The `database` section: which store holds the engines (SQLite, PostgreSQL or
SurrealDB) and how to reach it."""

from __future__ import annotations

from pydantic import Field, SecretStr

from rucat.config.base import OneOf, Strict


class SurrealCredentials(Strict):
    username: str = Field("root", description="SurrealDB user.")
    password: SecretStr = Field(SecretStr("root"), description="SurrealDB password.")


class SurrealConfig(Strict):
    credentials: SurrealCredentials | None = Field(
        None, description="Sign-in for a remote server; not needed for mem:// or surrealkv://."
    )
    uri: str = Field(
        "mem://",
        description="host:port (WebSocket), ws://, wss://, http://, https://, mem:// "
        "or surrealkv://PATH.",
    )
    namespace: str = Field("rucat", description="SurrealDB namespace.")
    database: str = Field("rucat", description="SurrealDB database.")


class SqliteConfig(Strict):
    path: str = Field(
        ".rucat/rucat.db",
        description="Database file; created with its parent folder if missing. WAL mode, so a "
        "server and monitors in other processes can share it.",
    )


class PostgresConfig(Strict):
    uri: SecretStr = Field(
        SecretStr("postgresql://localhost/rucat"),
        description="postgresql://user:password@host:port/db",
    )


class DatabaseConfig(OneOf):
    Surreal: SurrealConfig | None = Field(None, description="SurrealDB (the seed's database).")
    Sqlite: SqliteConfig | None = Field(None, description="SQLite file (the default).")
    Postgres: PostgresConfig | None = Field(
        None, description="PostgreSQL: several servers and monitors."
    )
