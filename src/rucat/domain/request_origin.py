"""Which Host and Origin headers the REST API answers: pure decisions, no I/O.

Two browser attacks reach an API on localhost. DNS rebinding: a page on
evil.example makes its name resolve to 127.0.0.1, and the browser sends
``Host: evil.example`` to Rucat; refusing Hosts that are not Rucat's own names
stops it. Drive-by requests: a page POSTs to http://localhost:3000 directly;
the browser sends its own ``Origin``, which is neither Rucat's origin nor an
allowed one. Clients that are not browsers (curl, the SDK) send no Origin and
are never refused for it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from urllib.parse import urlsplit

#: Names every default allows: the loopback interface cannot be rebound.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")

#: Methods that change state; only these are checked against Origin.
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

ANY = "*"

_DEFAULT_PORTS = {"http": 80, "https": 443}


def default_allowed_hosts(bind_host: str) -> tuple[str, ...]:
    """The bind host and the loopback names (what `allowed_hosts: null` means)."""
    bind = _normalize(bind_host.strip("[]"))
    return (bind, *(h for h in LOOPBACK_HOSTS if h != bind))


def _normalize(name: str) -> str:
    return name.lower().rstrip(".")


def split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header value -> (name, port or None); None when it is malformed.

    ``example.com:3000``, ``[::1]:3000``, ``127.0.0.1`` and a bare ``::1`` all parse.
    """
    value = value.strip()
    if not value:
        return None
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    elif value.count(":") > 1:  # a bare IPv6 address, no port
        name, port_text = value, None
    else:
        name, colon, port_text_or_empty = value.partition(":")
        port_text = port_text_or_empty if colon else None
    if not name:
        return None
    if port_text is None:
        return _normalize(name), None
    if not port_text.isdigit() or int(port_text) > 65535:
        return None
    return _normalize(name), int(port_text)


def _host_matches(name: str, pattern: str) -> bool:
    pattern = _normalize(pattern.strip().strip("[]"))
    if pattern == ANY:
        return True
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return name == pattern


def host_allowed(host_header: str | None, allowed: Sequence[str]) -> bool:
    """Whether a request with this Host header (None: absent) may be answered."""
    if ANY in allowed:
        return True
    if host_header is None:
        return False
    parsed = split_host(host_header)
    if parsed is None:
        return False
    return any(_host_matches(parsed[0], pattern) for pattern in allowed)


def _origin_key(scheme: str, name: str | None, port: int | None) -> tuple[str, str, int] | None:
    scheme = scheme.lower()
    if name is None or scheme not in _DEFAULT_PORTS:
        return None
    return scheme, _normalize(name), port if port is not None else _DEFAULT_PORTS[scheme]


def _parse_origin(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    return _origin_key(parts.scheme, parts.hostname, port)


def origin_allowed(
    origin: str,
    *,
    scheme: str,
    host_header: str | None,
    allowed_origins: Collection[str],
) -> bool:
    """Whether a state-changing request with this Origin header may proceed.

    Allowed: the server's own origin (the request's scheme, Host name and
    port), an origin listed in `allowed_origins`, or anything under ``*``.
    ``Origin: null`` (sandboxed frames, file: pages) is never the server's own.
    """
    if ANY in allowed_origins:
        return True
    seen = _parse_origin(origin)
    if seen is None:
        return False
    if host_header is not None:
        parsed = split_host(host_header)
        if parsed is not None and seen == _origin_key(scheme, parsed[0], parsed[1]):
            return True
    return any(seen == _parse_origin(listed) for listed in allowed_origins)
