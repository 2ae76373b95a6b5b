"""A request cannot forge or disguise a line of the server's log (text and JSON formats).

uvicorn percent-decodes the path, so ``%0d%0a`` in a URL reaches the access
log as a real CR LF; ``%E2%80%AE`` as a right-to-left override.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from rucat.server.logs import JsonFormatter, TextFormatter
from tests.integration.conftest import Api

FORGED = "/engine/x%0d%0a2026-01-01%2000:00:00,000%20INFO%20rucat.access%20POST%20/admin%20200"
DISGUISED = "/engine/%E2%80%AEexe.txt%E2%80%8B"


@pytest.fixture(params=["text", "json"])
def server_log(request: pytest.FixtureRequest) -> Iterator[tuple[str, io.StringIO]]:
    """What Rucat's loggers write, in one format, while the test runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if request.param == "json" else TextFormatter())
    logger = logging.getLogger("rucat")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield str(request.param), stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


async def test_a_path_with_line_breaks_or_format_characters_is_logged_escaped(
    api: Api, server_log: tuple[str, io.StringIO]
) -> None:
    log_format, stream = server_log
    for path in (FORGED, DISGUISED):
        response = await api.client.get(path)
        assert response.status_code == 404
    lines = stream.getvalue().splitlines()
    access = [line for line in lines if "rucat.access" in line and "/engine/" in line]
    assert len(access) == 2, lines  # one line per request: nothing forged
    text = stream.getvalue()
    for raw in ("\r", "\u202e", "\u200b"):
        assert raw not in text
    if log_format == "json":
        entries = [json.loads(line) for line in access]
        assert entries[0]["path"].startswith("/engine/x\\r\\n2026-01-01")
        assert entries[1]["path"] == "/engine/\\u202eexe.txt\\u200b"
    else:
        assert "/engine/x\\r\\n2026-01-01" in access[0]
        assert "/engine/\\u202eexe.txt\\u200b" in access[1]
