"""The pieces of a Spark Connect server's launch: its argv, its log4j2 config, its ports.

`SparkKind.launch` (``engines/spark.py``) assembles these into a `Launch`. The
port a server bound is read from its log, so the log4j2 config written here
pins the loggers of those lines at INFO whatever the user's log level.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from rucat.domain.engine import EngineId
from rucat.engines.kind import CONNECT, UI, PortRule, ui_path

#: The main class of the Spark Connect server, launched through spark-submit.
CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"

#: spark-submit's placeholder "primary resource" for classes already on Spark's classpath.
SPARK_INTERNAL = "spark-internal"

#: The Spark Connect server's default port (only used where a platform fixes one).
DEFAULT_CONNECT_PORT = 15002

#: How a platform finds the port a Spark Connect server bound: in its log.
CONNECT_PORT_RULE = PortRule(
    CONNECT,
    patterns=(
        re.compile(r"Spark Connect server started at: \S*:(\d+)"),
        re.compile(r"Successfully started service '[^']*SparkConnectService[^']*' on port (\d+)"),
    ),
)

#: How a platform finds the port the driver's Spark UI bound (spark.ui.port=0): in its log.
UI_PORT_RULE = PortRule(
    UI,
    patterns=(
        re.compile(r"Successfully started service 'SparkUI' on port (\d+)"),
        re.compile(r"Bound SparkUI to \S+, and started at https?://\S*:(\d+)"),
    ),
)


def app_name(engine_id: EngineId) -> str:
    """The Spark application name of an engine (shown in the Spark UI and logs)."""
    return f"rucat-{engine_id}"


#: The logger of the line that names the bound Connect port (see `bound_connect_port`).
CONNECT_SERVER_LOGGER = "org.apache.spark.sql.connect.service.SparkConnectServer"
#: The logger of the line that names the Spark UI's bound port (see `bound_ui_port`).
SPARK_UI_LOGGER = "org.apache.spark.ui.SparkUI"
_LOG4J2_CONFIG_FILES = (
    "log4j2.properties",
    "log4j2.xml",
    "log4j2.yaml",
    "log4j2.yml",
    "log4j2.json",
)
_LOG4J2_DEFAULTS = "org/apache/spark/log4j2-defaults.properties"
_LOG4J2_FALLBACK = """\
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
"""


def has_log4j2_config(conf_dir: Path) -> bool:
    """Whether a Spark conf dir carries its own log4j2 configuration."""
    return any((conf_dir / name).is_file() for name in _LOG4J2_CONFIG_FILES)


def log4j2_config_text(spark_home: Path) -> str:
    """Spark's default log4j2 profile, with the Connect server's and the UI's loggers at INFO.

    Platforms read the bound port from that logger's line; pinned, it survives
    a user's quieter root level (``spark.log.level=WARN``). The profile is read
    from the Spark jars of `spark_home`, so logs look as Spark's own defaults.
    """
    text = _LOG4J2_FALLBACK
    for jar in sorted((spark_home / "jars").glob("spark-*.jar")):
        if not jar.name.startswith(("spark-common-utils_", "spark-core_")):
            continue
        try:
            with zipfile.ZipFile(jar) as archive:
                text = archive.read(_LOG4J2_DEFAULTS).decode("utf-8")
            break
        except (KeyError, OSError, zipfile.BadZipFile):
            continue
    return (
        text.rstrip("\n")
        + "\n\n# Rucat reads the Spark Connect port from this logger's lines.\n"
        + f"logger.rucat_connect.name = {CONNECT_SERVER_LOGGER}\n"
        + "logger.rucat_connect.level = info\n"
        + "# ... and the Spark UI's port from this one's.\n"
        + f"logger.rucat_ui.name = {SPARK_UI_LOGGER}\n"
        + "logger.rucat_ui.level = info\n"
    )


def spark_submit(spark_home: Path) -> Path:
    return spark_home / "bin" / "spark-submit"


def connect_server_argv(
    spark_home: Path,
    *,
    master: str,
    confs: Mapping[str, str],
    properties_file: Path,
    extra_args: Iterable[str] = (),
) -> list[str]:
    """The argv (never a shell line) that runs a Spark Connect server with spark-submit.

    `confs` become ``--conf key=value`` pairs (an argv element each, so values
    are never interpreted). Secrets go in `properties_file`, not in `confs`.
    """
    argv = [
        str(spark_submit(spark_home)),
        "--class",
        CONNECT_SERVER_CLASS,
        "--master",
        master,
        "--properties-file",
        str(properties_file),
        *extra_args,
    ]
    for key, value in confs.items():
        argv += ["--conf", f"{key}={value}"]
    argv.append(SPARK_INTERNAL)
    return argv


def bound_connect_port(log_text: str) -> int | None:
    """The port the Spark Connect server bound, from its log; None before it logs it."""
    return CONNECT_PORT_RULE.find(log_text)


def bound_ui_port(log_text: str) -> int | None:
    """The port the driver's Spark UI bound, from its log; None before it logs it
    (or when the UI is off)."""
    return UI_PORT_RULE.find(log_text)


def ui_proxy_base(engine_id: EngineId) -> str:
    """The path prefix under which Rucat serves the engine's Spark UI (its
    ``spark.ui.proxyBase``: Spark writes its links under it)."""
    return ui_path(engine_id)
