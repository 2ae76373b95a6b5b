"""Engine conf policies: ordered glob rules, first match decides, limits parsed as Spark does."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rucat.config import (
    EnginePolicyConfig,
    KubernetesPlatformConfig,
    LocalPlatformConfig,
    PlatformConfig,
    StandalonePlatformConfig,
)
from rucat.domain.errors import InvalidRequest
from rucat.domain.policy import (
    Action,
    PolicyError,
    Rule,
    format_size,
    parse_size,
    policy_of,
)
from rucat.platforms.offer import PlatformOffer, platform_offer


def offer(variant: str) -> PlatformOffer:
    configs = {
        "Local": PlatformConfig(Local=LocalPlatformConfig()),
        "Standalone": PlatformConfig(Standalone=StandalonePlatformConfig()),
        "Kubernetes": PlatformConfig(Kubernetes=KubernetesPlatformConfig()),
    }
    return platform_offer(configs[variant])


MEMORY = Rule("spark.executor.memory", Action.max, value="16g", unit="m", origin="t")
STRICT_MEMORY = Rule("spark.driver.memory", Action.max, value="2g", origin="t")
INSTANCES = Rule("spark.executor.instances", Action.max, value="50", origin="t")
FACTOR = Rule("spark.executor.memoryOverheadFactor", Action.max, value="0.5", origin="t")
POLICY = policy_of(
    [
        Rule("spark.app.name", Action.fixed, origin="t"),
        Rule("spark.sql.ansi.enabled", Action.fixed, value="true", origin="t"),
        Rule("spark.kubernetes.executor.request.cores", Action.allow, origin="t"),
        Rule("spark.kubernetes.*", Action.deny, origin="t"),
        MEMORY,
        STRICT_MEMORY,
        INSTANCES,
        FACTOR,
        Rule("spark.sql.?ive.*", Action.deny, origin="t"),
        Rule("spark.sql.*", Action.allow, origin="t"),
    ]
)

# (case id, key, value, the refusal's fragment or None when allowed)
DECISIONS: list[tuple[str, str, str, str | None]] = [
    ("allowed-by-glob", "spark.sql.shuffle.partitions", "8", None),
    ("first-match-wins-over-a-later-deny", "spark.kubernetes.executor.request.cores", "1", None),
    ("denied-by-glob", "spark.kubernetes.executor.secrets.x", "/s", "'spark.kubernetes.*' (deny)"),
    ("question-mark-glob", "spark.sql.hive.metastore.jars", "maven", "'spark.sql.?ive.*' (deny)"),
    ("glob-is-case-sensitive", "spark.SQL.x", "1", "no rule"),
    ("unmatched-is-refused", "spark.other", "1", "no rule of the engine policy allows it"),
    ("reserved", "spark.app.name", "mine", "is reserved"),
    ("fixed-value-repeated", "spark.sql.ansi.enabled", "true", None),
    ("fixed-value-changed", "spark.sql.ansi.enabled", "false", "fixed to 'true'"),
    ("size-at-limit", "spark.executor.memory", "16g", None),
    ("size-upper-case", "spark.executor.memory", "16G", None),
    ("size-long-suffix", "spark.executor.memory", "16gb", None),
    ("size-trimmed-as-java", "spark.executor.memory", " 8g\t", None),
    ("size-smaller-unit", "spark.executor.memory", "16777216k", None),
    ("size-just-over", "spark.executor.memory", "16777217k", "above the limit"),
    ("size-over", "spark.executor.memory", "17g", "above the limit"),
    ("size-bare-number-in-the-rules-unit", "spark.executor.memory", "16384", None),
    ("size-bare-number-over", "spark.executor.memory", "16385", "above the limit"),
    ("size-bare-number-without-unit", "spark.driver.memory", "1024", "has no unit"),
    ("size-fraction", "spark.executor.memory", "1.5g", "not a size"),
    ("size-negative", "spark.executor.memory", "-1g", "not a size"),
    ("size-unknown-unit", "spark.executor.memory", "1x", "unknown size unit"),
    ("size-fullwidth-digits", "spark.executor.memory", "\uff11g", "not a size"),
    ("size-underscores", "spark.executor.memory", "1_0g", "not a size"),
    ("size-empty", "spark.executor.memory", "", "not a size"),
    ("size-huge", "spark.executor.memory", "9" * 40 + "p", "above the limit"),
    ("integer-at-limit", "spark.executor.instances", "50", None),
    ("integer-zero", "spark.executor.instances", "0", None),
    ("integer-over", "spark.executor.instances", "51", "above the limit"),
    ("integer-negative", "spark.executor.instances", "-1", "not a whole number"),
    ("integer-plus-sign", "spark.executor.instances", "+5", "not a whole number"),
    ("integer-fraction", "spark.executor.instances", "5.0", "not a whole number"),
    ("integer-hex", "spark.executor.instances", "0x10", "not a whole number"),
    ("integer-words", "spark.executor.instances", "many", "not a whole number"),
    ("number-at-limit", "spark.executor.memoryOverheadFactor", "0.5", None),
    ("number-integer", "spark.executor.memoryOverheadFactor", "0", None),
    ("number-leading-dot", "spark.executor.memoryOverheadFactor", ".25", None),
    ("number-over", "spark.executor.memoryOverheadFactor", "0.5000001", "above the limit"),
    ("number-exponent", "spark.executor.memoryOverheadFactor", "1e-9", "not a plain decimal"),
    ("number-nan", "spark.executor.memoryOverheadFactor", "NaN", "not a plain decimal"),
    ("number-infinity", "spark.executor.memoryOverheadFactor", "-Infinity", "not a plain"),
]


@pytest.mark.parametrize(
    ("key", "value", "refusal"), [c[1:] for c in DECISIONS], ids=[c[0] for c in DECISIONS]
)
def test_the_first_matching_rule_decides(key: str, value: str, refusal: str | None) -> None:
    found = POLICY.refusal(key, value)
    if refusal is None:
        assert found is None
    else:
        assert found is not None and refusal in found, found
        assert f"config {key!r}" in found


def test_a_refusal_names_the_key_the_pattern_the_kind_and_the_origin() -> None:
    assert POLICY.refusal("spark.executor.memory", "32g") == (
        "config 'spark.executor.memory'='32g' is above the limit of "
        "rule 'spark.executor.memory' (max 16g) of t"
    )


def test_settled_confs_carry_fixed_values_and_defaults_and_report_every_refusal() -> None:
    policy = policy_of(
        [
            Rule("spark.sql.ansi.enabled", Action.fixed, value="true", origin="t"),
            Rule("spark.x.max", Action.max, value="5", default="5", origin="t"),
            Rule("spark.*", Action.allow, origin="t"),
        ]
    )
    assert policy.settled({"spark.a": "1"}) == {
        "spark.a": "1",
        "spark.sql.ansi.enabled": "true",
        "spark.x.max": "5",
    }
    assert policy.settled({"spark.x.max": "2"})["spark.x.max"] == "2"
    many = {f"k{i:02}": "v" for i in range(12)}
    with pytest.raises(InvalidRequest) as e:
        policy.settled(many)
    assert e.value.message.startswith("config 'k00' is not allowed")
    assert e.value.message.endswith("; and 2 more")


def test_a_later_rule_for_a_key_an_earlier_rule_decides_sets_nothing() -> None:
    policy = policy_of(
        [
            Rule("spark.sql.*", Action.deny, origin="t"),
            Rule("spark.sql.ansi.enabled", Action.fixed, value="true", origin="t"),
        ]
    )
    assert policy.settled({}) == {}


# (case id, rule arguments, fragment of the error)
BAD_RULES: list[tuple[str, dict[str, str | None], str]] = [
    ("empty-pattern", {"pattern": "", "action": "allow"}, "non-empty"),
    ("control-in-pattern", {"pattern": "spark.\n*", "action": "allow"}, "control"),
    ("format-char-in-pattern", {"pattern": "spark.\u202e*", "action": "deny"}, "format"),
    ("max-without-limit", {"pattern": "a", "action": "max"}, "needs a value"),
    ("max-with-junk-limit", {"pattern": "a", "action": "max", "value": "lots"}, "not a count"),
    ("max-with-fractional-size", {"pattern": "a", "action": "max", "value": "1.5g"}, "not a"),
    ("unit-on-a-count", {"pattern": "a", "action": "max", "value": "5", "unit": "m"}, "size"),
    ("unknown-unit", {"pattern": "a", "action": "max", "value": "5g", "unit": "q"}, "unknown"),
    (
        "default-on-a-glob",
        {"pattern": "a.*", "action": "max", "value": "5", "default": "1"},
        "literal",
    ),
    (
        "default-over-the-limit",
        {"pattern": "a", "action": "max", "value": "5", "default": "6"},
        "default",
    ),
    ("value-on-allow", {"pattern": "a", "action": "allow", "value": "x"}, "takes no value"),
    ("value-on-deny", {"pattern": "a", "action": "deny", "value": "x"}, "takes no value"),
    ("fixed-value-on-a-glob", {"pattern": "a.*", "action": "fixed", "value": "x"}, "literal"),
    ("default-on-fixed", {"pattern": "a", "action": "fixed", "default": "x"}, "max rules"),
]


@pytest.mark.parametrize(
    ("args", "fragment"), [c[1:] for c in BAD_RULES], ids=[c[0] for c in BAD_RULES]
)
def test_a_malformed_rule_is_refused_when_the_policy_is_built(
    args: dict[str, str | None], fragment: str
) -> None:
    pattern = args.pop("pattern")
    action = Action(args.pop("action"))
    assert pattern is not None
    with pytest.raises(PolicyError, match=re.escape(fragment)):
        Rule(pattern, action, **args)


@pytest.mark.parametrize(
    ("text", "unit", "amount"),
    [("1", "m", 1 << 20), ("1b", None, 1), ("2K", None, 2048), ("3tb", None, 3 << 40)],
)
def test_spark_sizes_are_binary_and_case_insensitive(
    text: str, unit: str | None, amount: int
) -> None:
    assert parse_size(text, unit=unit) == amount


def test_sizes_print_in_their_largest_exact_unit() -> None:
    assert [format_size(n) for n in (1 << 34, 1536 << 20, 1000, 0)] == [
        "16g",
        "1536m",
        "1000b",
        "0b",
    ]


# --- the built-in defaults ----------------------------------------------------


@pytest.mark.parametrize("variant", ["Local", "Standalone", "Kubernetes"])
def test_every_platform_ships_a_default_that_refuses_redaction_changes(variant: str) -> None:
    policy = offer(variant).policy()
    found = policy.refusal("spark.redaction.regex", "x")
    assert found is not None and f"{variant} default policy" in found


@pytest.mark.parametrize("variant", ["Local", "Standalone", "Kubernetes"])
def test_rucats_reserved_confs_come_first_even_when_the_default_is_replaced(variant: str) -> None:
    config = EnginePolicyConfig.model_validate(
        {"mode": "replace", "rules": [{"pattern": "*", "action": "allow"}]}
    )
    policy = offer(variant).policy(config)
    for key in ("spark.master", "spark.connect.authenticate.token", "spark.app.name"):
        found = policy.refusal(key, "x")
        assert found is not None and "is reserved" in found
    assert policy.refusal("spark.jars", "x") is None


def test_the_standalone_default_reserves_master_and_driver_address() -> None:
    policy = offer("Standalone").policy()
    for key in ("spark.master", "spark.driver.host", "spark.driver.port"):
        found = policy.refusal(key, "1")
        assert found is not None and "is reserved" in found, key
    for key, value in (("spark.cores.max", "8"), ("spark.executor.cores", "2")):
        assert policy.refusal(key, value) is None
    assert policy.refusal("spark.executor.memory", "4g") is None
    assert policy.refusal("spark.cores.max", "65") is not None


KEY_PARTS = st.sampled_from(
    ["spark", "kubernetes", "executor", "driver", "sql", "memory", "request", "cores", "x", "*"]
)


@given(st.lists(KEY_PARTS, min_size=1, max_size=6).map(".".join))
def test_the_compiled_matcher_picks_the_first_rule_a_plain_scan_would(key: str) -> None:
    policy = offer("Kubernetes").policy()
    expected = next((rule for rule in policy.rules if rule.matches(key)), None)
    assert policy.rule_for(key) is expected
    assert policy.rule_for(key) is expected  # and again from the cache
