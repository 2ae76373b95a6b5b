"""The `auto_stop` section: when engines without Spark Connect activity are stopped,
a setting servers and monitors must agree on."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from rucat.config.base import Strict


class AutoStopConfig(Strict):
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
