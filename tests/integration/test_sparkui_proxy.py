"""The Spark UI reverse proxy over real HTTP, against a tiny real HTTP server standing in
for a driver's UI.

The engine runs on the real Local platform as far as the proxy can tell: its
run.json and its driver log (with Spark's "started service 'SparkUI'" line
naming the stand-in's port) are where the platform keeps them, and the
platform reads the port from there. The stand-in records every request it
gets, so the tests can say what reached it and what did not.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from rucat.config import LocalPlatformConfig, RucatConfig
from rucat.domain.state import EngineState
from rucat.platforms.local.platform import LocalPlatform
from tests.integration.conftest import Api, StartApi, force_state
from tests.integration.test_console import USERS, logged_in

ALICE = httpx.BasicAuth("alice", "alice-pw")
BOB = httpx.BasicAuth("bob", "bob-pw")


@dataclass
class FakeUi:
    """A real HTTP server answering like a Spark UI; `seen` holds (path, headers)."""

    port: int
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)  # each request's client


class _Handler(BaseHTTPRequestHandler):
    ui: FakeUi
    protocol_version = "HTTP/1.1"  # keep-alive, as Spark's Jetty

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self.server.ui.seen.append((self.path, dict(self.headers.items())))  # type: ignore[attr-defined]
        self.server.ui.peers.append(self.client_address[:2])  # type: ignore[attr-defined]
        own = f"http://127.0.0.1:{self.server.server_address[1]}"
        path = self.path
        if path == "/":  # Spark's root: an absolute redirect without the proxyBase
            self._answer(302, b"", {"Location": f"{own}/jobs/"})
        elif path == "/jobs":  # Jetty's trailing-slash redirect, relative
            self._answer(302, b"", {"Location": "jobs/"})
        elif path == "/jobs/":
            page = b'<html><link href="/engine/x/sparkui/static/spark.css">Spark Jobs</html>'
            self._answer(
                200,
                page,
                {
                    "Content-Type": "text/html;charset=utf-8",
                    "Set-Cookie": "JSESSIONID=from-the-engine; Path=/",
                    "Connection": "X-Secret-Hop",
                    "X-Secret-Hop": "hop",
                    "WWW-Authenticate": 'Basic realm="spark"',
                    "X-Frame-Options": "SAMEORIGIN",
                },
            )
        elif path == "/static/spark.css":
            self._answer(200, b"body{}", {"Content-Type": "text/css"})
        elif path.startswith("/api/v1/applications"):
            body = json.dumps([{"id": "app-1", "query": path.partition("?")[2]}]).encode()
            self._answer(200, body, {"Content-Type": "application/json"})
        elif path == "/echo":
            self._answer(200, json.dumps(dict(self.headers.items())).encode(), {})
        elif path == "/elsewhere":
            self._answer(302, b"", {"Location": "http://evil.example/steal"})
        elif path == "/upward":
            self._answer(302, b"", {"Location": "../../../ui/"})
        elif path == "/big":
            self._answer(200, b"x" * (3 << 20), {"Content-Type": "application/octet-stream"})
        else:
            self._answer(404, b"no such page", {})


@pytest.fixture
def fake_ui() -> Iterator[FakeUi]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    ui = FakeUi(port=server.server_address[1])
    server.ui = ui  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield ui
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def platform(tmp_path: Path) -> LocalPlatform:
    return LocalPlatform(LocalPlatformConfig(), data_dir=tmp_path / "data")


def as_started(platform: LocalPlatform, data_dir: Path, engine_id: str, ui_port: int) -> None:
    """Leave the files a Local engine's run leaves: run.json and the driver's log."""
    folder = data_dir / "engines" / engine_id
    folder.mkdir(parents=True, mode=0o700)
    run = {
        "pid": 1,
        "start_time": 1,
        "created_at": "2026-01-01T00:00:00+00:00",
        "log_offset": 0,
        "host": "127.0.0.1",
    }
    (folder / "run.json").write_text(json.dumps(run))
    (folder / "engine.log").write_text(
        f"26/01/01 00:00:01 INFO Utils: Successfully started service 'SparkUI' on port {ui_port}.\n"
        "26/01/01 00:00:02 INFO SparkConnectServer: Spark Connect server started at: "
        "127.0.0.1:15999\n"
    )


@pytest.fixture
async def users_api(start_api: StartApi, platform: LocalPlatform) -> AsyncIterator[Api]:
    async with start_api(config=USERS, platform=platform, auth=ALICE) as api:
        yield api


async def running_engine(api: Api, platform: LocalPlatform, fake_ui: FakeUi, tmp: Path) -> str:
    engine_id = await api.create()
    await force_state(api.store, engine_id, EngineState.Running, endpoint="sc://127.0.0.1:15999")
    as_started(platform, tmp / "data", engine_id, fake_ui.port)
    return engine_id


async def test_pages_assets_and_the_rest_api_come_through_under_the_prefix(
    users_api: Api, platform: LocalPlatform, fake_ui: FakeUi, tmp_path: Path
) -> None:
    engine_id = await running_engine(users_api, platform, fake_ui, tmp_path)
    base = f"/engine/{engine_id}/sparkui"
    page = await users_api.client.get(f"{base}/jobs/")
    assert page.status_code == 200
    assert "Spark Jobs" in page.text
    assert page.headers["content-type"] == "text/html;charset=utf-8"
    asset = await users_api.client.get(f"{base}/static/spark.css")
    assert (asset.status_code, asset.text) == (200, "body{}")
    api = await users_api.client.get(f"{base}/api/v1/applications?status=running")
    assert api.json() == [{"id": "app-1", "query": "status=running"}]
    missing = await users_api.client.get(f"{base}/nothing-here")
    assert (missing.status_code, missing.text) == (404, "no such page")
    head = await users_api.client.head(f"{base}/static/spark.css")
    assert head.status_code == 200 and head.headers["content-length"] == "6"
    big = await users_api.client.get(f"{base}/big")
    assert len(big.content) == 3 << 20
    assert [path for path, _ in fake_ui.seen] == [
        "/jobs/",
        "/static/spark.css",
        "/api/v1/applications?status=running",
        "/nothing-here",
        "/static/spark.css",
        "/big",
    ]


async def test_a_page_and_its_assets_reach_the_driver_over_one_kept_alive_connection(
    users_api: Api, platform: LocalPlatform, fake_ui: FakeUi, tmp_path: Path
) -> None:
    engine_id = await running_engine(users_api, platform, fake_ui, tmp_path)
    base = f"/engine/{engine_id}/sparkui"
    for path in ("/jobs/", "/static/spark.css", "/api/v1/applications"):
        assert (await users_api.client.get(f"{base}{path}")).status_code == 200
    assert len(fake_ui.peers) == 3
    assert len(set(fake_ui.peers)) == 1, fake_ui.peers


async def test_redirects_stay_under_the_prefix(
    users_api: Api, platform: LocalPlatform, fake_ui: FakeUi, tmp_path: Path
) -> None:
    engine_id = await running_engine(users_api, platform, fake_ui, tmp_path)
    base = f"/engine/{engine_id}/sparkui"
    bare = await users_api.client.get(base)
    assert (bare.status_code, bare.headers["location"]) == (307, f"{base}/")
    root = await users_api.client.get(f"{base}/")
    assert (root.status_code, root.headers["location"]) == (302, f"{base}/jobs/")
    relative = await users_api.client.get(f"{base}/jobs")
    assert relative.headers["location"] == f"{base}/jobs/"
    followed = await users_api.client.get(base, follow_redirects=True)
    assert followed.status_code == 200 and "Spark Jobs" in followed.text


async def test_redirects_off_the_engine_are_refused_or_kept_within(
    users_api: Api, platform: LocalPlatform, fake_ui: FakeUi, tmp_path: Path
) -> None:
    engine_id = await running_engine(users_api, platform, fake_ui, tmp_path)
    response = await users_api.client.get(f"/engine/{engine_id}/sparkui/elsewhere")
    assert response.status_code == 502
    assert "location" not in response.headers
    assert response.json()["detail"] == "the engine's Spark UI redirected outside the engine"
    # A relative target climbing out of the prefix is resolved on the UI's side, within it.
    upward = await users_api.client.get(f"/engine/{engine_id}/sparkui/upward")
    assert upward.headers["location"] == f"/engine/{engine_id}/sparkui/ui/"


async def test_credentials_cookies_and_hop_by_hop_headers_stay_on_their_side(
    users_api: Api, platform: LocalPlatform, fake_ui: FakeUi, tmp_path: Path
) -> None:
    engine_id = await running_engine(users_api, platform, fake_ui, tmp_path)
    echoed = await users_api.client.get(
        f"/engine/{engine_id}/sparkui/echo",
        headers={
            "Cookie": "rucat_session=secret-session",
            "X-Forwarded-For": "10.0.0.1",
            "X-Forwarded-Host": "evil.example",
            "Proxy-Authorization": "Basic c2VjcmV0",
            "Connection": "keep-alive, X-Custom",
            "X-Custom": "hop",
            "Accept-Language": "fr",
        },
    )
    sent = {k.lower(): v for k, v in echoed.json().items()}
    assert sent["accept-language"] == "fr"
    assert sent["host"] == f"127.0.0.1:{fake_ui.port}"
    for header in (
        "authorization",
        "cookie",
        "x-forwarded-for",
        "x-forwarded-host",
        "proxy-authorization",
        "x-custom",
    ):
        assert header not in sent, header
    page = await users_api.client.get(f"/engine/{engine_id}/sparkui/jobs/")
    for header in ("set-cookie", "x-secret-hop", "www-authenticate"):
        assert header not in page.headers, header
    assert page.headers["x-frame-options"] == "SAMEORIGIN"


@pytest.mark.parametrize(
    "path",
    [
        "%2e%2e/%2e%2e/ui/",
        "static/%2E%2E/%2e%2e/%2e%2e/engines",
        "/evil.example/x",
        "http://evil.example/x",
        "%2f%2fevil.example/x",
        "static%5c..%5cx",
        "echo%0d%0aX-Injected:%20yes",
        "echo%00",
    ],
)
async def test_hostile_paths_are_refused_before_anything_reaches_spark(
    users_api: Api, platform: LocalPlatform, fake_ui: FakeUi, tmp_path: Path, path: str
) -> None:
    engine_id = await running_engine(users_api, platform, fake_ui, tmp_path)
    url = httpx.URL(users_api.url).copy_with(
        raw_path=f"/engine/{engine_id}/sparkui/{path}".encode()
    )
    response = await users_api.client.get(url)
    # 400 naming the path; a decoded line break matches no route at all (404).
    assert response.status_code in (400, 404), response.text
    assert response.json()["detail"]
    assert fake_ui.seen == []


async def test_literal_dot_segments_on_the_wire_are_refused(
    users_api: Api, platform: LocalPlatform, fake_ui: FakeUi, tmp_path: Path
) -> None:
    """httpx normalises ``..``; a raw socket sends it as an attacker would."""
    engine_id = await running_engine(users_api, platform, fake_ui, tmp_path)
    url = httpx.URL(users_api.url)
    request = (
        f"GET /engine/{engine_id}/sparkui/../../../ui/ HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{url.port}\r\nAuthorization: Basic YWxpY2U6YWxpY2UtcHc=\r\n"
        "Connection: close\r\n\r\n"
    )

    def send() -> bytes:
        with socket.create_connection((url.host, url.port), timeout=10) as sock:
            sock.sendall(request.encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    answer = await asyncio.to_thread(send)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert fake_ui.seen == []


async def test_only_get_and_head_are_proxied(
    users_api: Api, platform: LocalPlatform, fake_ui: FakeUi, tmp_path: Path
) -> None:
    engine_id = await running_engine(users_api, platform, fake_ui, tmp_path)
    response = await users_api.client.post(f"/engine/{engine_id}/sparkui/jobs/job/kill/?id=0")
    assert response.status_code == 405
    assert fake_ui.seen == []


async def test_another_user_gets_what_an_unknown_engine_gets(
    users_api: Api, platform: LocalPlatform, fake_ui: FakeUi, tmp_path: Path
) -> None:
    engine_id = await running_engine(users_api, platform, fake_ui, tmp_path)
    hidden = await users_api.client.get(f"/engine/{engine_id}/sparkui/jobs/", auth=BOB)
    unknown = await users_api.client.get("/engine/a0000000000000000000/sparkui/jobs/", auth=BOB)
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["detail"] == f"engine {engine_id} not found"
    nobody = await users_api.client.get(
        f"/engine/{engine_id}/sparkui/jobs/", auth=httpx.BasicAuth("", "")
    )
    anonymous = httpx.AsyncClient(base_url=users_api.url)
    async with aclosing(anonymous):
        assert (await anonymous.get(f"/engine/{engine_id}/sparkui/jobs/")).status_code == 401
    assert nobody.status_code == 401
    assert fake_ui.seen == []


async def test_a_granted_user_sees_it(
    users_api: Api, platform: LocalPlatform, fake_ui: FakeUi, tmp_path: Path
) -> None:
    engine_id = await running_engine(users_api, platform, fake_ui, tmp_path)
    granted = await users_api.client.put(
        f"/engine/{engine_id}/permissions",
        json={"grants": [{"user": "bob", "level": "attach"}]},
    )
    assert granted.status_code == 200, granted.text
    page = await users_api.client.get(f"/engine/{engine_id}/sparkui/jobs/", auth=BOB)
    assert page.status_code == 200 and "Spark Jobs" in page.text


async def test_the_console_session_cookie_opens_it_and_only_for_its_user(
    users_api: Api, platform: LocalPlatform, fake_ui: FakeUi, tmp_path: Path
) -> None:
    engine_id = await running_engine(users_api, platform, fake_ui, tmp_path)
    alice = await logged_in(users_api.url, "alice", "alice-pw")
    bob = await logged_in(users_api.url, "bob", "bob-pw")
    async with aclosing(alice), aclosing(bob):
        page = await alice.get(f"/engine/{engine_id}/sparkui/jobs/")
        assert page.status_code == 200 and "Spark Jobs" in page.text
        assert (await bob.get(f"/engine/{engine_id}/sparkui/jobs/")).status_code == 404
        # The cookie opens the Spark UI, not the REST API.
        assert (await alice.get(f"/engine/{engine_id}")).status_code == 401
    assert [path for path, _ in fake_ui.seen] == ["/jobs/"]


async def test_an_engine_that_is_not_running_says_so(
    users_api: Api, platform: LocalPlatform, fake_ui: FakeUi, tmp_path: Path
) -> None:
    engine_id = await running_engine(users_api, platform, fake_ui, tmp_path)
    await force_state(users_api.store, engine_id, EngineState.Terminated, endpoint=None)
    response = await users_api.client.get(f"/engine/{engine_id}/sparkui/jobs/")
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "is not Running" in detail and "Terminated" in detail
    assert fake_ui.seen == []


async def test_a_driver_whose_ui_does_not_answer_is_a_502(
    users_api: Api, platform: LocalPlatform, tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    engine_id = await users_api.create()
    await force_state(
        users_api.store, engine_id, EngineState.Running, endpoint="sc://127.0.0.1:15999"
    )
    as_started(platform, tmp_path / "data", engine_id, free)
    response = await users_api.client.get(f"/engine/{engine_id}/sparkui/jobs/")
    assert response.status_code == 502
    assert "does not answer" in response.json()["detail"]


async def test_an_engine_without_a_ui_is_a_503(
    users_api: Api, platform: LocalPlatform, tmp_path: Path
) -> None:
    engine_id = await users_api.create(configs={"spark.ui.enabled": "false"})
    await force_state(
        users_api.store, engine_id, EngineState.Running, endpoint="sc://127.0.0.1:15999"
    )
    folder = tmp_path / "data" / "engines" / engine_id
    as_started(platform, tmp_path / "data", engine_id, 1)
    (folder / "engine.log").write_text("INFO SparkConnectServer: started at: 127.0.0.1:15999\n")
    response = await users_api.client.get(f"/engine/{engine_id}/sparkui/")
    assert response.status_code == 503
    assert "has no Spark UI" in response.json()["detail"]


async def test_users_may_not_set_the_proxy_base(users_api: Api) -> None:
    response = await users_api.client.post(
        "/engine",
        json={
            "name": "x",
            "engine_type": "Spark",
            "version": "4.0.1",
            "configs": {"spark.ui.proxyBase": "/elsewhere"},
        },
    )
    assert response.status_code == 400
    assert "spark.ui.proxyBase" in response.json()["detail"]


async def test_open_mode_needs_no_credentials(
    start_api: StartApi, platform: LocalPlatform, fake_ui: FakeUi, tmp_path: Path
) -> None:
    async with start_api(config=RucatConfig(), platform=platform) as api:
        engine_id = await running_engine(api, platform, fake_ui, tmp_path)
        page = await api.client.get(f"/engine/{engine_id}/sparkui/jobs/")
        assert page.status_code == 200
