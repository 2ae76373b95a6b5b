"""Config loading: the seed's files load unchanged, bad keys are named, the environment wins."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from rucat.config import load_config
from rucat.domain.errors import ConfigError

SEED_SERVER_CONFIG = {
    "auth_provider": {
        "StaticAuthProviderConfig": {
            "username": "admin",
            "password": "admin",
            "bearer_token": "admin",
        }
    },
    "database": {
        "Surreal": {
            "credentials": {"username": "admin", "password": "admin"},
            "uri": "rucat-surrealdb:8000",
        }
    },
}

SEED_MONITOR_CONFIG = {
    "check_interval_secs": 1,
    "database": {
        "Surreal": {
            "credentials": {"username": "admin", "password": "admin"},
            "uri": "rucat-surrealdb:8000",
        }
    },
}


@pytest.fixture(autouse=True)
def _no_rucat_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("RUCAT_"):
            monkeypatch.delenv(name)


def _write(tmp_path: Path, data: Any, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_the_seed_server_config_loads_unchanged(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, SEED_SERVER_CONFIG))
    assert config.auth_provider is not None
    static = config.auth_provider.StaticAuthProviderConfig
    assert static is not None
    assert static.username == "admin"
    assert static.password is not None and static.password.get_secret_value() == "admin"
    assert static.bearer_token is not None and static.bearer_token.get_secret_value() == "admin"
    surreal = config.database.Surreal
    assert surreal is not None
    assert surreal.uri == "rucat-surrealdb:8000"
    assert surreal.credentials is not None
    assert surreal.credentials.username == "admin"
    assert surreal.credentials.password.get_secret_value() == "admin"
    assert config.database.variant == "Surreal"
    assert (config.host, config.port) == ("127.0.0.1", 3000)


def test_the_seed_monitor_config_loads_unchanged_with_an_integer_interval(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, SEED_MONITOR_CONFIG))
    assert config.check_interval_secs == 1.0
    assert config.database.variant == "Surreal"
    assert config.auth_provider is None


def test_a_fractional_check_interval_is_accepted(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, {**SEED_MONITOR_CONFIG, "check_interval_secs": 0.25}))
    assert config.check_interval_secs == 0.25


def test_no_file_gives_an_open_server_on_sqlite_and_the_local_platform() -> None:
    config = load_config(None)
    assert config.auth_provider is None
    assert config.database.variant == "Sqlite"
    assert config.platform.variant == "Local"
    assert config.max_body_bytes == 1 << 20


def test_sqlite_and_postgres_variants_parse(tmp_path: Path) -> None:
    sqlite = load_config(_write(tmp_path, {"database": {"Sqlite": {"path": "/tmp/x.db"}}}))
    assert sqlite.database.Sqlite is not None and sqlite.database.Sqlite.path == "/tmp/x.db"
    pg = load_config(
        _write(tmp_path, {"database": {"Postgres": {"uri": "postgresql://u:p@h:5432/db"}}})
    )
    assert pg.database.Postgres is not None
    assert pg.database.Postgres.uri.get_secret_value() == "postgresql://u:p@h:5432/db"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"prot": 3000}, "prot"),
        ({"database": {"Sqlite": {"path": "x", "mode": "wal"}}}, "database.Sqlite.mode"),
        (
            {"auth_provider": {"StaticAuthProviderConfig": {"user": "a"}}},
            "auth_provider.StaticAuthProviderConfig.user",
        ),
        ({"database": {"MySQL": {}}}, "database.MySQL"),
    ],
)
def test_an_unknown_key_fails_naming_it(tmp_path: Path, data: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown key '{named}'"):
        load_config(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"port": "three thousand"}, "port"),
        ({"port": 70000}, "port"),
        ({"check_interval_secs": 0}, "check_interval_secs"),
        ({"database": {}}, "database"),
        ({"database": {"Sqlite": {}, "Postgres": {}}}, "database"),
        ({"auth_provider": {"StaticAuthProviderConfig": {"username": "a"}}}, "auth_provider"),
        ({"log_format": "xml"}, "log_format"),
    ],
)
def test_a_bad_value_fails_naming_the_key(tmp_path: Path, data: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, data))
    assert named in caught.value.message


def test_a_file_that_is_not_json_or_not_an_object_or_missing_is_a_config_error(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(broken)
    with pytest.raises(ConfigError, match="JSON object"):
        load_config(_write(tmp_path, [1, 2]))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.json")


def test_the_environment_overrides_the_file_so_secrets_can_stay_out_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUCAT_PORT", "3456")
    monkeypatch.setenv("RUCAT_AUTH_PROVIDER__STATICAUTHPROVIDERCONFIG__PASSWORD", "from-env")
    config = load_config(_write(tmp_path, SEED_SERVER_CONFIG))
    assert config.port == 3456
    assert config.auth_provider is not None
    static = config.auth_provider.StaticAuthProviderConfig
    assert static is not None
    assert static.password is not None and static.password.get_secret_value() == "from-env"
    assert static.username == "admin"


def test_command_line_flags_override_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUCAT_PORT", "3456")
    config = load_config(_write(tmp_path, SEED_SERVER_CONFIG), port=4000, host=None)
    assert config.port == 4000
    assert config.host == "127.0.0.1"


def test_secrets_do_not_show_in_the_config_repr(tmp_path: Path) -> None:
    data = {
        "auth_provider": {
            "StaticAuthProviderConfig": {
                "username": "admin",
                "password": "pass-in-file",
                "bearer_token": "token-in-file",
            }
        },
        "database": {"Postgres": {"uri": "postgresql://u:pg-secret@h/db"}},
    }
    text = repr(load_config(_write(tmp_path, data)))
    for secret in ("pass-in-file", "token-in-file", "pg-secret"):
        assert secret not in text


# --- engine_policy ------------------------------------------------------------


def test_an_engine_policy_loads_from_json_with_numbers_as_limits(tmp_path: Path) -> None:
    raw = {
        "engine_policy": {
            "mode": "replace",
            "rules": [
                {"pattern": "spark.executor.instances", "action": "max", "value": 10},
                {"pattern": "spark.executor.memory", "action": "max", "value": "8g", "unit": "m"},
                {"pattern": "spark.sql.*", "action": "allow"},
            ],
        }
    }
    policy = load_config(_write(tmp_path, raw)).engine_policy
    assert policy.mode == "replace"
    assert [r.value for r in policy.rules] == ["10", "8g", None]


def test_the_default_engine_policy_extends_with_no_rules() -> None:
    policy = load_config().engine_policy
    assert (policy.mode, policy.rules) == ("extend", [])


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        ({"mode": "merge"}, "'engine_policy.mode'"),
        ({"rules": [{"pattern": "a", "action": "block"}]}, "'engine_policy.rules.0.action'"),
        ({"rules": [{"pattern": "a", "action": "max"}]}, "needs a value"),
        ({"rules": [{"pattern": "a", "action": "max", "value": "huge"}]}, "not a count"),
        ({"rules": [{"pattern": "a", "action": "max", "value": True}]}, "engine_policy.rules.0"),
        ({"rules": [{"pattern": "a", "action": "allow", "why": "x"}]}, "unknown key"),
        ({"rules": [{"action": "allow"}]}, "'engine_policy.rules.0.pattern'"),
        ({"rules": {"pattern": "a"}}, "'engine_policy.rules'"),
    ],
    ids=[
        "unknown-mode",
        "unknown-action",
        "max-without-limit",
        "max-with-bad-limit",
        "boolean-limit",
        "unknown-rule-key",
        "missing-pattern",
        "rules-not-a-list",
    ],
)
def test_a_bad_engine_policy_fails_at_load_naming_the_key(
    tmp_path: Path, policy: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config(_write(tmp_path, {"engine_policy": policy}))


def test_engine_policy_rules_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "RUCAT_ENGINE_POLICY__RULES", json.dumps([{"pattern": "spark.x", "action": "deny"}])
    )
    assert load_config().engine_policy.rules[0].pattern == "spark.x"
