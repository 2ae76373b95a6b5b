"""Secret conf values are shown as Spark's UI shows them: ``*********(redacted)``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rucat.domain.engine import CreateEngineRequest, EngineType, new_engine
from rucat.domain.redaction import (
    REDACTED,
    engine_secrets,
    is_sensitive,
    redact_configs,
    redact_text,
    secret_values,
)

# (case id, key, value, whether Spark's default regex redacts it)
CONFS: list[tuple[str, str, str, bool]] = [
    ("s3a-secret-key", "spark.hadoop.fs.s3a.secret.key", "wJalrXUtnFEMI", True),
    ("s3a-access-key", "spark.hadoop.fs.s3a.access.key", "AKIAIOSFODNN7", True),
    ("accesskey-without-dot", "spark.hadoop.fs.oss.accesskey", "x", True),
    ("keystore-password", "spark.ssl.keyStorePassword", "changeit", True),
    ("upper-case-token", "spark.custom.API_TOKEN", "t", True),
    ("secret-in-the-middle", "spark.authenticate.secret.file", "/x", True),
    ("password-in-the-value", "spark.sql.catalog.db.url", "jdbc:pg://h/db?password=x", True),
    ("ordinary-memory", "spark.executor.memory", "4g", False),
    ("ordinary-sql", "spark.sql.shuffle.partitions", "8", False),
    ("key-word-alone", "spark.hadoop.fs.azure.account.key", "k", False),  # Spark's regex too
]


@pytest.mark.parametrize(
    ("key", "value", "sensitive"), [c[1:] for c in CONFS], ids=[c[0] for c in CONFS]
)
def test_a_conf_is_sensitive_when_its_key_or_value_matches_sparks_regex(
    key: str, value: str, sensitive: bool
) -> None:
    assert is_sensitive(key, value) is sensitive
    assert redact_configs({key: value}) == {key: REDACTED if sensitive else value}


# (case id, text, the secrets known, the expected text)
TEXTS: list[tuple[str, str, tuple[str, ...], str]] = [
    (
        "conf-line",
        "spark.hadoop.fs.s3a.secret.key=wJalrXUtnFEMI\n",
        (),
        f"spark.hadoop.fs.s3a.secret.key={REDACTED}\n",
    ),
    (
        "spark-submit-conf",
        "--conf spark.ssl.keyStorePassword=changeit --conf spark.x=1",
        (),
        f"--conf spark.ssl.keyStorePassword={REDACTED} --conf spark.x=1",
    ),
    (
        "spark-tuple",
        "(spark.hadoop.fs.s3a.access.key,AKIAIOSFODNN7)",
        (),
        f"(spark.hadoop.fs.s3a.access.key,{REDACTED})",
    ),
    (
        "json-pair",
        '{"spark.app.token": "abc", "n": 1}',
        (),
        f'{{"spark.app.token": "{REDACTED}", "n": 1}}',
    ),
    ("yaml-style", "password: hunter2\n", (), f"password: {REDACTED}\n"),
    ("query-string", "GET /x?token=abc&page=2", (), f"GET /x?token={REDACTED}&page=2"),
    (
        "class-name-then-message-is-kept",
        "INFO HadoopDelegationTokenManager: Attempting to login to KDC\n",
        (),
        "INFO HadoopDelegationTokenManager: Attempting to login to KDC\n",
    ),
    ("prose-is-kept", "no secret here, nor tokens", (), "no secret here, nor tokens"),
    (
        "already-redacted-is-kept",
        f"(spark.x.password,{REDACTED})",
        (),
        f"(spark.x.password,{REDACTED})",
    ),
    (
        "known-value-anywhere",
        "user code printed wJalrXUtnFEMI twice: wJalrXUtnFEMI",
        ("wJalrXUtnFEMI",),
        f"user code printed {REDACTED} twice: {REDACTED}",
    ),
    (
        "short-known-value-only-by-shape",
        "abc ab password=ab",
        ("ab",),
        f"abc ab password={REDACTED}",
    ),
    ("two-pairs-on-a-line", "a.secret=1 b.token=2", (), f"a.secret={REDACTED} b.token={REDACTED}"),
]


@pytest.mark.parametrize(
    ("text", "secrets", "expected"), [c[1:] for c in TEXTS], ids=[c[0] for c in TEXTS]
)
def test_free_text_is_redacted_by_known_value_and_by_shape(
    text: str, secrets: tuple[str, ...], expected: str
) -> None:
    assert redact_text(text, secrets) == expected


def test_an_engines_secrets_are_its_sensitive_values_and_its_connect_token() -> None:
    configs = {"spark.hadoop.fs.s3a.secret.key": "wJalrXUtnFEMI", "spark.executor.memory": "4g"}
    request = CreateEngineRequest(
        name="e", engine_type=EngineType.Spark, version="4.0.1", configs=configs
    )
    engine = new_engine(request, platform="Local", now=datetime(2026, 1, 1, tzinfo=UTC))
    assert engine.connect_token is not None
    secrets = engine_secrets(engine)
    assert "wJalrXUtnFEMI" in secrets and engine.connect_token in secrets
    assert "4g" not in secrets
    assert secret_values({"a.password": "short"}) == ()  # too short to replace in free text


def test_a_megabyte_of_keywords_is_redacted_in_one_pass() -> None:
    soup = "token" * 200_000 + "=x " + ("a" * 100_000 + "password") * 5
    redacted = redact_text(soup)
    assert redacted.count(REDACTED) == 1
    assert redacted.endswith("password")
