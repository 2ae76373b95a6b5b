"""The root of the tree, `RucatConfig`, and how it is loaded: a JSON file, then the
environment by path (RUCAT_...), then command-line flags, each winning over the
one before, with one error message naming every bad key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from rucat.config.auth import AuthProviderConfig
from rucat.config.auto_stop import AutoStopConfig
from rucat.config.database import DatabaseConfig, SqliteConfig
from rucat.config.engine_policy import EnginePolicyConfig
from rucat.config.platforms import LocalPlatformConfig, PlatformConfig
from rucat.config.pools import Pools
from rucat.config.quotas import QuotasConfig
from rucat.domain.errors import ConfigError

#: Where `rucat monitor` looks when no --config-path is given (the seed's path).
SEED_MONITOR_CONFIG_PATH = Path("/rucat_state_monitor/config.json")


class RucatConfig(BaseSettings):
    """Everything a Rucat process reads. Every field has a default."""

    model_config = SettingsConfigDict(
        env_prefix="RUCAT_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    auth_provider: AuthProviderConfig | None = Field(
        None, description="Credentials required on every route but /health; absent: open."
    )
    database: DatabaseConfig = Field(
        default_factory=lambda: DatabaseConfig(Sqlite=SqliteConfig()),
        description="Where engines are stored.",
    )
    platform: PlatformConfig = Field(
        default_factory=lambda: PlatformConfig(Local=LocalPlatformConfig()),
        description="Where engines run.",
    )
    host: str = Field("127.0.0.1", description="Address of the REST API.")
    port: int = Field(3000, ge=0, le=65535, description="Port of the REST API (0: any free).")
    connect_port: int | None = Field(
        15002,
        ge=0,
        le=65535,
        description="Port of the Spark Connect proxy (0: any free; null: no proxy).",
    )
    console_session_minutes: int = Field(
        480,
        ge=1,
        le=60 * 24 * 30,
        description="How long a web console login lasts (minutes; the session then ends).",
    )
    connect_tls_cert: str | None = Field(
        None, description="PEM certificate for the proxy; with connect_tls_key, serves TLS."
    )
    connect_tls_key: str | None = Field(None, description="PEM private key for the proxy.")
    connect_max_message_bytes: int = Field(
        128 << 20,
        ge=1024,
        description="Largest gRPC message the Spark Connect proxy receives, from a client or "
        "from an engine (128 MiB, as Spark Connect's own server and pyspark); larger ones are "
        "refused with RESOURCE_EXHAUSTED.",
    )
    public_connect_host: str | None = Field(
        None,
        description="Host name users reach the Spark Connect proxy at, used in engine "
        "info's connect_url; null: the host name each REST request came in on.",
    )
    quotas: QuotasConfig = Field(
        default_factory=QuotasConfig, description="Limits per user (admins are exempt)."
    )
    data_dir: str = Field(".rucat", description="Folder for engine working dirs and logs.")
    check_interval_secs: float = Field(
        5.0, gt=0, description="Seconds between a monitor's checks of due engines."
    )
    start_timeout_secs: float = Field(
        300.0, gt=0, description="An engine not Running this long after start is an error."
    )
    resync_interval_secs: float = Field(
        300.0,
        gt=0,
        description="A Running engine is re-inspected this often even without platform "
        "events; a safety net, since process exits and pod watch events wake the monitor "
        "at once. Each re-inspection is a store write, so this bounds idle cost.",
    )
    lease_secs: float = Field(
        60.0, gt=0, description="How long a monitor holds a trigger state before others retry."
    )
    auto_stop: AutoStopConfig = Field(
        default_factory=AutoStopConfig,
        description="Stopping engines without Spark Connect activity.",
    )
    monitor_metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="`rucat monitor` serves Prometheus /metrics (its auto-stops) on "
        "host:this port; null: not served.",
    )
    auto_start_on_connect: bool = Field(
        True,
        description="A Spark Connect call through the proxy for a Terminated engine starts it "
        "again (the call answers UNAVAILABLE, which pyspark retries, until it runs).",
    )
    max_concurrency: int = Field(32, ge=1, description="Platform actions one monitor runs at once.")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest accepted request body.")
    allowed_hosts: list[str] | None = Field(
        None,
        description="Host header values the REST API answers (any port): names or addresses, "
        "'*.example.com' for a domain's subdomains, '*' for any. Defends against DNS "
        "rebinding. Default (null): the bind host, localhost, 127.0.0.1 and ::1. /health "
        "answers whatever the Host (for probes).",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins (scheme://host[:port]) besides the server's own that may "
        "send state-changing requests (POST, PUT, PATCH, DELETE); '*' allows any. A request "
        "with any other Origin header gets 403. Clients that send no Origin (curl, the SDK) "
        "are not affected.",
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="Open REST connections at most (capped by the process's file limit). "
        "At the limit, the oldest connection still sending its headers (or idle between "
        "requests) is closed to make room; when none is, the new one gets 503.",
    )
    header_timeout_secs: float = Field(
        10.0,
        gt=0,
        description="Seconds a REST client gets to send a request's headers, from when the "
        "connection opens or the previous response ends, and a Spark Connect client gets to "
        "complete its connection's HTTP/2 (and TLS) handshake; then the connection is closed.",
    )
    log_format: Literal["text", "json"] = Field("text", description="Log line format.")
    engine_policy: EnginePolicyConfig = Field(
        default_factory=EnginePolicyConfig,
        description="Which engine confs users may set: rules that extend or replace the "
        "platform's built-in default policy.",
    )
    pools: Pools = Field(
        default_factory=list,
        description="Warm pools: the monitor keeps idle Running engines of each profile, "
        "and a matching create takes one instead of starting cold.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file, so secrets can live outside it.
        return (env_settings, init_settings)


class _WithFlags(RucatConfig):
    """The config validated once more with the flags: it does not read the environment
    (its values are already in), so a flag wins over an environment variable."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            parts.append(f"unknown key '{where}'")
        else:
            parts.append(f"'{where}': {item['msg']}")
    return "; ".join(parts)


def load_config(path: str | Path | None = None, **overrides: Any) -> RucatConfig:
    """Load a config file (JSON), apply the environment, then `overrides` (CLI flags).

    Overrides are raw flag values (None: not given), validated like the file's
    keys. Raises ConfigError with one message naming every bad key.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = p.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read config file {p}: {e.strerror or e}") from e
        try:
            loaded = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config file {p} is not valid JSON: {e}") from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a JSON object")
        data = loaded
    try:
        config = RucatConfig(**data)
    except ValidationError as e:
        where = f" in {path}" if path is not None else ""
        raise ConfigError(f"invalid config{where}: {_describe(e)}") from e
    # Command-line flags win over the environment, which wins over the file.
    chosen = {k: v for k, v in overrides.items() if v is not None}
    if not chosen:
        return config
    # The flags go through the same models as the file (field constraints, model
    # validators, the same messages): what was set so far (file and environment),
    # plus the flags, is validated again without reading the environment twice.
    try:
        checked = _WithFlags(**{**config.model_dump(exclude_unset=True), **chosen})
    except ValidationError as e:
        raise ConfigError(f"invalid command-line flag(s): {_describe(e)}") from e
    # Already validated: rebuild it as a plain RucatConfig, keeping which keys were set.
    return RucatConfig.model_construct(_fields_set=checked.model_fields_set, **dict(checked))
