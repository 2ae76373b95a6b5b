"""The `pools` section: warm pools, each a profile of engine and how many of them the
monitor keeps Running and idle. `Pools` is the list, with names unique."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from rucat.config.base import Strict


class PoolConfig(Strict):
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


#: The `pools` list of the root config: a pool's name appears once.
Pools = Annotated[list[PoolConfig], AfterValidator(_unique_pool_names)]
