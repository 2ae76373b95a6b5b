"""Typed errors of the SDK: one class per way a call to Rucat can fail.

Every error derives from `RucatClientError` (itself a `RucatError`), carries
the server's `detail` text and the HTTP `status` (None when no answer came
back), so callers can catch one root or one precise case. The mapping from
HTTP status to class lives here and nowhere else in the SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rucat.domain.errors import RucatError

if TYPE_CHECKING:
    from rucat.client.models import EngineInfo
    from rucat.domain.state import EngineState

__all__ = [
    "BadRequest",
    "Conflict",
    "EngineFailed",
    "Forbidden",
    "NotFound",
    "QuotaExceeded",
    "RucatClientError",
    "ServerError",
    "ServerUnreachable",
    "ServiceUnavailable",
    "Unauthorized",
    "UnexpectedResponse",
    "WaitAborted",
    "WaitTimeout",
    "error_for_status",
]


class RucatClientError(RucatError):
    """A call to the Rucat server failed; `detail` says why, `status` is the HTTP code."""

    def __init__(self, detail: str, *, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


class BadRequest(RucatClientError):
    """400, 413 or 422: the request was refused as invalid; `detail` says what is wrong."""


class Unauthorized(RucatClientError):
    """401: missing or wrong credentials."""


class Forbidden(RucatClientError):
    """403: the caller sees the engine but lacks the level (attach, manage) the action needs."""


class QuotaExceeded(RucatClientError):
    """429: the caller already has as many active engines as its quota allows."""


class NotFound(RucatClientError):
    """404: no engine has this id."""


class Conflict(RucatClientError):
    """409: the action is not allowed in the engine's current state."""


class ServiceUnavailable(RucatClientError):
    """503: the server is up but its store is not; retrying later may succeed."""

    retryable = True


class ServerError(RucatClientError):
    """Any other status: a bug or a proxy in the way."""


class ServerUnreachable(RucatClientError):
    """No HTTP answer at all: connection refused, DNS failure, timeout."""

    retryable = True


class UnexpectedResponse(RucatClientError):
    """The server answered 2xx with a body this SDK cannot read (version mismatch?)."""


class WaitAborted(RucatClientError):
    """`wait_until` gave up because the engine can no longer reach the wanted state.

    `engine` is the engine as last seen.
    """

    def __init__(self, detail: str, *, engine: EngineInfo) -> None:
        super().__init__(detail)
        self.engine = engine


class EngineFailed(WaitAborted):
    """The engine landed in an error state; `detail` carries the engine's own message."""


class WaitTimeout(RucatClientError):
    """The engine did not reach the wanted state in time; `engine` is the last seen."""

    retryable = True

    def __init__(self, detail: str, *, engine: EngineInfo | None, wanted: EngineState) -> None:
        super().__init__(detail)
        self.engine = engine
        self.wanted = wanted


def error_for_status(status: int, detail: str) -> RucatClientError:
    """The typed error for an HTTP error `status` with the server's `detail`."""
    cls: type[RucatClientError]
    if status in (400, 413, 422):
        cls = BadRequest
    elif status == 401:
        cls = Unauthorized
    elif status == 403:
        cls = Forbidden
    elif status == 404:
        cls = NotFound
    elif status == 409:
        cls = Conflict
    elif status == 429:
        cls = QuotaExceeded
    elif status == 503:
        cls = ServiceUnavailable
    else:
        cls = ServerError
    return cls(detail, status=status)
