"""The standalone master, read through its web UI: its JSON and the Spark version it runs.

The master's ``/json/`` lists its workers and its active and completed
applications (id, name, state, cores granted); it does not list executors
(each worker's own ``/json/`` does). The master's Spark version appears only
on its HTML page. Parsing is pure
(`parse_master`, `parse_version`), so it is tested on recorded documents;
`MasterClient` does the HTTP and turns httpx's errors into `MasterUnreachable`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from rucat.domain.errors import PlatformError

#: Application states a master reports for apps that still run.
ACTIVE_STATES = frozenset({"WAITING", "RUNNING"})
_VERSION_RE = re.compile(r'class="version"[^>]*>\s*([0-9][^<\s]*)\s*<')


class MasterUnreachable(PlatformError):
    """The master's web UI did not answer. `refused`: nothing listens there (the
    master is gone), as opposed to a slow or garbled answer."""

    def __init__(self, message: str, *, refused: bool) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class Application:
    id: str
    name: str
    #: WAITING (no cores yet), RUNNING, FINISHED, FAILED, KILLED or UNKNOWN.
    state: str
    #: Cores granted to the application's executors.
    cores: int
    #: Milliseconds since the epoch.
    start_time: int

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


@dataclass(frozen=True)
class Worker:
    id: str
    host: str
    web_url: str
    state: str
    cores: int
    cores_used: int


@dataclass(frozen=True)
class MasterView:
    """One reading of the master's JSON."""

    url: str
    #: ALIVE, or STANDBY / RECOVERING / COMPLETING_RECOVERY on a master of an HA pair.
    status: str
    workers: tuple[Worker, ...]
    active: tuple[Application, ...]
    completed: tuple[Application, ...]

    def active_app(self, name: str) -> Application | None:
        """The newest active application called `name`."""
        found = [a for a in self.active if a.name == name and a.active]
        return max(found, key=lambda a: a.start_time, default=None)

    def last_completed(self, name: str) -> Application | None:
        found = [a for a in self.completed if a.name == name]
        return max(found, key=lambda a: a.start_time, default=None)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _application(raw: Mapping[str, Any]) -> Application:
    return Application(
        id=str(raw.get("id", "")),
        name=str(raw.get("name", "")),
        state=str(raw.get("state", "UNKNOWN")),
        cores=_int(raw.get("cores")),
        start_time=_int(raw.get("starttime")),
    )


def parse_master(document: Any) -> MasterView:
    """A MasterView from the master's ``/json/``; raises ValueError when it is not one."""
    if not isinstance(document, Mapping) or "status" not in document:
        raise ValueError("not a Spark master's JSON (no 'status')")
    workers = tuple(
        Worker(
            id=str(w.get("id", "")),
            host=str(w.get("host", "")),
            web_url=str(w.get("webuiaddress", "")),
            state=str(w.get("state", "")),
            cores=_int(w.get("cores")),
            cores_used=_int(w.get("coresused")),
        )
        for w in document.get("workers") or []
        if isinstance(w, Mapping)
    )
    return MasterView(
        url=str(document.get("url", "")),
        status=str(document["status"]),
        workers=workers,
        active=tuple(
            _application(a) for a in document.get("activeapps") or [] if isinstance(a, Mapping)
        ),
        completed=tuple(
            _application(a) for a in document.get("completedapps") or [] if isinstance(a, Mapping)
        ),
    )


def parse_version(html: str) -> str | None:
    """The Spark version on a master's web page (its header), or None."""
    found = _VERSION_RE.search(html)
    return found.group(1) if found else None


class MasterClient:
    """HTTP to one master's web UI."""

    def __init__(self, web_url: str, *, timeout: float) -> None:
        self.web_url = web_url.rstrip("/")
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=True)

    async def _get(self, url: str) -> httpx.Response:
        try:
            response = await self._http.get(url)
        except httpx.ConnectError as e:
            raise MasterUnreachable(f"refuses connections ({e})", refused=True) from e
        except httpx.TimeoutException as e:
            raise MasterUnreachable(
                f"did not answer within {self._http.timeout.read}s", refused=False
            ) from e
        except httpx.HTTPError as e:
            raise MasterUnreachable(f"failed: {type(e).__name__}: {e}", refused=False) from e
        if response.status_code != 200:
            raise MasterUnreachable(f"answered HTTP {response.status_code}", refused=False)
        return response

    async def view(self) -> MasterView:
        response = await self._get(f"{self.web_url}/json/")
        try:
            return parse_master(response.json())
        except ValueError as e:
            raise MasterUnreachable(f"answered something else: {e}", refused=False) from e

    async def version(self) -> str | None:
        """The Spark version the master runs, from its web page; None if it shows none."""
        return parse_version((await self._get(f"{self.web_url}/")).text)

    async def aclose(self) -> None:
        await self._http.aclose()
