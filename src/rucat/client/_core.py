"""The shared half of the SDK: everything but sending requests and sleeping.

Both clients build the same requests and read the same responses; only the
transport (httpx.Client or httpx.AsyncClient) and the sleeping differ. Keeping
the rules here means the two can never drift apart: routes, auth headers,
error mapping, the `wait_until` verdict and retries, the Spark Connect URL.
Only `check_proxy` and `spark_session_for` touch the network themselves; they
block in both clients, as pyspark does.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from rucat.client.errors import (
    BadRequest,
    EngineFailed,
    RucatClientError,
    ServerUnreachable,
    UnexpectedResponse,
    WaitAborted,
    WaitTimeout,
    error_for_status,
)
from rucat.client.models import (
    EngineEventInfo,
    EngineInfo,
    Permissions,
    parse_engine,
    parse_event,
    parse_permissions,
)
from rucat.domain.engine import EngineId
from rucat.domain.state import ERROR_STATES, STABLE_STATES, EngineState

#: The server's default address (the seed's port).
DEFAULT_URL = "http://127.0.0.1:3000"
#: The Spark Connect proxy's default port (Spark Connect's own default).
DEFAULT_CONNECT_PORT = 15002
DEFAULT_TIMEOUT = 30.0
DEFAULT_POLL_INTERVAL = 0.5

#: Hosts pyspark treats as local: with a token it only skips TLS for "localhost".
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class Call:
    """One HTTP request, before any transport sends it."""

    method: str
    path: str
    params: dict[str, str | list[str]] = field(default_factory=dict)
    json: Any = None


def auth_headers(
    *, username: str | None, password: str | None, token: str | None
) -> dict[str, str]:
    """Bearer when a token is given, else HTTP Basic, else nothing (open server)."""
    if token:
        return {"Authorization": f"Bearer {token}"}
    if username is not None or password is not None:
        if username is None or password is None:
            raise BadRequest("give both a username and a password (or a token)")
        pair = f"{username}:{password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    return {}


def settings_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Client arguments from RUCAT_URL, RUCAT_TOKEN, RUCAT_USERNAME, RUCAT_PASSWORD,
    RUCAT_CONNECT_HOST and RUCAT_CONNECT_PORT (the CLI's variables)."""
    settings: dict[str, Any] = {"base_url": environ.get("RUCAT_URL") or DEFAULT_URL}
    for key in ("token", "username", "password", "connect_host"):
        value = environ.get(f"RUCAT_{key.upper()}")
        if value:
            settings[key] = value
    port = environ.get("RUCAT_CONNECT_PORT")
    if port:
        try:
            settings["connect_port"] = int(port)
        except ValueError as e:
            raise BadRequest(f"RUCAT_CONNECT_PORT is not a port number: {port!r}") from e
    return settings


def engine_path(engine_id: EngineId, suffix: str = "") -> str:
    """`/engine/<id><suffix>` with the id escaped: user input never picks another route."""
    if engine_id in ("", ".", ".."):
        raise BadRequest(f"not an engine id: {engine_id!r}")
    return f"/engine/{quote(engine_id, safe='')}{suffix}"


def spark_ui_url(base_url: str, engine_id: EngineId) -> str:
    """`<base_url>/engine/<id>/sparkui/`: the engine's Spark UI through Rucat's server."""
    return f"{base_url.rstrip('/')}{engine_path(engine_id, '/sparkui/')}"


def create_call(
    name: str,
    version: str,
    configs: dict[str, str] | None,
    engine_type: str,
    auto_stop_minutes: float | None = None,
) -> Call:
    body: dict[str, Any] = {
        "name": name,
        "engine_type": engine_type,
        "version": version,
        "configs": configs or {},
    }
    if auto_stop_minutes is not None:
        body["auto_stop_minutes"] = auto_stop_minutes
    return Call("POST", "/engine", json=body)


#: One state, several (any of them), or None for all.
StateFilter = EngineState | str | Iterable[EngineState | str] | None


def state_of(value: EngineState | str) -> EngineState:
    """`value` as a state; a BadRequest listing the states when it names none."""
    try:
        return EngineState(value)
    except ValueError as e:
        names = ", ".join(s.value for s in EngineState)
        raise BadRequest(f"unknown state {value!r}; states are: {names}") from e


def list_call(
    state: StateFilter, limit: int | None, after: EngineId | None, owner: str | None = None
) -> Call:
    params: dict[str, str | list[str]] = {}
    if owner is not None:
        params["owner"] = owner
    if isinstance(state, str):
        params["state"] = [state_of(state).value]
    elif state is not None:
        params["state"] = [state_of(s).value for s in state]
    if limit is not None:
        params["limit"] = str(limit)
    if after is not None:
        params["after"] = after
    return Call("GET", "/engines", params=params)


def logs_call(engine_id: EngineId, tail: int | None) -> Call:
    params: dict[str, str | list[str]] = {"tail": str(tail)} if tail is not None else {}
    return Call("GET", engine_path(engine_id, "/logs"), params=params)


def unreachable(base_url: str, error: httpx.TransportError) -> ServerUnreachable:
    """The error for a request that got no HTTP answer, saying what to do about it."""
    # Credentials in the URL (http://user:pass@host) never reach an error message.
    base_url = str(httpx.URL(base_url).copy_with(username=None, password=None))
    if isinstance(error, httpx.TimeoutException):
        why = f"no answer from the Rucat server at {base_url} in time ({type(error).__name__})"
    else:
        why = f"cannot reach the Rucat server at {base_url}: {error or type(error).__name__}"
    return ServerUnreachable(
        f"{why}. Is `rucat up` (or `rucat server`) running there? "
        "Point to it with --url or RUCAT_URL."
    )


def _detail(response: httpx.Response) -> str:
    """The server's `detail` (FastAPI's list form flattened), else the raw text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase or f"HTTP {response.status_code}"
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                msg = str(item.get("msg", item))
                parts.append(f"{loc}: {msg}" if loc else msg)
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return response.text.strip() or f"HTTP {response.status_code}"


def check(response: httpx.Response) -> httpx.Response:
    """`response` if 2xx, else the typed error carrying the server's detail."""
    if response.is_success:
        return response
    raise error_for_status(response.status_code, _detail(response))


def json_of(response: httpx.Response) -> Any:
    try:
        return check(response).json()
    except ValueError as e:
        raise UnexpectedResponse(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code} with a body that is not JSON",
            status=response.status_code,
        ) from e


def read_id(response: httpx.Response) -> EngineId:
    body = json_of(response)
    engine_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(engine_id, str):
        raise UnexpectedResponse(f"POST /engine answered without an id: {body!r}")
    return engine_id


def read_ids(response: httpx.Response) -> list[EngineId]:
    body = json_of(response)
    if not isinstance(body, list):
        raise UnexpectedResponse(f"GET /engines did not answer a list: {body!r}")
    ids = []
    for item in body:
        engine_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(engine_id, str):
            raise UnexpectedResponse(f"GET /engines: item without an id: {item!r}")
        ids.append(engine_id)
    return ids


def read_engine(response: httpx.Response, engine_id: EngineId) -> EngineInfo:
    return parse_engine(json_of(response), engine_id=engine_id)


def read_versions(response: httpx.Response) -> dict[str, list[str]]:
    """GET /versions as {engine_type: [versions, oldest first]}."""
    body = json_of(response)
    try:
        return {str(e["engine_type"]): [str(v) for v in e["versions"]] for e in body["engines"]}
    except (KeyError, TypeError) as e:
        raise UnexpectedResponse(f"GET /versions answered an unexpected body: {body!r}") from e


def read_events(response: httpx.Response) -> list[EngineEventInfo]:
    body = json_of(response)
    if not isinstance(body, list):
        raise UnexpectedResponse(f"events: not a list: {body!r}")
    return [parse_event(item) for item in body]


def read_permissions(response: httpx.Response) -> Permissions:
    return parse_permissions(json_of(response))


def parse_grant(text: str) -> dict[str, str]:
    """``user:bob=attach`` or ``group:analytics=manage`` as the API's grant object."""
    kind, sep, rest = text.partition(":")
    name, eq, level = rest.rpartition("=")
    if not sep or not eq or kind not in ("user", "group") or not name or not level:
        raise BadRequest(
            f"grant {text!r} is not user:NAME=LEVEL or group:NAME=LEVEL (LEVEL: attach or manage)"
        )
    return {kind: name, "level": level}


def permissions_call(engine_id: EngineId, grants: Iterable[Mapping[str, str]] | None) -> Call:
    """GET the permissions, or PUT `grants` (replacing them) when given."""
    path = engine_path(engine_id, "/permissions")
    if grants is None:
        return Call("GET", path)
    return Call("PUT", path, json={"grants": [dict(g) for g in grants]})


def read_logs(response: httpx.Response) -> str:
    """Logs as text: the body itself, or the `logs` field of a JSON answer."""
    check(response)
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("logs"), str):
            return str(body["logs"])
        raise UnexpectedResponse(f"logs: unexpected JSON answer: {body!r}")
    return response.text


def reached(info: EngineInfo, wanted: EngineState) -> bool:
    """True when `info` is in `wanted`; raises when it can no longer get there.

    An error state ends the wait with the engine's own message (unless an
    error state is what is wanted). A stable state (Terminated, ErrorClean)
    other than `wanted` ends it too: the monitor never leaves those alone.
    """
    if info.state is wanted:
        return True
    if info.state in ERROR_STATES and wanted not in ERROR_STATES:
        why = info.message or "no message recorded"
        raise EngineFailed(f"engine {info.id} failed ({info.state.value}): {why}", engine=info)
    if info.state in STABLE_STATES:
        raise WaitAborted(
            f"engine {info.id} is {info.state.value}; it will not become {wanted.value} "
            "without a user action",
            engine=info,
        )
    return False


#: How long `wait_until` rides out a server that stopped answering (restart, 503).
RETRY_WINDOW_SECS = 30.0


class Hiccups:
    """Decides whether `wait_until` retries a failed poll or gives up.

    Retryable errors (no answer, 503) are ridden out for `window` seconds
    after the first failure in a row, but only once the server has answered
    at least once: a wrong URL fails at once instead of after the window.
    """

    def __init__(self, window: float = RETRY_WINDOW_SECS) -> None:
        self.window = window
        self.answered = False
        self._failing_since: float | None = None

    def ok(self) -> None:
        self.answered = True
        self._failing_since = None

    def failed(self, error: RucatClientError) -> None:
        """Return to retry; re-raise `error` when it is not worth retrying."""
        if not (error.retryable and self.answered):
            raise error
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._failing_since > self.window:
            raise error


def timed_out(
    engine_id: EngineId, wanted: EngineState, timeout: float, last: EngineInfo | None
) -> WaitTimeout:
    seen = last.state.value if last is not None else "unknown"
    return WaitTimeout(
        f"engine {engine_id} is still {seen} after {timeout:g}s (waiting for {wanted.value})",
        engine=last,
        wanted=wanted,
    )


def connect_url(
    base_url: str,
    engine_id: EngineId,
    *,
    proxy_host: str | None,
    proxy_port: int,
    token: str | None,
    use_ssl: bool,
) -> str:
    """`sc://host:port/;x-rucat-engine-id=<id>[;token=...][;use_ssl=true]`.

    The host defaults to the REST server's. pyspark switches to TLS whenever
    a token is given unless the host is literally "localhost", so a loopback
    host becomes "localhost" unless TLS is asked for. Values are
    percent-encoded (pyspark unquotes them), so no token can break the URL.
    """
    host = proxy_host or httpx.URL(base_url).host or "localhost"
    if token and not use_ssl and host in _LOOPBACK_HOSTS:
        host = "localhost"
    if ":" in host:
        # pyspark splits host:port on ':' and has no syntax for IPv6 literals.
        raise BadRequest(f"pyspark cannot connect to the IPv6 address {host}; use a host name")
    url = f"sc://{host}:{proxy_port}/;x-rucat-engine-id={quote(engine_id, safe='')}"
    if token:
        url += f";token={quote(token, safe='')}"
    if use_ssl:
        url += ";use_ssl=true"
    return url


def connect_url_of(
    base_url: str,
    engine_id: EngineId,
    *,
    server_url: str | None,
    proxy_host: str | None,
    proxy_port: int | None,
    token: str | None,
    use_ssl: bool,
) -> str:
    """The connect URL from the server's `connect_url` (engine info), with the token added.

    The server's host, port and TLS are used unless `proxy_host` / `proxy_port`
    override them; without a server URL (an older server, or the engine info
    was not read) the host is the REST server's and the port `proxy_port` or
    Spark Connect's default.
    """
    server_host: str | None = None
    server_port: int | None = None
    if server_url:
        netloc = server_url.removeprefix("sc://").split("/", 1)[0]
        host_part, _, port_part = netloc.rpartition(":")
        if host_part and port_part.isdigit():
            server_host, server_port = host_part.strip("[]"), int(port_part)
        use_ssl = use_ssl or ";use_ssl=true" in server_url
    port = proxy_port if proxy_port is not None else server_port
    return connect_url(
        base_url,
        engine_id,
        proxy_host=proxy_host or server_host,
        proxy_port=port if port is not None else DEFAULT_CONNECT_PORT,
        token=token,
        use_ssl=use_ssl,
    )


def check_proxy(host: str, port: int, *, timeout: float = 10.0) -> None:
    """Fail fast when nothing listens on the proxy port.

    pyspark retries a refused connection for minutes; a plain TCP connect
    first turns a wrong port into an immediate error saying what to fix.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        raise ServerUnreachable(
            f"no Spark Connect proxy answers at {host}:{port} ({e.strerror or e}). "
            "Is that the server's connect_port? Pass proxy_port= "
            "(CLI: --proxy-port or RUCAT_CONNECT_PORT)."
        ) from e


def spark_session_for(url: str) -> Any:
    """A new pyspark Connect session on `url` (pyspark imported only when needed)."""
    netloc = url.removeprefix("sc://").split("/", 1)[0]
    host, _, port = netloc.rpartition(":")
    check_proxy(host, int(port))
    try:
        from pyspark.sql import SparkSession
    except ImportError as e:  # pragma: no cover - pyspark is a dependency
        raise RucatClientError("pyspark is not installed: pip install 'pyspark[connect]'") from e
    # create(), not getOrCreate(): two engines in one process need two sessions.
    return SparkSession.builder.remote(url).create()
