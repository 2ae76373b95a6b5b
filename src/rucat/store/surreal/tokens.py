"""Personal access tokens on SurrealDB: the token half of SurrealEngineStore.

`rucat_token:<id>` holds one token: its SHA-256 (unique index), never its
secret, and the principal it acts as. A token is written once and deleted
once, so plain CREATE and DELETE need no compare-and-set.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Any

from surrealdb import RecordID

from rucat.domain.errors import StoreConflict, StoreUnavailable, TokenNotFound
from rucat.domain.token import AccessToken
from rucat.store.surreal.connection import QueryFailed, SurrealConnection
from rucat.store.surreal.records import as_rows, stored_time

TABLES_OF_TOKENS = """
DEFINE TABLE IF NOT EXISTS rucat_token SCHEMAFULL;
DEFINE FIELD OVERWRITE tid ON rucat_token TYPE string;
DEFINE FIELD OVERWRITE name ON rucat_token TYPE string;
DEFINE FIELD OVERWRITE owner ON rucat_token TYPE string;
DEFINE FIELD OVERWRITE groups ON rucat_token TYPE array<string>;
DEFINE FIELD OVERWRITE admin ON rucat_token TYPE bool;
DEFINE FIELD OVERWRITE secret_hash ON rucat_token TYPE string;
DEFINE FIELD OVERWRITE create_time ON rucat_token TYPE datetime;
DEFINE FIELD OVERWRITE expire_time ON rucat_token TYPE datetime;
DEFINE INDEX IF NOT EXISTS rucat_token_secret ON rucat_token FIELDS secret_hash UNIQUE;
DEFINE INDEX IF NOT EXISTS rucat_token_owner ON rucat_token FIELDS owner, create_time;
"""

_LIST_ALL = "SELECT * FROM rucat_token ORDER BY create_time ASC, tid ASC;"
_LIST_OWNED = "SELECT * FROM rucat_token WHERE owner = $owner ORDER BY create_time ASC, tid ASC;"


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _doc(token: AccessToken) -> dict[str, Any]:
    return {
        "tid": token.id,
        "name": token.name,
        "owner": token.owner,
        "groups": sorted(token.groups),
        "admin": token.admin,
        "secret_hash": token.secret_hash,
        "create_time": _utc(token.create_time),
        "expire_time": _utc(token.expire_time),
    }


def _token(doc: Any) -> AccessToken:
    try:
        return AccessToken(
            id=str(doc["tid"]),
            name=str(doc["name"]),
            owner=str(doc["owner"]),
            groups=frozenset(str(g) for g in doc.get("groups") or ()),
            admin=bool(doc["admin"]),
            secret_hash=str(doc["secret_hash"]),
            create_time=stored_time(doc["create_time"]),
            expire_time=stored_time(doc["expire_time"]),
        )
    except (KeyError, TypeError, AttributeError) as e:
        raise StoreUnavailable(f"SurrealDB holds a malformed token record: {e!r}") from e


class SurrealTokens:
    """Token methods of the EngineStore Protocol; SurrealEngineStore supplies `_db`."""

    _db: SurrealConnection

    async def add_token(self, *, token: AccessToken) -> None:
        try:
            await self._db.run(
                "CREATE $rid CONTENT $doc RETURN NONE;",
                {"rid": RecordID("rucat_token", token.id), "doc": _doc(token)},
                write=True,
            )
        except QueryFailed as e:
            # The record id, or the unique index on the hash, is taken.
            if "already exists" in e.text or "already contains" in e.text:
                raise StoreConflict(f"token {token.id} already exists", current=None) from e
            raise

    async def get_token(self, *, token_id: str) -> AccessToken:
        rid = RecordID("rucat_token", token_id)
        (rows,) = await self._db.run("SELECT * FROM $rid;", {"rid": rid})
        found = as_rows(rows)
        if not found:
            raise TokenNotFound(token_id)
        return _token(found[0])

    async def find_token(self, *, secret_hash: str) -> AccessToken | None:
        (rows,) = await self._db.run(
            "SELECT * FROM rucat_token WHERE secret_hash = $hash LIMIT 1;", {"hash": secret_hash}
        )
        found = as_rows(rows)
        return _token(found[0]) if found else None

    async def list_tokens(self, *, owner: str | None = None) -> builtins.list[AccessToken]:
        if owner is None:
            (rows,) = await self._db.run(_LIST_ALL)
        else:
            (rows,) = await self._db.run(_LIST_OWNED, {"owner": owner})
        return [_token(row) for row in as_rows(rows)]

    async def remove_token(self, *, token_id: str) -> None:
        (gone,) = await self._db.run(
            "DELETE $rid RETURN BEFORE;", {"rid": RecordID("rucat_token", token_id)}, write=True
        )
        if not as_rows(gone):
            raise TokenNotFound(token_id)
