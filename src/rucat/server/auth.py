"""Who is calling: the seed's static auth provider (HTTP Basic and/or Bearer).

Credentials are compared in constant time on bytes, and both the user name and
the password are always compared (no early exit that would tell which one was
wrong). Nothing here logs: a credential never reaches a log line.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from fastapi import Request

from rucat.config import AuthProviderConfig
from rucat.domain.errors import Unauthenticated
from rucat.domain.principal import ANONYMOUS_ADMIN, Principal

#: Actor recorded on writes when the server is open (no auth configured).
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class _Basic:
    username: bytes
    password: bytes


class Authenticator:
    """Checks an ``Authorization`` header against the configured credentials."""

    def __init__(self, config: AuthProviderConfig | None) -> None:
        static = config.StaticAuthProviderConfig if config is not None else None
        self._basic: _Basic | None = None
        self._bearer: bytes | None = None
        if static is not None:
            if static.username is not None and static.password is not None:
                self._basic = _Basic(
                    static.username.encode(), static.password.get_secret_value().encode()
                )
            if static.bearer_token is not None:
                self._bearer = static.bearer_token.get_secret_value().encode()
        schemes = []
        if self._basic is not None:
            schemes.append('Basic realm="rucat"')
        if self._bearer is not None:
            schemes.append("Bearer")
        #: Value of the WWW-Authenticate header sent with every 401.
        self.challenge = ", ".join(schemes)

    @property
    def enabled(self) -> bool:
        return self._basic is not None or self._bearer is not None

    @property
    def schemes(self) -> list[str]:
        """HTTP auth schemes accepted ("basic", "bearer"), for the OpenAPI document."""
        offered = (("basic", self._basic), ("bearer", self._bearer))
        return [name for name, credential in offered if credential is not None]

    def authenticate(self, authorization: str | None) -> str:
        """The caller's actor name (recorded on writes); raises Unauthenticated."""
        if not self.enabled:
            return ANONYMOUS
        if not authorization:
            raise Unauthenticated("authentication required: send HTTP Basic or Bearer credentials")
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "basic" and self._basic is not None:
            username = self._check_basic(value, self._basic)
            return f"user:{username}"
        if scheme == "bearer" and self._bearer is not None:
            # Header values arrive as latin-1 text: encode back to the bytes sent.
            if hmac.compare_digest(value.encode("latin-1", "replace"), self._bearer):
                return "bearer"
            raise Unauthenticated("invalid credentials")
        raise Unauthenticated(f"unsupported authentication scheme; use {self.challenge}")

    @staticmethod
    def _check_basic(value: str, expected: _Basic) -> str:
        try:
            decoded = base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as e:
            raise Unauthenticated("malformed Basic credentials") from e
        user, sep, password = decoded.partition(b":")
        if not sep:
            raise Unauthenticated("malformed Basic credentials")
        # `&` (not `and`): both comparisons always run.
        user_ok = hmac.compare_digest(user, expected.username)
        password_ok = hmac.compare_digest(password, expected.password)
        if not (user_ok & password_ok):
            raise Unauthenticated("invalid credentials")
        return user.decode("utf-8", errors="replace")


def principal_of(request: Request) -> Principal:
    """FastAPI dependency: the principal the middleware authenticated for this request."""
    principal = getattr(request.state, "principal", None)
    return principal if isinstance(principal, Principal) else ANONYMOUS_ADMIN
