"""Helpers every `rucat` command shares: config loading, clean failures, running until a
signal, and the connection options of the commands that talk to a server.

A command that cannot start (bad config, unreachable store) prints one line to
stderr and exits 2, never a traceback. A running service stops cleanly on
SIGINT or SIGTERM: its main coroutine is cancelled, so `finally` blocks close
stores and platforms.

A client command (`rucat engine ...`, `rucat token ...`) declares a keyword
parameter `conn: Connection` and is decorated with `@connected`: it then takes
--url, --username, --password, --token and --output (with their RUCAT_...
variables) after its own options, and `conn.client()` opens the SDK. Results
go to stdout; progress and errors go to stderr; any SDK error exits 1 with
the server's detail and no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import inspect
import json
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from rucat.client import DEFAULT_URL, RucatClient
from rucat.client.errors import RucatClientError
from rucat.config import RucatConfig, load_config
from rucat.domain.errors import ConfigError, StoreUnavailable

#: Exit status when a command cannot start (usage errors are Typer's 2 too).
EXIT_CANNOT_START = 2
#: Exit status of a client command the server or the engine said no to.
EXIT_ERROR = 1
#: Exit status of an interrupted client command (as shells do).
EXIT_INTERRUPTED = 130


def fail(message: str, *, code: int = EXIT_CANNOT_START) -> NoReturn:
    """Print one line to stderr and exit."""
    typer.echo(f"rucat: {message}", err=True)
    raise typer.Exit(code)


def load_or_exit(path: Path | None, **overrides: Any) -> RucatConfig:
    try:
        return load_config(path, **overrides)
    except ConfigError as e:
        fail(e.message)


async def _until_signal(main: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(main)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not the main thread or no support: Ctrl-C still ends asyncio.run.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def run_service(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` until it returns or SIGINT/SIGTERM cancels it.

    ConfigError and StoreUnavailable (raised while starting) become one line
    on stderr and exit status 2.
    """
    try:
        asyncio.run(_until_signal(main))
    except (ConfigError, StoreUnavailable) as e:
        fail(e.message)
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        sys.exit(130)


# --- client commands: output ---------------------------------------------------


class Output(enum.StrEnum):
    table = "table"
    json = "json"


def stdout() -> Console:
    # A pipe gets wide lines: tables must not wrap ids for scripts reading them.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def fail_command(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """A client command's failure: ``error: <message>`` on stderr, exit `code`."""
    stderr().print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def cells(*values: str) -> list[Text]:
    """Table cells shown verbatim: a name like "[red]x" is data, not rich markup."""
    return [Text(value) for value in values]


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


# --- client commands: the connection options ---------------------------------

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

#: The shared options, in the order `--help` lists them (after the command's own).
_CONNECTION_OPTIONS = tuple(
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
    for name, kind, default in (
        ("url", Url, DEFAULT_URL),
        ("username", Username, None),
        ("password", Password, None),
        ("token", Token, None),
        ("output", OutputOpt, Output.table),
    )
)


@dataclass(frozen=True)
class Connection:
    """The options every client command shares: where the server is, who calls, how to print."""

    url: str = DEFAULT_URL
    username: str | None = None
    password: str | None = None
    token: str | None = None
    output: Output = Output.table

    @property
    def json(self) -> bool:
        return self.output is Output.json

    @contextlib.contextmanager
    def client(
        self, *, connect_host: str | None = None, connect_port: int | None = None
    ) -> Iterator[RucatClient]:
        """A client for one command; every SDK error becomes a clean exit with its detail."""
        try:
            with RucatClient(
                self.url,
                username=self.username,
                password=self.password,
                token=self.token,
                connect_host=connect_host,
                connect_port=connect_port,
            ) as client:
                yield client
        except RucatClientError as e:
            fail_command(e.detail)


def connected(command: Callable[..., None]) -> Callable[..., None]:
    """`command(..., conn: Connection)` as a Typer command that takes the shared options.

    Typer reads the returned function's signature: `command`'s own parameters
    without `conn`, then --url, --username, --password, --token and --output.
    """
    signature = inspect.signature(command, eval_str=True)
    if "conn" not in signature.parameters:
        raise TypeError(f"{command.__name__} takes no `conn: Connection` parameter")
    own = [p for name, p in signature.parameters.items() if name != "conn"]
    names = [p.name for p in _CONNECTION_OPTIONS]

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        conn = Connection(**{name: kwargs.pop(name) for name in names})
        command(*args, conn=conn, **kwargs)

    shown = signature.replace(parameters=[*own, *_CONNECTION_OPTIONS])
    run.__signature__ = shown  # type: ignore[attr-defined]
    run.__annotations__ = {
        **{p.name: p.annotation for p in shown.parameters.values()},
        "return": shown.return_annotation,
    }
    return run
