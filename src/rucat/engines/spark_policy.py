"""The building blocks of Spark engines' conf policies, and the effective policy.

The rules mechanism is in rucat.domain.policy; this module holds the Spark
knowledge: which Spark confs load code or change the process (`CODE`), what
ordinary jobs set (`ORDINARY`), resource caps. Each platform's built-in
default is assembled from these in its offer (``platforms/<name>/offer.py``),
which says why it differs; ``platforms/offer.py`` layers the effective policy.

S3A where the cluster is shared: ``spark.hadoop.fs.s3a.*`` is allowed (keys,
endpoints, tuning) except the credential-provider and signer classes and
assumed roles (in `CODE`), which make the engine use credentials of the node
or pod it runs on instead of the ones the user brought.
"""

from __future__ import annotations

from rucat.domain.policy import Action, Rule


def rules(origin: str, *specs: tuple[str, Action] | tuple[str, Action, str]) -> list[Rule]:
    out = []
    for spec in specs:
        pattern, action, *rest = spec
        value = rest[0] if rest else None
        out.append(Rule(pattern, action, value=value, origin=origin))
    return out


def size_cap(origin: str, pattern: str, limit: str) -> Rule:
    # Spark reads a bare number in its memory confs as MiB.
    return Rule(pattern, Action.max, value=limit, unit="m", origin=origin)


#: Code loading and process environment: refused wherever the cluster is shared.
CODE = (
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
ORDINARY = (
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


def resource_caps(origin: str) -> list[Rule]:
    """Resource caps for engines on a shared cluster."""
    return [
        size_cap(origin, "spark.executor.memory", "16g"),
        size_cap(origin, "spark.executor.memoryOverhead", "8g"),
        size_cap(origin, "spark.executor.pyspark.memory", "16g"),
        size_cap(origin, "spark.driver.memory", "16g"),
        size_cap(origin, "spark.driver.memoryOverhead", "8g"),
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
