"""Asking a running Spark Connect server: its version (the readiness probe) and a warm-up query.

Both are real Spark Connect calls over gRPC, not TCP checks. grpc and
pyspark's protos are imported on first use (about 1 s of CPU), so a process
that never probes never pays for them.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from rucat.domain.engine import EngineId
from rucat.domain.errors import EngineRefused, EngineUnreachable, RucatError

if TYPE_CHECKING:
    import grpc


def probe_session_id(engine_id: EngineId) -> str:
    """A fixed session id for Rucat's probes of one engine: the server keeps one
    session for them instead of a new one per probe."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"rucat:probe:{engine_id}"))


def _failure(error: grpc.aio.AioRpcError, target: str, did: str) -> RucatError:
    """What a failed Spark Connect call means: EngineRefused when the server refused
    the token, else EngineUnreachable ("... at `target` `did`: CODE")."""
    import grpc

    if error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return EngineRefused(f"Spark Connect at {target} refused: {error.details()}")
    return EngineUnreachable(f"Spark Connect at {target} {did}: {error.code().name}")


async def connect_version(
    target: str, *, token: str | None, timeout: float, session_id: str | None = None
) -> str:
    """Ask a Spark Connect server for its Spark version: a real call, not a TCP check.

    `target` is ``host:port``. Raises EngineUnreachable when it does not answer
    (yet) and EngineRefused when it refuses the token.
    """
    import grpc
    from pyspark.sql.connect.proto import base_pb2, base_pb2_grpc

    request = base_pb2.AnalyzePlanRequest(
        session_id=session_id or str(uuid.uuid4()),
        user_context=base_pb2.UserContext(user_id="rucat"),
        spark_version=base_pb2.AnalyzePlanRequest.SparkVersion(),
    )
    metadata = [("authorization", f"Bearer {token}")] if token else []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = base_pb2_grpc.SparkConnectServiceStub(channel)  # type: ignore[no-untyped-call]
        try:
            response = await stub.AnalyzePlan(request, metadata=metadata, timeout=timeout)
        except grpc.aio.AioRpcError as e:
            raise _failure(e, target, "did not answer") from e
    return str(response.spark_version.version)


async def connect_query(
    target: str, *, token: str | None, timeout: float, query: str, session_id: str | None = None
) -> None:
    """Run one SQL query on a Spark Connect server and read its whole answer.

    A warm-up: an engine's first query pays for the JVM's cold code paths and the
    first session's set-up (seconds), which every later session is spared. Raises
    EngineUnreachable when it does not answer or fails, EngineRefused on the token.
    """
    import grpc
    from pyspark.sql.connect.proto import base_pb2, base_pb2_grpc, relations_pb2

    request = base_pb2.ExecutePlanRequest(
        session_id=session_id or str(uuid.uuid4()),
        user_context=base_pb2.UserContext(user_id="rucat"),
        plan=base_pb2.Plan(root=relations_pb2.Relation(sql=relations_pb2.SQL(query=query))),
    )
    metadata = [("authorization", f"Bearer {token}")] if token else []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = base_pb2_grpc.SparkConnectServiceStub(channel)  # type: ignore[no-untyped-call]
        try:
            async for _ in stub.ExecutePlan(request, metadata=metadata, timeout=timeout):
                pass
        except grpc.aio.AioRpcError as e:
            raise _failure(e, target, f"did not run {query!r}") from e
