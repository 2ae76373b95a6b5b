"""Helpers every `rucat` command shares: config loading, clean failures, running until a signal.

A command that cannot start (bad config, unreachable store) prints one line to
stderr and exits 2, never a traceback. A running service stops cleanly on
SIGINT or SIGTERM: its main coroutine is cancelled, so `finally` blocks close
stores and platforms.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn

import typer

from rucat.config import RucatConfig, load_config
from rucat.domain.errors import ConfigError, StoreUnavailable

#: Exit status when a command cannot start (usage errors are Typer's 2 too).
EXIT_CANNOT_START = 2


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
