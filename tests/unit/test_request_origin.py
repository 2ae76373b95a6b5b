"""Which Host and Origin headers the REST API answers, over tables of cases."""

from __future__ import annotations

import pytest

from rucat.domain.request_origin import (
    default_allowed_hosts,
    host_allowed,
    origin_allowed,
    split_host,
)

DEFAULT = default_allowed_hosts("127.0.0.1")


def test_the_default_is_the_bind_host_and_the_loopback_names() -> None:
    assert default_allowed_hosts("127.0.0.1") == ("127.0.0.1", "localhost", "::1")
    assert default_allowed_hosts("0.0.0.0") == ("0.0.0.0", "localhost", "127.0.0.1", "::1")
    assert default_allowed_hosts("Rucat.Example.") == (
        "rucat.example",
        "localhost",
        "127.0.0.1",
        "::1",
    )
    assert default_allowed_hosts("[::1]") == ("::1", "localhost", "127.0.0.1")


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        pytest.param("example.com", ("example.com", None), id="name"),
        pytest.param("Example.COM:3000", ("example.com", 3000), id="name-port-case"),
        pytest.param("example.com.:80", ("example.com", 80), id="trailing-dot"),
        pytest.param("127.0.0.1:3000", ("127.0.0.1", 3000), id="ipv4-port"),
        pytest.param("[::1]:3000", ("::1", 3000), id="ipv6-port"),
        pytest.param("[::1]", ("::1", None), id="ipv6-brackets"),
        pytest.param("::1", ("::1", None), id="ipv6-bare"),
        pytest.param("", None, id="empty"),
        pytest.param(":3000", None, id="no-name"),
        pytest.param("example.com:http", None, id="port-not-a-number"),
        pytest.param("example.com:99999", None, id="port-too-big"),
        pytest.param("[::1", None, id="unclosed-bracket"),
        pytest.param("[::1]x", None, id="junk-after-bracket"),
    ],
)
def test_host_headers_parse(value: str, parsed: tuple[str, int | None] | None) -> None:
    assert split_host(value) == parsed


@pytest.mark.parametrize(
    ("host", "allowed", "ok"),
    [
        pytest.param("localhost:3000", DEFAULT, True, id="localhost-any-port"),
        pytest.param("LOCALHOST", DEFAULT, True, id="case-insensitive"),
        pytest.param("127.0.0.1:3000", DEFAULT, True, id="ipv4-loopback"),
        pytest.param("[::1]:3000", DEFAULT, True, id="ipv6-loopback"),
        pytest.param("evil.example:3000", DEFAULT, False, id="rebound-name"),
        pytest.param("localhost.evil.example", DEFAULT, False, id="prefix-is-not-enough"),
        pytest.param("127.0.0.2", DEFAULT, False, id="other-loopback-address"),
        pytest.param(None, DEFAULT, False, id="no-host-header"),
        pytest.param("localhost:bad", DEFAULT, False, id="malformed"),
        pytest.param("anything.example", ("*",), True, id="star-allows-any"),
        pytest.param(None, ("*",), True, id="star-allows-none"),
        pytest.param("rucat.svc.cluster.local", ("rucat.svc.cluster.local",), True, id="listed"),
        pytest.param("api.example.com", ("*.example.com",), True, id="subdomain-pattern"),
        pytest.param("a.b.example.com:443", ("*.example.com",), True, id="deep-subdomain"),
        pytest.param("example.com", ("*.example.com",), False, id="pattern-needs-subdomain"),
        pytest.param("badexample.com", ("*.example.com",), False, id="pattern-on-label-boundary"),
        pytest.param("[::1]", ("[::1]",), True, id="listed-with-brackets"),
    ],
)
def test_hosts_are_allowed_or_not(host: str | None, allowed: tuple[str, ...], ok: bool) -> None:
    assert host_allowed(host, allowed) is ok


@pytest.mark.parametrize(
    ("origin", "scheme", "host", "allowed", "ok"),
    [
        pytest.param("http://localhost:3000", "http", "localhost:3000", (), True, id="own-origin"),
        pytest.param("http://LOCALHOST:3000", "http", "localhost:3000", (), True, id="own-case"),
        pytest.param("http://localhost", "http", "localhost:80", (), True, id="own-default-port"),
        pytest.param("http://[::1]:3000", "http", "[::1]:3000", (), True, id="own-ipv6"),
        pytest.param("http://localhost:3000/", "http", "localhost:3000", (), True, id="slash"),
        pytest.param("http://evil.example", "http", "localhost:3000", (), False, id="foreign"),
        pytest.param("http://localhost:8080", "http", "localhost:3000", (), False, id="port"),
        pytest.param("https://localhost:3000", "http", "localhost:3000", (), False, id="scheme"),
        pytest.param("null", "http", "localhost:3000", (), False, id="null-origin"),
        pytest.param("", "http", "localhost:3000", (), False, id="empty-origin"),
        pytest.param("file://", "http", "localhost:3000", (), False, id="file-origin"),
        pytest.param("http://localhost:x", "http", "localhost:3000", (), False, id="bad-port"),
        pytest.param(
            "http://localhost:3000/x", "http", "localhost:3000", (), False, id="not-an-origin"
        ),
        pytest.param("http://evil.example", "http", None, (), False, id="no-host"),
        pytest.param(
            "https://ui.example",
            "http",
            "localhost:3000",
            ("https://ui.example",),
            True,
            id="listed",
        ),
        pytest.param(
            "https://ui.example:443",
            "http",
            "localhost:3000",
            ("https://ui.example",),
            True,
            id="listed-default-port",
        ),
        pytest.param(
            "http://ui.example",
            "http",
            "localhost:3000",
            ("https://ui.example",),
            False,
            id="listed-other-scheme",
        ),
        pytest.param("http://evil.example", "http", "x", ("*",), True, id="star-allows-any"),
    ],
)
def test_origins_are_allowed_or_not(
    origin: str, scheme: str, host: str | None, allowed: tuple[str, ...], ok: bool
) -> None:
    assert origin_allowed(origin, scheme=scheme, host_header=host, allowed_origins=allowed) is ok
