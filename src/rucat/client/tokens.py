"""Personal access tokens as the SDK sees them: the calls and the answers' shapes.

Shared by the sync and async clients, like `_core`: each client method is
one of these calls sent, and its answer read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from rucat.client._core import Call, json_of
from rucat.client.errors import UnexpectedResponse
from rucat.client.models import parse_time

__all__ = ["CreatedToken", "TokenInfo"]


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never its secret."""

    id: str
    name: str
    owner: str | None
    create_time: datetime | None
    expire_time: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "create_time": self.create_time.isoformat() if self.create_time else None,
            "expire_time": self.expire_time.isoformat() if self.expire_time else None,
        }


@dataclass(frozen=True)
class CreatedToken:
    """A new token: `token` is the secret, shown only this once."""

    id: str
    name: str
    token: str
    create_time: datetime | None
    expire_time: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "token": self.token,
            "create_time": self.create_time.isoformat() if self.create_time else None,
            "expire_time": self.expire_time.isoformat() if self.expire_time else None,
        }

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"CreatedToken(id={self.id!r}, name={self.name!r}, token='***')"


def create_call(name: str, expires_in_days: int | None) -> Call:
    body: dict[str, Any] = {"name": name}
    if expires_in_days is not None:
        body["expires_in_days"] = expires_in_days
    return Call("POST", "/tokens", json=body)


def list_call(owner: str | None, everyone: bool) -> Call:
    params: dict[str, str | list[str]] = {}
    if owner is not None:
        params["owner"] = owner
    if everyone:
        params["all"] = "true"
    return Call("GET", "/tokens", params=params)


def revoke_call(token_id: str) -> Call:
    return Call("DELETE", f"/tokens/{quote(token_id, safe='')}")


def _field(body: Mapping[str, Any], key: str, what: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise UnexpectedResponse(f"{what}: field {key!r} missing or not a string")
    return value


def read_created(response: httpx.Response) -> CreatedToken:
    body = json_of(response)
    if not isinstance(body, Mapping):
        raise UnexpectedResponse("POST /tokens did not answer a JSON object")
    what = "new token"
    return CreatedToken(
        id=_field(body, "id", what),
        name=_field(body, "name", what),
        token=_field(body, "token", what),
        create_time=parse_time(body.get("create_time"), "create_time"),
        expire_time=parse_time(body.get("expire_time"), "expire_time"),
    )


def _info(body: object) -> TokenInfo:
    what = "token"
    if not isinstance(body, Mapping):
        raise UnexpectedResponse(f"{what} is not a JSON object: {body!r}")
    owner = body.get("owner")
    return TokenInfo(
        id=_field(body, "id", what),
        name=_field(body, "name", what),
        owner=owner if isinstance(owner, str) else None,
        create_time=parse_time(body.get("create_time"), "create_time"),
        expire_time=parse_time(body.get("expire_time"), "expire_time"),
    )


def read_list(response: httpx.Response) -> list[TokenInfo]:
    body = json_of(response)
    if not isinstance(body, list):
        raise UnexpectedResponse("GET /tokens did not answer a list")
    return [_info(item) for item in body]


def read_revoked(response: httpx.Response) -> TokenInfo:
    return _info(json_of(response))
