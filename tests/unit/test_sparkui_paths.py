"""The Spark UI proxy's pure path and redirect decisions (server/sparkui.py)."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from rucat.server.sparkui import is_sparkui_path, rewrite_location, upstream_host, upstream_path

PREFIX = "/engine/a1234567890123456789/sparkui"


def test_sparkui_paths_are_those_under_some_engines_prefix() -> None:
    assert is_sparkui_path(PREFIX)
    assert is_sparkui_path(f"{PREFIX}/jobs/")
    assert not is_sparkui_path(f"{PREFIX}x/jobs/")
    assert not is_sparkui_path("/engine/a1234567890123456789")
    assert not is_sparkui_path("/ui/engine/a1234567890123456789/sparkui/")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (PREFIX, "/"),
        (f"{PREFIX}/", "/"),
        (f"{PREFIX}/jobs/job/", "/jobs/job/"),
        (f"{PREFIX}/static/a%20b.css", "/static/a%20b.css"),
        (f"{PREFIX}/api/v1/applications", "/api/v1/applications"),
    ],
)
def test_the_upstream_path_is_the_rest_after_the_prefix_still_encoded(
    raw: str, expected: str
) -> None:
    assert upstream_path(raw.encode(), PREFIX) == expected


@pytest.mark.parametrize(
    "rest",
    [
        "/..",
        "/a/../../x",
        "/%2e%2e/x",
        "/.%2E/x",
        "//evil.example/",
        "/http://evil.example/",
        "/a%5cb",
        "/a%0d%0ab",
        "/a%00",
        "/a%7f",
    ],
)
def test_anything_but_a_plain_path_is_refused(rest: str) -> None:
    with pytest.raises(HTTPException) as refused:
        upstream_path(f"{PREFIX}{rest}".encode(), PREFIX)
    assert refused.value.status_code == 400


def test_a_path_of_another_engine_is_refused() -> None:
    with pytest.raises(HTTPException):
        upstream_path(b"/engine/b1234567890123456789/sparkui/", PREFIX)


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://10.0.0.5:4040/jobs/", f"{PREFIX}/jobs/"),
        (f"http://10.0.0.5:4040{PREFIX}/jobs/?id=1", f"{PREFIX}/jobs/?id=1"),
        ("/jobs/", f"{PREFIX}/jobs/"),
        (f"{PREFIX}/stages/", f"{PREFIX}/stages/"),
        ("stages/", f"{PREFIX}/jobs/stages/"),
        ("../../../../ui/", f"{PREFIX}/ui/"),
    ],
)
def test_redirects_are_rewritten_into_the_prefix(location: str, expected: str) -> None:
    rewritten = rewrite_location(
        location, authority="10.0.0.5:4040", request_path="/jobs/x", prefix=PREFIX
    )
    assert rewritten == expected


@pytest.mark.parametrize(
    "location",
    ["http://evil.example/", "https://10.0.0.5:4041/", "//evil.example/x", "javascript:alert(1)"],
)
def test_redirects_off_the_engine_are_refused(location: str) -> None:
    assert (
        rewrite_location(location, authority="10.0.0.5:4040", request_path="/", prefix=PREFIX)
        is None
    )


def test_the_upstream_host_is_the_recorded_endpoints() -> None:
    assert upstream_host("sc://127.0.0.1:15002") == "127.0.0.1"
    assert upstream_host("sc://rucat-spark-x.ns.svc:15002") == "rucat-spark-x.ns.svc"
    assert upstream_host("sc://[::1]:15002") == "::1"
    assert upstream_host("sc://no-port") is None
