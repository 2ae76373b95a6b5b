"""The seed's static provider: one admin principal with fixed credentials.

Credentials are compared in constant time on bytes, and both the user name and
the password are always compared (no early exit that would tell which one was
wrong). The principal is named after `username`, or `admin` when only a
bearer token is configured.
"""

from __future__ import annotations

import hmac

from rucat.config import StaticAuthConfig
from rucat.domain.errors import Unauthenticated
from rucat.domain.principal import Principal
from rucat.server.auth.basic import split_basic

#: One message for every refusal, so it never tells which part was wrong.
_REFUSED = "invalid credentials: wrong user name, password or token"

#: Name of the static principal when the config names no user.
DEFAULT_ADMIN_NAME = "admin"


class StaticProvider:
    def __init__(self, config: StaticAuthConfig) -> None:
        self._username = config.username.encode() if config.username is not None else None
        self._password = (
            config.password.get_secret_value().encode() if config.password is not None else None
        )
        self._bearer = (
            config.bearer_token.get_secret_value().encode()
            if config.bearer_token is not None
            else None
        )
        self.principal = Principal(name=config.username or DEFAULT_ADMIN_NAME, admin=True)
        offered = (("basic", self._password), ("bearer", self._bearer))
        self.schemes = tuple(name for name, secret in offered if secret is not None)
        self.description = (
            "The server's static credentials: "
            + " or ".join(
                {"basic": "HTTP Basic (user name and password)", "bearer": "a Bearer token"}[s]
                for s in self.schemes
            )
            + f", acting as the admin {self.principal.name!r}."
        )

    async def authenticate(self, *, scheme: str, credentials: str) -> Principal:
        if scheme == "basic" and self._username is not None and self._password is not None:
            user, password = split_basic(credentials)
            # `&` (not `and`): both comparisons always run.
            user_ok = hmac.compare_digest(user, self._username)
            password_ok = hmac.compare_digest(password, self._password)
            if user_ok & password_ok:
                return self.principal
        elif (
            scheme == "bearer"
            and self._bearer is not None
            # Header values arrive as latin-1 text: encode back to the bytes sent.
            and hmac.compare_digest(credentials.encode("latin-1", "replace"), self._bearer)
        ):
            return self.principal
        raise Unauthenticated(_REFUSED)
