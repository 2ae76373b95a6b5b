"""The error answers every REST route documents in /openapi.json."""

from __future__ import annotations

from typing import Any

#: Status code -> OpenAPI response (description and an example `detail`).
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"example": {"detail": text}}}}
    for status, text in {
        400: "Bad input",
        401: "Unauthenticated",
        403: "The caller sees the engine but lacks the level this action needs",
        404: "Unknown engine (or one the caller may not see)",
        409: "Not allowed in the engine's current state",
        422: "Malformed input",
        429: "The caller's quota of active engines is used up",
        503: "Store unavailable",
    }.items()
}
