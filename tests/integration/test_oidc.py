"""OIDC bearer tokens against a real local identity provider (JWKS over HTTP).

Keys are generated in the test; Rucat fetches their public halves from the
identity provider's jwks_uri like it would from Keycloak or Entra ID. The
same token works on REST and through the Spark Connect proxy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from rucat.config import AuthProviderConfig, OidcAuthConfig, RucatConfig
from rucat.server.auth import Authenticator
from rucat.store import EngineStore
from tests.conftest import FakeClock
from tests.integration import test_proxy_passthrough as passthrough
from tests.integration.conftest import SPARK, StartApi
from tests.integration.test_proxy_passthrough import Upstream, _add, _call, _channel, _proxy
from tests.support import free_port
from tests.support.jwks import (
    AUDIENCE,
    ISSUER,
    IdentityProvider,
    ec_key,
    hs256_with_public_key,
    identity_provider,
    rsa_key,
    tampered,
    unsigned,
)

#: The fake engine (a real gRPC server) of the proxy's pass-through tests.
fake_engine = passthrough.upstream


def _config(jwks_uri: str, **changes: Any) -> RucatConfig:
    oidc = OidcAuthConfig(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_uri=jwks_uri,
        admin_groups=["rucat-admins"],
        **changes,
    )
    return RucatConfig(auth_provider=AuthProviderConfig(Oidc=oidc), connect_port=0)


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    with identity_provider(rsa_key("key-1"), ec_key("key-ec")) as running:
        yield running


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_valid_token_signs_in_as_its_user_and_writes_record_that_name(
    start_api: StartApi, idp: IdentityProvider
) -> None:
    async with start_api(_config(idp.jwks_uri), headers=_bearer(idp.token())) as api:
        engine_id = await api.create()
        events = (await api.client.get(f"/engine/{engine_id}/events")).json()
        assert events[0]["actor"] == "carol"
        ec_signed = idp.token(idp.keys[1], preferred_username="carol")
        response = await api.client.get(f"/engine/{engine_id}", headers=_bearer(ec_signed))
        assert response.status_code == 200
        # Another user signed in the same way does not see carol's engine.
        dave = idp.token(idp.keys[1], preferred_username="dave")
        response = await api.client.get(f"/engine/{engine_id}", headers=_bearer(dave))
        assert response.status_code == 404


async def test_groups_come_from_the_token_and_admin_groups_make_admins(
    clock: FakeClock, idp: IdentityProvider
) -> None:
    authenticator = Authenticator(_config(idp.jwks_uri).auth_provider, clock=clock)
    carol = await authenticator.authenticate(f"Bearer {idp.token()}")
    assert (carol.name, carol.groups, carol.admin) == ("carol", frozenset({"analytics"}), False)
    admin = await authenticator.authenticate(
        f"Bearer {idp.token(preferred_username='root', groups=['rucat-admins', 7])}"
    )
    assert (admin.name, admin.groups, admin.admin) == ("root", frozenset({"rucat-admins"}), True)


def _bad_tokens(idp: IdentityProvider) -> dict[str, str]:
    now = int(time.time())
    stranger = rsa_key("key-1")  # same kid, another key: a forged signature
    return {
        "expired": idp.token(exp=now - 3600, iat=now - 7200, nbf=now - 7200),
        "not-yet-valid": idp.token(nbf=now + 3600),
        "wrong-issuer": idp.token(iss="https://evil.example.test"),
        "wrong-audience": idp.token(aud="someone-else"),
        "no-exp": idp.token(exp=None),
        "no-aud": idp.token(aud=None),
        "no-iss": idp.token(iss=None),
        "no-user-name": idp.token(preferred_username=None),
        "alg-none": unsigned(idp.claims(), kid="key-1"),
        "hs256-with-the-public-key": hs256_with_public_key(idp, idp.keys[0]),
        "unknown-kid": idp.token(rsa_key("key-unknown")),
        "forged-signature": idp.token(stranger),
        "tampered-payload": tampered(idp.token(), preferred_username="root"),
        "rsa-alg-on-an-ec-key": idp.token(
            rsa_key("key-ec"), preferred_username="x"
        ),  # kid of the EC key
        "not-a-jwt": "definitely-not-a-jwt",
    }


BAD = [
    "expired",
    "not-yet-valid",
    "wrong-issuer",
    "wrong-audience",
    "no-exp",
    "no-aud",
    "no-iss",
    "no-user-name",
    "alg-none",
    "hs256-with-the-public-key",
    "unknown-kid",
    "forged-signature",
    "tampered-payload",
    "rsa-alg-on-an-ec-key",
    "not-a-jwt",
]


async def test_every_bad_token_is_401_with_a_bearer_challenge_and_stores_nothing(
    start_api: StartApi, idp: IdentityProvider
) -> None:
    tokens = _bad_tokens(idp)
    async with start_api(_config(idp.jwks_uri)) as api:
        for case in BAD:
            response = await api.client.post("/engine", json=SPARK, headers=_bearer(tokens[case]))
            assert response.status_code == 401, (case, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer", case
            assert response.json()["detail"].startswith("invalid token"), case
        assert await api.store.list() == []


async def test_basic_credentials_are_refused_when_oidc_is_the_provider(
    start_api: StartApi, idp: IdentityProvider
) -> None:
    async with start_api(_config(idp.jwks_uri), auth=httpx.BasicAuth("carol", "pw")) as api:
        assert (await api.client.get("/engines")).status_code == 401


async def test_a_rotated_key_works_without_a_restart(
    start_api: StartApi, clock: FakeClock, idp: IdentityProvider
) -> None:
    async with start_api(_config(idp.jwks_uri)) as api:
        old = idp.token()
        assert (await api.client.get("/engines", headers=_bearer(old))).status_code == 200
        idp.keys = [rsa_key("key-2")]
        clock.advance(31)
        new = idp.token()
        assert (await api.client.get("/engines", headers=_bearer(new))).status_code == 200


async def test_unknown_kids_refetch_the_key_set_at_most_once_per_30_seconds(
    start_api: StartApi, clock: FakeClock, idp: IdentityProvider
) -> None:
    async with start_api(_config(idp.jwks_uri)) as api:
        assert (await api.client.get("/engines", headers=_bearer(idp.token()))).status_code == 200
        assert idp.fetches == 1
        clock.advance(31)
        for n in range(5):
            junk = idp.token(rsa_key(f"junk-{n}"))
            assert (await api.client.get("/engines", headers=_bearer(junk))).status_code == 401
        assert idp.fetches == 2
        known = idp.token()
        assert (await api.client.get("/engines", headers=_bearer(known))).status_code == 200
        assert idp.fetches == 2  # a known kid needs no fetch
        idp.keys.append(rsa_key("key-new"))  # published, but within 30 s of the last fetch
        fresh = idp.token(idp.keys[-1])
        assert (await api.client.get("/engines", headers=_bearer(fresh))).status_code == 401
        clock.advance(30.5)
        assert (await api.client.get("/engines", headers=_bearer(fresh))).status_code == 200
        assert idp.fetches == 3


async def test_an_unreachable_key_set_is_503_not_401(
    start_api: StartApi, idp: IdentityProvider
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/jwks.json"
    async with start_api(_config(closed, jwks_timeout_secs=2)) as api:
        response = await api.client.get("/engines", headers=_bearer(idp.token()))
        assert response.status_code == 503
        assert "jwks_uri" in response.json()["detail"]
    idp.down = True
    async with start_api(_config(idp.jwks_uri)) as api:
        response = await api.client.get("/engines", headers=_bearer(idp.token()))
        assert response.status_code == 503
        idp.down = False  # it comes back: no restart needed after the refetch interval
        api.clock.advance(31)
        response = await api.client.get("/engines", headers=_bearer(idp.token()))
        assert response.status_code == 200


async def test_the_same_token_works_through_the_spark_connect_proxy(
    store: EngineStore, fake_engine: Upstream, idp: IdentityProvider
) -> None:
    engine = await _add(store, fake_engine, owner="carol")  # the token's user
    tokens = _bad_tokens(idp)
    async with _proxy(store, config=_config(idp.jwks_uri)) as proxy, _channel(proxy) as channel:
        good = (("authorization", f"Bearer {idp.token()}"), ("x-rucat-engine-id", engine.id))
        responses, _ = await _call(channel, [b"x"], good)
        assert responses == [b"x", b"done"]
        for case in BAD:
            bad = (("authorization", f"Bearer {tokens[case]}"), ("x-rucat-engine-id", engine.id))
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _call(channel, [b"x"], bad)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, case
    assert len(fake_engine.seen_requests) == 1
