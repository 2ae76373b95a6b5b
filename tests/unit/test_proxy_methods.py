"""The proxy's table of Spark Connect method shapes matches Spark Connect's own protocol."""

from __future__ import annotations

from pyspark.sql.connect.proto import base_pb2

from rucat.server.proxy_forward import METHOD_SHAPES, Shape


def _shape(client_streaming: bool, server_streaming: bool) -> Shape:
    return {
        (False, False): Shape.UNARY_UNARY,
        (False, True): Shape.UNARY_STREAM,
        (True, False): Shape.STREAM_UNARY,
        (True, True): Shape.STREAM_STREAM,
    }[(client_streaming, server_streaming)]


def test_every_method_of_the_installed_spark_connect_has_its_own_shape() -> None:
    service = base_pb2.DESCRIPTOR.services_by_name["SparkConnectService"]
    protocol = {
        f"/{service.full_name}/{m.name}": _shape(m.client_streaming, m.server_streaming)
        for m in service.methods
    }
    # A method missing from the table would still work (as a bidi stream); a wrong
    # shape would not, so every listed one must be right.
    for path, shape in METHOD_SHAPES.items():
        assert protocol.get(path, shape) == shape, path
    assert set(protocol) <= set(METHOD_SHAPES)
