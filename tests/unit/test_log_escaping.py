"""Client-supplied text cannot forge or disguise a log line, in text or JSON format."""

from __future__ import annotations

import json
import logging

import pytest

from rucat.domain.text import escape_unsafe
from rucat.server.logs import JsonFormatter, TextFormatter


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        pytest.param("/engine/abc", "/engine/abc", id="plain"),
        pytest.param("naïve 名前 Ωmega", "naïve 名前 Ωmega", id="letters-of-any-script"),
        pytest.param("a b\u00a0c\u3000d", "a b\u00a0c\u3000d", id="spaces-of-any-script"),
        pytest.param("a\r\nFAKE 200", "a\\r\\nFAKE 200", id="crlf"),
        pytest.param("a\nb", "a\\nb", id="lf"),
        pytest.param("a\tb", "a\\tb", id="tab"),
        pytest.param("a\x00b", "a\\x00b", id="nul"),
        pytest.param("\x1b[31mred", "\\x1b[31mred", id="terminal-escape"),
        pytest.param("a\x7fb", "a\\x7fb", id="del"),
        pytest.param("a\x85b", "a\\x85b", id="c1-next-line"),
        pytest.param("evil\u202etxt.exe", "evil\\u202etxt.exe", id="bidi-override"),
        pytest.param("a\u200bb", "a\\u200bb", id="zero-width-space"),
        pytest.param("\ufeffbom", "\\ufeffbom", id="bom"),
        pytest.param("a\u2028b\u2029c", "a\\u2028b\\u2029c", id="line-and-paragraph-separator"),
        pytest.param("a\ud800b", "a\\ud800b", id="lone-surrogate"),
        pytest.param("tag\U000e0041", "tag\\U000e0041", id="tag-character"),
        pytest.param("back\\slash", "back\\slash", id="backslash-kept"),
    ],
)
def test_unsafe_characters_are_escaped(text: str, escaped: str) -> None:
    assert escape_unsafe(text) == escaped


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("rucat.access", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


FORGED = "/engine/x\r\n2026-01-01 00:00:00,000 INFO rucat.access POST /admin 200\u202e"


def test_a_text_record_stays_one_line_whatever_the_client_sent() -> None:
    line = TextFormatter().format(_record("GET %s %d", FORGED, 404, path=FORGED, n={"k": FORGED}))
    assert "\n" not in line and "\r" not in line and "\u202e" not in line
    assert line.count("/engine/x\\r\\n2026-01-01") == 3  # message, path and nested extra
    assert "\\u202e" in line


def test_a_json_record_holds_no_raw_control_or_format_character() -> None:
    line = JsonFormatter().format(_record("GET %s", FORGED, path=FORGED, tags=[FORGED]))
    assert "\n" not in line and "\u202e" not in line
    entry = json.loads(line)
    for value in (entry["message"], entry["path"], entry["tags"][0]):
        assert "\r" not in value and "\n" not in value and "\u202e" not in value
        assert "/engine/x\\r\\n2026" in value


def test_a_traceback_keeps_its_lines_but_not_the_clients_control_characters() -> None:
    try:
        raise ValueError(FORGED)
    except ValueError:
        import sys

        record = logging.LogRecord(
            "rucat.server", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    record.exc_text = "cached by another handler:\r\n" + FORGED  # must not be reused
    text = TextFormatter().format(record)
    assert text.splitlines()[1].startswith("Traceback")
    assert "\r" not in text and "\u202e" not in text
    assert "ValueError: /engine/x\\r\\n2026" in text
    entry = json.loads(JsonFormatter().format(record))
    assert "\u202e" not in entry["exception"] and "\\r\\n2026" in entry["exception"]
