"""Personal access tokens: long-lived bearer credentials that act as their user.

A token is ``rucat_`` followed by 43 random URL-safe characters (256 bits).
Only its SHA-256 is stored: for a secret that random, a fast hash is as good
as a slow one, and it lets a request find its token with one indexed lookup.
The token remembers who its user was when it was made (name, groups, admin),
because a provider such as OIDC cannot be asked again later. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rucat.domain.errors import InvalidRequest
from rucat.domain.principal import Principal
from rucat.domain.text import check_label

#: Every token starts with this, so a bearer value is recognisable as one.
TOKEN_PREFIX = "rucat_"  # noqa: S105 (a prefix, not a secret)
#: Longest token name.
MAX_TOKEN_NAME_LENGTH = 100
#: Longest lifetime a token may be given (about ten years).
MAX_EXPIRES_IN_DAYS = 3650


@dataclass(frozen=True)
class AccessToken:
    """A stored token: everything but the secret itself."""

    id: str
    name: str
    owner: str
    secret_hash: str
    create_time: datetime
    expire_time: datetime
    groups: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False

    def principal(self) -> Principal:
        """Who a request carrying this token is."""
        return Principal(name=self.owner, groups=self.groups, admin=self.admin)

    def expired(self, now: datetime) -> bool:
        return now >= self.expire_time


def hash_secret(secret: str) -> str:
    """The stored form of a token (hex SHA-256 of its text)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_token(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX)


def check_token_request(name: str, expires_in_days: int) -> str:
    """The token name to store; raises InvalidRequest naming what is wrong."""
    stripped = name.strip()
    if not stripped:
        raise InvalidRequest("name: must not be empty")
    if len(stripped) > MAX_TOKEN_NAME_LENGTH:
        raise InvalidRequest(f"name: longer than {MAX_TOKEN_NAME_LENGTH} characters")
    check_label("name", stripped)
    if isinstance(expires_in_days, bool) or not 1 <= expires_in_days <= MAX_EXPIRES_IN_DAYS:
        raise InvalidRequest(
            f"expires_in_days: must be between 1 and {MAX_EXPIRES_IN_DAYS}, got {expires_in_days}"
        )
    return stripped


def new_token(
    principal: Principal, *, name: str, expires_in_days: int, now: datetime
) -> tuple[AccessToken, str]:
    """A new token for `principal` and its secret (shown once, never stored)."""
    checked = check_token_request(name, expires_in_days)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = AccessToken(
        id="tok" + secrets.token_hex(8),
        name=checked,
        owner=principal.name,
        groups=principal.groups,
        admin=principal.admin,
        secret_hash=hash_secret(secret),
        create_time=now,
        expire_time=now + timedelta(days=expires_in_days),
    )
    return token, secret
