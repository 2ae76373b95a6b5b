"""Benchmark (not a test): CPU per Spark UI request through Rucat's proxy, beside direct.

One process: a stand-in Spark UI (a real HTTP server in a thread answering a
12 KB page, about the size of Spark's jobs page), and Rucat's app (open mode,
SQLite, the Local platform reading the UI port from a driver log as it does
for real engines) called through httpx's ASGI transport. It makes N GETs of
the page directly, then N through ``/engine/{id}/sparkui/``, and prints the
process CPU time per request of each, the proxy's own cost (the difference)
and the ratio. CPU time, not wall time: it does not depend on the machine's load.

    uv run python bench/sparkui.py [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from rucat.config import DatabaseConfig, LocalPlatformConfig, RucatConfig, SqliteConfig
from rucat.domain.engine import CreateEngineRequest, EngineType, new_engine
from rucat.domain.state import EngineState
from rucat.engines.spark_versions import bundled_spark_version
from rucat.platforms.local.platform import LocalPlatform
from rucat.server.app import create_app
from rucat.store import open_store

PAGE = b"<html>" + b"x" * (12 << 10) + b"</html>"


class _Ui(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)


async def main(requests: int) -> None:
    ui = ThreadingHTTPServer(("127.0.0.1", 0), _Ui)
    threading.Thread(target=ui.serve_forever, daemon=True).start()
    port = ui.server_address[1]
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=f"{tmp}/rucat.db")))
        request = CreateEngineRequest("bench", EngineType.Spark, bundled_spark_version())
        engine = await store.add(
            engine=new_engine(request, platform="Local", now=datetime.now(UTC)), actor="bench"
        )
        running = dataclasses.replace(
            engine, state=EngineState.Running, endpoint="sc://127.0.0.1:1"
        )
        await store.transition(current=engine, new=running, actor="bench")
        folder = Path(tmp) / "engines" / engine.id
        folder.mkdir(parents=True, mode=0o700)
        run = {"pid": 1, "start_time": 1, "created_at": "", "log_offset": 0, "host": "127.0.0.1"}
        (folder / "run.json").write_text(json.dumps(run))
        (folder / "engine.log").write_text(
            f"INFO Utils: Successfully started service 'SparkUI' on port {port}.\n"
        )
        platform = LocalPlatform(LocalPlatformConfig(), data_dir=Path(tmp))
        app = create_app(RucatConfig(), store=store, platform=platform)
        rucat = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        )
        direct = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", verify=False)

        async def cpu_per_request(client: httpx.AsyncClient, path: str) -> float:
            assert (await client.get(path)).content == PAGE  # warm up, and check
            started = time.process_time()
            for _ in range(requests):
                await client.get(path)
            return (time.process_time() - started) / requests * 1000

        bare = await cpu_per_request(direct, "/jobs/")
        proxied = await cpu_per_request(rucat, f"/engine/{engine.id}/sparkui/jobs/")
        await rucat.aclose()
        await direct.aclose()
        await store.close()
    ui.shutdown()
    print(f"requests: {requests} of a {len(PAGE) >> 10} KB page")
    print(f"direct:        {bare:.2f} ms CPU per request")
    print(f"through Rucat: {proxied:.2f} ms CPU per request (ratio {proxied / bare:.1f}x)")
    print(f"the proxy's own cost: {proxied - bare:.2f} ms CPU per request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    asyncio.run(main(parser.parse_args().requests))
