"""Personal access tokens in every store backend (tests/contract/conftest.py::BACKENDS)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from rucat.domain.errors import StoreConflict, TokenNotFound
from rucat.domain.principal import Principal
from rucat.domain.token import AccessToken, hash_secret, new_token
from rucat.store import EngineStore
from tests.contract.conftest import StoreOpener

T0 = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
ALICE = Principal("alice", frozenset({"analytics", "ops"}), admin=False)
ROOT = Principal("root", admin=True)


def _token(principal: Principal, name: str = "laptop", seconds: int = 0) -> tuple[AccessToken, str]:
    return new_token(principal, name=name, expires_in_days=30, now=T0 + timedelta(seconds=seconds))


async def test_a_stored_token_reads_back_exactly_by_id_and_by_hash(store: EngineStore) -> None:
    token, secret = _token(ALICE, name="Läptop ✓")
    await store.add_token(token=token)
    assert await store.get_token(token_id=token.id) == token
    assert await store.find_token(secret_hash=hash_secret(secret)) == token
    found = await store.find_token(secret_hash=hash_secret(secret))
    assert found is not None
    assert found.expire_time == T0 + timedelta(days=30)
    assert found.expire_time.tzinfo is not None


async def test_an_unknown_hash_finds_nothing_and_an_unknown_id_is_not_found(
    store: EngineStore,
) -> None:
    assert await store.find_token(secret_hash=hash_secret("rucat_nope")) is None
    with pytest.raises(TokenNotFound):
        await store.get_token(token_id="tok0000000000000000")


async def test_tokens_list_oldest_first_and_by_owner(store: EngineStore) -> None:
    second, _ = _token(ALICE, "second", seconds=10)
    first, _ = _token(ALICE, "first", seconds=0)
    roots, _ = _token(ROOT, "ci", seconds=5)
    for token in (second, first, roots):
        await store.add_token(token=token)
    assert [t.name for t in await store.list_tokens()] == ["first", "ci", "second"]
    assert [t.name for t in await store.list_tokens(owner="alice")] == ["first", "second"]
    assert await store.list_tokens(owner="nobody") == []


async def test_a_removed_token_is_gone_at_once_everywhere(
    store: EngineStore, open_another_store: StoreOpener
) -> None:
    token, secret = _token(ALICE)
    await store.add_token(token=token)
    other = await open_another_store()
    assert await other.find_token(secret_hash=hash_secret(secret)) == token
    await store.remove_token(token_id=token.id)
    assert await store.find_token(secret_hash=hash_secret(secret)) is None
    assert await other.find_token(secret_hash=hash_secret(secret)) is None
    assert await store.list_tokens() == []
    with pytest.raises(TokenNotFound):
        await store.remove_token(token_id=token.id)


async def test_a_token_id_or_hash_is_stored_once(store: EngineStore) -> None:
    token, _ = _token(ALICE)
    await store.add_token(token=token)
    with pytest.raises(StoreConflict):
        await store.add_token(token=replace(token, secret_hash="0" * 64))
    with pytest.raises(StoreConflict):
        await store.add_token(token=replace(token, id="tok1111111111111111"))
    assert await store.list_tokens() == [token]
