"""Personal access tokens on SQL: the token half of SqlEngineStore.

A mixin so the engine store's module stays about engines. Rows hold the
token's hash, never its secret. Every statement runs through the store's own
`_read`/`_write`, so failures convert exactly as for engines.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.engine import RowMapping

from rucat.domain.errors import TokenNotFound
from rucat.domain.token import AccessToken
from rucat.store.sql.schema import access_tokens, utc

T = TypeVar("T")


def token_to_row(token: AccessToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "owner": token.owner,
        "groups": json.dumps(sorted(token.groups), ensure_ascii=False),
        "admin": token.admin,
        "secret_hash": token.secret_hash,
        "create_time": utc(token.create_time, "create_time"),
        "expire_time": utc(token.expire_time, "expire_time"),
    }


def token_from_row(row: RowMapping | Mapping[str, Any]) -> AccessToken:
    return AccessToken(
        id=row["id"],
        name=row["name"],
        owner=row["owner"],
        groups=frozenset(str(g) for g in json.loads(row["groups"])),
        admin=bool(row["admin"]),
        secret_hash=row["secret_hash"],
        create_time=row["create_time"],
        expire_time=row["expire_time"],
    )


class SqlTokens:
    """Token methods of the EngineStore Protocol; SqlEngineStore supplies `_read`/`_write`."""

    async def _read(self, doing: str, fn: Callable[[Connection], T]) -> T:
        raise NotImplementedError

    async def _write(self, doing: str, fn: Callable[[Connection], T]) -> T:
        raise NotImplementedError

    async def add_token(self, *, token: AccessToken) -> None:
        row = token_to_row(token)
        await self._write(
            "add an access token", lambda conn: conn.execute(insert(access_tokens).values(row))
        )

    async def get_token(self, *, token_id: str) -> AccessToken:
        def get(conn: Connection) -> AccessToken | None:
            found = conn.execute(
                select(access_tokens).where(access_tokens.c.id == token_id)
            ).mappings()
            row = found.first()
            return None if row is None else token_from_row(row)

        token = await self._read("read an access token", get)
        if token is None:
            raise TokenNotFound(token_id)
        return token

    async def find_token(self, *, secret_hash: str) -> AccessToken | None:
        def find(conn: Connection) -> AccessToken | None:
            query = select(access_tokens).where(access_tokens.c.secret_hash == secret_hash)
            row = conn.execute(query).mappings().first()
            return None if row is None else token_from_row(row)

        return await self._read("look up an access token", find)

    async def list_tokens(self, *, owner: str | None = None) -> builtins.list[AccessToken]:
        query = select(access_tokens).order_by(access_tokens.c.create_time, access_tokens.c.id)
        if owner is not None:
            query = query.where(access_tokens.c.owner == owner)

        def page(conn: Connection) -> builtins.list[AccessToken]:
            return [token_from_row(row) for row in conn.execute(query).mappings()]

        return await self._read("list access tokens", page)

    async def remove_token(self, *, token_id: str) -> None:
        def remove(conn: Connection) -> int:
            result = conn.execute(delete(access_tokens).where(access_tokens.c.id == token_id))
            return int(result.rowcount or 0)

        if await self._write("revoke an access token", remove) == 0:
            raise TokenNotFound(token_id)
