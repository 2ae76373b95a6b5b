"""`rucat pool ...`: the server's warm pools from a shell, built on the SDK.

Takes the shared connection options of cli/common.py (--url, credentials, --output).
"""

from __future__ import annotations

import typer
from rich.table import Table

from rucat.cli.common import Connection, cells, connected, print_json, stdout

__all__ = ["pool_app"]

pool_app = typer.Typer(
    name="pool",
    help="Show the warm pools: idle engines a matching create takes at once.",
    no_args_is_help=True,
    add_completion=False,
)


@pool_app.command("list")
@connected
def list_(*, conn: Connection) -> None:
    """List the warm pools: profile, idle and starting engines, hand-outs and misses."""
    with conn.client() as rucat:
        found = rucat.pools()
    if conn.json:
        print_json([p.to_json() for p in found])
        return
    table = Table()
    columns = (
        "name",
        "engine",
        "configs",
        "idle",
        "warm",
        "starting",
        "min",
        "max",
        "hand-outs",
        "misses",
    )
    for column in columns:
        table.add_column(column, no_wrap=column != "configs", overflow="fold")
    for p in found:
        configs = " ".join(f"{k}={v}" for k, v in sorted(p.configs.items()))
        table.add_row(
            *cells(
                p.name,
                f"{p.engine_type} {p.version}",
                configs,
                str(p.idle),
                str(p.warm),
                str(p.starting),
                str(p.min_idle),
                str(p.max_idle),
                str(p.hand_outs),
                str(p.misses),
            )
        )
    stdout().print(table)
