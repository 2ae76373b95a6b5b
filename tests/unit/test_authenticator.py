"""The one Authenticator: which principal each provider's credentials become.

The REST middleware and the proxy both ask it; these cases are the contract
they share. Over-the-wire behaviour is in tests/integration/test_api_auth.py
and tests/integration/test_proxy_passthrough.py.
"""

from __future__ import annotations

import base64

import grpc
import pytest

from rucat.config import AuthProviderConfig, StaticAuthConfig
from rucat.domain.errors import Unauthenticated
from rucat.domain.principal import ANONYMOUS_ADMIN, Principal
from rucat.server.auth import Authenticator
from rucat.server.proxy_auth import ProxyCredentials, Refused


def _static(**fields: str) -> AuthProviderConfig:
    return AuthProviderConfig(StaticAuthProviderConfig=StaticAuthConfig(**fields))  # type: ignore[arg-type]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


BOTH = _static(username="alice", password="pw", bearer_token="tok")
BEARER_ONLY = _static(bearer_token="tok")

ACCEPTED = [
    pytest.param(None, None, ANONYMOUS_ADMIN, id="open-mode-without-credentials"),
    pytest.param(None, "Bearer anything", ANONYMOUS_ADMIN, id="open-mode-ignores-credentials"),
    pytest.param(BOTH, _basic("alice", "pw"), Principal("alice", admin=True), id="static-basic"),
    pytest.param(BOTH, "Bearer tok", Principal("alice", admin=True), id="static-bearer-is-user"),
    pytest.param(BOTH, "bearer  tok ", Principal("alice", admin=True), id="scheme-any-case"),
    pytest.param(BEARER_ONLY, "Bearer tok", Principal("admin", admin=True), id="bearer-only-admin"),
]


@pytest.mark.parametrize(("config", "authorization", "expected"), ACCEPTED)
async def test_accepted_credentials_become_this_principal(
    config: AuthProviderConfig | None, authorization: str | None, expected: Principal
) -> None:
    assert await Authenticator(config).authenticate(authorization) == expected


REFUSED = [
    pytest.param(BOTH, None, id="missing"),
    pytest.param(BOTH, "", id="empty"),
    pytest.param(BOTH, _basic("alice", "wrong"), id="wrong-password"),
    pytest.param(BOTH, _basic("bob", "pw"), id="wrong-user"),
    pytest.param(BOTH, "Bearer wrong", id="wrong-token"),
    pytest.param(BOTH, "Basic !!!", id="malformed-basic"),
    pytest.param(BOTH, "Digest x", id="other-scheme"),
    pytest.param(BEARER_ONLY, _basic("admin", "tok"), id="basic-when-only-bearer"),
]


@pytest.mark.parametrize(("config", "authorization"), REFUSED)
async def test_refused_credentials_raise_unauthenticated(
    config: AuthProviderConfig, authorization: str | None
) -> None:
    with pytest.raises(Unauthenticated):
        await Authenticator(config).authenticate(authorization)


async def test_the_proxy_gets_the_same_principal_as_rest() -> None:
    authenticator = Authenticator(BOTH)
    credentials = ProxyCredentials(authenticator)
    assert await credentials.principal("Bearer tok") == await authenticator.authenticate(
        "Bearer tok"
    )


@pytest.mark.parametrize("presented", [None, "Bearer wrong", _basic("alice", "no")])
async def test_the_proxy_refuses_what_rest_refuses_as_unauthenticated(
    presented: str | None,
) -> None:
    with pytest.raises(Refused) as refused:
        await ProxyCredentials(Authenticator(BOTH)).principal(presented)
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED


async def test_an_open_proxy_lets_everyone_in_as_the_anonymous_admin() -> None:
    assert await ProxyCredentials(Authenticator(None)).principal(None) == ANONYMOUS_ADMIN
