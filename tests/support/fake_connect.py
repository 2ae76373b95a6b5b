"""A Java-free Spark Connect endpoint in the test process, for tests that drive it.

It is the fake spark-submit's Spark Connect service
(tests/support/fake_spark_server.py: `connect_server`), served on a free port
of 127.0.0.1 in threads of this process instead of in an engine process, so a
test can turn it off and count what it got. It answers the SparkVersion
analysis with `version` and honours a token as a Spark 4 Connect server does
(``authorization: Bearer <token>``, else UNAUTHENTICATED); `answering` off
makes it UNAVAILABLE, as a server whose Connect service is not up yet.
`calls` counts the calls it got, answered or not.
"""

from __future__ import annotations

from typing import Any

import grpc
from pyspark.sql.connect.proto import base_pb2, base_pb2_grpc

from tests.support.fake_spark_server import connect_server, refusing


class _Gauge(grpc.ServerInterceptor):  # type: ignore[misc]
    """Counts every call, and refuses it while the fake is not answering (before the
    token check: a server not up yet checks nothing)."""

    def __init__(self, fake: FakeConnect) -> None:
        self._fake = fake

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        self._fake.calls += 1
        handler = continuation(details)
        if self._fake.answering or handler is None:
            return handler
        return refusing(handler, grpc.StatusCode.UNAVAILABLE, "not serving yet")


class FakeConnect:
    def __init__(self, *, token: str | None, version: str = "4.0.1") -> None:
        self.token = token
        self.version = version
        self.answering = True
        self.calls = 0
        self._server: Any = None
        self.port = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = connect_server(
            base_pb2,
            base_pb2_grpc,
            token=self.token,
            version=self.version,
            interceptors=(_Gauge(self),),
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
