"""Engine conf policies: which confs a user may set, as ordered rules. Pure, no I/O.

A user's confs reach the engine's launcher (spark-submit), and on Kubernetes
Spark builds executor pods from them: one conf can mount the node's disk or
run as another service account. A denylist of exact keys cannot keep up, so
a policy is a list of rules, each a glob pattern on the conf key
(`fnmatch`-style, case-sensitive as Spark's keys are) and an action:

- ``allow``: any value;
- ``deny``: refused;
- ``fixed``: Rucat sets the value and the user may not. Without a value the
  key is Rucat's own (the launcher sets it); with a value (literal patterns
  only) the policy sets it on every engine, and a user may only repeat it;
- ``max``: a count (``50``), a number (``0.5``) or a Spark size (``16g``);
  a larger or malformed value is refused. ``default`` (literal patterns only)
  is set when the user sets none, so a cap also holds when the key is absent.

The first rule whose pattern matches a key decides; a key no rule matches is
refused. A refusal names the key and the rule (pattern, action, where it
came from), and every refused key is reported at once.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from rucat.domain.errors import InvalidRequest
from rucat.domain.text import forbidden_character

#: Multipliers of Spark's size suffixes (JavaUtils.byteStringAs: binary, case-insensitive).
SIZE_UNITS: Mapping[str, int] = {
    "b": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
    "t": 1 << 40,
    "tb": 1 << 40,
    "p": 1 << 50,
    "pb": 1 << 50,
}
_SIZE_RE = re.compile(r"([0-9]+)([a-z]*)", re.ASCII)
_COUNT_RE = re.compile(r"[0-9]+", re.ASCII)
_NUMBER_RE = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", re.ASCII)
#: Java's String.trim(), which Spark applies to numbers and sizes: chars up to U+0020.
_JAVA_TRIM = "".join(chr(c) for c in range(0x21))
_MAX_REPORTED = 10
_CACHED_KEYS = 4096


class Action(enum.StrEnum):
    allow = "allow"
    deny = "deny"
    fixed = "fixed"
    max = "max"


class LimitKind(enum.StrEnum):
    integer = "integer"  # a whole number: executor instances, cores
    number = "number"  # a decimal: overhead factors
    size = "size"  # bytes, written as Spark sizes: 512m, 16g


class PolicyError(ValueError):
    """A rule is malformed (raised while building a policy, i.e. at config load)."""


@dataclass(frozen=True)
class Limit:
    """The bound of a ``max`` rule, in bytes for sizes."""

    kind: LimitKind
    amount: Fraction

    def __str__(self) -> str:
        if self.kind is LimitKind.size:
            return format_size(int(self.amount))
        return str(self.amount) if self.amount.denominator == 1 else str(float(self.amount))


def format_size(amount: int) -> str:
    """Bytes as the largest exact Spark size: 17179869184 -> ``16g``."""
    for suffix in ("p", "t", "g", "m", "k"):
        if amount and amount % SIZE_UNITS[suffix] == 0:
            return f"{amount // SIZE_UNITS[suffix]}{suffix}"
    return f"{amount}b"


def parse_size(text: str, *, unit: str | None) -> int:
    """Bytes of a Spark size string (``512m``, ``16g``, ``1024``); raises ValueError.

    As Spark: trimmed, case-insensitive, whole numbers only (``1.5g`` is an
    error in Spark too), binary units. A bare number is in `unit` (Spark reads
    ``spark.executor.memory=4096`` as MiB); without a unit it is refused.
    """
    found = _SIZE_RE.fullmatch(text.strip(_JAVA_TRIM).lower())
    if found is None:
        raise ValueError(f"{text!r} is not a size such as '512m' or '16g'")
    digits, suffix = found.groups()
    if not suffix:
        if unit is None:
            raise ValueError(f"{text!r} has no unit; write it as a size such as '512m' or '16g'")
        suffix = unit
    if suffix not in SIZE_UNITS:
        raise ValueError(f"{text!r} has an unknown size unit {suffix!r} (b, k, m, g, t, p)")
    return int(digits) * SIZE_UNITS[suffix]


def parse_limit(text: str) -> Limit:
    """The bound written in a ``max`` rule: ``50`` (count), ``0.5`` (number), ``16g`` (size)."""
    cleaned = text.strip(_JAVA_TRIM)
    if _COUNT_RE.fullmatch(cleaned):
        return Limit(LimitKind.integer, Fraction(int(cleaned)))
    if _NUMBER_RE.fullmatch(cleaned):
        return Limit(LimitKind.number, Fraction(cleaned))
    try:
        return Limit(LimitKind.size, Fraction(parse_size(cleaned, unit=None)))
    except ValueError as e:
        raise PolicyError(
            f"limit {text!r} is not a count (50), a number (0.5) or a size (16g)"
        ) from e


def parse_amount(text: str, kind: LimitKind, *, unit: str | None) -> Fraction:
    """A user's value read as `kind`; raises ValueError saying what is wrong.

    Stricter than Spark where Spark is lax (no signs, exponents, NaN or
    Infinity; no fractions for counts): a value Rucat cannot bound is refused.
    """
    cleaned = text.strip(_JAVA_TRIM)
    if kind is LimitKind.integer:
        if not _COUNT_RE.fullmatch(cleaned):
            raise ValueError(f"{text!r} is not a whole number")
        return Fraction(int(cleaned))
    if kind is LimitKind.number:
        if not _NUMBER_RE.fullmatch(cleaned):
            raise ValueError(f"{text!r} is not a plain decimal number")
        return Fraction(cleaned)
    return Fraction(parse_size(cleaned, unit=unit))


def is_literal(pattern: str) -> bool:
    """Whether a pattern names one key (no glob characters)."""
    return not any(c in pattern for c in "*?[")


@dataclass(frozen=True)
class Rule:
    """One rule of a policy. `origin` says where it comes from, for refusals."""

    pattern: str
    action: Action
    value: str | None = None  # fixed: the value set; max: the limit
    default: str | None = None  # max: set when the user sets none
    unit: str | None = None  # max on sizes: the unit of a bare number ("m")
    origin: str = "engine_policy"
    _limit: Limit | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.action is Action.max and self.value is not None:
            object.__setattr__(self, "_limit", parse_limit(self.value))
        if not self.pattern:
            raise PolicyError("a rule's pattern must be non-empty")
        if forbidden_character(self.pattern) is not None:
            raise PolicyError(f"pattern {self.pattern!r} holds control or format characters")
        if self.action is Action.max:
            if self.value is None:
                raise PolicyError(f"max rule {self.pattern!r} needs a value (its limit)")
            limit = parse_limit(self.value)
            if self.unit is not None:
                if limit.kind is not LimitKind.size:
                    raise PolicyError(f"max rule {self.pattern!r}: unit is for size limits only")
                if self.unit not in SIZE_UNITS:
                    raise PolicyError(f"max rule {self.pattern!r}: unknown unit {self.unit!r}")
            if self.default is not None:
                if not is_literal(self.pattern):
                    raise PolicyError(f"max rule {self.pattern!r}: a default needs a literal key")
                refused = self.refusal(self.pattern, self.default)
                if refused is not None:
                    raise PolicyError(f"max rule {self.pattern!r}: default {refused}")
        elif self.default is not None or self.unit is not None:
            raise PolicyError(
                f"{self.action} rule {self.pattern!r}: default and unit belong to max rules"
            )
        if self.action is Action.fixed and self.value is not None:
            if not is_literal(self.pattern):
                raise PolicyError(f"fixed rule {self.pattern!r}: a value needs a literal key")
        elif self.action in (Action.allow, Action.deny) and self.value is not None:
            raise PolicyError(f"{self.action} rule {self.pattern!r} takes no value")

    @property
    def limit(self) -> Limit | None:
        return self._limit

    def matches(self, key: str) -> bool:
        return fnmatch.fnmatchcase(key, self.pattern)

    def describe(self) -> str:
        """``rule 'spark.kubernetes.*' (deny) of the Kubernetes default policy``."""
        what = f"max {self.limit}" if self.action is Action.max else str(self.action)
        return f"rule {self.pattern!r} ({what}) of {self.origin}"

    def refusal(self, key: str, value: str) -> str | None:
        """Why this (matching) rule refuses `value` for `key`, or None if it allows it."""
        if self.action is Action.allow:
            return None
        if self.action is Action.deny:
            return f"config {key!r} is not allowed: {self.describe()}"
        if self.action is Action.fixed:
            if self.value is None:
                return f"config {key!r} is reserved: Rucat sets it ({self.describe()})"
            if value == self.value:
                return None
            return f"config {key!r} is fixed to {self.value!r} by {self.describe()}"
        limit = self.limit
        assert limit is not None
        try:
            amount = parse_amount(value, limit.kind, unit=self.unit)
        except ValueError as e:
            return f"config {key!r}: {e}, as {self.describe()} needs"
        if amount > limit.amount:
            return f"config {key!r}={value!r} is above the limit of {self.describe()}"
        return None


@dataclass(frozen=True)
class Policy:
    """Ordered rules; the first match decides, and unmatched keys are refused."""

    rules: tuple[Rule, ...]
    # One regex of every rule's pattern, in order: the regex engine tries the
    # alternatives left to right, so the first full match is the first rule's.
    _matcher: re.Pattern[str] = field(init=False, repr=False, compare=False)
    # The rule of keys seen before (the same few keys come in most requests).
    _decided: dict[str, Rule | None] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        alternatives = "|".join(
            f"(?P<r{i}>{fnmatch.translate(rule.pattern)})" for i, rule in enumerate(self.rules)
        )
        object.__setattr__(self, "_matcher", re.compile(alternatives or "(?!)"))

    def rule_for(self, key: str) -> Rule | None:
        cache = self._decided
        if key in cache:
            return cache[key]
        found = self._matcher.match(key)
        rule = (
            None
            if found is None or found.lastgroup is None
            else self.rules[int(found.lastgroup[1:])]
        )
        if len(cache) >= _CACHED_KEYS:
            cache.clear()  # keys are user input: the cache stays bounded
        cache[key] = rule
        return rule

    def refusal(self, key: str, value: str) -> str | None:
        """Why `key`=`value` is refused, or None when the policy allows it."""
        rule = self.rule_for(key)
        if rule is None:
            return f"config {key!r} is not allowed: no rule of the engine policy allows it"
        return rule.refusal(key, value)

    def check(self, configs: Mapping[str, str], *, context: str = "") -> None:
        """Raise InvalidRequest naming every refused key and its rule, sorted by key
        (after `context`, which says what was refused)."""
        refused = [
            why for key in sorted(configs) if (why := self.refusal(key, configs[key])) is not None
        ]
        if refused:
            shown = "; ".join(refused[:_MAX_REPORTED])
            more = len(refused) - _MAX_REPORTED
            raise InvalidRequest(context + shown + (f"; and {more} more" if more > 0 else ""))

    def settled(self, configs: Mapping[str, str]) -> dict[str, str]:
        """The confs to store: `configs` plus the values the policy sets (fixed
        values, defaults of max rules). Raises InvalidRequest as `check` does.
        """
        self.check(configs)
        out = dict(configs)
        for rule in self.rules:
            preset = rule.value if rule.action is Action.fixed else rule.default
            if (
                preset is not None
                and rule.pattern not in out
                and self.rule_for(rule.pattern) is rule
            ):
                out[rule.pattern] = preset
        return out


def policy_of(*layers: Iterable[Rule]) -> Policy:
    """One policy from layers of rules, checked in the order given."""
    return Policy(tuple(rule for layer in layers for rule in layer))
