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

`rucat.config` is the one import path; its modules, one section each:
base (strict models and one-of variants), auth (`auth_provider`), database,
platforms (`platform`), engine_policy, auto_stop, quotas, pools, and root
(`RucatConfig`, its flat server and monitor fields, and `load_config`: file,
environment, flags).
"""

from rucat.config.auth import (
    MAX_NAME_LENGTH,
    AuthProviderConfig,
    OidcAuthConfig,
    StaticAuthConfig,
    UserConfig,
    UsersAuthConfig,
)
from rucat.config.auto_stop import AutoStopConfig
from rucat.config.database import (
    DatabaseConfig,
    PostgresConfig,
    SqliteConfig,
    SurrealConfig,
    SurrealCredentials,
)
from rucat.config.engine_policy import EnginePolicyConfig, PolicyRuleConfig
from rucat.config.platforms import (
    KubernetesPlatformConfig,
    LocalPlatformConfig,
    PlatformConfig,
    StandalonePlatformConfig,
)
from rucat.config.pools import PoolConfig
from rucat.config.quotas import QuotasConfig
from rucat.config.root import SEED_MONITOR_CONFIG_PATH, RucatConfig, load_config

__all__ = [
    "MAX_NAME_LENGTH",
    "SEED_MONITOR_CONFIG_PATH",
    "AuthProviderConfig",
    "AutoStopConfig",
    "DatabaseConfig",
    "EnginePolicyConfig",
    "KubernetesPlatformConfig",
    "LocalPlatformConfig",
    "OidcAuthConfig",
    "PlatformConfig",
    "PolicyRuleConfig",
    "PoolConfig",
    "PostgresConfig",
    "QuotasConfig",
    "RucatConfig",
    "SqliteConfig",
    "StandalonePlatformConfig",
    "StaticAuthConfig",
    "SurrealConfig",
    "SurrealCredentials",
    "UserConfig",
    "UsersAuthConfig",
    "load_config",
]
