"""Who is calling: one Authenticator turns credentials into a Principal.

The REST middleware and the Spark Connect proxy both ask the same
`Authenticator`, so the same credentials work on both paths and are refused
the same way. Each configured provider (static, users, OIDC) is one module
here; personal access tokens work beside any of them.
"""

from __future__ import annotations

from fastapi import Request

from rucat.domain.principal import ANONYMOUS_ADMIN, Principal
from rucat.server.auth.authenticator import Authenticator, Provider

__all__ = ["ANONYMOUS_ADMIN", "Authenticator", "Provider", "principal_of"]


def principal_of(request: Request) -> Principal:
    """FastAPI dependency: the principal the middleware authenticated for this request."""
    principal = getattr(request.state, "principal", None)
    return principal if isinstance(principal, Principal) else ANONYMOUS_ADMIN
