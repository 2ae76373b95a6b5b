"""The one Authenticator: an ``Authorization`` value in, a Principal out.

It parses the header once, hands the credentials to the provider that takes
its scheme, and answers Unauthenticated (401 / UNAUTHENTICATED) otherwise.
No auth provider configured: every caller is ANONYMOUS_ADMIN (the seed's open
mode). Personal access tokens work beside any provider. Nothing here logs: a
credential never reaches a log line.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from rucat.config import AuthProviderConfig
from rucat.domain.errors import Unauthenticated
from rucat.domain.principal import ANONYMOUS_ADMIN, Principal
from rucat.domain.token import AccessToken, hash_secret, looks_like_token
from rucat.server.auth.oidc import OidcProvider
from rucat.server.auth.static import StaticProvider
from rucat.server.auth.users import UsersProvider


class Provider(Protocol):
    """One way of checking credentials (static, users, OIDC)."""

    #: HTTP schemes it takes, lower case, in challenge order ("basic", "bearer").
    schemes: tuple[str, ...]
    #: What credentials to send, for people (the OpenAPI document).
    description: str

    async def authenticate(self, *, scheme: str, credentials: str) -> Principal:
        """The caller for these credentials; raises Unauthenticated (or a RetryableError
        when the provider cannot decide now, e.g. an identity provider is down)."""
        ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _provider(config: AuthProviderConfig, seconds: Callable[[], float]) -> Provider:
    if config.StaticAuthProviderConfig is not None:
        return StaticProvider(config.StaticAuthProviderConfig)
    if config.Users is not None:
        return UsersProvider(config.Users, clock=seconds)
    if config.Oidc is not None:
        return OidcProvider(config.Oidc, clock=seconds)
    raise AssertionError(f"unhandled auth provider {config.variant}")


class TokenLookup(Protocol):
    """Where personal access tokens are found (the EngineStore)."""

    async def find_token(self, *, secret_hash: str) -> AccessToken | None: ...


class Authenticator:
    """Checks an ``Authorization`` value against the configured provider.

    With `tokens` (the store), a bearer value that looks like a personal access
    token (``rucat_...``) is looked up by its hash first, whatever the provider;
    it is never cached, so a revoked or expired token fails on its next use.
    """

    def __init__(
        self,
        config: AuthProviderConfig | None,
        *,
        tokens: TokenLookup | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """`clock` decides every expiry (tokens, cached passwords, key set refreshes)."""
        self._clock = clock
        seconds = self._seconds
        self._provider = _provider(config, seconds) if config is not None else None
        self._tokens = tokens if self._provider is not None else None
        offered = self._provider.schemes if self._provider is not None else ()
        #: Value of the WWW-Authenticate header sent with every 401: the provider's
        #: own schemes (as before tokens existed).
        self.challenge = ", ".join(
            'Basic realm="rucat"' if s == "basic" else s.capitalize() for s in offered
        )
        if self._tokens is not None and "bearer" not in offered:
            offered = (*offered, "bearer")
        #: HTTP auth schemes accepted ("basic", "bearer"; tokens are bearer), for
        #: the OpenAPI document.
        self.schemes: list[str] = list(offered)

    @property
    def description(self) -> str:
        """What credentials this server takes, in a few sentences (no secrets)."""
        if self._provider is None:
            return "No authentication: every caller is the admin `anonymous`."
        parts = [self._provider.description]
        if self._tokens is not None:
            parts.append(
                "Bearer: a personal access token (`rucat_...`, made with POST /tokens), "
                "acting as the user who made it."
            )
        return " ".join(parts)

    def _seconds(self) -> float:
        return self._clock().timestamp()

    @property
    def enabled(self) -> bool:
        """Whether credentials are required at all (False: open mode)."""
        return self._provider is not None

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller; raises Unauthenticated when the credentials are missing or wrong."""
        provider = self._provider
        if provider is None:
            return ANONYMOUS_ADMIN
        if not authorization:
            raise Unauthenticated(f"authentication required: send {self._offer()} credentials")
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and self._tokens is not None and looks_like_token(value):
            token = await self._tokens.find_token(secret_hash=hash_secret(value))
            if token is not None:
                if token.expired(self._clock()):
                    raise Unauthenticated("invalid token: expired")
                return token.principal()
            if "bearer" not in provider.schemes:
                raise Unauthenticated("invalid token: unknown or revoked")
        if scheme in provider.schemes:
            return await provider.authenticate(scheme=scheme, credentials=value)
        if scheme == "bearer" and self._tokens is not None:
            raise Unauthenticated("invalid token: not a personal access token")
        raise Unauthenticated(f"unsupported authentication scheme; use {self.challenge}")

    def _offer(self) -> str:
        return " or ".join("HTTP Basic" if s == "basic" else s.capitalize() for s in self.schemes)
