"""`rucat up`'s exit and a separate monitor's counter, with real processes.

SIGTERM stops `rucat up`'s engines (recorded as Terminated, actor `shutdown`)
unless `--keep-engines`; `rucat monitor` serves its auto-stop counter on
`monitor_metrics_port`. Engines are fake Spark Connect servers (no Java):
what is tested is Rucat's exit, not Spark's.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from rucat.config import DatabaseConfig, SqliteConfig
from rucat.store import open_store
from tests.e2e.test_idle_engines import _counter
from tests.e2e.test_monitor_on_fake_engines import FAST, create, running
from tests.support import free_port
from tests.support.fake_spark import fake_local_config, fake_server_pids
from tests.support.processes import kill_engines_under, rucat, write_config

pytestmark = [pytest.mark.timeout(300)]


def _rucat_up(tmp: Path, *extra: str) -> Any:
    cfg = write_config(
        tmp / "up.json", connect_port=free_port(), platform=fake_local_config(tmp), **FAST
    )
    port = free_port()
    process = rucat(
        "up",
        "--config-path",
        str(cfg),
        "--port",
        str(port),
        "--data-dir",
        str(tmp / "data"),
        *extra,
        tmp=tmp,
        name="up",
    )
    return process, f"http://127.0.0.1:{port}"


async def _events(db: Path, engine_id: str) -> list[Any]:
    store = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=str(db))))
    try:
        return await store.events(engine_id=engine_id)
    finally:
        await store.close()


@pytest.mark.parametrize("keep", [False, True], ids=["by-default", "with-keep-engines"])
def test_rucat_up_stopped_with_sigterm_stops_its_engines_unless_told_to_keep_them(
    tmp_path: Path, keep: bool
) -> None:
    context, url = _rucat_up(tmp_path, *(["--keep-engines"] if keep else []))
    try:
        with context as process:
            process.wait_http(url)
            with httpx.Client(base_url=url, timeout=30) as client:
                engine_id = create(client, "leftover", auto_stop_minutes=0)
                running(client, engine_id)
            assert fake_server_pids(engine_id)
            process.kill(signal.SIGTERM)
            assert process.proc.returncode is not None
            output = process.output()
        history = asyncio.run(_events(tmp_path / "data" / "rucat.db", engine_id))
        if keep:
            assert fake_server_pids(engine_id), "--keep-engines stopped the engine"
            assert history[-1].to_state.value == "Running"
        else:
            assert fake_server_pids(engine_id) == [], output
            assert f"Stopping engine {engine_id}" in output
            assert (history[-1].to_state.value, history[-1].actor) == ("Terminated", "shutdown")
    finally:
        kill_engines_under(tmp_path / "data")


def test_a_separate_monitor_serves_its_auto_stop_counter(tmp_path: Path) -> None:
    metrics_port = free_port()
    cfg = write_config(
        tmp_path / "m.json",
        database={"Sqlite": {"path": str(tmp_path / "rucat.db")}},
        data_dir=str(tmp_path / "data"),
        monitor_metrics_port=metrics_port,
        platform=fake_local_config(tmp_path),  # its checks need no Java
    )
    with rucat("monitor", "--config-path", str(cfg), tmp=tmp_path, name="m") as monitor:
        deadline = time.monotonic() + 60
        while True:
            assert monitor.proc.poll() is None, monitor.output()
            try:
                text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, monitor.output()
                time.sleep(0.2)
    assert _counter(text, "rucat_engine_auto_stops_total") == 0
