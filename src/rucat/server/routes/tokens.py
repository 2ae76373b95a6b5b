"""The /tokens routes: personal access tokens, made and revoked by their user.

`POST /tokens` returns the secret once; only its SHA-256 is stored. Everyone
lists and revokes their own tokens. Admins may also list every user's tokens
(`GET /tokens?owner=NAME` for one user, `?all=true` for everyone) and revoke
any of them. Anyone else's token is, to a non-admin, a token that does not
exist (404), so ids cannot be probed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from rucat.domain.errors import InvalidRequest, PermissionDenied, TokenNotFound
from rucat.domain.principal import Principal
from rucat.domain.token import (
    MAX_EXPIRES_IN_DAYS,
    MAX_TOKEN_NAME_LENGTH,
    AccessToken,
    check_token_request,
    new_token,
)
from rucat.server.auth import principal_of
from rucat.store import EngineStore

#: What a token id looks like; anything else is an unknown token.
_TOKEN_ID = re.compile(r"^tok[0-9a-f]{16}$")
#: The authenticated caller, as a route parameter.
Caller = Annotated[Principal, Depends(principal_of)]
#: Lifetime of a token when the request names none.
DEFAULT_EXPIRES_IN_DAYS = 90


class CreateTokenBody(BaseModel):
    """Body of ``POST /tokens``."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"name": "laptop", "expires_in_days": 90}]},
    )

    name: StrictStr = Field(
        max_length=4 * MAX_TOKEN_NAME_LENGTH,
        description=f"A label for you, 1 to {MAX_TOKEN_NAME_LENGTH} characters.",
    )
    expires_in_days: StrictInt = Field(
        DEFAULT_EXPIRES_IN_DAYS,
        description=f"Days until the token stops working, 1 to {MAX_EXPIRES_IN_DAYS}.",
    )

    @field_validator("expires_in_days")
    @classmethod
    def _days(cls, value: int) -> int:
        if not 1 <= value <= MAX_EXPIRES_IN_DAYS:
            raise ValueError(f"must be between 1 and {MAX_EXPIRES_IN_DAYS}, got {value}")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return check_token_request(value, 1)
        except InvalidRequest as e:
            raise ValueError(e.message.removeprefix("name: ")) from e


class TokenOut(BaseModel):
    """A token as listed: never its secret."""

    id: str
    name: str
    owner: str = Field(description="The user the token acts as.")
    create_time: datetime
    expire_time: datetime

    @classmethod
    def of(cls, token: AccessToken) -> TokenOut:
        return cls(
            id=token.id,
            name=token.name,
            owner=token.owner,
            create_time=token.create_time,
            expire_time=token.expire_time,
        )


class CreatedTokenOut(BaseModel):
    """Answer of ``POST /tokens``: the only time the secret is shown."""

    id: str
    name: str
    token: str = Field(description="The secret: send it as 'Authorization: Bearer <token>'.")
    create_time: datetime
    expire_time: datetime


def token_router(
    *,
    store: EngineStore,
    clock: Callable[[], datetime],
    responses: dict[int | str, dict[str, Any]],
) -> APIRouter:
    router = APIRouter(tags=["tokens"], responses=responses)

    async def owned(token_id: str, caller: Principal) -> AccessToken:
        """The token if the caller may see it; otherwise exactly an unknown id's 404."""
        if not _TOKEN_ID.match(token_id):
            raise TokenNotFound(token_id[:64])
        token = await store.get_token(token_id=token_id)
        if token.owner != caller.name and not caller.admin:
            raise TokenNotFound(token_id)
        return token

    @router.post("/tokens", response_model=CreatedTokenOut)
    async def create_token(body: CreateTokenBody, caller: Caller) -> CreatedTokenOut:
        """Make a personal access token that acts as you, on REST and the proxy."""
        token, secret = new_token(
            caller, name=body.name, expires_in_days=body.expires_in_days, now=clock()
        )
        await store.add_token(token=token)
        return CreatedTokenOut(
            id=token.id,
            name=token.name,
            token=secret,
            create_time=token.create_time,
            expire_time=token.expire_time,
        )

    @router.get("/tokens", response_model=list[TokenOut])
    async def list_tokens(
        caller: Caller,
        owner: Annotated[
            str | None,
            Query(max_length=256, description="Admins: this user's tokens instead of yours."),
        ] = None,
        all: Annotated[bool, Query(description="Admins: every user's tokens.")] = False,
    ) -> list[TokenOut]:
        """Your tokens, oldest first (never their secrets)."""
        if (all or (owner is not None and owner != caller.name)) and not caller.admin:
            raise PermissionDenied("only admins may list other users' tokens")
        wanted = None if all else (owner if owner is not None else caller.name)
        return [TokenOut.of(t) for t in await store.list_tokens(owner=wanted)]

    @router.delete("/tokens/{token_id}", response_model=TokenOut)
    async def revoke_token(token_id: str, caller: Caller) -> TokenOut:
        """Revoke a token: it stops working at once."""
        token = await owned(token_id, caller)
        await store.remove_token(token_id=token.id)
        return TokenOut.of(token)

    return router
