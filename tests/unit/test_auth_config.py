"""The auth_provider variants load from JSON and the environment, and bad ones name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rucat.config import load_config
from rucat.domain.errors import ConfigError

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def _write(tmp_path: Path, auth: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auth_provider": auth}), encoding="utf-8")
    return path


def test_a_users_provider_loads_with_its_defaults(tmp_path: Path) -> None:
    users = {"Users": {"users": [{"name": "alice", "password_hash": HASH, "groups": ["a"]}]}}
    config = load_config(_write(tmp_path, users))
    assert config.auth_provider is not None and config.auth_provider.Users is not None
    (alice,) = config.auth_provider.Users.users
    assert (alice.name, alice.groups, alice.admin) == ("alice", ["a"], False)
    assert config.auth_provider.Users.cache_ttl_secs == 30


def test_an_oidc_provider_loads_with_its_defaults(tmp_path: Path) -> None:
    oidc = {"Oidc": {"issuer": "https://idp", "audience": "rucat", "jwks_uri": "https://idp/k"}}
    config = load_config(_write(tmp_path, oidc))
    assert config.auth_provider is not None and config.auth_provider.Oidc is not None
    assert config.auth_provider.Oidc.username_claim == "preferred_username"
    assert config.auth_provider.Oidc.groups_claim == "groups"


def test_users_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "RUCAT_AUTH_PROVIDER__USERS__USERS", json.dumps([{"name": "bob", "password_hash": HASH}])
    )
    config = load_config()
    assert config.auth_provider is not None and config.auth_provider.Users is not None
    assert [u.name for u in config.auth_provider.Users.users] == ["bob"]


@pytest.mark.parametrize(
    ("auth", "mention"),
    [
        ({"Users": {"users": [{"name": "a", "password_hash": "x"}]}}, "argon2id"),
        ({"Users": {"users": [{"name": "a", "password_hash": HASH, "pw": 1}]}}, "pw"),
        ({"Oidc": {"issuer": "https://idp", "audience": "rucat"}}, "jwks_uri"),
        ({"Oidc": {"issuer": "i", "audience": "a", "jwks_uri": "file:///k"}}, "http"),
        (
            {
                "Users": {"users": []},
                "Oidc": {"issuer": "i", "audience": "a", "jwks_uri": "https://k"},
            },
            "exactly one",
        ),
    ],
    ids=["plain-password", "unknown-key", "no-jwks-uri", "file-jwks-uri", "two-providers"],
)
def test_a_bad_provider_is_a_config_error_naming_it(
    tmp_path: Path, auth: object, mention: str
) -> None:
    with pytest.raises(ConfigError, match=mention):
        load_config(_write(tmp_path, auth))
