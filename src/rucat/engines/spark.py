"""Apache Spark served over Spark Connect: versions, reserved confs, launch spec, probe.

Everything a platform needs to know about Spark itself lives here, so that a
platform module only knows how to run processes or pods. The functions that
validate a request are pure (they read the config, never a platform), so the
server can refuse a bad engine with 400 before anything is stored.

The Spark that ships with the installed pyspark (4.x bundles the Spark Connect
server jar) is always available on the Local and Standalone platforms; its
SPARK_HOME is the pyspark package folder, which holds ``bin/spark-submit``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import re
import uuid
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from rucat.config import PlatformConfig
from rucat.domain.engine import CreateEngineRequest, EngineId, EngineType
from rucat.domain.errors import ConfigError, InvalidRequest
from rucat.domain.policy import Policy

#: The main class of the Spark Connect server, launched through spark-submit.
CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"

#: spark-submit's placeholder "primary resource" for classes already on Spark's classpath.
SPARK_INTERNAL = "spark-internal"

#: The Spark Connect server's default port (only used where a platform fixes one).
DEFAULT_CONNECT_PORT = 15002

# Keys Rucat sets itself; a user may not override them. Every platform owns the
# connect endpoint (port, address, token) and the application's identity.
_COMMON_RESERVED = frozenset(
    {
        "spark.app.name",
        "spark.app.id",
        "spark.connect.grpc.binding.port",
        "spark.connect.grpc.binding.address",
        "spark.connect.grpc.binding.host",  # newer Sparks' name for the address
        "spark.connect.authenticate.token",
        "spark.master",
        "spark.submit.deployMode",
        # The Spark UI is served under Rucat's /engine/<id>/sparkui/ (server/sparkui.py).
        "spark.ui.proxyBase",
    }
)

_RESERVED: dict[str, frozenset[str]] = {
    # Local processes: Rucat also chooses where the driver binds and advertises.
    # The UI binds a free port (0) that is read from the log like the Connect port.
    "Local": _COMMON_RESERVED | {"spark.driver.host", "spark.driver.bindAddress", "spark.ui.port"},
    "Standalone": _COMMON_RESERVED
    | {"spark.driver.host", "spark.driver.bindAddress", "spark.ui.port"},
    # Kubernetes: the seed's six, plus the endpoint, what names the pods, and the
    # ports the driver's service and network rules are built on.
    "Kubernetes": _COMMON_RESERVED
    | {
        "spark.driver.bindAddress",
        "spark.driver.blockManager.port",
        "spark.driver.extraJavaOptions",
        "spark.driver.host",
        "spark.driver.port",
        "spark.kubernetes.container.image",
        "spark.kubernetes.container.image.pullPolicy",
        "spark.kubernetes.driver.pod.name",
        "spark.kubernetes.executor.podNamePrefix",
        "spark.kubernetes.namespace",
        # The executor pod template holds executors to the restricted Pod Security profile.
        "spark.kubernetes.executor.podTemplateFile",
        "spark.kubernetes.executor.podTemplateContainerName",
        "spark.kubernetes.driver.reusePersistentVolumeClaim",
        "spark.ui.port",
        "spark.kubernetes.executor.disableConfigMap",
    },
}

#: Lines of the Spark Connect server's log that name the port it bound.
_BOUND_PORT_RES = (
    re.compile(r"Spark Connect server started at: \S*:(\d+)"),
    re.compile(r"Successfully started service '[^']*SparkConnectService[^']*' on port (\d+)"),
)

#: Lines of the driver's log that name the port its Spark UI bound.
_BOUND_UI_PORT_RES = (
    re.compile(r"Successfully started service 'SparkUI' on port (\d+)"),
    re.compile(r"Bound SparkUI to \S+, and started at https?://\S*:(\d+)"),
)


def reserved_confs(platform_variant: str) -> frozenset[str]:
    """The conf keys Rucat sets on `platform_variant` ("Local", "Kubernetes", ...)."""
    try:
        return _RESERVED[platform_variant]
    except KeyError as e:
        raise ConfigError(f"unknown platform {platform_variant!r}") from e


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


def available_versions(platform: PlatformConfig) -> list[str]:
    """The Spark versions `platform` can run, oldest first. Reads config only."""
    if platform.Local is not None:
        return _sorted_versions([bundled_spark_version(), *platform.Local.spark_homes])
    if platform.Standalone is not None:
        return _sorted_versions([bundled_spark_version(), *platform.Standalone.spark_homes])
    if platform.Kubernetes is not None:
        return _sorted_versions([*platform.Kubernetes.versions, *platform.Kubernetes.images])
    raise ConfigError("platform: no variant given")


def spark_home_for(version: str, spark_homes: Mapping[str, str]) -> Path:
    """SPARK_HOME of `version` on a process platform (Local, Standalone).

    A SPARK_HOME named in config wins over the bundled pyspark of the same version.
    """
    if version in spark_homes:
        return Path(spark_homes[version])
    if version == bundled_spark_version():
        return bundled_spark_home()
    available = ", ".join(_sorted_versions([bundled_spark_version(), *spark_homes]))
    raise InvalidRequest(f"Spark {version} is not available; available: {available}")


def validate_request(
    request: CreateEngineRequest, platform: PlatformConfig, *, policy: Policy | None = None
) -> CreateEngineRequest:
    """Refuse a Spark engine the configured platform cannot run; raises InvalidRequest.

    Returns the request to store: its confs as `policy` settles them (the
    platform's default policy when None; see rucat.engines.spark_policy).
    Pure: reads the config only, never contacts the platform.
    """
    if request.engine_type is not EngineType.Spark:
        raise InvalidRequest(f"engine type {request.engine_type} is not Spark")
    variant = platform.variant
    versions = available_versions(platform)
    if request.version not in versions:
        raise InvalidRequest(
            f"Spark {request.version} is not available on the {variant} platform; "
            f"available: {', '.join(versions)}"
        )
    if policy is None:
        from rucat.engines.spark_policy import engine_policy  # it builds on this module

        policy = engine_policy(variant)
    settled = policy.settled(request.configs)
    return request if settled == request.configs else replace(request, configs=settled)


def app_name(engine_id: EngineId) -> str:
    """The Spark application name of an engine (shown in the Spark UI and logs)."""
    return f"rucat-{engine_id}"


def connect_properties(*, token: str | None, address: str, port: int) -> dict[str, str]:
    """The confs that define the engine's Spark Connect endpoint.

    `port` 0 lets the server pick a free port; it logs the one it bound (see
    `bound_connect_port`). The token belongs in a properties file readable by
    the engine's user only, never on a command line. Spark 3.5's Connect server
    has no token option and ignores it: such engines are unprotected.
    """
    props = {
        "spark.connect.grpc.binding.address": address,
        "spark.connect.grpc.binding.port": str(port),
    }
    if token is not None:
        props["spark.connect.authenticate.token"] = token
    return props


def _escape_properties(text: str, *, key: bool) -> str:
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\f":
            out.append("\\f")
        elif ch in "=:#!" or (ch == " " and (key or i == 0)):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) > 0x7E:
            # \uXXXX takes UTF-16 code units: characters beyond U+FFFF take two.
            units = ch.encode("utf-16-be")
            for j in range(0, len(units), 2):
                out.append("\\u%04x" % int.from_bytes(units[j : j + 2], "big"))
        else:
            out.append(ch)
    return "".join(out)


def properties_text(properties: Mapping[str, str], *, defaults: str = "") -> str:
    """A Java properties file: `defaults` (raw text, e.g. spark-defaults.conf) then
    `properties`, which win because later keys override earlier ones."""
    lines = [defaults.rstrip("\n")] if defaults.strip() else []
    lines.append("# written by Rucat")
    for key, value in properties.items():
        lines.append(f"{_escape_properties(key, key=True)}={_escape_properties(value, key=False)}")
    return "\n".join(lines) + "\n"


def spark_defaults_text(spark_home: Path, conf_dir: Path | None = None) -> str:
    """The text of spark-defaults.conf that spark-submit would have read, or ''.

    Passing --properties-file makes spark-submit skip spark-defaults.conf, so
    platforms prepend it to their own properties file.
    """
    path = (conf_dir or spark_home / "conf") / "spark-defaults.conf"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from e


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
    """The port the Spark Connect server bound, from its log; None before it logs it.

    The first mention wins: later lines may come from user code (a UDF's output).
    Port 0 is never a bound port (an older server may echo the configured 0).
    """
    for pattern in _BOUND_PORT_RES:
        for found in pattern.finditer(log_text):
            if int(found.group(1)) != 0:
                return int(found.group(1))
    return None


def bound_ui_port(log_text: str) -> int | None:
    """The port the driver's Spark UI bound, from its log; None before it logs it
    (or when the UI is off). The first mention wins, as in `bound_connect_port`."""
    for pattern in _BOUND_UI_PORT_RES:
        for found in pattern.finditer(log_text):
            if int(found.group(1)) != 0:
                return int(found.group(1))
    return None


def ui_proxy_base(engine_id: EngineId) -> str:
    """The path prefix under which Rucat serves the engine's Spark UI (its
    ``spark.ui.proxyBase``: Spark writes its links under it)."""
    return f"/engine/{engine_id}/sparkui"


def probe_session_id(engine_id: EngineId) -> str:
    """A fixed session id for Rucat's probes of one engine: the server keeps one
    session for them instead of a new one per probe."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"rucat:probe:{engine_id}"))


async def connect_version(
    target: str, *, token: str | None, timeout: float, session_id: str | None = None
) -> str:
    """Ask a Spark Connect server for its Spark version: a real call, not a TCP check.

    `target` is ``host:port``. Raises ConnectionError when it does not answer
    (yet) and PermissionError when it refuses the token.
    """
    import grpc
    from pyspark.sql.connect.proto import base_pb2, base_pb2_grpc

    request = base_pb2.AnalyzePlanRequest(
        session_id=session_id or str(uuid.uuid4()),
        user_context=base_pb2.UserContext(user_id="rucat"),
        spark_version=base_pb2.AnalyzePlanRequest.SparkVersion(),
    )
    metadata = [("authorization", f"Bearer {token}")] if token else []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = base_pb2_grpc.SparkConnectServiceStub(channel)  # type: ignore[no-untyped-call]
        try:
            response = await stub.AnalyzePlan(request, metadata=metadata, timeout=timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                raise PermissionError(f"Spark Connect at {target} refused: {e.details()}") from e
            raise ConnectionError(
                f"Spark Connect at {target} did not answer: {e.code().name}"
            ) from e
    return str(response.spark_version.version)
