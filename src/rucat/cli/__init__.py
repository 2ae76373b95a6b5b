"""The `rucat` command.

Each service is a subcommand registered on `app`; engine management is a
sub-app (``app.add_typer(engine_app, name="engine")``). Shared helpers
(config loading, clean start failures, signal handling) are in
`rucat.cli.common`, so a command module imports them without importing this
package's `app`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rucat.cli.common import load_or_exit, run_service
from rucat.cli.engine import engine_app
from rucat.cli.pool import pool_app
from rucat.cli.token import token_app
from rucat.cli.user import user_app
from rucat.config import RucatConfig
from rucat.domain.engine import Engine

app = typer.Typer(
    name="rucat",
    help="Rucat: a control plane for Spark Connect engines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(engine_app, name="engine")
app.add_typer(pool_app, name="pool")
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")

ConfigPathOption = Annotated[
    Path | None,
    typer.Option("--config-path", help="JSON config file (the seed's format).", dir_okay=False),
]
# Flags are passed on as given: rucat.config's load_config validates them with the same models
# and messages as the file's keys (a bad --port reads like a bad "port").
HostOption = Annotated[str | None, typer.Option("--host", help="Address to listen on.")]
PortOption = Annotated[
    str | None,
    typer.Option("--port", help="Port to listen on (0: any free).", metavar="PORT"),
]
LogFormatOption = Annotated[
    str | None, typer.Option("--log-format", help="Log line format: text or json.")
]
DataDirOption = Annotated[
    str | None,
    typer.Option(
        "--data-dir", help="Folder for the SQLite file, engine logs and work dirs.", metavar="DIR"
    ),
]


@app.callback()
def _main() -> None:
    """Rucat: a control plane for Spark Connect engines."""


@app.command()
def server(
    config_path: ConfigPathOption = None,
    host: HostOption = None,
    port: PortOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Serve the REST API (and user intent only: monitors act on platforms)."""
    from rucat.cli.processes import run_server
    from rucat.server.logs import configure_logging

    config = load_or_exit(config_path, host=host, port=port, log_format=log_format)
    configure_logging(config.log_format)
    run_service(run_server(config))


@app.command()
def monitor(
    config_path: ConfigPathOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Reconcile engines with their platform; run as many as you like."""
    from rucat.cli.processes import run_monitor
    from rucat.config import SEED_MONITOR_CONFIG_PATH
    from rucat.server.logs import configure_logging

    if config_path is None and SEED_MONITOR_CONFIG_PATH.exists():
        config_path = SEED_MONITOR_CONFIG_PATH
    config = load_or_exit(config_path, log_format=log_format)
    configure_logging(config.log_format)
    run_service(run_monitor(config))


@app.command()
def up(
    config_path: ConfigPathOption = None,
    host: HostOption = None,
    port: PortOption = None,
    data_dir: DataDirOption = None,
    log_format: LogFormatOption = None,
    keep_engines: Annotated[
        bool,
        typer.Option(
            "--keep-engines",
            help="On exit leave engines running; the next `rucat up` adopts them. "
            "By default SIGINT/SIGTERM stops them.",
        ),
    ] = False,
) -> None:
    """Run everything in one process: REST API, proxy, monitor, local engines.

    On SIGINT or SIGTERM it stops its engines (recorded as Terminated, actor
    `shutdown`) unless --keep-engines.
    """
    from rucat.cli.processes import run_up
    from rucat.config import DatabaseConfig, SqliteConfig
    from rucat.server.logs import configure_logging

    config = load_or_exit(
        config_path,
        host=host,
        port=port,
        log_format=log_format,
        data_dir=data_dir,
    )
    if "database" not in config.model_fields_set:
        sqlite = SqliteConfig(path=str(Path(config.data_dir) / "rucat.db"))
        config = config.model_copy(update={"database": DatabaseConfig(Sqlite=sqlite)})
    configure_logging(config.log_format)

    def started(url: str, connect_port: int | None) -> None:
        lines = [
            f"Rucat is up at {url} (data in {Path(config.data_dir).resolve()})",
            "Create a Spark engine:",
            f"  curl -X POST {url}/engine -H 'Content-Type: application/json' \\",
            '    -d \'{"name": "demo", "engine_type": "Spark", '
            f'"version": "{_default_version(config)}", "configs": {{}}}}\'',
        ]
        if connect_port is not None:
            lines.append(f"Spark Connect: sc://localhost:{connect_port}/;x-rucat-engine-id=<id>")
        typer.echo("\n".join(lines))

    def stopping(engine: Engine) -> None:
        typer.echo(f"Stopping engine {engine.id} ({engine.name}, {engine.state.value})")

    run_service(run_up(config, on_started=started, keep_engines=keep_engines, on_stopping=stopping))


def _default_version(config: RucatConfig) -> str:
    from rucat.platforms.offer import platform_offer

    versions = platform_offer(config.platform).versions
    return versions[-1] if versions else "4.0.1"
