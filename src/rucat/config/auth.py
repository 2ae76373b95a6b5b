"""The `auth_provider` section: which credentials the server accepts (static ones,
named users with argon2id hashes, or OpenID Connect bearer tokens)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator

from rucat.config.base import OneOf, Strict
from rucat.domain.text import describe_character, forbidden_character


class StaticAuthConfig(Strict):
    username: str | None = Field(None, description="User name for HTTP Basic auth.")
    password: SecretStr | None = Field(None, description="Password for HTTP Basic auth.")
    bearer_token: SecretStr | None = Field(
        None, description="Token accepted as 'Authorization: Bearer <token>' (REST and gRPC)."
    )

    @model_validator(mode="after")
    def _something_to_check(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be given together")
        if self.username is None and self.bearer_token is None:
            raise ValueError("give username and password, or bearer_token, or both")
        return self


#: Largest user or group name, and the characters a user name may not hold
#: (":" ends the user part of HTTP Basic; control characters forge log lines).
MAX_NAME_LENGTH = 128


def _check_name(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{what} {value!r} holds a control character")
    found = forbidden_character(value)
    if found is not None:  # C1 controls, format characters (look-alike names), separators
        raise ValueError(f"{what} {value!r} holds {describe_character(found[1])}")
    return value


class UserConfig(Strict):
    name: str = Field(description="User name (HTTP Basic); no ':' or control characters.")
    password_hash: str = Field(
        description="argon2id hash of the password, as printed by `rucat user hash-password`."
    )
    groups: list[str] = Field(default_factory=list, description="Groups the user belongs to.")
    admin: bool = Field(False, description="Admins see and manage every engine.")

    @model_validator(mode="after")
    def _valid(self) -> Self:
        _check_name(self.name, "user name")
        if ":" in self.name:
            raise ValueError(f"user name {self.name!r} holds ':' (HTTP Basic cannot send it)")
        for group in self.groups:
            _check_name(group, "group name")
        if not self.password_hash.startswith("$argon2id$"):
            raise ValueError(
                f"user {self.name!r}: password_hash must be an argon2id hash ($argon2id$...); "
                "make one with `rucat user hash-password`"
            )
        return self


class UsersAuthConfig(Strict):
    users: list[UserConfig] = Field(
        default_factory=list, description="The users and their argon2id password hashes."
    )
    cache_ttl_secs: float = Field(
        30.0,
        ge=0,
        description="How long a verified user name and password are remembered (as a keyed "
        "hash, never in clear), so argon2 runs once per client rather than per request. "
        "0: verify every request.",
    )
    cache_size: int = Field(1024, ge=1, description="Most remembered credentials.")

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        for user in self.users:
            if user.name in seen:
                raise ValueError(f"user {user.name!r} is listed twice")
            seen.add(user.name)
        return self


class OidcAuthConfig(Strict):
    issuer: str = Field("", description="Expected `iss` of tokens (the identity provider's URL).")
    audience: str = Field("", description="Expected `aud` of tokens (this server's client id).")
    jwks_uri: str = Field(
        "", description="URL of the identity provider's JSON Web Key Set (http or https)."
    )
    username_claim: str = Field("preferred_username", description="Claim naming the user.")
    groups_claim: str = Field("groups", description="Claim listing the user's groups.")
    admin_groups: list[str] = Field(
        default_factory=list, description="Members of any of these groups are admins."
    )
    leeway_secs: float = Field(30.0, ge=0, le=300, description="Clock skew allowed on exp and nbf.")
    jwks_refresh_secs: float = Field(
        30.0,
        gt=0,
        description="An unknown key id refetches the key set at most this often.",
    )
    jwks_timeout_secs: float = Field(5.0, gt=0, description="Timeout of one key set fetch.")

    @model_validator(mode="after")
    def _given(self) -> Self:
        missing = [k for k in ("issuer", "audience", "jwks_uri") if not getattr(self, k)]
        if missing:
            raise ValueError(f"{', '.join(missing)} must be given")
        if not self.jwks_uri.startswith(("http://", "https://")):
            raise ValueError("jwks_uri must be an http:// or https:// URL")
        return self


class AuthProviderConfig(OneOf):
    StaticAuthProviderConfig: StaticAuthConfig | None = Field(
        None, description="Fixed credentials from this config (or the environment)."
    )
    Users: UsersAuthConfig | None = Field(
        None, description="Named users with argon2id password hashes (HTTP Basic)."
    )
    Oidc: OidcAuthConfig | None = Field(
        None, description="Bearer JWTs from an OpenID Connect identity provider."
    )
