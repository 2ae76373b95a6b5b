"""The stand-in spark-submit's program: a tiny real Spark Connect gRPC server.

tests/support/fake_spark.py copies this file, behind a shebang naming this
Python, to ``<fake SPARK_HOME>/bin/spark-submit``. The Local platform runs it
exactly as it runs Spark's: same argv (``--properties-file``, ``--conf``),
same environment, same supervisor. It starts in a fraction of a second and
needs no Java.

What it does is picked by the conf ``rucat.test.mode`` (from its properties
file or a ``--conf``, which wins, as with spark-submit):

- ``serve`` (default): a Spark Connect server on the configured binding
  address and port (port 0: a free one), logging the line the Local platform
  reads the bound port from. It answers AnalyzePlan (the Spark version:
  ``rucat.test.spark_version``, default 9.9.9), Config, and ExecutePlan (any
  plan: an empty result; with ``rucat.test.gate=PATH`` it first creates
  ``PATH.started`` and holds the stream open until PATH exists, as a long
  query would), and, as Spark's own server with
  ``spark.connect.authenticate.token`` set, refuses every call without
  ``authorization: Bearer <token>`` with UNAUTHENTICATED. Other RPCs answer
  UNIMPLEMENTED.
- ``tcp``: a plain TCP port, logged as the Connect port, that never speaks gRPC.
- ``exit:N``: says "fake: giving up" on stderr and exits with status N.
- ``stubborn``: ignores SIGTERM, starts a child that sleeps, then as ``tcp``.
- ``flood:N``: prints N lines of 1 KiB ("flood 00000000 zzz..."), then as ``tcp``.

``rucat.test.delay`` (seconds, default 0) waits before the port opens, and
``rucat.test.open_when=PATH`` until PATH exists, so a test can catch the
engine while it starts, however slow the machine.

It imports the Spark Connect protos from the installed pyspark without
running ``pyspark/__init__`` (which loads pandas and numpy: seconds under load).
The service itself (`connect_server`) takes the protos as arguments, so
tests/support/fake_connect.py serves the same one inside a test process.
"""

from __future__ import annotations

import hmac
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import uuid
from concurrent import futures
from typing import Any

DEFAULT_SPARK_VERSION = "9.9.9"
#: A fake outlives its monitor as an engine does, but not a test run killed
#: before its teardown: it exits on its own after this long.
_LIFETIME_SECS = 3600.0


def _confs(args: list[str]) -> dict[str, str]:
    """As spark-submit: the properties file, then each --conf over it."""
    confs: dict[str, str] = {}
    if "--properties-file" in args:
        with open(args[args.index("--properties-file") + 1], encoding="utf-8") as f:
            for line in f:
                if "=" in line and not line.startswith("#"):
                    key, value = line.rstrip("\n").split("=", 1)
                    # Test values only need Java's escapes undone, not its full syntax.
                    confs[key.replace("\\", "")] = value.replace("\\", "")
    for i, arg in enumerate(args[:-1]):
        if arg == "--conf" and "=" in args[i + 1]:
            key, value = args[i + 1].split("=", 1)
            confs[key] = value
    return confs


def _announce(host: str, port: int) -> None:
    # The line Spark's SparkConnectServer logs, which the Local platform parses.
    print(f"INFO SparkConnectServer: Spark Connect server started at: {host}:{port}", flush=True)


def _serve_tcp(host: str) -> None:
    server = socket.socket()
    server.bind((host, 0))
    server.listen()
    _announce(host, server.getsockname()[1])
    time.sleep(_LIFETIME_SECS)


def _spark_connect_protos() -> tuple[Any, Any]:
    """pyspark's base_pb2 and base_pb2_grpc, without importing pyspark itself."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise SystemExit("fake spark-submit: pyspark is not installed")
    root = os.path.dirname(spec.origin)
    for name in ("pyspark", "pyspark.sql", "pyspark.sql.connect"):
        package = types.ModuleType(name)  # a namespace only: its __init__ is not run
        package.__path__ = [os.path.join(root, *name.split(".")[1:])]
        sys.modules[name] = package
    from pyspark.sql.connect.proto import base_pb2, base_pb2_grpc

    return base_pb2, base_pb2_grpc


def refusing(handler: Any, code: Any, message: str) -> Any:
    """A handler of `handler`'s kind (unary or stream, each side) that aborts every
    call with `code` and `message`, as a gRPC interceptor returns for a refused call."""
    import grpc

    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    kinds = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler),
        ("unary_stream", grpc.unary_stream_rpc_method_handler),
        ("stream_unary", grpc.stream_unary_rpc_method_handler),
        ("stream_stream", grpc.stream_stream_rpc_method_handler),
    )
    for attribute, make in kinds:
        if getattr(handler, attribute) is not None:
            return make(
                refuse,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


def connect_server(
    pb: Any,
    pb_grpc: Any,
    *,
    token: str | None,
    version: str,
    gate: str | None = None,
    interceptors: tuple[Any, ...] = (),
) -> Any:
    """The fake Spark Connect service on a new grpc.Server (threads; no port bound, not
    started). `pb` and `pb_grpc` are pyspark's base_pb2 and base_pb2_grpc; `interceptors`
    run before the token check (outermost first)."""
    import grpc

    server_session = f"fake-{os.getpid()}"

    class TokenCheck(grpc.ServerInterceptor):  # type: ignore[misc]
        """Spark's PreSharedKeyAuthenticationInterceptor: the bearer token or nothing."""

        def intercept_service(self, continuation: Any, details: Any) -> Any:
            handler = continuation(details)
            if token is None or handler is None:
                return handler
            sent = dict(details.invocation_metadata).get("authorization", "")
            if hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                return handler
            return refusing(
                handler, grpc.StatusCode.UNAUTHENTICATED, "Invalid authentication token"
            )

    class FakeSparkConnect(pb_grpc.SparkConnectServiceServicer):  # type: ignore[misc]
        def __init__(self) -> None:
            self._confs: dict[str, str] = {}
            self._lock = threading.Lock()

        def AnalyzePlan(self, request: Any, context: grpc.ServicerContext) -> Any:
            if request.WhichOneof("analyze") != "spark_version":
                context.abort(grpc.StatusCode.UNIMPLEMENTED, "the fake only tells its version")
            return pb.AnalyzePlanResponse(
                session_id=request.session_id,
                server_side_session_id=server_session,
                spark_version=pb.AnalyzePlanResponse.SparkVersion(version=version),
            )

        def ExecutePlan(self, request: Any, context: grpc.ServicerContext) -> Any:
            """Whatever the plan: an empty result, held while the gate is closed."""
            operation = request.operation_id or str(uuid.uuid4())
            if gate is not None:
                with open(f"{gate}.started", "a", encoding="utf-8"):
                    pass  # the test sees the call arrive
                while not os.path.exists(gate) and context.is_active():
                    time.sleep(0.1)
            yield pb.ExecutePlanResponse(
                session_id=request.session_id,
                server_side_session_id=server_session,
                operation_id=operation,
                response_id=str(uuid.uuid4()),
                result_complete=pb.ExecutePlanResponse.ResultComplete(),
            )

        def Config(self, request: Any, context: grpc.ServicerContext) -> Any:
            op = request.operation
            kind = op.WhichOneof("op_type")
            response = pb.ConfigResponse(
                session_id=request.session_id, server_side_session_id=server_session
            )
            with self._lock:
                if kind == "set":
                    self._confs.update((p.key, p.value) for p in op.set.pairs)
                elif kind in ("get", "get_option"):
                    for key in getattr(op, kind).keys:
                        pair = response.pairs.add(key=key)
                        if key in self._confs:
                            pair.value = self._confs[key]
                elif kind == "get_with_default":
                    for default in op.get_with_default.pairs:
                        pair = response.pairs.add(key=default.key)
                        if default.key in self._confs:
                            pair.value = self._confs[default.key]
                        elif default.HasField("value"):
                            pair.value = default.value
                elif kind == "get_all":
                    for key, value in sorted(self._confs.items()):
                        response.pairs.add(key=key, value=value)
                elif kind == "unset":
                    for key in op.unset.keys:
                        self._confs.pop(key, None)
            return response

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4), interceptors=[*interceptors, TokenCheck()]
    )
    pb_grpc.add_SparkConnectServiceServicer_to_server(FakeSparkConnect(), server)
    return server


def _serve_connect(host: str, port: int, token: str | None, version: str, gate: str | None) -> None:
    pb, pb_grpc = _spark_connect_protos()
    server = connect_server(pb, pb_grpc, token=token, version=version, gate=gate)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise SystemExit(f"fake spark-submit: cannot bind {host}:{port}")
    server.start()
    _announce(host, bound)
    server.wait_for_termination(timeout=_LIFETIME_SECS)


def main(args: list[str]) -> int:
    confs = _confs(args)
    mode = confs.get("rucat.test.mode", "serve")
    conf_dir = os.environ.get("SPARK_CONF_DIR", "")
    print("fake spark-submit", os.getpid(), "SPARK_CONF_DIR=" + conf_dir, flush=True)
    if mode.startswith("exit:"):
        print("fake: giving up", file=sys.stderr, flush=True)
        return int(mode[5:])
    if mode.startswith("flood:"):  # N lines of 1 KiB before serving
        for n in range(int(mode[6:])):
            print(f"flood {n:08} " + "z" * 1008, flush=n % 64 == 0)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({_LIFETIME_SECS})"])
    time.sleep(float(confs.get("rucat.test.delay", "0")))
    hold = confs.get("rucat.test.open_when")
    while hold is not None and not os.path.exists(hold):
        time.sleep(0.1)
    host = confs.get("spark.connect.grpc.binding.address", "127.0.0.1")
    if mode != "serve":
        _serve_tcp(host)
        return 0
    _serve_connect(
        host,
        int(confs.get("spark.connect.grpc.binding.port", "0")),
        confs.get("spark.connect.authenticate.token"),
        confs.get("rucat.test.spark_version", DEFAULT_SPARK_VERSION),
        confs.get("rucat.test.gate"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
