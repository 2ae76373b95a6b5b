"""The REST API's JSON shapes: the seed's field names, exactly, plus additive fields.

Request bodies are validated strictly (no coercion: ``"name": 5`` is refused,
not turned into ``"5"``) and reuse the domain's validation rules, so the 422
detail says precisely what is wrong. Response models never carry an engine's
`connect_token` or saved logs, and show sensitive conf values redacted
(rucat.domain.redaction).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictStr,
    field_validator,
    model_serializer,
    model_validator,
)

from rucat.domain.access import Grant, grants_from_json
from rucat.domain.engine import (
    MAX_NAME_LENGTH,
    Engine,
    EngineEvent,
    EngineType,
    validate_configs,
    validate_name,
    validate_version,
)
from rucat.domain.errors import InvalidRequest
from rucat.domain.redaction import engine_secrets, redact_configs, redact_text
from rucat.domain.state import EngineState

T = TypeVar("T")


class CreateEngineBody(BaseModel):
    """Body of ``POST /engine`` (the seed's CreateEngineRequest)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "my-engine",
                    "engine_type": "Spark",
                    "version": "4.0.1",
                    "configs": {"spark.executor.memory": "1g"},
                }
            ]
        },
    )

    name: Annotated[
        StrictStr,
        Field(min_length=1, max_length=MAX_NAME_LENGTH, description="Any label for humans."),
    ]
    # Required (as in the seed) unless `pool` is given: then absent means the pool's.
    engine_type: EngineType | None = Field(
        description="Kind of engine; only 'Spark' today. Required unless `pool` is given."
    )
    version: StrictStr | None = Field(
        description="Plain dotted version, e.g. '4.0.1'. Required unless `pool` is given.",
        json_schema_extra={"pattern": r"^[0-9]+(\.[0-9]+){0,3}$"},
    )
    configs: dict[StrictStr, StrictStr] | None = Field(
        None,
        description="Engine confs, e.g. Spark confs (key -> value). With `pool`: "
        "absent takes the pool's.",
    )
    pool: StrictStr | None = Field(
        None,
        max_length=63,
        description="Take an idle engine of this warm pool (GET /pools); its type, version "
        "and configs are the pool's. A create whose type, version and configs equal a "
        "pool's takes one without naming it. An empty pool starts a cold engine.",
    )
    auto_stop_minutes: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="Stop the engine after this many minutes without Spark Connect activity "
        "(fractions allowed; 0: never). Default and maximum come from the server's config "
        "(auto_stop); above the maximum is 400.",
    )

    @field_validator("engine_type", mode="before")
    @classmethod
    def _engine_type_from_json(cls, value: object) -> object:
        # Strict mode refuses a plain string for an enum; JSON only has strings.
        if isinstance(value, str):
            try:
                return EngineType(value)
            except ValueError:
                return value
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _domain_rule(validate_name, value)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        return value if value is None else _domain_rule(validate_version, value)

    @field_validator("configs")
    @classmethod
    def _configs(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return value if value is None else _domain_rule(validate_configs, value)

    @model_validator(mode="before")
    @classmethod
    def _pool_fills_the_profile(cls, data: Any) -> Any:
        # Naming a pool makes engine_type and version optional (the pool's).
        if isinstance(data, dict) and data.get("pool") is not None:
            return {"engine_type": None, "version": None, **data}
        return data


def _domain_rule(rule: Callable[[T], object], value: T) -> T:
    """Run a domain validator; its InvalidRequest becomes a field error (422)."""
    try:
        rule(value)
    except InvalidRequest as e:
        raise ValueError(e.message) from e
    return value


class EngineIdOut(BaseModel):
    id: str


class EngineInfo(BaseModel):
    """Body of ``GET /engine/{id}``: the seed's fields plus id, message, platform,
    endpoint, update_time, last_activity_time, auto_stop_minutes and idle_since.
    Times are ISO-8601 UTC."""

    id: str
    name: str
    engine_type: EngineType
    version: str
    state: EngineState
    configs: dict[str, str]
    create_time: datetime
    update_time: datetime
    message: str | None = Field(None, description="Why, in error states.")
    platform: str
    endpoint: str | None = Field(None, description="sc://host:port while Running.")
    last_activity_time: datetime | None = Field(
        None, description="Last Spark Connect call seen by the proxy."
    )
    auto_stop_minutes: float | None = Field(
        None, description="Minutes without Spark Connect activity before auto-stop; 0: never."
    )
    idle_since: datetime | None = Field(
        None,
        description="Since when a Running engine has had no Spark Connect activity; null while "
        "busy (an RPC in flight or just finished) and when not Running.",
    )

    owner: str | None = Field(
        None,
        description="Name of the principal that created the engine; null for engines "
        "created before Rucat recorded owners (visible to admins only).",
    )
    connect_url: str | None = Field(
        None,
        description="Rucat's Spark Connect proxy URL for this engine, for "
        "SparkSession.builder.remote() (add ;token=<token>); null when the proxy is off.",
    )
    pool: str | None = Field(
        None,
        description="The warm pool owning this idle engine; null for every engine handed "
        "out or created cold.",
    )

    @classmethod
    def of(
        cls,
        engine: Engine,
        *,
        idle_since: datetime | None = None,
        connect_url: str | None = None,
    ) -> EngineInfo:
        return cls(
            id=engine.id,
            name=engine.name,
            engine_type=engine.engine_type,
            version=engine.version,
            state=engine.state,
            configs=redact_configs(engine.configs),
            create_time=engine.create_time,
            update_time=engine.update_time,
            message=_redacted(engine.message, engine_secrets(engine)),
            platform=engine.platform,
            endpoint=engine.endpoint,
            last_activity_time=engine.last_activity_time,
            auto_stop_minutes=engine.auto_stop_minutes,
            idle_since=idle_since,
            owner=engine.owner,
            connect_url=connect_url,
            pool=engine.pool,
        )


class EngineEventOut(BaseModel):
    time: datetime
    from_state: EngineState | None = Field(description="None for the creation event.")
    to_state: EngineState
    message: str | None
    actor: str

    @classmethod
    def of(cls, event: EngineEvent, *, secrets: tuple[str, ...] = ()) -> EngineEventOut:
        return cls(
            time=event.time,
            from_state=event.from_state,
            to_state=event.to_state,
            message=_redacted(event.message, secrets),
            actor=event.actor,
        )


def _redacted(message: str | None, secrets: tuple[str, ...]) -> str | None:
    return None if message is None else redact_text(message, secrets)


class EngineLogs(BaseModel):
    id: str
    logs: str


class Status(BaseModel):
    status: str


class EngineVersions(BaseModel):
    """One engine type and the versions of it the configured platform runs."""

    engine_type: EngineType = Field(description="Kind of engine.")
    versions: list[str] = Field(description="Versions the platform runs, oldest first.")


class VersionsOut(BaseModel):
    """Body of ``GET /versions``."""

    platform: str = Field(description="The configured platform variant.")
    engines: list[EngineVersions] = Field(description="One entry per engine type.")


class GrantBody(BaseModel):
    """One grant: exactly one of `user` or `group`, and a level."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"user": "bob", "level": "attach"}]},
    )

    user: StrictStr | None = Field(None, description="A user name.")
    group: StrictStr | None = Field(None, description="A group name.")
    level: Literal["attach", "manage"] = Field(
        description="attach: get, events, logs, connect; manage: also stop, restart, "
        "delete and permissions."
    )

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The API's shape names only the grantee it has: {"user": "bob", "level": ...}.
        return {k: v for k, v in handler(self).items() if v is not None}

    @classmethod
    def of(cls, grant: Grant) -> GrantBody:
        return cls.model_validate(grant.to_json())


class PermissionsBody(BaseModel):
    """Body of ``PUT /engine/{id}/permissions``: the grants that replace the current ones."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "grants": [
                        {"user": "bob", "level": "attach"},
                        {"group": "analytics", "level": "manage"},
                    ]
                }
            ]
        },
    )

    grants: list[GrantBody] = Field(description="Every grant of the engine (replaced).")

    @field_validator("grants")
    @classmethod
    def _grants(cls, value: list[GrantBody]) -> list[GrantBody]:
        _domain_rule(grants_from_json, [g.model_dump() for g in value])
        return value

    def domain_grants(self) -> tuple[Grant, ...]:
        return grants_from_json([g.model_dump() for g in self.grants])


class PermissionsOut(BaseModel):
    """Body of ``GET /engine/{id}/permissions``."""

    owner: str | None = Field(description="The engine's owner (always has manage).")
    grants: list[GrantBody]

    @classmethod
    def of(cls, engine: Engine) -> PermissionsOut:
        return cls(owner=engine.owner, grants=[GrantBody.of(g) for g in engine.grants])


class PoolOut(BaseModel):
    """One warm pool in ``GET /pools``."""

    name: str
    engine_type: EngineType
    version: str
    configs: dict[str, str] = Field(
        description="The pool's engine confs (sensitive ones redacted)."
    )
    min_idle: int = Field(description="Idle Running engines the monitor keeps.")
    max_idle: int = Field(description="Idle engines the pool never exceeds.")
    idle: int = Field(description="Engines Running and idle in the pool now.")
    warm: int = Field(
        0, description="Idle engines that have answered a query (their warm-up): taken first."
    )
    starting: int = Field(description="Pool engines on their way to Running.")
    hand_outs: int = Field(description="Engines this server handed out since it started.")
    misses: int = Field(description="Matching creates this server started cold (pool empty).")
