"""The Spark Connect proxy's own CPU cost, without a JVM, beside the floor of a gRPC hop.

Not a test: prints figures. bench/proxy.py measures the proxy against a real
Spark engine, which takes minutes; this measures only the proxy's share, so a
change to the forwarding path can be judged at once, and it measures in the
same run what the least possible Python pass-through costs:

- an upstream gRPC server in its own process plays the engine: a unary method
  answers a small message, ExecutePlan streams `--chunk-kb` messages (Spark's
  Arrow batches are up to 4 MB);
- three proxies, each in its own process, forward to it:
  `rucat`, Rucat's proxy (tests.support.proxy, as in bench/proxy.py) over a
  SQLite store naming the upstream as a Running engine, token required;
  `aio-bare`, a grpc.aio raw-bytes pass-through with nothing else (no auth, no
  routing, no activity): the floor of the proxy's design;
  `sync-bare`, the same on gRPC's thread-pool (sync) server: another data path;
  `tcp-relay`, an asyncio TCP relay that never looks at HTTP/2 (so it can
  neither authenticate nor route an RPC): what moving the bytes through a
  Python process costs, the floor of a relay that rewrote only the headers;
- a raw-bytes gRPC client calls through each, in `--rounds` interleaved
  rounds (so all see the same machine load), with the metadata pyspark sends.

CPU is each proxy process's own (`time.process_time` in it), which does not
depend on how busy the machine is, though a crowded machine inflates it
somewhat (caches, context switches): compare the ratios, measured together.

    uv run python bench/proxy_cpu.py [--rpcs 1000] [--mb 200] [--rounds 3]
        [--profile PREFIX [--native]]   # py-spy (on PATH) on Rucat's proxy
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from rucat.config import DatabaseConfig, SqliteConfig
from rucat.domain.engine import CreateEngineRequest, EngineType, new_engine
from rucat.domain.state import EngineState
from rucat.store import open_store

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
SERVICE = "/spark.connect.SparkConnectService/"
CLIENT_TOKEN = "bench-client-token"
UNLIMITED = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
#: Metadata a bare pass-through drops, as Rucat's does (credentials, routing).
DROPPED = frozenset({"authorization", "x-rucat-engine-id", "user-agent"})


# --- the upstream: a stand-in engine ------------------------------------------------


def _upstream(out: Connection, chunk: int) -> None:
    payload = os.urandom(chunk)

    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        return request[:64]

    def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in range(0, int(request.decode()), chunk):
            yield payload

    class Handler(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
            if details.method == SERVICE + "ExecutePlan":
                return grpc.unary_stream_rpc_method_handler(stream)
            return grpc.unary_unary_rpc_method_handler(unary)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=UNLIMITED)
    server.add_generic_rpc_handlers((Handler(),))
    out.send(server.add_insecure_port("127.0.0.1:0"))
    server.start()
    server.wait_for_termination()


# --- bare pass-throughs: the floor ----------------------------------------------------


def _serve_stats(out: Connection, commands: Connection) -> None:
    """Answer each command with this process's CPU seconds until told to quit."""
    while commands.recv() != "quit":
        out.send(time.process_time())


def _aio_bare(upstream: str, out: Connection, commands: Connection) -> None:
    async def run() -> None:
        channel = grpc.aio.insecure_channel(upstream, options=UNLIMITED)
        unary = channel.unary_unary(SERVICE + "AnalyzePlan")
        streamed = channel.unary_stream(SERVICE + "ExecutePlan")

        def metadata(context: grpc.aio.ServicerContext) -> tuple[tuple[str, Any], ...]:
            return tuple(kv for kv in context.invocation_metadata() or () if kv[0] not in DROPPED)

        # Streaming request sides, as Rucat's (nothing is read before the handler runs).
        async def one(requests: Any, context: grpc.aio.ServicerContext) -> bytes:
            request = await context.read()
            response: bytes = await unary(request, metadata=metadata(context))
            return response

        async def many(requests: Any, context: grpc.aio.ServicerContext) -> None:
            call = streamed(await context.read(), metadata=metadata(context))
            while (response := await call.read()) is not grpc.aio.EOF:
                await context.write(response)

        class Handler(grpc.GenericRpcHandler):
            def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
                if details.method == SERVICE + "ExecutePlan":
                    return grpc.stream_stream_rpc_method_handler(many)
                return grpc.stream_unary_rpc_method_handler(one)

        server = grpc.aio.server(options=UNLIMITED)
        server.add_generic_rpc_handlers((Handler(),))
        out.send(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        await asyncio.get_running_loop().run_in_executor(None, _serve_stats, out, commands)
        await server.stop(0)

    asyncio.run(run())


def _sync_bare(upstream: str, out: Connection, commands: Connection) -> None:
    channel = grpc.insecure_channel(upstream, options=UNLIMITED)
    unary = channel.unary_unary(SERVICE + "AnalyzePlan")
    streamed = channel.unary_stream(SERVICE + "ExecutePlan")

    def metadata(context: grpc.ServicerContext) -> tuple[tuple[str, Any], ...]:
        return tuple(kv for kv in context.invocation_metadata() or () if kv[0] not in DROPPED)

    def one(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        response: bytes = unary(next(requests), metadata=metadata(context))
        return response

    def many(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        yield from streamed(next(requests), metadata=metadata(context))

    class Handler(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
            if details.method == SERVICE + "ExecutePlan":
                return grpc.stream_stream_rpc_method_handler(many)
            return grpc.stream_unary_rpc_method_handler(one)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=UNLIMITED)
    server.add_generic_rpc_handlers((Handler(),))
    out.send(server.add_insecure_port("127.0.0.1:0"))
    server.start()
    _serve_stats(out, commands)
    server.stop(0)


def _tcp_relay(upstream: str, out: Connection, commands: Connection) -> None:
    """Bytes both ways, per TCP connection, no HTTP/2 at all: what moving them costs in Python."""
    host, port = upstream.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(256 * 1024):
                writer.write(chunk)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Cancelled only when the relay ends: a connection task ending cancelled
        # makes asyncio's stream protocol log a traceback for it.
        with contextlib.suppress(asyncio.CancelledError):
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def run() -> None:
        server = await asyncio.start_server(relay, "127.0.0.1", 0)
        out.send(server.sockets[0].getsockname()[1])
        await asyncio.get_running_loop().run_in_executor(None, _serve_stats, out, commands)
        server.close()

    asyncio.run(run())


class _Bare:
    """A bare pass-through in a child process: `port`, `stats()` (CPU s), `close()`."""

    def __init__(self, target: Callable[..., None], upstream: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._out, child_out = ctx.Pipe(duplex=False)
        child_commands, self._commands = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=target, args=(upstream, child_out, child_commands), daemon=True
        )
        self.process.start()
        self.port: int = self._out.recv()

    def stats(self) -> tuple[int, float]:
        self._commands.send("stats")
        return 0, self._out.recv()

    def close(self) -> None:
        self._commands.send("quit")
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()


# --- the client -----------------------------------------------------------------------


def unary_calls(channel: grpc.Channel, metadata: Any, n: int) -> None:
    call = channel.unary_unary(SERVICE + "AnalyzePlan")
    request = b"x" * 200
    for _ in range(n):
        assert call(request, metadata=metadata, timeout=30) == request[:64]


def stream_bytes(channel: grpc.Channel, metadata: Any, total: int) -> int:
    call = channel.unary_stream(SERVICE + "ExecutePlan")
    return sum(len(m) for m in call(str(total).encode(), metadata=metadata, timeout=600))


@contextlib.contextmanager
def _profiled(args: argparse.Namespace, pid: int, phase: str) -> Iterator[None]:
    """py-spy records `pid` while the block runs (collapsed stacks), if asked to."""
    if not args.profile:
        yield
        return
    out = f"{args.profile}-{phase}.txt"
    argv = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--output", out]
    argv += ["--rate", "200", *(["--native"] if args.native else ["--nonblocking"])]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rpcs", type=int, default=1000, help="unary RPCs per proxy and round")
    parser.add_argument("--mb", type=int, default=200, help="MB streamed per proxy and round")
    parser.add_argument("--chunk-kb", type=int, default=4096, help="size of each message")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--profile",
        metavar="PREFIX",
        help="py-spy (on PATH) records Rucat's proxy into PREFIX-unary.txt, PREFIX-stream.txt",
    )
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from tests.support.proxy import ProxyProcess, proxy_env

    ctx = multiprocessing.get_context("spawn")
    port_in, port_out = ctx.Pipe(duplex=False)
    upstream = ctx.Process(target=_upstream, args=(port_out, args.chunk_kb * 1024), daemon=True)
    upstream.start()
    upstream_address = f"127.0.0.1:{port_in.recv()}"
    workdir = Path(tempfile.mkdtemp(prefix="rucat-bench-proxy-cpu-"))
    db = workdir / "rucat.db"

    async def record() -> str:
        store = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=str(db))))
        request = CreateEngineRequest(name="bench", engine_type=EngineType.Spark, version="4.0.1")
        engine = replace(
            new_engine(request, platform="Local", now=datetime.now(UTC)),
            state=EngineState.Running,
            endpoint=f"sc://{upstream_address}",
        )
        await store.add(engine=engine, actor="bench")
        await store.close()
        return engine.id

    engine_id = asyncio.run(record())
    pyspark_like = (("x-other-header", "x"), ("user-agent", "bench"))
    proxies: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    try:
        env = proxy_env(sqlite_path=db, bearer_token=CLIENT_TOKEN)
        proxies["rucat"] = ProxyProcess(env, log=workdir / "proxy.log")
        metadata["rucat"] = (
            ("authorization", f"Bearer {CLIENT_TOKEN}"),
            ("x-rucat-engine-id", engine_id),
            *pyspark_like,
        )
        proxies["aio-bare"] = _Bare(_aio_bare, upstream_address)
        proxies["sync-bare"] = _Bare(_sync_bare, upstream_address)
        proxies["tcp-relay"] = _Bare(_tcp_relay, upstream_address)
        for name in ("aio-bare", "sync-bare", "tcp-relay"):
            metadata[name] = metadata["rucat"]
        channels = {
            name: grpc.insecure_channel(f"127.0.0.1:{p.port}", options=UNLIMITED)
            for name, p in proxies.items()
        }
        for name, channel in channels.items():  # warm up
            unary_calls(channel, metadata[name], 50)
            stream_bytes(channel, metadata[name], 8 * MB)

        per_rpc: dict[str, list[float]] = {name: [] for name in proxies}
        per_mb: dict[str, list[float]] = {name: [] for name in proxies}
        for round_ in range(args.rounds):
            for name, proxy in proxies.items():
                profile = name == "rucat" and round_ == 0
                pid = proxy.process.pid
                channel, md = channels[name], metadata[name]
                _, cpu0 = proxy.stats()
                with _profiled(args, pid, "unary") if profile else contextlib.nullcontext():
                    unary_calls(channel, md, args.rpcs)
                _, cpu1 = proxy.stats()
                with _profiled(args, pid, "stream") if profile else contextlib.nullcontext():
                    streamed = stream_bytes(channel, md, args.mb * MB)
                _, cpu2 = proxy.stats()
                per_rpc[name].append((cpu1 - cpu0) / args.rpcs)
                per_mb[name].append((cpu2 - cpu1) / (streamed / MB))
    finally:
        for proxy in proxies.values():
            proxy.close()
        upstream.kill()
        upstream.join(timeout=10)

    rpc = {name: statistics.median(v) for name, v in per_rpc.items()}
    mb = {name: statistics.median(v) for name, v in per_mb.items()}
    print(
        f"proxy CPU per unary RPC and per MB streamed ({args.chunk_kb} KB messages), "
        f"median of {args.rounds} interleaved rounds of {args.rpcs} RPCs and {args.mb} MB:"
    )
    for name in proxies:
        print(
            f"  {name:10} {rpc[name] * 1000:6.3f} ms/RPC  ({rpc[name] / rpc['aio-bare']:.2f}x "
            f"aio-bare)   {mb[name] * 1000:6.3f} ms/MB  ({mb[name] / mb['aio-bare']:.2f}x aio-bare)"
        )
        print(
            "    rounds: "
            + ", ".join(f"{r * 1000:.3f}" for r in per_rpc[name])
            + " ms/RPC; "
            + ", ".join(f"{m * 1000:.3f}" for m in per_mb[name])
            + " ms/MB"
        )
    ok_rpc, ok_mb = rpc["rucat"] <= 0.0005, mb["rucat"] <= 0.0015
    print(
        f"rucat vs targets: {rpc['rucat'] / 0.0005:.2f}x of 0.5 ms/RPC "
        f"({'ok' if ok_rpc else 'MISSED'}), {mb['rucat'] / 0.0015:.2f}x of 1.5 ms/MB "
        f"({'ok' if ok_mb else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
