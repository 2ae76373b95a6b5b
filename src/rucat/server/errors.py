"""HTTP status codes for Rucat's errors, chosen here and nowhere else.

Every error answer is JSON ``{"detail": "<one readable string>"}``. RucatError
subclasses map to codes by kind; request validation errors (422) are flattened
into one string naming each bad field; framework HTTP errors (404 for unknown
routes, 405) keep their text. Anything else is a bug: the middleware answers
500 ``internal error`` and logs the traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rucat.domain.errors import (
    ConfigError,
    EngineNotFound,
    IdentityProviderUnavailable,
    InvalidRequest,
    PermissionDenied,
    QuotaExceeded,
    RetryableError,
    RucatError,
    StateConflict,
    StoreUnavailable,
    TokenNotFound,
    Unauthenticated,
)

log = logging.getLogger("rucat.server")

#: Most specific first: the first matching class decides the code.
_STATUS: tuple[tuple[type[RucatError], int], ...] = (
    (InvalidRequest, 400),
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (EngineNotFound, 404),
    (TokenNotFound, 404),
    (StateConflict, 409),
    (QuotaExceeded, 429),
    (StoreUnavailable, 503),
    (IdentityProviderUnavailable, 503),
    (RetryableError, 503),
    (ConfigError, 500),
)


def status_for(error: RucatError) -> int:
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    return 500


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _location(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def describe_validation_error(errors: Sequence[Any]) -> str:
    """One readable string for pydantic's error list (``body.name: ...; query.limit: ...``)."""
    parts: list[str] = []
    for error in errors:
        kind = error.get("type")
        loc = list(error.get("loc", ()))
        if kind == "json_invalid":
            # FastAPI reports the character offset as the last element of loc.
            ctx = error.get("ctx") or {}
            where = f" at position {loc[-1]}" if len(loc) > 1 else ""
            parts.append(f"body is not valid JSON: {ctx.get('error', 'decode error')}{where}")
            continue
        message = str(error.get("msg", "invalid"))
        # Messages from our own validators arrive as "Value error, <ours>".
        message = message.removeprefix("Value error, ")
        if loc == ["body"] and kind in ("missing", "model_attributes_type", "dict_type"):
            parts.append("body must be a JSON object (sent as Content-Type: application/json)")
            continue
        parts.append(f"{_location(loc)}: {message}")
    return "; ".join(parts) or "invalid request"


async def _rucat_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RucatError)
    status = status_for(exc)
    if status >= 500:
        log.error("request failed: %s", exc.message, exc_info=status == 500)
    headers = None
    if isinstance(exc, Unauthenticated):
        headers = {"WWW-Authenticate": request.app.state.www_authenticate}
    return error_response(status, exc.message, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, describe_validation_error(exc.errors()))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(exc.status_code, detail, dict(exc.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RucatError, _rucat_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
