"""`rucat user ...`: local helpers for the Users auth provider (no server needed)."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

__all__ = ["user_app"]

user_app = typer.Typer(
    name="user",
    help="Helpers for the Users auth provider.",
    no_args_is_help=True,
    add_completion=False,
)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@user_app.command("hash-password")
def hash_password() -> None:
    """Print the argon2id hash of a password, for a user's `password_hash`.

    On a terminal it asks twice (hidden); otherwise it reads one line from
    stdin (`printf %s "$PW" | rucat user hash-password`).
    """
    from rucat.server.auth.users import hash_password as argon2_hash

    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password.removesuffix("\r")
    if not password:
        _fail("the password is empty")
    typer.echo(argon2_hash(password))
