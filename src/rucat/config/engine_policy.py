"""The `engine_policy` section: the rules that decide which engine confs users may
set, checked into `rucat.domain.policy` rules once, when the config loads."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, model_validator

from rucat.config.base import Strict
from rucat.domain.policy import Action, PolicyError, Rule


def _text_of_number(value: object) -> object:
    # `"value": 50` in JSON means the limit "50"; booleans are not limits.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


_Text = Annotated[str, BeforeValidator(_text_of_number)]


class PolicyRuleConfig(Strict):
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


class EnginePolicyConfig(Strict):
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
