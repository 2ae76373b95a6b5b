"""Who may use the Spark Connect proxy, and what of a client's metadata goes on.

Kept apart from the forwarding machinery (server/proxy.py) because these are
the security decisions: which credentials are accepted (exactly the REST API's,
through its Authenticator), which refusals the proxy answers itself
(with status codes pyspark does not retry), and which metadata keys never
reach an engine (the client's credentials above all).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import grpc

from rucat.domain.errors import RetryableError, Unauthenticated
from rucat.domain.principal import Principal
from rucat.server.auth import Authenticator

log = logging.getLogger("rucat.server.proxy")

#: The metadata key naming the engine; pyspark sends it from `;x-rucat-engine-id=<id>`.
ENGINE_ID_KEY = "x-rucat-engine-id"

#: Client metadata not forwarded upstream: credentials (replaced by the
#: engine's), routing, and headers gRPC sets itself on each hop.
_DROPPED_KEYS = frozenset({"authorization", ENGINE_ID_KEY, "user-agent", "te", "content-type"})

#: The one `grpc-` key an application sets: the rich error status (google.rpc.Status),
#: from which pyspark rebuilds AnalysisException and friends.
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def forwardable(metadata: Sequence[tuple[str, str | bytes]] | None) -> list[tuple[str, Any]]:
    """`metadata` without what must not cross the proxy (either direction)."""
    if not metadata:
        return []
    return [
        (key, value)
        for key, value in metadata
        if key not in _DROPPED_KEYS
        and (key == _STATUS_DETAILS_KEY or not key.startswith((":", "grpc-")))
    ]


class Refused(Exception):
    """An RPC the proxy answers itself, with a status pyspark does not retry.

    `details` are shown to the client: they never hold a secret.
    """

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class ProxyCredentials:
    """What clients must present on the gRPC path: whatever the REST API accepts.

    Delegates to the server's one Authenticator, so the same credentials work
    on both paths. pyspark can send only a bearer token (`token=` in the
    connection string); HTTP Basic is accepted too, for other clients. No auth
    configured: every caller is the anonymous admin.
    """

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator
        if authenticator.enabled and "bearer" not in authenticator.schemes:
            log.warning(
                "auth takes no bearer token: pyspark clients cannot authenticate to the "
                "Spark Connect proxy (they can send only a bearer token)"
            )

    @property
    def required(self) -> bool:
        return self._authenticator.enabled

    async def principal(self, presented: str | None) -> Principal:
        """The caller for an `authorization` metadata value.

        Raises Refused(UNAUTHENTICATED) for missing or wrong credentials, and
        Refused(UNAVAILABLE) when they cannot be checked now (worth retrying).
        """
        if presented is None and self._authenticator.enabled:
            raise Refused(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing credentials: add ;token=<token> to the sc:// connection string",
            )
        try:
            return await self._authenticator.authenticate(presented)
        except Unauthenticated as e:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, e.message) from None
        except RetryableError as e:
            raise Refused(grpc.StatusCode.UNAVAILABLE, e.message) from None
