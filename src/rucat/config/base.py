"""The two shapes every config section takes: a strict, frozen model, and a seed-style
variant (an object with exactly one key naming the variant, `{"Sqlite": {...}}`).

Every section of the tree derives from one of them, so an unknown key is an
error naming the key and no config object changes once loaded.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OneOf(Strict):
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
