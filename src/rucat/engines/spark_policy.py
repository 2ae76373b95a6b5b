"""The built-in conf policies of Spark engines, one per platform, and the effective policy.

The rules mechanism is in rucat.domain.policy; this module holds the Spark
knowledge: which Spark confs are dangerous where. The effective policy of a
platform is, in order:

1. Rucat's reserved confs on that platform (``fixed``, no value: the launcher
   sets them); these hold in every mode;
2. the operator's ``engine_policy.rules``;
3. the platform's built-in default below, unless ``engine_policy.mode`` is
   ``replace``.

Keys no rule matches are refused.

Why the defaults differ per platform:

- Local engines run as Rucat's own OS user on Rucat's host, and a user's
  Python UDF runs there anyway: a conf cannot grant more than the code
  already has. The default refuses only what would hide secrets less
  (``spark.redaction.*``: the Spark UI shows the engine's token without it)
  and allows the rest.
- Kubernetes builds executor pods from confs, so a conf can mount the node's
  disk (hostPath volumes), another engine's Secret, run as another service
  account, pick another image or node, or load code before any user code
  runs (agents in Java options, jars, plugins, class paths, environment
  variables such as LD_PRELOAD or JAVA_TOOL_OPTIONS, resource discovery
  scripts). The default is an allowlist of what ordinary jobs need, with
  caps on resources.
- Standalone executors run on a shared cluster's workers: the same
  allowlist idea, with the standalone resource confs.

S3A on Kubernetes and Standalone: ``spark.hadoop.fs.s3a.*`` is allowed (keys,
endpoints, tuning) except the credential-provider and signer classes and
assumed roles, which make the engine use credentials of the node or pod it
runs on instead of the ones the user brought.
"""

from __future__ import annotations

from collections.abc import Iterable

from rucat.config import EnginePolicyConfig
from rucat.domain.policy import Action, Policy, Rule, policy_of
from rucat.engines.spark import reserved_confs

RESERVED_ORIGIN = "Rucat's reserved confs"
CONFIG_ORIGIN = "the engine_policy config"


def _rules(origin: str, *specs: tuple[str, Action] | tuple[str, Action, str]) -> list[Rule]:
    out = []
    for spec in specs:
        pattern, action, *rest = spec
        value = rest[0] if rest else None
        out.append(Rule(pattern, action, value=value, origin=origin))
    return out


def _size(origin: str, pattern: str, limit: str) -> Rule:
    # Spark reads a bare number in its memory confs as MiB.
    return Rule(pattern, Action.max, value=limit, unit="m", origin=origin)


#: Code loading and process environment: refused wherever the cluster is shared.
_CODE = (
    ("*.extraJavaOptions", Action.deny),
    ("*.defaultJavaOptions", Action.deny),
    ("*.extraClassPath", Action.deny),
    ("*.extraLibraryPath", Action.deny),
    ("*.podTemplateFile", Action.deny),
    ("*.podTemplateContainerName", Action.deny),
    ("spark.jars*", Action.deny),
    ("spark.plugins*", Action.deny),
    ("spark.files", Action.deny),
    ("spark.archives", Action.deny),
    ("spark.pyFiles", Action.deny),
    ("spark.submit.*", Action.deny),
    ("spark.redaction.*", Action.deny),
    ("spark.executorEnv.*", Action.deny),
    ("spark.extraListeners", Action.deny),
    ("spark.driver.resource.*", Action.deny),
    ("spark.executor.resource.*", Action.deny),
    ("*.discoveryScript", Action.deny),
    ("spark.sql.hive.metastore.jars*", Action.deny),
    ("spark.hadoop.*.impl", Action.deny),
    ("spark.hadoop.fs.s3a.*provider*", Action.deny),
    ("spark.hadoop.fs.s3a.*signer*", Action.deny),
    ("spark.hadoop.fs.s3a.*signing*", Action.deny),
    ("spark.hadoop.fs.s3a.assumed.role.*", Action.deny),
)

#: What ordinary jobs set, once the dangerous keys above are out of the way.
_ORDINARY = (
    ("spark.sql.*", Action.allow),
    ("spark.dynamicAllocation.*", Action.allow),
    ("spark.hadoop.fs.s3a.*", Action.allow),
    ("spark.log.level", Action.allow),
    ("spark.default.parallelism", Action.allow),
    ("spark.task.cpus", Action.allow),
    ("spark.task.maxFailures", Action.allow),
    ("spark.speculation*", Action.allow),
    ("spark.locality.wait*", Action.allow),
    ("spark.memory.fraction", Action.allow),
    ("spark.memory.storageFraction", Action.allow),
    ("spark.memory.offHeap.enabled", Action.allow),
    ("spark.network.timeout", Action.allow),
    ("spark.executor.heartbeatInterval", Action.allow),
    ("spark.driver.maxResultSize", Action.allow),
    ("spark.broadcast.*", Action.allow),
    ("spark.rdd.compress", Action.allow),
    ("spark.shuffle.compress", Action.allow),
    ("spark.shuffle.spill.compress", Action.allow),
    ("spark.io.compression.*", Action.allow),
    ("spark.kryoserializer.buffer*", Action.allow),
    ("spark.cleaner.*", Action.allow),
    ("spark.python.worker.*", Action.allow),
    ("spark.connect.session.*", Action.allow),
)


def _caps(origin: str) -> list[Rule]:
    """Resource caps shared by Kubernetes and Standalone."""
    return [
        _size(origin, "spark.executor.memory", "16g"),
        _size(origin, "spark.executor.memoryOverhead", "8g"),
        _size(origin, "spark.executor.pyspark.memory", "16g"),
        _size(origin, "spark.driver.memory", "16g"),
        _size(origin, "spark.driver.memoryOverhead", "8g"),
        Rule("spark.memory.offHeap.size", Action.max, value="16g", origin=origin),
        Rule("spark.executor.cores", Action.max, value="16", origin=origin),
        Rule("spark.driver.cores", Action.max, value="8", origin=origin),
        Rule("spark.executor.instances", Action.max, value="50", origin=origin),
        # Without a cap dynamic allocation has no upper bound at all (Int.MaxValue).
        Rule(
            "spark.dynamicAllocation.maxExecutors",
            Action.max,
            value="50",
            default="50",
            origin=origin,
        ),
        Rule("spark.dynamicAllocation.initialExecutors", Action.max, value="50", origin=origin),
        Rule("spark.dynamicAllocation.minExecutors", Action.max, value="50", origin=origin),
        Rule("spark.executor.memoryOverheadFactor", Action.max, value="1.0", origin=origin),
        Rule("spark.driver.memoryOverheadFactor", Action.max, value="1.0", origin=origin),
    ]


def _kubernetes() -> list[Rule]:
    origin = "the Kubernetes default policy"
    return [
        *_rules(
            origin,
            # The short vetted list of spark.kubernetes.* keys: pod CPU and overhead.
            ("spark.kubernetes.executor.request.cores", Action.allow),
            ("spark.kubernetes.executor.limit.cores", Action.allow),
            ("spark.kubernetes.driver.request.cores", Action.allow),
            ("spark.kubernetes.driver.limit.cores", Action.allow),
        ),
        Rule("spark.kubernetes.memoryOverheadFactor", Action.max, value="1.0", origin=origin),
        # Everything else there shapes pods: volumes (hostPath), secrets, secretKeyRef
        # env, service accounts, images, node selectors, tolerations, pod templates.
        *_rules(origin, ("spark.kubernetes.*", Action.deny), *_CODE),
        *_caps(origin),
        *_rules(origin, *_ORDINARY),
    ]


def _standalone() -> list[Rule]:
    origin = "the Standalone default policy"
    return [
        *_rules(
            origin,
            # Rucat places drivers: where they listen is its choice.
            ("spark.driver.port", Action.fixed),
            ("spark.driver.blockManager.port", Action.fixed),
            ("spark.blockManager.port", Action.fixed),
            ("spark.ui.port", Action.fixed),
            ("spark.standalone.*", Action.deny),
            ("spark.deploy.*", Action.deny),
            ("spark.worker.*", Action.deny),
            *_CODE,
        ),
        Rule("spark.cores.max", Action.max, value="64", origin=origin),
        *_caps(origin),
        *_rules(origin, *_ORDINARY),
    ]


def _local() -> list[Rule]:
    origin = "the Local default policy"
    return _rules(origin, ("spark.redaction.*", Action.deny), ("*", Action.allow))


_DEFAULTS = {"Local": _local, "Standalone": _standalone, "Kubernetes": _kubernetes}


def default_rules(platform_variant: str) -> list[Rule]:
    """The built-in default policy of `platform_variant` (without the reserved layer)."""
    reserved_confs(platform_variant)  # raises ConfigError for an unknown platform
    return _DEFAULTS[platform_variant]()


def reserved_rules(platform_variant: str) -> list[Rule]:
    return [
        Rule(key, Action.fixed, origin=f"{RESERVED_ORIGIN} on the {platform_variant} platform")
        for key in sorted(reserved_confs(platform_variant))
    ]


def engine_policy(platform_variant: str, config: EnginePolicyConfig | None = None) -> Policy:
    """The effective policy of `platform_variant`: reserved, then the config's, then
    the default's rules (unless the config replaces the default)."""
    config = config or EnginePolicyConfig()
    layers: list[Iterable[Rule]] = [reserved_rules(platform_variant), config.domain_rules()]
    if config.mode == "extend":
        layers.append(default_rules(platform_variant))
    return policy_of(*layers)
