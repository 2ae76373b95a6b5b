"""`rucat engine ...`: the engine API from a shell, built on the SDK.

Every command takes the server's `--url` (or RUCAT_URL), credentials
(--username/--password or --token, or RUCAT_USERNAME/RUCAT_PASSWORD/
RUCAT_TOKEN) and `--output table|json`. Results go to stdout; progress and
errors go to stderr, so `$(rucat engine create ...)` captures only the
result. Any error exits non-zero with the server's detail and no traceback.
"""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rucat.client import DEFAULT_CONNECT_PORT, DEFAULT_URL, RucatClient, parse_grant
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

#: Exit codes: 1 the server or the engine said no; 130 interrupted (as shells do).
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class Output(enum.StrEnum):
    table = "table"
    json = "json"


# --- options every command shares --------------------------------------------

Url = Annotated[
    str,
    typer.Option("--url", envvar="RUCAT_URL", help="Base URL of the Rucat server."),
]
Username = Annotated[
    str | None,
    typer.Option("--username", envvar="RUCAT_USERNAME", help="User for HTTP Basic auth."),
]
Password = Annotated[
    str | None,
    typer.Option(
        "--password",
        envvar="RUCAT_PASSWORD",
        help="Password for HTTP Basic auth.",
        show_default=False,
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="RUCAT_TOKEN",
        help="Bearer token (REST and the Spark Connect proxy).",
        show_default=False,
    ),
]
OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", help="table for people, json for scripts.")
]
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


def _stdout() -> Console:
    # A pipe gets wide lines: tables must not wrap ids for scripts reading them.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    _stderr().print(f"error: {message}", markup=False)
    raise typer.Exit(code)


@contextmanager
def _client(
    url: str,
    username: str | None,
    password: str | None,
    token: str | None,
    *,
    connect_host: str | None = None,
    connect_port: int | None = None,
) -> Iterator[RucatClient]:
    """A client for one command; every SDK error becomes a clean exit with its detail."""
    try:
        with RucatClient(
            url,
            username=username,
            password=password,
            token=token,
            connect_host=connect_host,
            connect_port=connect_port,
        ) as client:
            yield client
    except RucatClientError as e:
        _fail(e.detail)


def _cells(*values: str) -> list[Text]:
    """Table cells shown verbatim: a name like "[red]x" is data, not rich markup."""
    return [Text(value) for value in values]


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


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


def _print_engine(info: EngineInfo, output: Output) -> None:
    if output is Output.json:
        _print_json(info.to_json())
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in info.to_json().items():
        if key == "configs":
            shown = ", ".join(f"{k}={v}" for k, v in sorted(info.configs.items()))
        else:
            shown = "" if value is None else str(value)
        table.add_row(*_cells(key, shown))
    _stdout().print(table)


def _progress(engine_id: str) -> tuple[Callable[[EngineInfo], None], Callable[[], None]]:
    """An `on_state` callback showing the state (a spinner on a terminal, lines otherwise)."""
    err = _stderr()
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
    url: Url = DEFAULT_URL,
    username: Username = None,
    password: Password = None,
    token: Token = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create an engine and print its id (with --wait: its connect URL once Running)."""
    configs = _parse_confs(conf or [])
    with _client(
        url, username, password, token, connect_host=proxy_host, connect_port=proxy_port
    ) as rucat:
        engine_id = rucat.create(
            name, version, configs, engine_type=engine_type, auto_stop_minutes=auto_stop
        )
        if not wait:
            if output is Output.json:
                _print_json({"id": engine_id})
            else:
                sys.stdout.write(engine_id + "\n")
            return
        show, done = _progress(engine_id)
        try:
            info = rucat.wait_until(engine_id, EngineState.Running, timeout, on_state=show)
        except KeyboardInterrupt:
            done()
            _fail(f"stopped waiting; engine {engine_id} keeps starting", EXIT_INTERRUPTED)
        except WaitTimeout as e:
            done()
            _fail(f"{e.detail}; it keeps starting (see `rucat engine logs {engine_id}`)")
        except EngineFailed as e:
            done()
            _fail(f"{e.detail} (see `rucat engine logs {engine_id}`)")
        except RucatClientError:
            done()
            raise
        done()
        connect = rucat.connect_url(engine_id, use_ssl=use_ssl, info=info)
        if output is Output.json:
            _print_json({**info.to_json(), "connect_url": connect})
        else:
            _stderr().print(f"engine {engine_id} is Running", markup=False)
            sys.stdout.write(connect + "\n")


@engine_app.command()
def get(
    engine_id: EngineIdArg,
    url: Url = DEFAULT_URL,
    username: Username = None,
    password: Password = None,
    token: Token = None,
    output: OutputOpt = Output.table,
) -> None:
    """Show one engine."""
    with _client(url, username, password, token) as rucat:
        _print_engine(rucat.get(engine_id), output)


@engine_app.command("list")
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
    url: Url = DEFAULT_URL,
    username: Username = None,
    password: Password = None,
    token: Token = None,
    output: OutputOpt = Output.table,
) -> None:
    """List the engines you may see (admins: all), oldest first."""
    with _client(url, username, password, token) as rucat:
        engines = rucat.list_info(state or None, limit=limit, after=after, owner=owner)
    if output is Output.json:
        _print_json([info.to_json() for info in engines])
        return
    table = Table()
    for column in ("id", "name", "owner", "state", "version", "create_time", "idle"):
        table.add_column(column, no_wrap=column not in ("name", "owner"), overflow="fold")
    now = datetime.now(UTC)
    for info in engines:
        table.add_row(
            *_cells(
                info.id,
                info.name,
                info.owner or "",
                info.state.value,
                info.version,
                _when(info.create_time),
                _idle(info, now),
            )
        )
    _stdout().print(table)


@engine_app.command()
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
    url: Url = DEFAULT_URL,
    username: Username = None,
    password: Password = None,
    token: Token = None,
    output: OutputOpt = Output.table,
) -> None:
    """Show the engine's owner and grants; with --grant or --clear, replace the grants."""
    if grant and clear:
        raise typer.BadParameter("give --grant or --clear, not both", param_hint="--clear")
    try:
        wanted = [parse_grant(g) for g in grant or []] if grant or clear else None
    except RucatClientError as e:
        raise typer.BadParameter(e.detail, param_hint="--grant") from e
    with _client(url, username, password, token) as rucat:
        if wanted is None:
            shown = rucat.permissions(engine_id)
        else:
            shown = rucat.set_permissions(engine_id, wanted)
    if output is Output.json:
        _print_json(shown.to_json())
        return
    table = Table()
    for column in ("grantee", "level"):
        table.add_column(column, overflow="fold")
    table.add_row(*_cells(f"owner:{shown.owner}" if shown.owner else "owner: (none)", "manage"))
    for entry in shown.grants:
        kind = "user" if "user" in entry else "group"
        table.add_row(*_cells(f"{kind}:{entry.get(kind, '')}", entry.get("level", "")))
    _stdout().print(table)


def _act(
    action: Callable[[RucatClient, str], EngineInfo],
    engine_id: str,
    url: str,
    username: str | None,
    password: str | None,
    token: str | None,
    output: Output,
) -> None:
    with _client(url, username, password, token) as rucat:
        info = action(rucat, engine_id)
    if output is Output.json:
        _print_json(info.to_json())
    else:
        sys.stdout.write(f"{info.id}: {info.state.value}\n")


@engine_app.command()
def stop(
    engine_id: EngineIdArg,
    url: Url = DEFAULT_URL,
    username: Username = None,
    password: Password = None,
    token: Token = None,
    output: OutputOpt = Output.table,
) -> None:
    """Stop an engine (WaitToStart -> Terminated; running -> WaitToTerminate)."""
    _act(RucatClient.stop, engine_id, url, username, password, token, output)


@engine_app.command()
def restart(
    engine_id: EngineIdArg,
    url: Url = DEFAULT_URL,
    username: Username = None,
    password: Password = None,
    token: Token = None,
    output: OutputOpt = Output.table,
) -> None:
    """Restart a stopped engine (Terminated -> WaitToStart; WaitToTerminate -> Running)."""
    _act(RucatClient.restart, engine_id, url, username, password, token, output)


@engine_app.command()
def delete(
    engine_id: EngineIdArg,
    url: Url = DEFAULT_URL,
    username: Username = None,
    password: Password = None,
    token: Token = None,
    output: OutputOpt = Output.table,
) -> None:
    """Delete an engine in WaitToStart, Terminated or ErrorClean, with its logs."""
    with _client(url, username, password, token) as rucat:
        rucat.delete(engine_id)
    if output is Output.json:
        _print_json({"id": engine_id, "deleted": True})
    else:
        sys.stdout.write(f"{engine_id}: deleted\n")


@engine_app.command()
def logs(
    engine_id: EngineIdArg,
    tail: Annotated[
        int | None, typer.Option("--tail", "-n", help="Only the last N lines.", min=1)
    ] = None,
    url: Url = DEFAULT_URL,
    username: Username = None,
    password: Password = None,
    token: Token = None,
    output: OutputOpt = Output.table,
) -> None:
    """Print the engine's log."""
    with _client(url, username, password, token) as rucat:
        text = rucat.logs(engine_id, tail=tail)
    if output is Output.json:
        _print_json({"id": engine_id, "logs": text})
    else:
        sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")


@engine_app.command()
def events(
    engine_id: EngineIdArg,
    url: Url = DEFAULT_URL,
    username: Username = None,
    password: Password = None,
    token: Token = None,
    output: OutputOpt = Output.table,
) -> None:
    """Show the engine's state transitions, oldest first."""
    with _client(url, username, password, token) as rucat:
        found: list[EngineEventInfo] = rucat.events(engine_id)
    if output is Output.json:
        _print_json([event.to_json() for event in found])
        return
    table = Table()
    for column in ("time", "from", "to", "actor", "message"):
        table.add_column(column, no_wrap=column != "message", overflow="fold")
    for event in found:
        table.add_row(
            *_cells(
                _when(event.time),
                event.from_state.value if event.from_state else "",
                event.to_state.value,
                event.actor or "",
                event.message or "",
            )
        )
    _stdout().print(table)


@engine_app.command()
def versions(
    url: Url = DEFAULT_URL,
    username: Username = None,
    password: Password = None,
    token: Token = None,
    output: OutputOpt = Output.table,
) -> None:
    """List the engine types and versions the server's platform runs."""
    with _client(url, username, password, token) as rucat:
        found = rucat.versions()
    if output is Output.json:
        _print_json(found)
        return
    for engine_type, numbers in found.items():
        sys.stdout.write(f"{engine_type}\t{' '.join(numbers)}\n")


@engine_app.command("connect-url")
def connect_url(
    engine_id: EngineIdArg,
    proxy_host: ProxyHost = None,
    proxy_port: ProxyPort = None,
    use_ssl: UseSsl = False,
    check: Annotated[
        bool,
        typer.Option("--check/--no-check", help="Check with the server that the engine exists."),
    ] = True,
    url: Url = DEFAULT_URL,
    username: Username = None,
    password: Password = None,
    token: Token = None,
    output: OutputOpt = Output.table,
) -> None:
    """Print the engine's Spark Connect URL through Rucat's proxy (includes --token)."""
    with _client(
        url, username, password, token, connect_host=proxy_host, connect_port=proxy_port
    ) as rucat:
        info = rucat.get(engine_id) if check else None
        state = info.state.value if info is not None else None
        connect = rucat.connect_url(engine_id, use_ssl=use_ssl, info=info)
    if output is Output.json:
        _print_json({"id": engine_id, "state": state, "connect_url": connect})
    else:
        if state is not None and state != EngineState.Running:
            _stderr().print(f"note: engine {engine_id} is {state}, not Running", markup=False)
        sys.stdout.write(connect + "\n")


@engine_app.command("ui")
def ui(
    engine_id: EngineIdArg,
    check: Annotated[
        bool,
        typer.Option("--check/--no-check", help="Check with the server that the engine exists."),
    ] = True,
    url: Url = DEFAULT_URL,
    username: Username = None,
    password: Password = None,
    token: Token = None,
    output: OutputOpt = Output.table,
) -> None:
    """Print the URL of the engine's Spark UI through Rucat (served while it is Running)."""
    with _client(url, username, password, token) as rucat:
        info = rucat.get(engine_id) if check else None
        address = rucat.spark_ui_url(engine_id)
    state = info.state.value if info is not None else None
    if output is Output.json:
        _print_json({"id": engine_id, "state": state, "spark_ui_url": address})
        return
    if state is not None and state != EngineState.Running:
        _stderr().print(
            f"note: engine {engine_id} is {state}, not Running: its Spark UI answers 409",
            markup=False,
        )
    sys.stdout.write(address + "\n")
