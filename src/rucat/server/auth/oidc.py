"""The OIDC provider: Bearer JWTs signed by an identity provider's published keys.

Validation is PyJWT's; the decisions around it are ours:

- Only asymmetric algorithms, and only those the key itself allows (its
  ``alg``, else its ``kty``/``crv``): never ``none``, never HS256 keyed with a
  public key, never an RSA key used as an EC one.
- ``iss``, ``aud`` and ``exp`` are required and checked; ``nbf`` is honoured;
  a small leeway absorbs clock skew.
- The key set (JWKS) is fetched with httpx and kept. A token naming an unknown
  ``kid`` refetches it, at most once per `jwks_refresh_secs` (so a rotated key
  works without a restart, and junk kids cannot make us hammer the identity
  provider); a key set older than JWKS_MAX_AGE_SECS is refreshed on use and
  kept if the refresh fails (so removed keys stop working eventually).
- When the key set cannot be fetched and no key decides, the answer is
  IdentityProviderUnavailable (retryable: 503, UNAVAILABLE on gRPC), never
  401: the token may well be good.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt

from rucat.config import OidcAuthConfig
from rucat.domain.errors import IdentityProviderUnavailable, Unauthenticated
from rucat.domain.principal import Principal

log = logging.getLogger("rucat.server.auth")

_RSA = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
#: Every algorithm a token may use: asymmetric signatures only.
ASYMMETRIC = _RSA | frozenset(_EC_BY_CURVE.values()) | {"EdDSA"}

#: A key set older than this is refetched when used (kept if that fails).
JWKS_MAX_AGE_SECS = 3600.0
#: Largest key set accepted, in bytes.
MAX_JWKS_BYTES = 1 << 20


def _algorithms_of(jwk: Mapping[str, Any]) -> frozenset[str]:
    """The algorithms a published key may verify (none for symmetric or unknown keys)."""
    if jwk.get("use") not in (None, "sig"):
        return frozenset()
    kty = jwk.get("kty")
    if kty == "RSA":
        allowed = _RSA
    elif kty == "EC":
        curve = _EC_BY_CURVE.get(str(jwk.get("crv")))
        allowed = frozenset({curve}) if curve else frozenset()
    elif kty == "OKP" and jwk.get("crv") == "Ed25519":
        allowed = frozenset({"EdDSA"})
    else:  # "oct" (a shared secret) and anything unknown
        return frozenset()
    declared = jwk.get("alg")
    if declared is not None:
        return allowed & {declared}
    return allowed


class OidcProvider:
    schemes: tuple[str, ...] = ("bearer",)

    def __init__(
        self,
        config: OidcAuthConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = config
        self.description = (
            f"Bearer: a JWT (access or ID token) from the identity provider {config.issuer}, "
            f"for the audience {config.audience!r}."
        )
        self._clock = clock
        self._transport = transport
        self._admin_groups = frozenset(config.admin_groups)
        #: kid ("" for a key without one) -> the published key.
        self._keys: dict[str, dict[str, Any]] = {}
        self._prepared: dict[tuple[str, str], Any] = {}
        self._fetched_at: float | None = None
        self._tried_at: float | None = None
        self._fetching = asyncio.Lock()
        #: Key set fetches attempted since start.
        self.fetches = 0

    async def authenticate(self, *, scheme: str, credentials: str) -> Principal:
        try:
            header = jwt.get_unverified_header(credentials)
        except jwt.PyJWTError as e:
            raise Unauthenticated("invalid token: not a JWT") from e
        alg = header.get("alg")
        if alg not in ASYMMETRIC:
            raise Unauthenticated(f"invalid token: algorithm {str(alg)[:20]!r} is not accepted")
        kid = header.get("kid")
        kid = kid if isinstance(kid, str) else ""
        key = await self._key(kid, alg)
        try:
            claims = jwt.decode(
                credentials,
                key=key,
                algorithms=[alg],
                audience=self._config.audience,
                issuer=self._config.issuer,
                leeway=self._config.leeway_secs,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as e:
            raise Unauthenticated("invalid token: expired") from e
        except jwt.ImmatureSignatureError as e:
            raise Unauthenticated("invalid token: not valid yet (nbf)") from e
        except jwt.InvalidIssuerError as e:
            raise Unauthenticated("invalid token: wrong issuer") from e
        except jwt.InvalidAudienceError as e:
            raise Unauthenticated("invalid token: wrong audience") from e
        except jwt.MissingRequiredClaimError as e:
            raise Unauthenticated(f"invalid token: no {e.claim!r} claim") from e
        except jwt.InvalidSignatureError as e:
            raise Unauthenticated("invalid token: bad signature") from e
        except jwt.PyJWTError as e:
            raise Unauthenticated("invalid token") from e
        return self._principal(claims)

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        name = claims.get(self._config.username_claim)
        if not isinstance(name, str) or not name or len(name) > 256:
            raise Unauthenticated(f"invalid token: no {self._config.username_claim!r} claim")
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise Unauthenticated("invalid token: control characters in the user name")
        raw = claims.get(self._config.groups_claim) or []
        groups: frozenset[str] = frozenset()
        if isinstance(raw, list):
            groups = frozenset(g for g in raw if isinstance(g, str))
        return Principal(name=name, groups=groups, admin=bool(self._admin_groups & groups))

    # --- the key set ----------------------------------------------------------

    async def _key(self, kid: str, alg: str) -> Any:
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at > JWKS_MAX_AGE_SECS
        if kid not in self._keys or stale:
            await self._refresh(now, required=kid not in self._keys)
        jwk = self._keys.get(kid)
        if jwk is None:
            raise Unauthenticated("invalid token: unknown signing key")
        if alg not in _algorithms_of(jwk):
            raise Unauthenticated(f"invalid token: algorithm {alg} does not fit its key")
        prepared = self._prepared.get((kid, alg))
        if prepared is None:
            try:
                prepared = jwt.PyJWK(jwk, algorithm=alg).key
            except jwt.PyJWTError as e:
                raise Unauthenticated("invalid token: its signing key is unusable") from e
            self._prepared[(kid, alg)] = prepared
        return prepared

    async def _refresh(self, now: float, *, required: bool) -> None:
        """Refetch the key set, at most once per jwks_refresh_secs.

        `required`: no known key can decide, so a failed fetch is an outage
        (IdentityProviderUnavailable) rather than a reason to keep the old set.
        """
        async with self._fetching:
            if self._tried_at is not None and now - self._tried_at < self._config.jwks_refresh_secs:
                if required and self._fetched_at is None:
                    raise IdentityProviderUnavailable(
                        "the identity provider's key set (jwks_uri) is unavailable"
                    )
                return  # another request refetched meanwhile, or too soon to ask again
            self._tried_at = now
            self.fetches += 1
            try:
                keys = await self._fetch()
            except IdentityProviderUnavailable:
                if required:
                    raise
                log.warning("keeping the old key set: %s", self._config.jwks_uri)
                return
            self._keys = keys
            self._prepared = {}
            self._fetched_at = now

    async def _fetch(self) -> dict[str, dict[str, Any]]:
        uri = self._config.jwks_uri
        try:
            async with httpx.AsyncClient(
                timeout=self._config.jwks_timeout_secs, transport=self._transport
            ) as client:
                response = await client.get(uri, headers={"Accept": "application/json"})
            response.raise_for_status()
            if len(response.content) > MAX_JWKS_BYTES:
                raise ValueError(f"larger than {MAX_JWKS_BYTES} bytes")
            document = response.json()
            published = document["keys"]
            if not isinstance(published, list):
                raise ValueError("'keys' is not a list")
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
            log.warning("cannot fetch the key set from %s: %s", uri, e)
            raise IdentityProviderUnavailable(
                f"the identity provider's key set (jwks_uri) is unavailable: {type(e).__name__}"
            ) from e
        keys: dict[str, dict[str, Any]] = {}
        for jwk in published:
            if isinstance(jwk, dict) and _algorithms_of(jwk):
                kid = jwk.get("kid")
                keys[kid if isinstance(kid, str) else ""] = jwk
        return keys
