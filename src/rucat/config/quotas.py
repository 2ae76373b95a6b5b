"""The `quotas` section: limits per user on the engines they hold (admins are exempt)."""

from __future__ import annotations

from pydantic import Field

from rucat.config.base import Strict


class QuotasConfig(Strict):
    max_active_engines_per_user: int | None = Field(
        None,
        ge=0,
        description="Most engines one user may have in any state but Terminated and "
        "ErrorClean; creates and restarts beyond it answer 429. Admins are exempt. "
        "null: no limit.",
    )
