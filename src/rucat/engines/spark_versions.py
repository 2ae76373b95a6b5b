"""Which Spark versions an installation offers, and where each one's SPARK_HOME is.

The Spark that ships with the installed pyspark (4.x bundles the Spark Connect
server jar) is offered wherever a platform runs engines on this machine; its
SPARK_HOME is the pyspark package folder, which holds ``bin/spark-submit``.
These functions read the config and the installed pyspark only, never a
platform, so the server can list and check versions before anything runs.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path

from rucat.domain.errors import ConfigError, InvalidRequest


@functools.cache
def bundled_spark_home() -> Path:
    """SPARK_HOME of the installed pyspark: its package folder (has bin/spark-submit)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise ConfigError("pyspark is not installed: it provides the default Spark")
    return Path(spec.origin).parent


@functools.cache
def bundled_spark_version() -> str:
    """The Spark version that ships with the installed pyspark (read once: the
    package metadata lookup costs more than the rest of a POST /engine)."""
    try:
        return importlib.metadata.version("pyspark")
    except importlib.metadata.PackageNotFoundError as e:
        raise ConfigError("pyspark is not installed: it provides the default Spark") from e


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return ()


def _sorted_versions(versions: Iterable[str]) -> list[str]:
    return sorted(set(versions), key=lambda v: (_version_key(v), v))


def offered_versions(installed: Iterable[str], *, bundled: bool) -> list[str]:
    """The Spark versions of `installed` (and the installed pyspark's when `bundled`),
    oldest first."""
    return _sorted_versions([*([bundled_spark_version()] if bundled else []), *installed])


def spark_home_for(version: str, spark_homes: Mapping[str, str]) -> Path:
    """SPARK_HOME of `version` on a platform that runs engines on this machine.

    A SPARK_HOME named in config wins over the bundled pyspark of the same version.
    """
    if version in spark_homes:
        return Path(spark_homes[version])
    if version == bundled_spark_version():
        return bundled_spark_home()
    available = ", ".join(_sorted_versions([bundled_spark_version(), *spark_homes]))
    raise InvalidRequest(f"Spark {version} is not available; available: {available}")


def major_version(version: str) -> int:
    """The major of a Spark version ("4.0.1" -> 4); 0 when it does not start with one."""
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0
