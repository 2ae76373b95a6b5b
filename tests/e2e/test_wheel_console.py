"""The built wheel carries the console: installed outside the checkout, `rucat up` serves /ui/.

Templates and static assets are package data; a packaging change that drops
them would leave the console broken only in real installations, so this
builds the wheel, installs it into a fresh virtual environment in a temporary
folder and asks the installed `rucat up` for the console and its assets.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(UV is None, reason="needs uv"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_installed_wheel_serves_the_console_and_its_assets(tmp_path: Path) -> None:
    assert UV is not None
    dist = tmp_path / "dist"
    subprocess.run([UV, "build", "--wheel", "--out-dir", str(dist)], cwd=ROOT, check=True)
    wheel = next(dist.glob("rucat-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([UV, "venv", "--python", "3.11", str(venv)], check=True, cwd=tmp_path)
    python = venv / "bin" / "python"
    subprocess.run(
        [UV, "pip", "install", "--python", str(python), str(wheel)], check=True, cwd=tmp_path
    )
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUCAT_", "VIRTUAL_ENV"))}
    env["RUCAT_CONNECT_PORT"] = "0"
    server = subprocess.Popen(
        [str(venv / "bin" / "rucat"), "up", "--port", str(port), "--data-dir", str(tmp_path / "d")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "rucat up did not answer in 120 s"
            time.sleep(0.5)
        page = httpx.get(f"{url}/ui/", timeout=10)
        assert page.status_code == 200
        assert "<h1>Engines</h1>" in page.text
        assets = re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', page.text)
        assert sorted(assets) == [
            "/ui/static/console.css",
            "/ui/static/console.js",
            "/ui/static/htmx.min.js",
        ]
        for asset in assets:
            response = httpx.get(f"{url}{asset}", timeout=10)
            assert response.status_code == 200, asset
            assert len(response.content) > 100, asset
        assert "htmx" in httpx.get(f"{url}/ui/static/htmx.min.js", timeout=10).text
        assert httpx.get(f"{url}/versions", timeout=10).status_code == 200
        installed = subprocess.run(
            [str(python), "-c", "import rucat, sys; sys.stdout.write(rucat.__file__)"],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
        ).stdout
        assert str(ROOT) not in installed  # the wheel's copy, not the checkout's
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
