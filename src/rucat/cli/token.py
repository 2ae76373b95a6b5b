"""`rucat token ...`: personal access tokens from a shell, built on the SDK.

Every command takes the shared connection options of cli/common.py (--url,
credentials, --output). `create` prints the secret once, on stdout alone in
table mode, so ``export RUCAT_TOKEN=$(rucat token create laptop)`` works.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from rucat.cli.common import Connection, cells, connected, print_json, stdout, when

__all__ = ["token_app"]

token_app = typer.Typer(
    name="token",
    help="Create, list and revoke personal access tokens.",
    no_args_is_help=True,
    add_completion=False,
)


@token_app.command()
@connected
def create(
    name: Annotated[str, typer.Argument(help="A label for the token, e.g. laptop.")],
    expires_in_days: Annotated[
        int | None,
        typer.Option(
            "--expires-in-days", help="Days until it stops working (server default: 90).", min=1
        ),
    ] = None,
    *,
    conn: Connection,
) -> None:
    """Create a token acting as you; prints its secret, shown only this once."""
    with conn.client() as rucat:
        created = rucat.create_token(name, expires_in_days=expires_in_days)
    if conn.json:
        print_json(created.to_json())
        return
    sys.stdout.write(created.token + "\n")
    typer.echo(
        f"token {created.id} ({created.name}) expires {when(created.expire_time)} UTC; "
        "it is not shown again",
        err=True,
    )


@token_app.command("list")
@connected
def list_(
    owner: Annotated[
        str | None, typer.Option("--owner", help="Admins: this user's tokens.")
    ] = None,
    everyone: Annotated[bool, typer.Option("--all", help="Admins: every user's tokens.")] = False,
    *,
    conn: Connection,
) -> None:
    """List your tokens (never their secrets), oldest first."""
    with conn.client() as rucat:
        found = rucat.list_tokens(owner, everyone=everyone)
    if conn.json:
        print_json([t.to_json() for t in found])
        return
    table = Table()
    for column in ("id", "name", "owner", "create_time", "expire_time"):
        table.add_column(column, no_wrap=column != "name", overflow="fold")
    for t in found:
        table.add_row(*cells(t.id, t.name, t.owner or "", when(t.create_time), when(t.expire_time)))
    stdout().print(table)


@token_app.command()
@connected
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (from `rucat token list`).")],
    *,
    conn: Connection,
) -> None:
    """Revoke a token: it stops working at once."""
    with conn.client() as rucat:
        revoked = rucat.revoke_token(token_id)
    if conn.json:
        print_json(revoked.to_json())
    else:
        sys.stdout.write(f"{revoked.id}: revoked\n")
