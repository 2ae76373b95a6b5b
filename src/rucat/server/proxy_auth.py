"""Who may use the Spark Connect proxy, and what of a client's metadata goes on.

Kept apart from the forwarding machinery (server/proxy.py) because these are
the security decisions: which credentials are accepted (the REST API's static
ones, compared in constant time), which refusals the proxy answers itself
(with status codes pyspark does not retry), and which metadata keys never
reach an engine (the client's credentials above all).
"""

from __future__ import annotations

import hmac
import logging
from base64 import b64encode
from collections.abc import Sequence
from typing import Any

import grpc

from rucat.config import RucatConfig

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
    """What clients must present on the gRPC path: the REST API's static credentials.

    pyspark can send only a bearer token (`token=` in the connection string).
    HTTP Basic is accepted too, for other clients. No auth configured: open.
    """

    def __init__(self, config: RucatConfig) -> None:
        self._accepted: list[bytes] = []
        static = config.auth_provider.StaticAuthProviderConfig if config.auth_provider else None
        if static is None:
            return
        if static.bearer_token is not None:
            self._accepted.append(f"Bearer {static.bearer_token.get_secret_value()}".encode())
        if static.username is not None and static.password is not None:
            pair = f"{static.username}:{static.password.get_secret_value()}".encode()
            self._accepted.append(b"Basic " + b64encode(pair))
        if static.bearer_token is None:
            log.warning(
                "auth has no bearer_token: pyspark clients cannot authenticate to the "
                "Spark Connect proxy (they can send only a bearer token)"
            )

    @property
    def required(self) -> bool:
        return bool(self._accepted)

    def check(self, presented: str | None) -> None:
        """Raise Refused(UNAUTHENTICATED) unless the authorization value is accepted."""
        if not self._accepted:
            return
        if presented is None:
            raise Refused(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing credentials: add ;token=<token> to the sc:// connection string",
            )
        given = presented.encode()
        # Compare with every accepted value, so timing says nothing about which matched.
        ok = False
        for accepted in self._accepted:
            ok |= hmac.compare_digest(given, accepted)
        if not ok:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, "wrong credentials")
