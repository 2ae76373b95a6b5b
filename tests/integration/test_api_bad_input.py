"""Bad input never yields a 500 and never stores anything; each answer says what is wrong."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from rucat.config import RucatConfig
from tests.integration.conftest import SPARK, Api, StartApi


def _body(**changes: Any) -> bytes:
    return json.dumps({**SPARK, **changes}).encode()


def _without(key: str) -> bytes:
    return json.dumps({k: v for k, v in SPARK.items() if k != key}).encode()


# (case id, raw body, expected status, a fragment the detail must contain)
CASES: list[tuple[str, bytes, int, str]] = [
    ("empty-body", b"", 422, "body"),
    ("malformed-json", b'{"name": "x",', 422, "not valid JSON"),
    ("truncated-json", _body()[:-7], 422, "not valid JSON"),
    ("not-json-at-all", b"name=x&version=4.0.1", 422, "not valid JSON"),
    ("json-array", b"[1, 2, 3]", 422, "body"),
    ("json-string", b'"Spark"', 422, "body"),
    ("json-null", b"null", 422, "body"),
    ("json-number", b"42", 422, "body"),
    ("missing-name", _without("name"), 422, "body.name"),
    ("missing-version", _without("version"), 422, "body.version"),
    ("missing-engine-type", _without("engine_type"), 422, "body.engine_type"),
    ("name-is-a-number", _body(name=5), 422, "body.name"),
    ("name-is-null", _body(name=None), 422, "body.name"),
    ("empty-name", _body(name=""), 422, "body.name"),
    ("blank-name", _body(name="   "), 422, "body.name"),
    ("name-of-256-chars", _body(name="n" * 256), 422, "at most 255 characters"),
    ("name-with-newline", _body(name="a\nb"), 422, "control characters"),
    ("name-with-nul", _body(name="a\x00b"), 422, "control characters"),
    ("name-with-escape", _body(name="a\x1b[31mb"), 422, "control characters"),
    ("name-with-c1-control", _body(name="a\x9bb"), 422, "body.name"),
    ("name-with-rtl-override", _body(name="admin\u202egnp.exe"), 422, "U+202E"),
    ("name-with-zero-width-space", _body(name="ad\u200bmin"), 422, "body.name"),
    ("name-with-zero-width-joiner", _body(name="a\u200db"), 422, "format characters"),
    ("name-with-bom", _body(name="\ufeffname"), 422, "U+FEFF"),
    ("name-with-line-separator", _body(name="a\u2028b"), 422, "U+2028"),
    (
        "name-with-lone-surrogate",
        b'{"name": "a\\ud800b", "engine_type": "Spark", "version": "4.0.1"}',
        422,
        "body.name",
    ),
    ("config-key-with-rtl-override", _body(configs={"spark.\u202ex": "v"}), 422, "U+202E"),
    ("config-key-with-zero-width", _body(configs={"spark.sql\u200b.x": "v"}), 422, "config key"),
    ("config-key-with-nul", _body(configs={"spark.\x00x": "v"}), 422, "control characters"),
    ("config-key-with-soft-hyphen", _body(configs={"spark.\u00adx": "v"}), 422, "U+00AD"),
    (
        "config-value-with-lone-surrogate",
        b'{"name": "n", "engine_type": "Spark", '
        b'"version": "4.0.1", "configs": {"spark.x": "\\udc00"}}',
        422,
        "surrogate",
    ),
    ("unknown-engine-type", _body(engine_type="Flink"), 422, "body.engine_type"),
    ("lowercase-engine-type", _body(engine_type="spark"), 422, "body.engine_type"),
    ("version-with-letters", _body(version="4.0.1-SNAPSHOT"), 422, "body.version"),
    ("version-is-a-path", _body(version="../../bin"), 422, "body.version"),
    ("empty-version", _body(version=""), 422, "body.version"),
    ("version-is-a-number", _body(version=4.0), 422, "body.version"),
    ("configs-is-a-list", _body(configs=["a=b"]), 422, "body.configs"),
    ("config-value-is-a-number", _body(configs={"spark.x": 1}), 422, "body.configs.spark.x"),
    ("config-value-is-a-bool", _body(configs={"spark.x": True}), 422, "body.configs.spark.x"),
    ("config-value-is-null", _body(configs={"spark.x": None}), 422, "body.configs.spark.x"),
    ("config-value-is-an-object", _body(configs={"spark.x": {}}), 422, "body.configs.spark.x"),
    ("empty-config-key", _body(configs={"": "v"}), 422, "non-empty"),
    ("config-key-with-equals", _body(configs={"a=b": "v"}), 422, "'='"),
    ("config-key-with-space", _body(configs={"spark x": "v"}), 422, "whitespace"),
    ("config-key-with-tab", _body(configs={"spark\tx": "v"}), 422, "whitespace"),
    ("config-value-with-newline", _body(configs={"spark.x": "a\nb"}), 422, "line breaks"),
    ("unknown-field", _body(config={"a": "b"}), 422, "body.config"),
    ("unavailable-version", _body(version="9.9.9"), 400, "available"),
    ("reserved-conf", _body(configs={"spark.connect.grpc.binding.port": "1"}), 400, "reserved"),
]


@pytest.fixture
async def client(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    yield api.client


@pytest.mark.parametrize(
    ("raw", "status", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_create_body_is_refused_with_a_detail_and_stores_nothing(
    api: Api, raw: bytes, status: int, fragment: str
) -> None:
    response = await api.client.post(
        "/engine", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert fragment in detail, detail
    assert await api.store.list() == []
    assert api.notified == []


async def test_a_body_without_content_type_is_still_read_as_json(api: Api) -> None:
    response = await api.client.post("/engine", content=_body())
    assert response.status_code == 200, response.text


async def test_a_text_plain_body_is_422_not_500(api: Api) -> None:
    response = await api.client.post(
        "/engine", content=_body(), headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)
    assert await api.store.list() == []


async def test_a_name_of_255_characters_with_unicode_is_accepted(api: Api) -> None:
    engine_id = await api.create(name="é" * 255)
    assert (await api.engine(engine_id)).name == "é" * 255


async def test_a_body_over_the_limit_is_413_and_stores_nothing(start_api: StartApi) -> None:
    async with start_api(RucatConfig(max_body_bytes=4096)) as api:
        big = _body(configs={"spark.big": "x" * 5000})
        response = await api.client.post(
            "/engine", content=big, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert "4096" in response.json()["detail"]
        assert await api.store.list() == []


async def test_a_chunked_body_over_the_limit_is_413_without_a_content_length(
    start_api: StartApi,
) -> None:
    async with start_api(RucatConfig(max_body_bytes=4096)) as api:

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"name": "big", "engine_type": "Spark", "version": "4.0.1", "configs": {"a": "'
            for _ in range(64):
                yield b"x" * 1024
            yield b'"}}'

        response = await api.client.post(
            "/engine", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert response.status_code == 413
        assert isinstance(response.json()["detail"], str)
        assert await api.store.list() == []


async def test_a_body_of_one_mebibyte_is_413_under_the_default_limit(api: Api) -> None:
    big = _body(configs={"spark.big": "x" * (1 << 20)})
    response = await api.client.post(
        "/engine", content=big, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert await api.store.list() == []


async def test_a_chunked_body_under_the_limit_is_accepted(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        raw = _body()
        for i in range(0, len(raw), 7):
            yield raw[i : i + 7]

    response = await api.client.post(
        "/engine", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text


async def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    missing = await api.client.get("/nothing/here")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}
    wrong_method = await api.client.put("/engines")
    assert wrong_method.status_code == 405
    assert isinstance(wrong_method.json()["detail"], str)
