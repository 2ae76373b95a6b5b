"""The domain's access decisions applied to requests: hidden engines are unknown engines.

`authorize` turns `decide_access` into the errors the API answers: an engine
the caller has no level on raises exactly the EngineNotFound an unknown id
raises (same status, same detail shape), so nobody learns that someone else's
engine exists; a caller who sees the engine but lacks the level gets
PermissionDenied (403) naming the level needed.

`connect_url` builds the address users paste into SparkSession.builder.remote().
"""

from __future__ import annotations

import ipaddress
import re

from rucat.domain.access import EngineAction, Forbid, Hide, decide_access
from rucat.domain.engine import Engine, EngineId
from rucat.domain.errors import EngineNotFound, PermissionDenied
from rucat.domain.principal import Principal
from rucat.server.proxy_auth import ENGINE_ID_KEY

#: A DNS name (or IPv4 address) as it may appear in a URL authority.
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,252}[A-Za-z0-9])?$")


def authorize(principal: Principal, engine: Engine, action: EngineAction) -> Engine:
    """`engine` if `principal` may do `action` to it; else EngineNotFound or PermissionDenied."""
    decision = decide_access(principal, action, owner=engine.owner, grants=engine.grants)
    if isinstance(decision, Hide):
        raise EngineNotFound(engine.id)
    if isinstance(decision, Forbid):
        raise PermissionDenied(decision.reason)
    return engine


def url_host(host: str) -> str | None:
    """`host` as a URL authority's host (IPv6 in brackets); None if it is not a host name."""
    candidate = host.strip()
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return candidate if _HOSTNAME_RE.fullmatch(candidate) else None
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def host_of_header(host_header: str | None) -> str | None:
    """The host name of an HTTP Host header, without its port; None when absent or malformed."""
    if not host_header:
        return None
    value = host_header.strip()
    if value.startswith("["):  # [v6]:port or [v6]
        end = value.find("]")
        return url_host(value[: end + 1]) if end > 0 else None
    if value.count(":") == 1:  # name:port
        value = value.split(":", 1)[0]
    return url_host(value)


def connect_url(engine_id: EngineId, *, host: str, port: int, tls: bool) -> str:
    """``sc://host:port/;x-rucat-engine-id=<id>`` (+ ``;use_ssl=true`` behind TLS)."""
    url = f"sc://{host}:{port}/;{ENGINE_ID_KEY}={engine_id}"
    return url + ";use_ssl=true" if tls else url
