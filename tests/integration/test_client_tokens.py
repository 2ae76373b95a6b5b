"""The SDK's token methods (sync and async) against a real server with the static provider."""

from __future__ import annotations

import asyncio

import pytest

from rucat.client import AsyncRucatClient, NotFound, RucatClient, Unauthorized
from rucat.config import AuthProviderConfig, RucatConfig, StaticAuthConfig
from tests.integration.conftest import StartApi

AUTH = RucatConfig(
    auth_provider=AuthProviderConfig(
        StaticAuthProviderConfig=StaticAuthConfig(bearer_token="admin-token")
    )
)


async def test_the_async_client_creates_lists_uses_and_revokes_a_token(
    start_api: StartApi,
) -> None:
    async with start_api(AUTH) as api, AsyncRucatClient(api.url, token="admin-token") as admin:
        created = await admin.create_token("laptop", expires_in_days=3)
        assert created.token.startswith("rucat_")
        assert created.token not in repr(created)
        assert created.expire_time is not None and created.create_time is not None
        assert (created.expire_time - created.create_time).days == 3
        listed = await admin.list_tokens()
        assert [(t.id, t.name, t.owner) for t in listed] == [(created.id, "laptop", "admin")]
        async with AsyncRucatClient(api.url, token=created.token) as with_token:
            assert await with_token.list() == []
            revoked = await admin.revoke_token(created.id)
            assert revoked.id == created.id
            with pytest.raises(Unauthorized):
                await with_token.list()
        with pytest.raises(NotFound):
            await admin.revoke_token(created.id)
        assert await admin.list_tokens(everyone=True) == []


async def test_the_sync_client_has_the_same_token_methods(start_api: StartApi) -> None:
    async with start_api(AUTH) as api:

        def session() -> tuple[str, list[str], list[str]]:
            with RucatClient(api.url, token="admin-token") as admin:
                created = admin.create_token("ci")
                names = [t.name for t in admin.list_tokens(owner="admin")]
                admin.revoke_token(created.id)
                after = [t.name for t in admin.list_tokens()]
                return created.token, names, after

        secret, names, after = await asyncio.to_thread(session)
        assert secret.startswith("rucat_")
        assert names == ["ci"]
        assert after == []
