"""A stand-in Spark: real processes that behave as a test asks, in milliseconds, no Java.

Named as a SPARK_HOME in a Local platform's config (``spark_homes``) under
FAKE_VERSION, the Local platform runs its ``bin/spark-submit`` exactly as it
runs Spark's (same argv, properties file, supervisor, log). By default that
is a tiny real Spark Connect gRPC server (tests/support/fake_spark_server.py)
that answers the monitor's readiness probe and honours the engine's token, so
engines go Running, stop, die and are adopted for real; confs make it exit,
ignore SIGTERM, flood its log or open a port that never speaks Spark Connect.

The home also has a ``bin/java`` (it only prints a version), so a Local
platform with ``java_home`` set to the home passes its checks where no Java
is installed: `fake_local_config` gives both settings.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.support.proc import pids_where

FAKE_VERSION = "9.9.9"

_SERVER = Path(__file__).with_name("fake_spark_server.py")

_JAVA = """\
#!/bin/sh
echo 'openjdk version "17.0.0" (rucat fake java: runs nothing)' >&2
"""


def make_fake_spark_home(folder: Path) -> Path:
    """A SPARK_HOME under `folder` whose bin/spark-submit is the fake Spark Connect
    server (see tests/support/fake_spark_server.py for the modes it takes)."""
    home = folder / "fake-spark"
    (home / "bin").mkdir(parents=True)
    script = home / "bin" / "spark-submit"
    script.write_text(f"#!{sys.executable}\n" + _SERVER.read_text(encoding="utf-8"))
    script.chmod(0o755)
    java = home / "bin" / "java"
    java.write_text(_JAVA)
    java.chmod(0o755)
    return home


def fake_local_config(folder: Path, **fields: Any) -> dict[str, Any]:
    """The ``platform`` section of a config file (JSON) whose Local platform runs
    FAKE_VERSION engines on a fake SPARK_HOME made under `folder`, with its fake
    Java. `fields` are further LocalPlatformConfig keys."""
    home = make_fake_spark_home(folder)
    return {"Local": {"spark_homes": {FAKE_VERSION: str(home)}, "java_home": str(home), **fields}}


def fake_server_pids(engine_id: str) -> list[int]:
    """Pids of live fake Spark Connect servers of the engine (not their supervisors,
    not a stubborn one's child)."""
    marker = engine_id.encode()
    return pids_where(
        lambda args: (
            len(args) > 1
            and args[1].endswith(b"fake-spark/bin/spark-submit")
            and any(marker in a for a in args)
        )
    )
