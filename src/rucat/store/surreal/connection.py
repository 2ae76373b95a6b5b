"""One SurrealDB connection, embedded or remote, that never hangs and never leaks SDK errors.

The `surrealdb` SDK reaches SurrealDB three ways: the engine embedded in the
SDK (`mem://`, `surrealkv://PATH`), a WebSocket (`ws://`, `wss://`, and the
seed's bare `host:port`) or HTTP (`http://`, `https://`). This module hides the
difference behind `SurrealConnection.run(query, vars)`, which:

- bounds every call by a timeout, so an unreachable or silent server gives
  StoreUnavailable instead of a hang;
- retries the transaction errors SurrealDB raises when concurrent
  transactions touch the same keys ("read or write conflict ... can be
  retried"): such a transaction was not committed, so running it again is
  safe, and a caller never sees a conflict that its own data did not cause;
- converts every SDK, network and engine exception into a RucatError at this
  boundary (`raise ... from e`);
- reconnects a remote connection that was lost, signing in and selecting the
  namespace and database again.

The embedded engine is driven by the SDK's Rust extension, whose `execute` is
a real awaitable (the work runs on the extension's own threads), so it does not
block the event loop; nothing here needs `asyncio.to_thread`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from rucat.config import SurrealConfig
from rucat.domain.errors import ConfigError, RucatError, StoreUnavailable
from rucat.store.surreal import embedded as surreal_embedded

T = TypeVar("T")

#: Seconds to reach the database and sign in at open (and on reconnect).
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds one query may take before the store is considered unavailable.
DEFAULT_QUERY_TIMEOUT = 15.0
#: Seconds a call keeps retrying transactions that lost a write conflict.
DEFAULT_RETRY_WINDOW = 20.0

_EMBEDDED_SCHEMES = ("mem", "memory", "surrealkv", "surrealkv+versioned")
_REMOTE_SCHEMES = ("ws", "wss", "http", "https")
_HOST_PORT_RE = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})$")
_URI_KEY = "database.Surreal.uri"
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

#: Substrings of SurrealDB's message for a transaction that lost a conflict
#: with a concurrent one and was rolled back.
_CONFLICT_MARKERS = ("read or write conflict", "can be retried", "transaction conflict")
#: Substrings of messages saying the remote session must sign in again.
_REAUTH_MARKERS = ("token has expired", "session has expired")


@dataclass(frozen=True)
class SurrealTarget:
    """Where to connect: `url` for the SDK, `shown` for messages (no secrets)."""

    url: str
    embedded: bool
    shown: str

    @property
    def http(self) -> bool:
        """HTTP(S): one request per call, no persistent connection to open or close."""
        return self.url.startswith(("http://", "https://"))


def parse_uri(uri: str) -> SurrealTarget:
    """Normalise the configured URI; raises ConfigError naming the key.

    `host:port` (the seed's `rucat-surrealdb:8000`) means a WebSocket to
    `ws://host:port/rpc`.
    """
    text = uri.strip()
    if not text:
        raise ConfigError(f"{_URI_KEY} must not be empty")
    match = _HOST_PORT_RE.fullmatch(text)
    if match is not None and "://" not in text:
        number = int(match.group("port"))
        if not 0 < number < 65536:
            raise ConfigError(f"{_URI_KEY}: port {number} is out of range in {uri!r}")
        url = f"ws://{text}/rpc"
        return SurrealTarget(url=url, embedded=False, shown=url)
    if "://" not in text:
        raise ConfigError(
            f"{_URI_KEY} {uri!r} is not host:port nor a URL with one of the schemes "
            "ws, wss, http, https, mem, surrealkv"
        )
    scheme = text.split("://", 1)[0].lower()
    if scheme in _EMBEDDED_SCHEMES:
        rest = text.split("://", 1)[1]
        if scheme in ("mem", "memory"):
            # mem://NAME: an in-memory database of this process, shared by name.
            url = f"mem://{rest}"
            return SurrealTarget(url=url, embedded=True, shown=url)
        if not rest.strip("/"):
            raise ConfigError(f"{_URI_KEY} {uri!r} needs a path: surrealkv://PATH")
        # One key per file, however the path is spelled (relative to the cwd).
        url = f"{scheme}://{os.path.abspath(rest)}"
        return SurrealTarget(url=url, embedded=True, shown=url)
    if scheme in _REMOTE_SCHEMES:
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as e:
            raise ConfigError(f"{_URI_KEY} {uri!r} is not a valid URL: {e}") from e
        if not parts.hostname:
            raise ConfigError(f"{_URI_KEY} {uri!r} has no host")
        if parts.username is not None or parts.password is not None:
            raise ConfigError(
                f"{_URI_KEY} must not carry credentials; use database.Surreal.credentials"
            )
        if parts.query or parts.fragment or parts.path not in ("", "/", "/rpc"):
            raise ConfigError(f"{_URI_KEY} {uri!r}: only scheme://host:port[/rpc] is supported")
        netloc = parts.hostname if port is None else f"{parts.netloc}"
        if ":" in parts.hostname and port is None:
            netloc = f"[{parts.hostname}]"
        url = f"{scheme}://{netloc}"
        return SurrealTarget(url=url, embedded=False, shown=url)
    raise ConfigError(
        f"{_URI_KEY} {uri!r}: unsupported scheme {scheme!r}; "
        "use host:port, ws://, wss://, http://, https://, mem:// or surrealkv://PATH"
    )


class _Retry(Exception):
    """Internal: the transaction lost a write conflict and was rolled back."""


class QueryFailed(StoreUnavailable):
    """SurrealDB refused a statement (not a conflict). `text` is its message."""

    def __init__(self, message: str, *, text: str) -> None:
        super().__init__(message)
        self.text = text


def _is_conflict(text: str) -> bool:
    low = text.lower()
    return any(marker in low for marker in _CONFLICT_MARKERS)


def _statement_error(results: list[dict[str, Any]]) -> str | None:
    """The most telling error of a multi-statement answer, or None if all succeeded.

    In a failed transaction every statement says "not executed due to a failed
    transaction"; the statement that caused it says why.
    """
    errors = [str(r.get("result")) for r in results if r.get("status") == "ERR"]
    if not errors:
        return None
    for text in errors:
        if _is_conflict(text):
            return text
    telling = [t for t in errors if "not executed due to a failed transaction" not in t]
    return telling[0] if telling else errors[0]


class SurrealConnection:
    """A connection with timeouts, conflict retries and error conversion.

    Safe for concurrent use from one event loop: the SDK multiplexes calls on
    one WebSocket by request id, the HTTP client opens a request per call, and
    the embedded engine serves concurrent calls itself.
    """

    def __init__(
        self,
        config: SurrealConfig,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        query_timeout: float = DEFAULT_QUERY_TIMEOUT,
        retry_window: float = DEFAULT_RETRY_WINDOW,
    ) -> None:
        self.target = parse_uri(config.uri)
        for key, name in (("namespace", config.namespace), ("database", config.database)):
            if not _NAME_RE.fullmatch(name):
                raise ConfigError(
                    f"database.Surreal.{key} {name!r} must be 1-128 letters, digits, '_', '.' "
                    "or '-', not starting with '.' or '-'"
                )
        # Every query selects its namespace and database itself: an embedded
        # engine's session is shared by all stores of the process.
        self._use = f"USE NS `{config.namespace}` DB `{config.database}`;\n"
        self._config = config
        self._connect_timeout = connect_timeout
        self._query_timeout = query_timeout
        self._retry_window = retry_window
        self._db: Any = None
        #: Embedded only: the engine's write lock, shared with its other stores.
        self._writes: asyncio.Lock | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    # -- lifecycle ----------------------------------------------------------

    async def open(self, *, setup: str) -> None:
        """Connect, sign in, select namespace/database and run `setup` (idempotent).

        Raises StoreUnavailable (cannot reach it) or ConfigError (it refused us).
        """
        async with self._lock:
            await self._connect(opening=True)
        try:
            await self.run(setup, write=True)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        self._closed = True
        db, self._db = self._db, None
        if db is None:
            return
        if self.target.embedded:
            await surreal_embedded.release(self.target.url, db)
        else:
            await self._discard(db)

    async def _connect(self, *, opening: bool = False) -> None:
        """Open (or, embedded, share) an SDK connection; caller holds `_lock`.

        A refused sign-in is a ConfigError at open, StoreUnavailable on a reconnect.
        """
        from surrealdb import AsyncSurreal

        shown = self.target.shown
        if self.target.embedded:
            embedded = await surreal_embedded.acquire(
                self.target.url, shown=shown, timeout=max(self._connect_timeout, 30.0)
            )
            self._db, self._writes = embedded.db, embedded.writes
            return
        try:
            db: Any = AsyncSurreal(self.target.url)
        except Exception as e:
            raise ConfigError(f"{_URI_KEY} {shown!r} is not usable: {e}") from e
        try:
            async with asyncio.timeout(self._connect_timeout):
                if not self.target.http:
                    await db.connect()
                creds = self._config.credentials
                if creds is not None:
                    await db.signin(
                        {"username": creds.username, "password": creds.password.get_secret_value()}
                    )
                await db.use(self._config.namespace, self._config.database)
        except TimeoutError as e:
            await self._discard(db)
            raise StoreUnavailable(
                f"SurrealDB at {shown} did not answer within {self._connect_timeout:g} s"
            ) from e
        except RucatError:
            await self._discard(db)
            raise
        except Exception as e:
            await self._discard(db)
            text = _describe(e)
            low = text.lower()
            if any(w in low for w in ("signin", "sign in", "credentials", "authentication")) or (
                type(e).__name__ == "NotAllowedError"
            ):
                refused = (
                    f"SurrealDB at {shown} refused the sign-in of database.Surreal.credentials: "
                    f"{text}"
                )
                raise (ConfigError(refused) if opening else StoreUnavailable(refused)) from e
            raise StoreUnavailable(f"cannot open SurrealDB at {shown}: {text}") from e
        self._db = db

    async def _discard(self, db: Any) -> None:
        """Close a remote connection (HTTP has none to close)."""
        if self.target.http or self.target.embedded:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(db.close(), self._connect_timeout)

    async def _connection(self) -> Any:
        if self._closed:
            raise StoreUnavailable("the SurrealDB store is closed")
        db = self._db
        if db is not None:
            return db
        async with self._lock:
            if self._db is None:
                await self._connect()
            return self._db

    def _lost(self, db: Any) -> None:
        """Forget a broken remote connection; the next call reconnects."""
        if self.target.embedded or self._db is not db:
            return
        self._db = None
        task = asyncio.ensure_future(self._discard(db))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    # -- queries ------------------------------------------------------------

    async def run(
        self, query: str, variables: dict[str, Any] | None = None, *, write: bool = False
    ) -> list[Any]:
        """Run `query` (one or more statements); return each statement's result.

        `write`: the query writes (embedded engines run one such at a time).
        Retries conflicting transactions; raises QueryFailed when a statement
        fails, StoreUnavailable when the database does not answer.
        """
        deadline = time.monotonic() + self._retry_window
        attempt = 0
        reauthed = False
        while True:
            attempt += 1
            try:
                if write and self._writes is not None:
                    async with self._writes:
                        return await self._run_once(query, dict(variables or {}))
                return await self._run_once(query, dict(variables or {}))
            except _Retry as e:
                if time.monotonic() > deadline:
                    raise StoreUnavailable(
                        f"SurrealDB kept reporting write conflicts for {self._retry_window:g} s "
                        f"({attempt} attempts)"
                    ) from e
                # Jittered backoff: racing writers spread out instead of colliding again.
                await asyncio.sleep(random.uniform(0, min(0.05, 0.0005 * 2**attempt)))
            except QueryFailed as e:
                if reauthed or self.target.embedded or not _needs_reauth(e.text):
                    raise
                reauthed = True
                self._lost(self._db)

    async def _run_once(self, query: str, variables: dict[str, Any]) -> list[Any]:
        db = await self._connection()
        answer = await self._guarded(db, lambda: db.query_raw(self._use + query, variables))
        # The first statement is the USE that selects namespace and database.
        return self._check_answer(answer, "query")[1:]

    async def _guarded(self, db: Any, call: Callable[[], Awaitable[T]]) -> T:
        """Await an SDK call with a timeout, converting whatever it raises."""
        shown = self.target.shown
        try:
            async with asyncio.timeout(self._query_timeout):
                return await call()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # We are being cancelled: let it through.
            # The SDK cancels pending calls when its WebSocket closes under them.
            self._lost(db)
            raise StoreUnavailable(f"lost the connection to SurrealDB at {shown}") from None
        except TimeoutError as e:
            self._lost(db)
            raise StoreUnavailable(
                f"SurrealDB at {shown} did not answer within {self._query_timeout:g} s"
            ) from e
        except Exception as e:
            text = _describe(e)
            if _is_conflict(text):
                raise _Retry(text) from e
            if isinstance(e, OSError | ConnectionError) or _is_connection_error(e):
                self._lost(db)
                raise StoreUnavailable(
                    f"lost the connection to SurrealDB at {shown}: {text}"
                ) from e
            raise QueryFailed(f"SurrealDB at {shown} failed: {text}", text=text) from e

    def _check_answer(self, answer: Any, what: str) -> list[Any]:
        if not isinstance(answer, dict):
            raise QueryFailed(
                f"unexpected answer to {what} from SurrealDB", text=repr(answer)[:200]
            )
        error = answer.get("error")
        if error is not None:
            text = str(error.get("message", error)) if isinstance(error, dict) else str(error)
            if _is_conflict(text):
                raise _Retry(text)
            raise QueryFailed(f"SurrealDB refused the {what}: {text}", text=text)
        results = answer.get("result")
        if not isinstance(results, list):
            raise QueryFailed(
                f"unexpected answer to {what} from SurrealDB", text=repr(answer)[:200]
            )
        failure = _statement_error(results)
        if failure is not None:
            if _is_conflict(failure):
                raise _Retry(failure)
            raise QueryFailed(f"SurrealDB refused the {what}: {failure}", text=failure)
        return [r.get("result") for r in results]


def _describe(e: BaseException) -> str:
    text = str(e).strip()
    prefix = "There was a problem with the database: "
    if text.startswith(prefix):
        text = text[len(prefix) :]
    return text or type(e).__name__


def _needs_reauth(text: str) -> bool:
    low = text.lower()
    return any(marker in low for marker in _REAUTH_MARKERS)


def _is_connection_error(e: BaseException) -> bool:
    """Exceptions of the transport libraries (websockets, aiohttp) mean a lost connection."""
    module = type(e).__module__
    return module.startswith(("websockets", "aiohttp")) or type(e).__name__ in (
        "ConnectionUnavailableError",
    )
