"""`rucat server` as a real process: serves, logs one line per request, fails cleanly."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import free_port

RUCAT = str(Path(sys.executable).parent / "rucat")
SPARK = {"name": "cli", "engine_type": "Spark", "version": "4.0.1", "configs": {}}
#: Never part of an engine id (lowercase letters and digits): no log line holds it by chance.
TOKEN = "Secret-Token-42"


def _config(tmp_path: Path, **fields: Any) -> Path:
    data = {
        "database": {"Sqlite": {"path": str(tmp_path / "rucat.db")}},
        "data_dir": str(tmp_path / "data"),
        "connect_port": None,
        **fields,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.upper().startswith("RUCAT_")}


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    config = _config(tmp_path, auth_provider={"StaticAuthProviderConfig": {"bearer_token": TOKEN}})
    argv = [RUCAT, "server", "--config-path", str(config), "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_clean_env(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "rucat server did not answer /health"
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_rucat_server_serves_the_api_logs_json_and_stops_on_sigterm(
    server_process: tuple[subprocess.Popen[str], str],
) -> None:
    proc, url = server_process
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{url}/engines", timeout=10).status_code == 401
    created = httpx.post(f"{url}/engine", json=SPARK, headers=headers, timeout=10)
    assert created.status_code == 200, created.text
    engine_id = created.json()["id"]
    info = httpx.get(f"{url}/engine/{engine_id}", headers=headers, timeout=10).json()
    assert info["state"] == "WaitToStart"

    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    access = [r for r in records if r["logger"] == "rucat.access" and r["path"] != "/health"]
    assert [(r["method"], r["route"], r["status"]) for r in access] == [
        ("GET", "/engines", 401),
        ("POST", "/engine", 200),
        ("GET", "/engine/{engine_id}", 200),
    ]
    assert all("duration_ms" in r for r in access)
    assert TOKEN not in json.dumps([r for r in records if r["logger"] == "rucat.access"])
    assert any(r["message"] == f"engine {engine_id} created" for r in records)


def _run_failing(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUCAT, "server", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(),
    )


def test_an_unknown_config_key_exits_2_with_one_line_naming_it(tmp_path: Path) -> None:
    result = _run_failing(["--config-path", str(_config(tmp_path, prot=1))])
    assert result.returncode == 2
    assert "unknown key 'prot'" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = _run_failing(["--config-path", str(tmp_path / "absent.json")])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_an_unreachable_store_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    closed_port = free_port()
    config = _config(
        tmp_path,
        database={"Postgres": {"uri": f"postgresql://u:hidden-pw@127.0.0.1:{closed_port}/db"}},
    )
    result = _run_failing(["--config-path", str(config), "--port", str(free_port())])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "hidden-pw" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("rucat: ")


def test_a_port_in_use_exits_2_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_failing(["--config-path", str(_config(tmp_path)), "--port", str(port)])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert str(port) in result.stderr.strip().splitlines()[-1]
