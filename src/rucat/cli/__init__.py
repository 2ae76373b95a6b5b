"""The `rucat` command.

Each service is a subcommand registered on `app`; engine management is a
sub-app (``app.add_typer(engine_app, name="engine")``). Shared helpers
(config loading, clean start failures, signal handling) are in
`rucat.cli.common`, so a command module imports them without importing this
package's `app`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from rucat.cli.common import load_or_exit, run_service

app = typer.Typer(
    name="rucat",
    help="Rucat: a control plane for Spark Connect engines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigPathOption = Annotated[
    Path | None,
    typer.Option("--config-path", help="JSON config file (the seed's format).", dir_okay=False),
]
HostOption = Annotated[str | None, typer.Option("--host", help="Address to listen on.")]
PortOption = Annotated[
    int | None, typer.Option("--port", help="Port to listen on (0: any free).", min=0, max=65535)
]
LogFormatOption = Annotated[
    str | None,
    typer.Option("--log-format", help="Log line format: text or json.", case_sensitive=False),
]


def _log_format(value: str | None) -> Literal["text", "json"] | None:
    if value is None:
        return None
    lowered = value.lower()
    if lowered == "text":
        return "text"
    if lowered == "json":
        return "json"
    raise typer.BadParameter("must be 'text' or 'json'", param_hint="--log-format")


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
    from rucat.platforms import open_platform
    from rucat.server.logs import configure_logging
    from rucat.server.runner import serve
    from rucat.store import open_store

    config = load_or_exit(config_path, host=host, port=port, log_format=_log_format(log_format))
    configure_logging(config.log_format)

    async def main() -> None:
        store = await open_store(config.database)
        try:
            platform = open_platform(config.platform, data_dir=Path(config.data_dir))
            try:
                await serve(config, store=store, platform=platform)
            finally:
                await platform.close()
        finally:
            await store.close()

    run_service(main())
