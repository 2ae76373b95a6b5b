"""`RucatClient`: the SDK for ordinary (blocking) programs and the CLI.

The same methods as `AsyncRucatClient`, built on the same `_core` rules; only
the transport (httpx.Client) and the sleeping are blocking here.
"""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self

import httpx

from rucat.client import _core, pools, tokens
from rucat.client._core import Call
from rucat.client.errors import NotFound, RucatClientError
from rucat.client.models import EngineEventInfo, EngineInfo, Permissions
from rucat.client.pools import PoolInfo
from rucat.client.tokens import CreatedToken, TokenInfo
from rucat.domain.engine import EngineId
from rucat.domain.state import EngineState

__all__ = ["RucatClient", "connect"]


class RucatClient:
    """Talks to one Rucat server over HTTP, blocking.

    Credentials: a bearer `token`, or `username` and `password` (HTTP Basic),
    or none for an open server. The token is also the default credential of
    `connect_url` / `spark_session`, since the Spark Connect proxy checks the
    same bearer token. Use as ``with RucatClient(url) as rucat:`` or call
    `close()`.
    """

    def __init__(
        self,
        base_url: str = _core.DEFAULT_URL,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = _core.DEFAULT_TIMEOUT,
        connect_host: str | None = None,
        connect_port: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.connect_host = connect_host
        self.connect_port = connect_port
        self._token = token
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=_core.auth_headers(username=username, password=password, token=token),
            timeout=timeout,
            transport=transport,
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """A client configured like the CLI: RUCAT_URL, RUCAT_TOKEN (or RUCAT_USERNAME
        and RUCAT_PASSWORD), RUCAT_CONNECT_HOST, RUCAT_CONNECT_PORT; `overrides` win."""
        return cls(**{**_core.settings_from_env(os.environ), **overrides})

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call) -> httpx.Response:
        try:
            return self._http.request(call.method, call.path, params=call.params, json=call.json)
        except httpx.TransportError as e:
            raise _core.unreachable(self.base_url, e) from e

    # --- the REST API ------------------------------------------------------

    def create(
        self,
        name: str,
        version: str,
        configs: dict[str, str] | None = None,
        engine_type: str = "Spark",
        auto_stop_minutes: float | None = None,
    ) -> EngineId:
        """Ask for a new engine; returns its id. It starts in WaitToStart.

        `auto_stop_minutes`: stop it after that long without Spark Connect
        activity (0: never; None: the server's default).
        """
        call = _core.create_call(name, version, configs, engine_type, auto_stop_minutes)
        return _core.read_id(self._send(call))

    def get(self, engine_id: EngineId) -> EngineInfo:
        return _core.read_engine(self._send(Call("GET", _core.engine_path(engine_id))), engine_id)

    def list(
        self,
        state: _core.StateFilter = None,
        limit: int | None = None,
        after: EngineId | None = None,
        *,
        owner: str | None = None,
    ) -> builtins.list[EngineId]:
        """Ids of the engines the caller may see, oldest first; `after` is the last id of
        the previous page, `owner` keeps only that user's engines."""
        return _core.read_ids(self._send(_core.list_call(state, limit, after, owner)))

    def list_info(
        self,
        state: _core.StateFilter = None,
        limit: int | None = None,
        after: EngineId | None = None,
        *,
        owner: str | None = None,
    ) -> builtins.list[EngineInfo]:
        """Like `list`, with each engine's info; engines deleted meanwhile are left out."""
        found = []
        for engine_id in self.list(state, limit, after, owner=owner):
            try:
                found.append(self.get(engine_id))
            except NotFound:
                continue
        return found

    def stop(self, engine_id: EngineId) -> EngineInfo:
        """Stop: WaitToStart -> Terminated; StartInProgress, Running -> WaitToTerminate.

        Returns the engine as the action left it; raises Conflict when not allowed.
        """
        response = self._send(Call("POST", _core.engine_path(engine_id, "/stop")))
        return _core.read_engine(response, engine_id)

    def restart(self, engine_id: EngineId) -> EngineInfo:
        """Restart: WaitToTerminate -> Running; Terminated -> WaitToStart.

        Returns the engine as the action left it; raises Conflict when not allowed.
        """
        response = self._send(Call("POST", _core.engine_path(engine_id, "/restart")))
        return _core.read_engine(response, engine_id)

    def delete(self, engine_id: EngineId) -> None:
        _core.check(self._send(Call("DELETE", _core.engine_path(engine_id))))

    def logs(self, engine_id: EngineId, tail: int | None = None) -> str:
        """The engine's log (its last `tail` lines)."""
        return _core.read_logs(self._send(_core.logs_call(engine_id, tail)))

    def pools(self) -> builtins.list[PoolInfo]:
        """The server's warm pools, with their idle and starting engines."""
        return pools.read_list(self._send(pools.list_call()))

    def versions(self) -> dict[str, builtins.list[str]]:
        """The engine types and the versions of each the server's platform runs."""
        return _core.read_versions(self._send(Call("GET", "/versions")))

    def events(self, engine_id: EngineId) -> builtins.list[EngineEventInfo]:
        """The engine's recorded transitions, oldest first."""
        return _core.read_events(self._send(Call("GET", _core.engine_path(engine_id, "/events"))))

    # --- personal access tokens -------------------------------------------

    def create_token(self, name: str, expires_in_days: int | None = None) -> CreatedToken:
        """A new personal access token acting as you; its secret (`.token`) is shown once."""
        return tokens.read_created(self._send(tokens.create_call(name, expires_in_days)))

    def list_tokens(
        self, owner: str | None = None, *, everyone: bool = False
    ) -> builtins.list[TokenInfo]:
        """Your tokens, oldest first; admins may ask for `owner`'s or `everyone`'s."""
        return tokens.read_list(self._send(tokens.list_call(owner, everyone)))

    def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke a token (yours; admins: anyone's); it stops working at once."""
        return tokens.read_revoked(self._send(tokens.revoke_call(token_id)))

    def permissions(self, engine_id: EngineId) -> Permissions:
        """The engine's owner and grants (needs manage)."""
        return _core.read_permissions(self._send(_core.permissions_call(engine_id, None)))

    def set_permissions(
        self, engine_id: EngineId, grants: Iterable[Mapping[str, str]]
    ) -> Permissions:
        """Replace the engine's grants, e.g. ``[{"user": "bob", "level": "attach"}]``
        (needs manage); returns the permissions as stored."""
        return _core.read_permissions(self._send(_core.permissions_call(engine_id, grants)))

    # --- beyond single calls ----------------------------------------------

    def wait_until(
        self,
        engine_id: EngineId,
        state: EngineState | str,
        timeout: float,
        *,
        poll_interval: float = _core.DEFAULT_POLL_INTERVAL,
        on_state: Callable[[EngineInfo], Any] | None = None,
    ) -> EngineInfo:
        """Poll until the engine is in `state`; returns its info then.

        `on_state` is called with the info each time a new state is seen.
        Raises EngineFailed (with the engine's message) as soon as the engine
        lands in an error state, WaitAborted if it settles in another stable
        state, WaitTimeout after `timeout` seconds. Once the server has
        answered, a server that stops answering for a while (restart, 503) is
        retried for up to 30 s in a row.
        """
        wanted = _core.state_of(state)
        deadline = time.monotonic() + timeout
        last: EngineInfo | None = None
        hiccups = _core.Hiccups()
        while True:
            try:
                info: EngineInfo | None = self.get(engine_id)
                hiccups.ok()
            except RucatClientError as e:
                hiccups.failed(e)
                info = None
            if info is not None:
                if on_state is not None and (last is None or info.state is not last.state):
                    on_state(info)
                last = info
                if _core.reached(info, wanted):
                    return info
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _core.timed_out(engine_id, wanted, timeout, last)
            time.sleep(min(poll_interval, remaining))

    def spark_ui_url(self, engine_id: EngineId) -> str:
        """The URL of the engine's Spark UI through Rucat (served while it is Running;
        a browser logged in to the console, or any client with this one's
        credentials, may open it)."""
        return _core.spark_ui_url(self.base_url, engine_id)

    def connect_url(
        self,
        engine_id: EngineId,
        *,
        proxy_host: str | None = None,
        proxy_port: int | None = None,
        token: str | None = None,
        use_ssl: bool = False,
        info: EngineInfo | None = None,
    ) -> str:
        """The Spark Connect URL of `engine_id` through Rucat's proxy.

        With `info` (the engine's, as read from the server) the server's
        `connect_url` gives host, port and TLS; arguments and the client's
        `connect_host` / `connect_port` still override them.

        The host defaults to `connect_host` or the server's, the port to
        `connect_port`, the token to this client's token.
        """
        return _core.connect_url_of(
            self.base_url,
            engine_id,
            server_url=info.connect_url if info is not None else None,
            proxy_host=proxy_host or self.connect_host,
            proxy_port=proxy_port if proxy_port is not None else self.connect_port,
            token=token if token is not None else self._token,
            use_ssl=use_ssl,
        )

    def spark_session(
        self,
        engine_id: EngineId,
        *,
        proxy_host: str | None = None,
        proxy_port: int | None = None,
        token: str | None = None,
        use_ssl: bool = False,
    ) -> Any:
        """A new pyspark SparkSession on the engine, through the proxy.

        Reads the engine's info first and connects to its `connect_url` (the
        server's proxy address); arguments as for `connect_url` override it.
        """
        url = self.connect_url(
            engine_id,
            proxy_host=proxy_host,
            proxy_port=proxy_port,
            token=token,
            use_ssl=use_ssl,
            info=self.get(engine_id),
        )
        return _core.spark_session_for(url)


def connect(engine_id: EngineId, **client: Any) -> Any:
    """A pyspark SparkSession on `engine_id` through Rucat's proxy, in one call.

    The client is configured from the environment like the CLI (RUCAT_URL,
    RUCAT_TOKEN, RUCAT_CONNECT_PORT, ...); keyword arguments override it.
    """
    with RucatClient.from_env(**client) as rucat:
        return rucat.spark_session(engine_id)
