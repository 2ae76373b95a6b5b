"""`rucat engine ...` against real Rucat processes.

Most tests drive the CLI in process (Typer's CliRunner: same code, separate
stdout and stderr) against a real `rucat server` process with token auth
and its own SQLite file; no monitor runs there, so engines stay in
WaitToStart. A few run the installed `rucat` entry point as a subprocess to
check exit codes and the stdout/stderr split a shell sees. The last test
drives a real `rucat up` with one real Spark engine end to end, and queries it
with the SDK's `spark_session()` through the Spark Connect proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from rucat.cli import app
from rucat.client import RucatClient, RucatClientError
from rucat.config import DatabaseConfig, SqliteConfig
from rucat.domain.state import EngineState
from rucat.engines.spark_versions import bundled_spark_version
from rucat.store import open_store
from tests.support import free_port, require_java
from tests.support.processes import RUCAT, engine_jvms, rucat, rucat_up, write_config

TOKEN = "cli-test-token"
VERSION = bundled_spark_version()


@dataclass(frozen=True)
class Server:
    url: str
    env: dict[str, str]
    db: Path | None = None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real `rucat server` (REST only, no monitor) requiring a bearer token."""
    tmp = tmp_path_factory.mktemp("cli")
    port = free_port()
    cfg = write_config(
        tmp / "config.json",
        auth_provider={"StaticAuthProviderConfig": {"bearer_token": TOKEN}},
        database={"Sqlite": {"path": str(tmp / "rucat.db")}},
        data_dir=str(tmp / "data"),
        connect_port=None,
    )
    with rucat("server", "--config-path", str(cfg), "--port", str(port), tmp=tmp, name="srv") as p:
        url = f"http://127.0.0.1:{port}"
        p.wait_http(url)
        yield Server(url=url, env={"RUCAT_URL": url, "RUCAT_TOKEN": TOKEN}, db=tmp / "rucat.db")


def cli(server: Server, *args: str, env: dict[str, str] | None = None) -> Result:
    """`rucat <args>` in process, configured through the environment as a user would."""
    return CliRunner().invoke(app, list(args), env={**server.env, **(env or {})})


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result.stdout


def as_json(result: Result) -> Any:
    return json.loads(ok(result))


def create(server: Server, name: str, *extra: str) -> str:
    engine_id = ok(cli(server, "engine", "create", name, "--version", VERSION, *extra)).strip()
    assert engine_id.isalnum(), engine_id
    return engine_id


# --- the happy paths ------------------------------------------------------------


def test_create_prints_the_id_and_get_shows_the_engine(server: Server) -> None:
    engine_id = create(server, "etl", "--conf", "spark.executor.memory=1g", "-c", "a.b=x=y")

    info = as_json(cli(server, "engine", "get", engine_id, "--output", "json"))

    assert info["id"] == engine_id
    assert info["name"] == "etl"
    assert info["state"] == "WaitToStart"
    assert info["version"] == VERSION
    assert info["configs"] == {"spark.executor.memory": "1g", "a.b": "x=y"}
    assert info["create_time"]

    table = ok(cli(server, "engine", "get", engine_id))
    assert engine_id in table
    assert "WaitToStart" in table
    assert "spark.executor.memory=1g" in table


def test_get_shows_secret_confs_redacted_in_tables_and_json(server: Server) -> None:
    secret = "wJalrXUtnFEMI-K7MDENG"
    engine_id = create(server, "s3", "-c", f"spark.hadoop.fs.s3a.secret.key={secret}")

    table = ok(cli(server, "engine", "get", engine_id))
    info = as_json(cli(server, "engine", "get", engine_id, "--output", "json"))

    assert secret not in table and "*********(redacted)" in table
    assert info["configs"] == {"spark.hadoop.fs.s3a.secret.key": "*********(redacted)"}


def test_create_with_json_output_prints_the_id_as_json(server: Server) -> None:
    created = as_json(
        cli(server, "engine", "create", "scripted", "--version", VERSION, "-o", "json")
    )
    assert set(created) == {"id"}
    assert as_json(cli(server, "engine", "get", created["id"], "-o", "json"))["name"] == "scripted"


def test_list_prints_a_table_of_engines_and_json_for_scripts(server: Server) -> None:
    first = create(server, "list-one")
    second = create(server, "list-two")
    ok(cli(server, "engine", "stop", second))

    table = ok(cli(server, "engine", "list"))
    header = table.splitlines()[1]
    for column in ("id", "name", "state", "version", "create_time"):
        assert column in header
    row = next(line for line in table.splitlines() if first in line)
    assert "list-one" in row
    assert "WaitToStart" in row
    assert VERSION in row

    listed = as_json(cli(server, "engine", "list", "--output", "json"))
    ids = [item["id"] for item in listed]
    assert ids.index(first) < ids.index(second)
    terminated = as_json(cli(server, "engine", "list", "--state", "Terminated", "-o", "json"))
    assert second in [item["id"] for item in terminated]
    assert first not in [item["id"] for item in terminated]


def test_tables_show_names_verbatim_not_as_markup(server: Server) -> None:
    engine_id = create(server, "[red]x[/] [bold")

    listed = ok(cli(server, "engine", "list"))
    shown = ok(cli(server, "engine", "get", engine_id))

    assert "[red]x[/] [bold" in next(line for line in listed.splitlines() if engine_id in line)
    assert "[red]x[/] [bold" in shown


def test_list_pages_with_limit_and_after(server: Server) -> None:
    for n in range(3):
        create(server, f"page-{n}")
    everything = [i["id"] for i in as_json(cli(server, "engine", "list", "-o", "json"))]

    page = as_json(cli(server, "engine", "list", "--limit", "2", "-o", "json"))
    rest = as_json(cli(server, "engine", "list", "--after", page[-1]["id"], "-o", "json"))

    assert [i["id"] for i in page + rest] == everything


def test_stop_restart_delete_print_the_new_state(server: Server) -> None:
    engine_id = create(server, "actions")

    assert ok(cli(server, "engine", "stop", engine_id)) == f"{engine_id}: Terminated\n"
    restarted = as_json(cli(server, "engine", "restart", engine_id, "-o", "json"))
    assert restarted["state"] == "WaitToStart"
    assert ok(cli(server, "engine", "delete", engine_id)) == f"{engine_id}: deleted\n"

    gone = cli(server, "engine", "get", engine_id)
    assert gone.exit_code == 1
    assert "not found" in gone.stderr


def test_events_show_each_transition(server: Server) -> None:
    engine_id = create(server, "history")
    ok(cli(server, "engine", "stop", engine_id))

    found = as_json(cli(server, "engine", "events", engine_id, "-o", "json"))
    table = ok(cli(server, "engine", "events", engine_id))

    assert [(e["from_state"], e["to_state"]) for e in found] == [
        (None, "WaitToStart"),
        ("WaitToStart", "Terminated"),
    ]
    assert found[1]["actor"] == "admin"
    assert "Terminated" in table
    assert "admin" in table


def test_logs_of_an_engine_that_never_ran_are_empty(server: Server) -> None:
    engine_id = create(server, "quiet")
    assert ok(cli(server, "engine", "logs", engine_id, "--tail", "10")) == ""
    assert as_json(cli(server, "engine", "logs", engine_id, "-o", "json")) == {
        "id": engine_id,
        "logs": "",
    }


def test_connect_url_routes_through_the_proxy_with_the_token(server: Server) -> None:
    engine_id = create(server, "connectable")

    result = cli(server, "engine", "connect-url", engine_id, "--proxy-port", "15999")

    assert ok(result) == f"sc://localhost:15999/;x-rucat-engine-id={engine_id};token={TOKEN}\n"
    assert "WaitToStart" in result.stderr  # a note: it is not Running yet
    checked = as_json(cli(server, "engine", "connect-url", engine_id, "-o", "json"))
    assert checked["state"] == "WaitToStart"
    assert checked["connect_url"].startswith("sc://localhost:15002/")


def test_engine_ui_prints_the_spark_ui_url_through_the_server(server: Server) -> None:
    engine_id = create(server, "with-a-ui")

    result = cli(server, "engine", "ui", engine_id)

    assert ok(result) == f"{server.url}/engine/{engine_id}/sparkui/\n"
    assert "WaitToStart" in result.stderr and "not Running" in result.stderr
    shown = as_json(cli(server, "engine", "ui", engine_id, "-o", "json"))
    assert shown == {
        "id": engine_id,
        "state": "WaitToStart",
        "spark_ui_url": f"{server.url}/engine/{engine_id}/sparkui/",
    }
    unknown = cli(server, "engine", "ui", "a0000000000000000000")
    assert unknown.exit_code != 0 and "not found" in unknown.stderr


def test_permissions_are_shown_and_replaced_with_grant_options(server: Server) -> None:
    engine_id = create(server, "shared")

    replaced = as_json(
        cli(
            server,
            "engine",
            "permissions",
            engine_id,
            "--grant",
            "user:bob=attach",
            "-g",
            "group:ops=manage",
            "-o",
            "json",
        )
    )

    # The static provider's one identity (bearer only) is the admin named "admin".
    assert replaced == {
        "owner": "admin",
        "grants": [{"user": "bob", "level": "attach"}, {"group": "ops", "level": "manage"}],
    }
    table = ok(cli(server, "engine", "permissions", engine_id))
    assert "user:bob" in table and "group:ops" in table and "owner:admin" in table
    assert as_json(cli(server, "engine", "permissions", engine_id, "--clear", "-o", "json")) == {
        "owner": "admin",
        "grants": [],
    }
    bad = cli(server, "engine", "permissions", engine_id, "--grant", "bob=attach")
    assert bad.exit_code == 2
    assert "user:NAME=LEVEL" in bad.stderr
    refused = cli(server, "engine", "permissions", engine_id, "--grant", "user:bob=owner")
    assert refused.exit_code == 1
    assert "level" in refused.stderr


def test_list_by_owner_shows_the_owner_column(server: Server) -> None:
    engine_id = create(server, "owned")

    table = ok(cli(server, "engine", "list", "--owner", "admin"))
    assert "owner" in table.splitlines()[1]
    assert engine_id in table
    mine = as_json(cli(server, "engine", "list", "--owner", "admin", "-o", "json"))
    assert engine_id in [item["id"] for item in mine]
    assert {item["owner"] for item in mine} == {"admin"}
    assert as_json(cli(server, "engine", "list", "--owner", "nobody", "-o", "json")) == []


# --- failures -------------------------------------------------------------------


def test_a_refused_action_exits_1_with_the_servers_detail_and_no_traceback(
    server: Server,
) -> None:
    engine_id = create(server, "refused")
    ok(cli(server, "engine", "stop", engine_id))

    again = cli(server, "engine", "stop", engine_id)

    assert again.exit_code == 1
    assert again.stdout == ""
    assert again.stderr.startswith("error: ")
    assert "Terminated" in again.stderr
    assert "Traceback" not in again.stderr


def test_bad_input_exits_1_saying_what_is_wrong(server: Server) -> None:
    bad_version = cli(server, "engine", "create", "etl", "--version", "latest")
    assert bad_version.exit_code == 1
    assert "latest" in bad_version.stderr

    bad_conf = cli(server, "engine", "create", "etl", "--version", VERSION, "--conf", "novalue")
    assert bad_conf.exit_code == 2  # a usage error, caught before any request
    assert "KEY=VALUE" in bad_conf.stderr


def test_wrong_or_missing_credentials_exit_1_with_unauthorized(server: Server) -> None:
    wrong = cli(server, "engine", "list", env={"RUCAT_TOKEN": "nope"})
    assert wrong.exit_code == 1
    assert "invalid credentials" in wrong.stderr

    flag_wins = cli(server, "engine", "list", "--token", TOKEN, env={"RUCAT_TOKEN": "nope"})
    assert flag_wins.exit_code == 0, flag_wins.stderr


def test_an_unreachable_server_exits_1_saying_how_to_point_to_one(server: Server) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"

    result = cli(server, "engine", "list", "--url", nowhere)

    assert result.exit_code == 1
    assert nowhere in result.stderr
    assert "RUCAT_URL" in result.stderr


def test_create_wait_without_a_monitor_times_out_saying_where_it_stuck(server: Server) -> None:
    result = cli(
        server, "engine", "create", "stuck", "--version", VERSION, "--wait", "--timeout", "1"
    )

    assert result.exit_code == 1
    assert result.stdout == ""
    assert "WaitToStart" in result.stderr
    assert "rucat engine logs" in result.stderr


def monitor_records(db: Path, engine_id: str, *steps: tuple[EngineState, str | None]) -> None:
    """Write states into the server's SQLite file as a monitor process would."""

    async def write() -> None:
        store = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=str(db))))
        try:
            for state, message in steps:
                current = await store.get(engine_id=engine_id)
                new = dataclasses.replace(current, state=state, message=message)
                await store.transition(current=current, new=new, actor="test-monitor")
        finally:
            await store.close()

    asyncio.run(write())


def test_create_wait_stops_early_with_the_engines_message_when_it_fails(server: Server) -> None:
    assert server.db is not None
    outcome: list[Result] = []
    waiting = threading.Thread(
        target=lambda: outcome.append(
            cli(server, "engine", "create", "doomed", "--version", VERSION, "--wait")
        )
    )
    waiting.start()
    with RucatClient(server.url, token=TOKEN) as sdk:
        engine_id = ""
        while not engine_id and waiting.is_alive():
            doomed = [i.id for i in sdk.list_info(state="WaitToStart") if i.name == "doomed"]
            engine_id = doomed[0] if doomed else ""
            time.sleep(0.05)
    assert engine_id, [(r.exit_code, r.stdout, r.stderr) for r in outcome]
    monitor_records(
        server.db,
        engine_id,
        (EngineState.TriggerStart, None),
        (EngineState.StartInProgress, None),
        (EngineState.ErrorWaitToClean, "driver exited with code 1: OutOfMemoryError"),
    )
    waiting.join(timeout=120)

    (result,) = outcome
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "OutOfMemoryError" in result.stderr
    assert f"rucat engine logs {engine_id}" in result.stderr


def test_the_installed_command_separates_results_from_errors(server: Server) -> None:
    env = {"PATH": "/usr/bin:/bin", **server.env}
    created = subprocess.run(
        [RUCAT, "engine", "create", "shell", "--version", VERSION],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    engine_id = created.stdout.strip()

    deleted = subprocess.run(
        [RUCAT, "engine", "delete", engine_id, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert json.loads(deleted.stdout) == {"id": engine_id, "deleted": True}

    missing = subprocess.run(
        [RUCAT, "engine", "get", engine_id],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert "not found" in missing.stderr
    assert "Traceback" not in missing.stderr


# --- a real engine under `rucat up` ----------------------------------------------


def proxy_listening(port: int) -> bool:
    """Whether something accepts connections on the proxy port.

    pyspark retries a refused connection for minutes; checking first turns a
    missing proxy into a clear, fast failure.
    """
    with socket.socket() as probe:
        probe.settimeout(5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def stop_and_forget(sdk: RucatClient, engine_id: str) -> None:
    """Leave no JVM behind whatever happened: engines outlive `rucat up` by design."""
    with contextlib.suppress(RucatClientError):
        sdk.stop(engine_id)
    with contextlib.suppress(RucatClientError):
        sdk.wait_until(engine_id, "Terminated", timeout=120)
    for pid in engine_jvms(engine_id):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.java
@pytest.mark.timeout(600)
def test_a_real_engine_through_rucat_up_from_create_wait_to_delete(tmp_path: Path) -> None:
    require_java()
    config = {
        "check_interval_secs": 0.5,
        "auth_provider": {"StaticAuthProviderConfig": {"bearer_token": TOKEN}},
    }
    with (
        rucat_up(tmp_path, config) as (process, url, connect_port),
        RucatClient(url, token=TOKEN, connect_port=connect_port) as sdk,
    ):
        up = Server(
            url=url,
            env={"RUCAT_URL": url, "RUCAT_TOKEN": TOKEN, "RUCAT_CONNECT_PORT": str(connect_port)},
        )
        created = cli(
            up, "engine", "create", "e2e", "--version", VERSION, "--wait", "--timeout", "300"
        )
        engine_ids = sdk.list()
        assert len(engine_ids) == 1, (created.stderr, process.output()[-3000:])
        engine_id = engine_ids[0]
        try:
            connect = ok(created).strip()
            assert "Running" in created.stderr
            assert connect == (
                f"sc://localhost:{connect_port}/;x-rucat-engine-id={engine_id};token={TOKEN}"
            )

            info = as_json(cli(up, "engine", "get", engine_id, "-o", "json"))
            assert info["state"] == "Running"
            assert info["endpoint"]
            assert engine_id in ok(cli(up, "engine", "list"))

            assert proxy_listening(connect_port), (
                f"no Spark Connect proxy on port {connect_port}:\n{process.output()[-3000:]}"
            )
            spark = sdk.spark_session(engine_id)
            try:
                assert spark.sql("select 40 + 2 as answer").collect()[0]["answer"] == 42
            finally:
                spark.stop()

            stopped = ok(cli(up, "engine", "stop", engine_id))
            assert stopped == f"{engine_id}: WaitToTerminate\n"
            sdk.wait_until(engine_id, "Terminated", timeout=120)
            logs = ok(cli(up, "engine", "logs", engine_id, "--tail", "2000"))
            assert "SparkConnectServer" in logs or "Spark Connect" in logs
            events = as_json(cli(up, "engine", "events", engine_id, "-o", "json"))
            assert [e["to_state"] for e in events][-1] == "Terminated"
        finally:
            stop_and_forget(sdk, engine_id)
        assert ok(cli(up, "engine", "delete", engine_id)) == f"{engine_id}: deleted\n"
        assert as_json(cli(up, "engine", "list", "-o", "json")) == []
