"""`rucat engine ...`: the engine API from a shell, built on the SDK.

Every command takes the shared connection options of cli/common.py (`--url`,
credentials, `--output table|json`, or their RUCAT_... variables). Results go
to stdout; progress and errors go to stderr, so `$(rucat engine create ...)`
captures only the result. Any error exits non-zero with the server's detail
and no traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from rucat.cli.common import (
    EXIT_INTERRUPTED,
    Connection,
    cells,
    connected,
    fail_command,
    print_json,
    stderr,
    stdout,
    when,
)
from rucat.client import DEFAULT_CONNECT_PORT, RucatClient, parse_grant
from rucat.client.errors import EngineFailed, RucatClientError, WaitTimeout
from rucat.client.models import EngineEventInfo, EngineInfo
from rucat.domain.state import EngineState

__all__ = ["engine_app"]

engine_app = typer.Typer(
    name="engine",
    help="Create, inspect, stop and delete engines on a Rucat server.",
    no_args_is_help=True,
    add_completion=False,
)

EngineIdArg = Annotated[str, typer.Argument(help="The engine's id.", show_default=False)]
ProxyHost = Annotated[
    str | None,
    typer.Option(
        "--proxy-host",
        envvar="RUCAT_CONNECT_HOST",
        help="Host of the Spark Connect proxy (default: the server's host).",
    ),
]
ProxyPort = Annotated[
    int | None,
    typer.Option(
        "--proxy-port",
        envvar="RUCAT_CONNECT_PORT",
        help="Port of the Spark Connect proxy (default: the server's connect_url, else "
        f"{DEFAULT_CONNECT_PORT}).",
    ),
]
UseSsl = Annotated[
    bool, typer.Option("--use-ssl", help="The proxy serves TLS (on a host other than localhost).")
]


def _idle(info: EngineInfo, now: datetime) -> str:
    """How long a Running engine has been idle ("busy" while it is not), else "-"."""
    if info.state is not EngineState.Running:
        return "-"
    if info.idle_since is None:
        return "busy"
    seconds = max(0, int((now - info.idle_since).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _parse_confs(pairs: list[str]) -> dict[str, str]:
    confs: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--conf")
        confs[key] = value
    return confs


def _print_engine(info: EngineInfo, conn: Connection) -> None:
    if conn.json:
        print_json(info.to_json())
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in info.to_json().items():
        if key == "configs":
            shown = ", ".join(f"{k}={v}" for k, v in sorted(info.configs.items()))
        else:
            shown = "" if value is None else str(value)
        table.add_row(*cells(key, shown))
    stdout().print(table)


def _progress(engine_id: str) -> tuple[Callable[[EngineInfo], None], Callable[[], None]]:
    """An `on_state` callback showing the state (a spinner on a terminal, lines otherwise)."""
    err = stderr()
    if not err.is_terminal:

        def line(info: EngineInfo) -> None:
            err.print(f"engine {engine_id}: {info.state.value}", markup=False)

        return line, lambda: None
    status = err.status(f"engine {engine_id}: creating")
    status.start()

    def spin(info: EngineInfo) -> None:
        status.update(f"engine {engine_id}: {info.state.value}")

    return spin, status.stop


# --- commands ----------------------------------------------------------------


@engine_app.command()
@connected
def create(
    name: Annotated[str, typer.Argument(help="A label for people.", show_default=False)],
    version: Annotated[
        str, typer.Option("--version", "-v", help="Engine version, e.g. 4.0.1.", show_default=False)
    ],
    conf: Annotated[
        list[str] | None,
        typer.Option("--conf", "-c", help="Engine config KEY=VALUE; repeatable."),
    ] = None,
    engine_type: Annotated[str, typer.Option("--engine-type", help="Kind of engine.")] = "Spark",
    auto_stop: Annotated[
        float | None,
        typer.Option(
            "--auto-stop",
            help="Minutes without Spark Connect activity before it stops (0: never; "
            "default: the server's).",
            min=0,
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until Running, then print the connect URL.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds --wait waits.", min=0)
    ] = 600.0,
    proxy_host: ProxyHost = None,
    proxy_port: ProxyPort = None,
    use_ssl: UseSsl = False,
    *,
    conn: Connection,
) -> None:
    """Create an engine and print its id (with --wait: its connect URL once Running)."""
    configs = _parse_confs(conf or [])
    with conn.client(connect_host=proxy_host, connect_port=proxy_port) as rucat:
        engine_id = rucat.create(
            name, version, configs, engine_type=engine_type, auto_stop_minutes=auto_stop
        )
        if not wait:
            if conn.json:
                print_json({"id": engine_id})
            else:
                sys.stdout.write(engine_id + "\n")
            return
        show, done = _progress(engine_id)
        try:
            info = rucat.wait_until(engine_id, EngineState.Running, timeout, on_state=show)
        except KeyboardInterrupt:
            done()
            fail_command(f"stopped waiting; engine {engine_id} keeps starting", EXIT_INTERRUPTED)
        except WaitTimeout as e:
            done()
            fail_command(f"{e.detail}; it keeps starting (see `rucat engine logs {engine_id}`)")
        except EngineFailed as e:
            done()
            fail_command(f"{e.detail} (see `rucat engine logs {engine_id}`)")
        except RucatClientError:
            done()
            raise
        done()
        connect = rucat.connect_url(engine_id, use_ssl=use_ssl, info=info)
        if conn.json:
            print_json({**info.to_json(), "connect_url": connect})
        else:
            stderr().print(f"engine {engine_id} is Running", markup=False)
            sys.stdout.write(connect + "\n")


@engine_app.command()
@connected
def get(engine_id: EngineIdArg, *, conn: Connection) -> None:
    """Show one engine."""
    with conn.client() as rucat:
        _print_engine(rucat.get(engine_id), conn)


@engine_app.command("list")
@connected
def list_(
    state: Annotated[
        list[EngineState] | None,
        typer.Option("--state", "-s", help="Only engines in this state; repeatable."),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many.", min=1)] = None,
    after: Annotated[
        str | None, typer.Option("--after", help="Start after this engine id (paging).")
    ] = None,
    owner: Annotated[
        str | None, typer.Option("--owner", help="Only engines this user owns.")
    ] = None,
    *,
    conn: Connection,
) -> None:
    """List the engines you may see (admins: all), oldest first."""
    with conn.client() as rucat:
        engines = rucat.list_info(state or None, limit=limit, after=after, owner=owner)
    if conn.json:
        print_json([info.to_json() for info in engines])
        return
    table = Table()
    for column in ("id", "name", "owner", "state", "version", "create_time", "idle"):
        table.add_column(column, no_wrap=column not in ("name", "owner"), overflow="fold")
    now = datetime.now(UTC)
    for info in engines:
        table.add_row(
            *cells(
                info.id,
                info.name,
                info.owner or "",
                info.state.value,
                info.version,
                when(info.create_time),
                _idle(info, now),
            )
        )
    stdout().print(table)


@engine_app.command()
@connected
def permissions(
    engine_id: EngineIdArg,
    grant: Annotated[
        list[str] | None,
        typer.Option(
            "--grant",
            "-g",
            help="user:NAME=LEVEL or group:NAME=LEVEL (LEVEL: attach or manage); repeatable. "
            "Replaces every grant of the engine.",
        ),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove every grant (the owner keeps manage).")
    ] = False,
    *,
    conn: Connection,
) -> None:
    """Show the engine's owner and grants; with --grant or --clear, replace the grants."""
    if grant and clear:
        raise typer.BadParameter("give --grant or --clear, not both", param_hint="--clear")
    try:
        wanted = [parse_grant(g) for g in grant or []] if grant or clear else None
    except RucatClientError as e:
        raise typer.BadParameter(e.detail, param_hint="--grant") from e
    with conn.client() as rucat:
        if wanted is None:
            shown = rucat.permissions(engine_id)
        else:
            shown = rucat.set_permissions(engine_id, wanted)
    if conn.json:
        print_json(shown.to_json())
        return
    table = Table()
    for column in ("grantee", "level"):
        table.add_column(column, overflow="fold")
    table.add_row(*cells(f"owner:{shown.owner}" if shown.owner else "owner: (none)", "manage"))
    for entry in shown.grants:
        kind = "user" if "user" in entry else "group"
        table.add_row(*cells(f"{kind}:{entry.get(kind, '')}", entry.get("level", "")))
    stdout().print(table)


def _act(
    action: Callable[[RucatClient, str], EngineInfo], engine_id: str, conn: Connection
) -> None:
    with conn.client() as rucat:
        info = action(rucat, engine_id)
    if conn.json:
        print_json(info.to_json())
    else:
        sys.stdout.write(f"{info.id}: {info.state.value}\n")


@engine_app.command()
@connected
def stop(engine_id: EngineIdArg, *, conn: Connection) -> None:
    """Stop an engine (WaitToStart -> Terminated; running -> WaitToTerminate)."""
    _act(RucatClient.stop, engine_id, conn)


@engine_app.command()
@connected
def restart(engine_id: EngineIdArg, *, conn: Connection) -> None:
    """Restart a stopped engine (Terminated -> WaitToStart; WaitToTerminate -> Running)."""
    _act(RucatClient.restart, engine_id, conn)


@engine_app.command()
@connected
def delete(engine_id: EngineIdArg, *, conn: Connection) -> None:
    """Delete an engine in WaitToStart, Terminated or ErrorClean, with its logs."""
    with conn.client() as rucat:
        rucat.delete(engine_id)
    if conn.json:
        print_json({"id": engine_id, "deleted": True})
    else:
        sys.stdout.write(f"{engine_id}: deleted\n")


@engine_app.command()
@connected
def logs(
    engine_id: EngineIdArg,
    tail: Annotated[
        int | None, typer.Option("--tail", "-n", help="Only the last N lines.", min=1)
    ] = None,
    *,
    conn: Connection,
) -> None:
    """Print the engine's log."""
    with conn.client() as rucat:
        text = rucat.logs(engine_id, tail=tail)
    if conn.json:
        print_json({"id": engine_id, "logs": text})
    else:
        sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")


@engine_app.command()
@connected
def events(engine_id: EngineIdArg, *, conn: Connection) -> None:
    """Show the engine's state transitions, oldest first."""
    with conn.client() as rucat:
        found: list[EngineEventInfo] = rucat.events(engine_id)
    if conn.json:
        print_json([event.to_json() for event in found])
        return
    table = Table()
    for column in ("time", "from", "to", "actor", "message"):
        table.add_column(column, no_wrap=column != "message", overflow="fold")
    for event in found:
        table.add_row(
            *cells(
                when(event.time),
                event.from_state.value if event.from_state else "",
                event.to_state.value,
                event.actor or "",
                event.message or "",
            )
        )
    stdout().print(table)


@engine_app.command()
@connected
def versions(*, conn: Connection) -> None:
    """List the engine types and versions the server's platform runs."""
    with conn.client() as rucat:
        found = rucat.versions()
    if conn.json:
        print_json(found)
        return
    for engine_type, numbers in found.items():
        sys.stdout.write(f"{engine_type}\t{' '.join(numbers)}\n")


@engine_app.command("connect-url")
@connected
def connect_url(
    engine_id: EngineIdArg,
    proxy_host: ProxyHost = None,
    proxy_port: ProxyPort = None,
    use_ssl: UseSsl = False,
    check: Annotated[
        bool,
        typer.Option("--check/--no-check", help="Check with the server that the engine exists."),
    ] = True,
    *,
    conn: Connection,
) -> None:
    """Print the engine's Spark Connect URL through Rucat's proxy (includes --token)."""
    with conn.client(connect_host=proxy_host, connect_port=proxy_port) as rucat:
        info = rucat.get(engine_id) if check else None
        state = info.state.value if info is not None else None
        connect = rucat.connect_url(engine_id, use_ssl=use_ssl, info=info)
    if conn.json:
        print_json({"id": engine_id, "state": state, "connect_url": connect})
    else:
        if state is not None and state != EngineState.Running:
            stderr().print(f"note: engine {engine_id} is {state}, not Running", markup=False)
        sys.stdout.write(connect + "\n")


@engine_app.command("ui")
@connected
def ui(
    engine_id: EngineIdArg,
    check: Annotated[
        bool,
        typer.Option("--check/--no-check", help="Check with the server that the engine exists."),
    ] = True,
    *,
    conn: Connection,
) -> None:
    """Print the URL of the engine's Spark UI through Rucat (served while it is Running)."""
    with conn.client() as rucat:
        info = rucat.get(engine_id) if check else None
        address = rucat.spark_ui_url(engine_id)
    state = info.state.value if info is not None else None
    if conn.json:
        print_json({"id": engine_id, "state": state, "spark_ui_url": address})
        return
    if state is not None and state != EngineState.Running:
        stderr().print(
            f"note: engine {engine_id} is {state}, not Running: its Spark UI answers 409",
            markup=False,
        )
    sys.stdout.write(address + "\n")
