"""What the REST API returns, as typed, immutable values.

Parsing is strict about the fields the API promises (a missing `state` is an
`UnexpectedResponse`, not a KeyError three calls later) and lenient about
additions: unknown fields are ignored, so a newer server never breaks an
older SDK. `to_json()` gives back the API's own JSON shape for scripts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rucat.client.errors import UnexpectedResponse
from rucat.domain.engine import EngineId
from rucat.domain.state import EngineState

__all__ = [
    "EngineEventInfo",
    "EngineInfo",
    "Permissions",
    "parse_engine",
    "parse_event",
    "parse_permissions",
    "parse_time",
]


@dataclass(frozen=True)
class EngineInfo:
    """One engine as `GET /engine/{id}` describes it."""

    id: EngineId
    name: str
    engine_type: str
    version: str
    state: EngineState
    configs: dict[str, str] = field(default_factory=dict)
    create_time: datetime | None = None
    update_time: datetime | None = None
    #: Why the engine is in an error state (None otherwise).
    message: str | None = None
    platform: str | None = None
    #: The engine's own Spark Connect address once it runs (connect through the proxy).
    endpoint: str | None = None
    #: Last RPC seen by the Spark Connect proxy.
    last_activity_time: datetime | None = None
    #: Minutes without Spark Connect activity before auto-stop (0: never).
    auto_stop_minutes: float | None = None
    #: Since when a Running engine is idle; None while busy or not Running.
    idle_since: datetime | None = None
    #: Name of the principal that created the engine (None: created before owners).
    owner: str | None = None
    #: The proxy URL for SparkSession.builder.remote() (None: the server runs no proxy).
    connect_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The API's JSON shape, times as ISO 8601 strings."""
        return {
            "id": self.id,
            "name": self.name,
            "engine_type": self.engine_type,
            "version": self.version,
            "state": self.state.value,
            "configs": dict(self.configs),
            "create_time": _iso(self.create_time),
            "update_time": _iso(self.update_time),
            "message": self.message,
            "platform": self.platform,
            "endpoint": self.endpoint,
            "last_activity_time": _iso(self.last_activity_time),
            "auto_stop_minutes": self.auto_stop_minutes,
            "idle_since": _iso(self.idle_since),
            "owner": self.owner,
            "connect_url": self.connect_url,
        }


@dataclass(frozen=True)
class EngineEventInfo:
    """One recorded transition: `from_state` is None for the creation event."""

    time: datetime | None
    from_state: EngineState | None
    to_state: EngineState
    message: str | None
    actor: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "time": _iso(self.time),
            "from_state": self.from_state.value if self.from_state else None,
            "to_state": self.to_state.value,
            "message": self.message,
            "actor": self.actor,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def parse_time(value: object, what: str) -> datetime | None:
    """An ISO 8601 string or epoch seconds (the seed's form) as an aware datetime."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise UnexpectedResponse(f"{what} is not a time: {value!r}")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as e:
            raise UnexpectedResponse(f"{what} is not an ISO 8601 time: {value!r}") from e
        # A naive time from the server is UTC (Rucat stores UTC only).
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise UnexpectedResponse(f"{what} is not a time: {value!r}")


def _state(value: object, what: str) -> EngineState:
    if not isinstance(value, str):
        raise UnexpectedResponse(f"{what} is not a state name: {value!r}")
    try:
        return EngineState(value)
    except ValueError as e:
        raise UnexpectedResponse(f"{what} is an unknown state {value!r}") from e


def _str(body: Mapping[str, Any], key: str, what: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise UnexpectedResponse(f"{what}: field {key!r} missing or not a string: {value!r}")
    return value


def _opt_str(body: Mapping[str, Any], key: str, what: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise UnexpectedResponse(f"{what}: field {key!r} is not a string: {value!r}")
    return value


def _opt_number(body: Mapping[str, Any], key: str, what: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnexpectedResponse(f"{what}: field {key!r} is not a number: {value!r}")
    return float(value)


def parse_engine(body: object, *, engine_id: EngineId | None = None) -> EngineInfo:
    """An `EngineInfo` from the JSON of `GET /engine/{id}`.

    `engine_id` fills `id` for servers that leave it out (the seed does).
    """
    what = "engine info"
    if not isinstance(body, Mapping):
        raise UnexpectedResponse(f"{what} is not a JSON object: {body!r}")
    raw_id = body.get("id", engine_id)
    if not isinstance(raw_id, str):
        raise UnexpectedResponse(f"{what}: field 'id' missing or not a string: {raw_id!r}")
    configs = body.get("configs") or {}
    if not isinstance(configs, Mapping):
        raise UnexpectedResponse(f"{what}: field 'configs' is not an object: {configs!r}")
    return EngineInfo(
        id=raw_id,
        name=_str(body, "name", what),
        engine_type=_str(body, "engine_type", what),
        version=_str(body, "version", what),
        state=_state(body.get("state"), f"{what} state"),
        configs={str(k): str(v) for k, v in configs.items()},
        create_time=parse_time(body.get("create_time"), "create_time"),
        update_time=parse_time(body.get("update_time"), "update_time"),
        message=_opt_str(body, "message", what),
        platform=_opt_str(body, "platform", what),
        endpoint=_opt_str(body, "endpoint", what),
        last_activity_time=parse_time(body.get("last_activity_time"), "last_activity_time"),
        auto_stop_minutes=_opt_number(body, "auto_stop_minutes", what),
        idle_since=parse_time(body.get("idle_since"), "idle_since"),
        owner=_opt_str(body, "owner", what),
        connect_url=_opt_str(body, "connect_url", what),
    )


def parse_event(body: object) -> EngineEventInfo:
    """An `EngineEventInfo` from one item of `GET /engine/{id}/events`."""
    what = "engine event"
    if not isinstance(body, Mapping):
        raise UnexpectedResponse(f"{what} is not a JSON object: {body!r}")
    from_state = body.get("from_state")
    return EngineEventInfo(
        time=parse_time(body.get("time"), f"{what} time"),
        from_state=_state(from_state, f"{what} from_state") if from_state is not None else None,
        to_state=_state(body.get("to_state"), f"{what} to_state"),
        message=_opt_str(body, "message", what),
        actor=_opt_str(body, "actor", what),
    )


@dataclass(frozen=True)
class Permissions:
    """`GET /engine/{id}/permissions`: the owner, and grants as the API writes them
    (``{"user": "bob", "level": "attach"}`` or ``{"group": ..., "level": ...}``)."""

    owner: str | None
    grants: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"owner": self.owner, "grants": [dict(g) for g in self.grants]}


def parse_permissions(body: object) -> Permissions:
    what = "engine permissions"
    if not isinstance(body, Mapping):
        raise UnexpectedResponse(f"{what} is not a JSON object: {body!r}")
    grants = body.get("grants")
    if not isinstance(grants, list) or not all(
        isinstance(g, Mapping) and all(isinstance(v, str) for v in g.values()) for g in grants
    ):
        raise UnexpectedResponse(f"{what}: field 'grants' is not a list of grants: {grants!r}")
    return Permissions(
        owner=_opt_str(body, "owner", what),
        grants=[{str(k): v for k, v in g.items()} for g in grants],
    )
