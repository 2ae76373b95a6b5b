"""The Python SDK for Rucat's REST API and Spark Connect proxy.

    from rucat.client import RucatClient

    with RucatClient("http://127.0.0.1:3000", token="...") as rucat:
        engine_id = rucat.create("etl", "4.0.1")
        rucat.wait_until(engine_id, "Running", timeout=300)
        spark = rucat.spark_session(engine_id)

`connect(engine_id)` does the last step in one call, configured from the
environment like the CLI. `AsyncRucatClient` has the same methods for
asyncio. Every failure is a `RucatClientError` subclass carrying the server's
`detail`. This package talks HTTP only: it never imports the server, store
or platforms.
"""

from rucat.client._async import AsyncRucatClient
from rucat.client._core import DEFAULT_CONNECT_PORT, DEFAULT_URL, parse_grant
from rucat.client._sync import RucatClient, connect
from rucat.client.errors import (
    BadRequest,
    Conflict,
    EngineFailed,
    Forbidden,
    NotFound,
    QuotaExceeded,
    RucatClientError,
    ServerError,
    ServerUnreachable,
    ServiceUnavailable,
    Unauthorized,
    UnexpectedResponse,
    WaitAborted,
    WaitTimeout,
)
from rucat.client.models import EngineEventInfo, EngineInfo, Permissions
from rucat.client.pools import PoolInfo
from rucat.client.tokens import CreatedToken, TokenInfo
from rucat.domain.state import EngineState

__all__ = [
    "DEFAULT_CONNECT_PORT",
    "DEFAULT_URL",
    "AsyncRucatClient",
    "BadRequest",
    "Conflict",
    "CreatedToken",
    "EngineEventInfo",
    "EngineFailed",
    "EngineInfo",
    "EngineState",
    "Forbidden",
    "NotFound",
    "Permissions",
    "PoolInfo",
    "QuotaExceeded",
    "RucatClient",
    "RucatClientError",
    "ServerError",
    "ServerUnreachable",
    "ServiceUnavailable",
    "TokenInfo",
    "Unauthorized",
    "UnexpectedResponse",
    "WaitAborted",
    "WaitTimeout",
    "connect",
    "parse_grant",
]
