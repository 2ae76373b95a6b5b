"""The Users provider: argon2id over HTTP Basic, and its short memory of verified credentials."""

from __future__ import annotations

import asyncio
import base64

import pytest

from rucat.config import UserConfig, UsersAuthConfig
from rucat.domain.errors import Unauthenticated
from rucat.domain.principal import Principal
from rucat.server.auth.users import UsersProvider, hash_password

ALICE_HASH = hash_password("alice-pw")
BOB_HASH = hash_password("bob-pw")
USERS = [
    UserConfig(name="alice", password_hash=ALICE_HASH, groups=["analytics"]),
    UserConfig(name="bob", password_hash=BOB_HASH, admin=True),
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _provider(clock: Clock | None = None, **fields: object) -> UsersProvider:
    config = UsersAuthConfig(users=USERS, **fields)  # type: ignore[arg-type]
    return UsersProvider(config, clock=clock or Clock())


async def _login(provider: UsersProvider, user: str, password: str) -> Principal:
    return await provider.authenticate(scheme="basic", credentials=_basic(user, password))


async def test_a_user_with_the_right_password_is_that_principal() -> None:
    provider = _provider()
    assert await _login(provider, "alice", "alice-pw") == Principal(
        "alice", frozenset({"analytics"}), admin=False
    )
    assert await _login(provider, "bob", "bob-pw") == Principal("bob", admin=True)


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("alice", "wrong"),
        ("alice", "bob-pw"),
        ("mallory", "alice-pw"),
        ("", ""),
        ("alice", ""),
        ("ALICE", "alice-pw"),
    ],
    ids=["wrong-password", "others-password", "unknown-user", "empty", "no-password", "case"],
)
async def test_wrong_credentials_are_refused_without_saying_which_part(
    user: str, password: str
) -> None:
    with pytest.raises(Unauthenticated) as refused:
        await _login(_provider(), user, password)
    assert refused.value.message == "invalid credentials: wrong user name or password"


async def test_an_unknown_user_costs_an_argon2_check_like_a_known_one() -> None:
    provider = _provider()
    with pytest.raises(Unauthenticated):
        await _login(provider, "mallory", "whatever")
    assert provider.verifications == 1


async def test_a_verified_password_is_remembered_until_the_ttl_passes() -> None:
    clock = Clock()
    provider = _provider(clock, cache_ttl_secs=30)
    for _ in range(5):
        await _login(provider, "alice", "alice-pw")
    assert provider.verifications == 1
    clock.now += 31
    await _login(provider, "alice", "alice-pw")
    assert provider.verifications == 2


async def test_a_remembered_password_does_not_open_the_door_to_another_one() -> None:
    provider = _provider()
    await _login(provider, "alice", "alice-pw")
    with pytest.raises(Unauthenticated):
        await _login(provider, "alice", "alice-pw2")
    with pytest.raises(Unauthenticated):
        await _login(provider, "alic", "ealice-pw")


async def test_concurrent_requests_with_the_same_credentials_share_one_check() -> None:
    provider = _provider()
    found = await asyncio.gather(*(_login(provider, "alice", "alice-pw") for _ in range(16)))
    assert {p.name for p in found} == {"alice"}
    assert provider.verifications == 1
    refused = await asyncio.gather(
        *(_login(provider, "alice", "nope") for _ in range(8)), return_exceptions=True
    )
    assert all(isinstance(r, Unauthenticated) for r in refused)
    assert provider.verifications == 2


async def test_failures_are_never_remembered() -> None:
    provider = _provider()
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await _login(provider, "alice", "wrong")
    assert provider.verifications == 3


async def test_the_memory_is_bounded_and_holds_no_password() -> None:
    provider = _provider(cache_size=1)
    await _login(provider, "alice", "alice-pw")
    await _login(provider, "bob", "bob-pw")
    await _login(provider, "alice", "alice-pw")  # alice was pushed out by bob
    assert provider.verifications == 3
    remembered = list(provider._verified)
    assert len(remembered) == 1
    assert all(b"alice-pw" not in key and b"bob-pw" not in key for key in remembered)


async def test_a_zero_ttl_verifies_every_request() -> None:
    provider = _provider(cache_ttl_secs=0)
    await _login(provider, "alice", "alice-pw")
    await _login(provider, "alice", "alice-pw")
    assert provider.verifications == 2


@pytest.mark.parametrize(
    ("fields", "mention"),
    [
        ({"name": "a:b", "password_hash": ALICE_HASH}, "':'"),
        ({"name": "", "password_hash": ALICE_HASH}, "empty"),
        ({"name": "a\nb", "password_hash": ALICE_HASH}, "control"),
        ({"name": "a", "password_hash": "plain-text"}, "argon2id"),
        ({"name": "a", "password_hash": ALICE_HASH, "groups": ["x" * 200]}, "longer"),
    ],
    ids=["colon", "empty-name", "control-char", "not-a-hash", "long-group"],
)
def test_a_bad_user_entry_is_refused_naming_the_problem(
    fields: dict[str, object], mention: str
) -> None:
    with pytest.raises(ValueError, match=mention):
        UserConfig(**fields)  # type: ignore[arg-type]


def test_a_user_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        UsersAuthConfig(users=[USERS[0], USERS[0]])
