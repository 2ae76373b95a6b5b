"""What a failed Kubernetes API call says, whatever shape lightkube gave it.

lightkube raises its `ApiError` (with the decoded Status) only when the
response's Content-Type is exactly `application/json`; a proxy or API gateway
that appends `; charset=utf-8` makes it raise a plain httpx `HTTPStatusError`
instead, and a 404 or 409 would then look like any other failure. Every
status check in the Kubernetes platform goes through `as_api_error` /
`status_code` here, so a 404 counts as 404 whatever its Content-Type.
"""

from __future__ import annotations

import httpx2
from lightkube import ApiError
from lightkube.models.meta_v1 import Status


def _status_of(response: httpx2.Response) -> Status:
    code = response.status_code
    try:
        body = response.json()
    except Exception:  # not read (a stream), not JSON, or not text
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        return Status(
            code=body.get("code") or code,
            message=body.get("message"),
            reason=body.get("reason"),
            status=body.get("status"),
        )
    try:
        text = response.text.strip()[:500]
    except Exception:
        text = ""
    return Status(code=code, message=text or response.reason_phrase, status="Failure")


def as_api_error(error: httpx2.HTTPStatusError) -> ApiError:
    """The ApiError lightkube raises for a kube-apiserver response, for any Content-Type."""
    if isinstance(error, ApiError):
        return error
    converted = ApiError(request=error.request, status=_status_of(error.response))
    converted.response = error.response
    return converted


def status_code(error: BaseException) -> int | None:
    """The HTTP status of a Kubernetes API failure, None for transport errors."""
    if isinstance(error, ApiError) and error.status is not None and error.status.code:
        return int(error.status.code)
    if isinstance(error, httpx2.HTTPStatusError):
        return int(error.response.status_code)
    return None


def status_message(error: BaseException) -> str:
    """The API server's own words for a failure (its Status message), else the error's."""
    if isinstance(error, httpx2.HTTPStatusError):
        status = as_api_error(error).status
        if status is not None and status.message:
            return str(status.message)
    return str(error) or type(error).__name__
