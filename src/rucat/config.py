"""The configuration of every Rucat process, as one tree of pydantic models.

The seed's JSON files load unchanged: `auth_provider.StaticAuthProviderConfig`,
`database.Surreal{credentials, uri}` and `check_interval_secs`. Variants are
objects with exactly one key naming the variant (`{"Sqlite": {...}}`), as in
the seed. Unknown keys are an error naming the key.

Any field can be overridden from the environment by its path, upper-cased,
with ``__`` between levels: ``RUCAT_PORT=3001``,
``RUCAT_DATABASE__POSTGRES__URI=postgresql://...``,
``RUCAT_AUTH_PROVIDER__STATICAUTHPROVIDERCONFIG__PASSWORD=...``. That is how
secrets stay out of config files. The config is passed explicitly; there is
no global.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from rucat.domain.errors import ConfigError
from rucat.domain.policy import Action, PolicyError, Rule
from rucat.domain.text import describe_character, forbidden_character

#: Where `rucat monitor` looks when no --config-path is given (the seed's path).
SEED_MONITOR_CONFIG_PATH = Path("/rucat_state_monitor/config.json")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _OneOf(_Strict):
    """A seed-style variant: exactly one of the fields is set."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        chosen = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(chosen) != 1:
            names = ", ".join(type(self).model_fields)
            raise ValueError(f"exactly one of {names} must be given, got {chosen or 'none'}")
        return self

    @property
    def variant(self) -> str:
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)


# --- auth -------------------------------------------------------------------


class StaticAuthConfig(_Strict):
    username: str | None = Field(None, description="User name for HTTP Basic auth.")
    password: SecretStr | None = Field(None, description="Password for HTTP Basic auth.")
    bearer_token: SecretStr | None = Field(
        None, description="Token accepted as 'Authorization: Bearer <token>' (REST and gRPC)."
    )

    @model_validator(mode="after")
    def _something_to_check(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be given together")
        if self.username is None and self.bearer_token is None:
            raise ValueError("give username and password, or bearer_token, or both")
        return self


#: Largest user or group name, and the characters a user name may not hold
#: (":" ends the user part of HTTP Basic; control characters forge log lines).
MAX_NAME_LENGTH = 128


def _check_name(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{what} {value!r} holds a control character")
    found = forbidden_character(value)
    if found is not None:  # C1 controls, format characters (look-alike names), separators
        raise ValueError(f"{what} {value!r} holds {describe_character(found[1])}")
    return value


class UserConfig(_Strict):
    name: str = Field(description="User name (HTTP Basic); no ':' or control characters.")
    password_hash: str = Field(
        description="argon2id hash of the password, as printed by `rucat user hash-password`."
    )
    groups: list[str] = Field(default_factory=list, description="Groups the user belongs to.")
    admin: bool = Field(False, description="Admins see and manage every engine.")

    @model_validator(mode="after")
    def _valid(self) -> Self:
        _check_name(self.name, "user name")
        if ":" in self.name:
            raise ValueError(f"user name {self.name!r} holds ':' (HTTP Basic cannot send it)")
        for group in self.groups:
            _check_name(group, "group name")
        if not self.password_hash.startswith("$argon2id$"):
            raise ValueError(
                f"user {self.name!r}: password_hash must be an argon2id hash ($argon2id$...); "
                "make one with `rucat user hash-password`"
            )
        return self


class UsersAuthConfig(_Strict):
    users: list[UserConfig] = Field(
        default_factory=list, description="The users and their argon2id password hashes."
    )
    cache_ttl_secs: float = Field(
        30.0,
        ge=0,
        description="How long a verified user name and password are remembered (as a keyed "
        "hash, never in clear), so argon2 runs once per client rather than per request. "
        "0: verify every request.",
    )
    cache_size: int = Field(1024, ge=1, description="Most remembered credentials.")

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        for user in self.users:
            if user.name in seen:
                raise ValueError(f"user {user.name!r} is listed twice")
            seen.add(user.name)
        return self


class OidcAuthConfig(_Strict):
    issuer: str = Field("", description="Expected `iss` of tokens (the identity provider's URL).")
    audience: str = Field("", description="Expected `aud` of tokens (this server's client id).")
    jwks_uri: str = Field(
        "", description="URL of the identity provider's JSON Web Key Set (http or https)."
    )
    username_claim: str = Field("preferred_username", description="Claim naming the user.")
    groups_claim: str = Field("groups", description="Claim listing the user's groups.")
    admin_groups: list[str] = Field(
        default_factory=list, description="Members of any of these groups are admins."
    )
    leeway_secs: float = Field(30.0, ge=0, le=300, description="Clock skew allowed on exp and nbf.")
    jwks_refresh_secs: float = Field(
        30.0,
        gt=0,
        description="An unknown key id refetches the key set at most this often.",
    )
    jwks_timeout_secs: float = Field(5.0, gt=0, description="Timeout of one key set fetch.")

    @model_validator(mode="after")
    def _given(self) -> Self:
        missing = [k for k in ("issuer", "audience", "jwks_uri") if not getattr(self, k)]
        if missing:
            raise ValueError(f"{', '.join(missing)} must be given")
        if not self.jwks_uri.startswith(("http://", "https://")):
            raise ValueError("jwks_uri must be an http:// or https:// URL")
        return self


class AuthProviderConfig(_OneOf):
    StaticAuthProviderConfig: StaticAuthConfig | None = Field(
        None, description="Fixed credentials from this config (or the environment)."
    )
    Users: UsersAuthConfig | None = Field(
        None, description="Named users with argon2id password hashes (HTTP Basic)."
    )
    Oidc: OidcAuthConfig | None = Field(
        None, description="Bearer JWTs from an OpenID Connect identity provider."
    )


# --- database ---------------------------------------------------------------


class SurrealCredentials(_Strict):
    username: str = Field("root", description="SurrealDB user.")
    password: SecretStr = Field(SecretStr("root"), description="SurrealDB password.")


class SurrealConfig(_Strict):
    credentials: SurrealCredentials | None = Field(
        None, description="Sign-in for a remote server; not needed for mem:// or surrealkv://."
    )
    uri: str = Field(
        "mem://",
        description="host:port (WebSocket), ws://, wss://, http://, https://, mem:// "
        "or surrealkv://PATH.",
    )
    namespace: str = Field("rucat", description="SurrealDB namespace.")
    database: str = Field("rucat", description="SurrealDB database.")


class SqliteConfig(_Strict):
    path: str = Field(
        ".rucat/rucat.db",
        description="Database file; created with its parent folder if missing. WAL mode, so a "
        "server and monitors in other processes can share it.",
    )


class PostgresConfig(_Strict):
    uri: SecretStr = Field(
        SecretStr("postgresql://localhost/rucat"),
        description="postgresql://user:password@host:port/db",
    )


class DatabaseConfig(_OneOf):
    Surreal: SurrealConfig | None = Field(None, description="SurrealDB (the seed's database).")
    Sqlite: SqliteConfig | None = Field(None, description="SQLite file (the default).")
    Postgres: PostgresConfig | None = Field(
        None, description="PostgreSQL: several servers and monitors."
    )


# --- platforms --------------------------------------------------------------


class LocalPlatformConfig(_Strict):
    spark_homes: dict[str, str] = Field(
        default_factory=dict,
        description="Extra Spark versions: version -> SPARK_HOME. The Spark shipped with the "
        "installed pyspark is always available.",
    )
    host: str = Field("127.0.0.1", description="Address engines bind and advertise.")
    stop_grace_secs: float = Field(
        10.0, gt=0, description="Seconds between SIGTERM and SIGKILL when stopping an engine."
    )
    java_home: str | None = Field(None, description="JAVA_HOME for engines; default: the PATH's.")
    log_max_bytes: int = Field(
        64 << 20,
        ge=64 << 10,
        description="Most disk one engine's log takes: engine.log is rotated to engine.log.1 "
        "(replacing the one before) when it would pass half of this.",
    )


class StandalonePlatformConfig(_Strict):
    master_url: str = Field(
        "spark://127.0.0.1:7077",
        pattern=r"^spark://\S+$",
        description="The standalone master drivers register with (spark://host:port).",
    )
    master_web_url: str = Field(
        "http://127.0.0.1:8080",
        pattern=r"^https?://\S+$",
        description="The master's web UI; Rucat reads its JSON (<url>/json/) to see each "
        "engine's application, its cores and executors.",
    )
    spark_homes: dict[str, str] = Field(
        default_factory=dict,
        description="Extra Spark versions: version -> SPARK_HOME. The Spark shipped with the "
        "installed pyspark is always available. A driver must run the cluster's Spark version.",
    )
    host: str = Field(
        "127.0.0.1",
        description="Address drivers bind and advertise; the cluster's workers must reach it.",
    )
    stop_grace_secs: float = Field(10.0, gt=0, description="Seconds from SIGTERM to SIGKILL.")
    java_home: str | None = Field(None, description="JAVA_HOME for drivers; default: the PATH's.")
    poll_interval_secs: float = Field(
        5.0,
        gt=0,
        description="How often the master's JSON is read for the engines on it, so a master "
        "that goes away, or ends an engine's application, fails the engine this fast.",
    )
    master_timeout_secs: float = Field(
        5.0, gt=0, description="Deadline of one request to the master's web UI."
    )
    master_lost_after_secs: float = Field(
        60.0,
        gt=0,
        description="A master that refuses connections fails its engines at once; one that "
        "only times out fails them after this long.",
    )


class KubernetesPlatformConfig(_Strict):
    namespace: str = Field("default", description="Namespace of engine pods and services.")
    kubeconfig: str | None = Field(
        None, description="Path to a kubeconfig; absent means in-cluster configuration."
    )
    images: dict[str, str] = Field(
        default_factory=dict,
        description="Spark version -> image. Versions not listed use apache/spark:<version>.",
    )
    versions: list[str] = Field(
        default_factory=lambda: ["3.5.3", "3.5.4", "4.0.1"],
        description="Spark versions this platform offers (besides those in images).",
    )
    service_account: str = Field(
        "rucat-spark", description="Service account of driver pods (manages executors)."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Pull policy of driver and executor images."
    )
    spark_home: str = Field("/opt/spark", description="SPARK_HOME inside the images.")
    run_as_user: int = Field(
        185,
        ge=1,
        description="Numeric uid driver and executor containers run as (the Pod Security "
        "Standard `restricted` requires a non-root user; apache/spark images use 185).",
    )
    fs_group: int | None = Field(
        185,
        description="fsGroup of driver and executor pods, so the image's user (185 in "
        "apache/spark) can read the engine's token file; null leaves it unset.",
    )
    network_policies: bool = Field(
        True,
        description="Create a NetworkPolicy per engine admitting ingress to its driver and "
        "block-manager ports only from the engine's own pods (needs a CNI that enforces "
        "NetworkPolicies; the monitor's Role must allow networkpolicies).",
    )
    fail_when_unschedulable: bool = Field(
        True,
        description="An unschedulable driver pod fails the engine at once with the "
        "scheduler's message. Set false on clusters with an autoscaler: the pod then stays "
        "Pending (with that message) until the start timeout.",
    )


class PlatformConfig(_OneOf):
    Local: LocalPlatformConfig | None = Field(None, description="Engines as local processes.")
    Standalone: StandalonePlatformConfig | None = Field(
        None, description="Drivers attached to a Spark standalone master."
    )
    Kubernetes: KubernetesPlatformConfig | None = Field(
        None, description="Driver pod + headless service per engine."
    )


# --- engine conf policy -----------------------------------------------------


def _text_of_number(value: object) -> object:
    # `"value": 50` in JSON means the limit "50"; booleans are not limits.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


_Text = Annotated[str, BeforeValidator(_text_of_number)]


class PolicyRuleConfig(_Strict):
    pattern: str = Field(
        description="Glob on the conf key (fnmatch: * ? [..]), case-sensitive: "
        "'spark.kubernetes.*', 'spark.executor.memory'."
    )
    action: Action = Field(
        description="allow (any value), deny, fixed (Rucat sets `value`; the user may only "
        "repeat it) or max (a count, number or size limit in `value`)."
    )
    value: _Text | None = Field(
        None,
        description="fixed: the value to set (literal pattern); max: the limit (50, 0.5, 16g).",
    )
    default: _Text | None = Field(
        None, description="max only: the value set when the user sets none (literal pattern)."
    )
    unit: str | None = Field(
        None,
        description="max on sizes only: the unit of a bare number, e.g. 'm' as Spark's "
        "memory confs read '4096'. Without it a bare number is refused.",
    )

    @model_validator(mode="after")
    def _valid_rule(self) -> Self:
        self.domain_rule()
        return self

    def domain_rule(self) -> Rule:
        try:
            return Rule(
                self.pattern,
                self.action,
                value=self.value,
                default=self.default,
                unit=self.unit,
                origin="the engine_policy config",
            )
        except PolicyError as e:
            raise ValueError(str(e)) from e


class EnginePolicyConfig(_Strict):
    mode: Literal["extend", "replace"] = Field(
        "extend",
        description="extend: these rules are checked before the platform's built-in default "
        "policy; replace: only these rules (Rucat's reserved confs always come first).",
    )
    rules: list[PolicyRuleConfig] = Field(
        default_factory=list,
        description="Ordered rules; the first whose pattern matches a key decides. Keys no "
        "rule matches are refused.",
    )

    def domain_rules(self) -> list[Rule]:
        return [rule.domain_rule() for rule in self.rules]


# --- idle engines -----------------------------------------------------------


class AutoStopConfig(_Strict):
    default_minutes: float = Field(
        60.0,
        ge=0,
        allow_inf_nan=False,
        description="Auto-stop time of an engine created without auto_stop_minutes; 0: never.",
    )
    max_minutes: float = Field(
        1440.0,
        ge=0,
        allow_inf_nan=False,
        description="Largest auto_stop_minutes a create may ask for (400 above).",
    )
    busy_refresh_secs: float = Field(
        5.0,
        gt=0,
        allow_inf_nan=False,
        description="While an engine has Spark Connect RPCs in flight, each proxy refreshes "
        "its activity in the store this often; monitors treat activity younger than twice "
        "this as busy. Servers and monitors must agree on it.",
    )

    @model_validator(mode="after")
    def _default_within_max(self) -> Self:
        if self.default_minutes > self.max_minutes:
            raise ValueError(
                f"default_minutes ({self.default_minutes:g}) is above max_minutes "
                f"({self.max_minutes:g})"
            )
        return self


class QuotasConfig(_Strict):
    max_active_engines_per_user: int | None = Field(
        None,
        ge=0,
        description="Most engines one user may have in any state but Terminated and "
        "ErrorClean; creates and restarts beyond it answer 429. Admins are exempt. "
        "null: no limit.",
    )


# --- warm pools -------------------------------------------------------------


class PoolConfig(_Strict):
    """One warm pool: a profile of engine, and how many of them wait Running and idle."""

    name: str = Field(
        "default",
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
        description="The pool's name (lowercase letters, digits and '-'); a create names "
        'it as "pool".',
    )
    engine_type: Literal["Spark"] = Field("Spark", description="Kind of the pool's engines.")
    version: str = Field("4.0.1", description="Version of the pool's engines, e.g. '4.0.1'.")
    configs: dict[str, str] = Field(
        default_factory=dict,
        description="The pool's engine confs. A create with this engine type, version and "
        "these confs (after the engine policy) takes an idle pool engine.",
    )
    min_idle: int = Field(
        1, ge=0, le=1000, description="Idle Running engines the monitor keeps in the pool."
    )
    max_idle: int = Field(
        2, ge=0, le=1000, description="Idle engines the pool never exceeds; more are stopped."
    )

    @model_validator(mode="after")
    def _min_within_max(self) -> Self:
        if self.min_idle > self.max_idle:
            raise ValueError(
                f"pool {self.name!r}: min_idle ({self.min_idle}) is above max_idle "
                f"({self.max_idle})"
            )
        return self


def _unique_pool_names(pools: list[PoolConfig]) -> list[PoolConfig]:
    names = [pool.name for pool in pools]
    doubles = sorted({name for name in names if names.count(name) > 1})
    if doubles:
        raise ValueError(f"pool names must be unique; given more than once: {', '.join(doubles)}")
    return pools


# --- the whole tree ---------------------------------------------------------


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
    pools: Annotated[list[PoolConfig], AfterValidator(_unique_pool_names)] = Field(
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
