"""A Java-free Spark Connect endpoint: a real gRPC server that answers AnalyzePlan.

It answers the SparkVersion analysis with `version` and honours a token as a
Spark 4 Connect server does (``authorization: Bearer <token>``, else
UNAUTHENTICATED); `answering` off makes it UNAVAILABLE, as a server whose
Connect service is not up yet. Counts the calls it got.
"""

from __future__ import annotations

from typing import Any

import grpc
from pyspark.sql.connect.proto import base_pb2, base_pb2_grpc


class FakeConnect(base_pb2_grpc.SparkConnectServiceServicer):  # type: ignore[misc]
    def __init__(self, *, token: str | None, version: str = "4.0.1") -> None:
        self.token = token
        self.version = version
        self.answering = True
        self.calls = 0
        self._server: grpc.aio.Server | None = None
        self.port = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = grpc.aio.server()
        base_pb2_grpc.add_SparkConnectServiceServicer_to_server(self, self._server)  # type: ignore[no-untyped-call]
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)

    async def AnalyzePlan(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.calls += 1
        if not self.answering:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not serving yet")
        given = dict(context.invocation_metadata() or ()).get("authorization")
        if self.token is not None and given != f"Bearer {self.token}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
        return base_pb2.AnalyzePlanResponse(
            session_id=request.session_id,
            spark_version=base_pb2.AnalyzePlanResponse.SparkVersion(version=self.version),
        )
