"""Apache Spark served over Spark Connect: versions, reserved confs, launch spec, probe.

Everything a platform needs to know about Spark itself lives here, so that a
platform module only knows how to run processes or pods. The functions that
validate a request are pure (they read the config, never a platform), so the
server can refuse a bad engine with 400 before anything is stored.

The Spark that ships with the installed pyspark (4.x bundles the Spark Connect
server jar) is offered wherever a platform runs engines on this machine; its
SPARK_HOME is the pyspark package folder, which holds ``bin/spark-submit``.

`SparkKind` is the `EngineKind` (``engines/kind.py``) platforms consume; this
module names no platform. What a platform adds (its own reserved confs, its
default policy, where the driver binds) lives in the platform's offer.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import re
import sys
import uuid
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path, PurePath

from rucat.domain.engine import CreateEngineRequest, Engine, EngineId, EngineType
from rucat.domain.errors import (
    ConfigError,
    EngineRefused,
    EngineUnreachable,
    InvalidRequest,
    PlatformRejected,
)
from rucat.domain.policy import Policy
from rucat.engines.kind import CONNECT, UI, Launch, Link, PortRule, PrivateFile, Site, ui_path

#: The main class of the Spark Connect server, launched through spark-submit.
CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"

#: spark-submit's placeholder "primary resource" for classes already on Spark's classpath.
SPARK_INTERNAL = "spark-internal"

#: The Spark Connect server's default port (only used where a platform fixes one).
DEFAULT_CONNECT_PORT = 15002

#: Keys Rucat sets itself on every platform: the connect endpoint (port,
#: address, token), the application's identity and its cluster manager. A
#: platform's offer adds its own (where the driver binds, what names its pods).
RESERVED_CONFS = frozenset(
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


def validate_request(
    request: CreateEngineRequest, *, platform: str, versions: list[str], policy: Policy
) -> CreateEngineRequest:
    """Refuse a Spark engine `platform` cannot run; raises InvalidRequest.

    Returns the request to store: its confs as `policy` settles them.
    Pure: reads its arguments only, never contacts the platform.
    """
    if request.engine_type is not EngineType.Spark:
        raise InvalidRequest(f"engine type {request.engine_type} is not Spark")
    if request.version not in versions:
        raise InvalidRequest(
            f"Spark {request.version} is not available on the {platform} platform; "
            f"available: {', '.join(versions)}"
        )
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


def probe_session_id(engine_id: EngineId) -> str:
    """A fixed session id for Rucat's probes of one engine: the server keeps one
    session for them instead of a new one per probe."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"rucat:probe:{engine_id}"))


async def connect_version(
    target: str, *, token: str | None, timeout: float, session_id: str | None = None
) -> str:
    """Ask a Spark Connect server for its Spark version: a real call, not a TCP check.

    `target` is ``host:port``. Raises EngineUnreachable when it does not answer
    (yet) and EngineRefused when it refuses the token.
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
                raise EngineRefused(f"Spark Connect at {target} refused: {e.details()}") from e
            raise EngineUnreachable(
                f"Spark Connect at {target} did not answer: {e.code().name}"
            ) from e
    return str(response.spark_version.version)


async def connect_query(
    target: str, *, token: str | None, timeout: float, query: str, session_id: str | None = None
) -> None:
    """Run one SQL query on a Spark Connect server and read its whole answer.

    A warm-up: an engine's first query pays for the JVM's cold code paths and the
    first session's set-up (seconds), which every later session is spared. Raises
    EngineUnreachable when it does not answer or fails, EngineRefused on the token.
    """
    import grpc
    from pyspark.sql.connect.proto import base_pb2, base_pb2_grpc, relations_pb2

    request = base_pb2.ExecutePlanRequest(
        session_id=session_id or str(uuid.uuid4()),
        user_context=base_pb2.UserContext(user_id="rucat"),
        plan=base_pb2.Plan(root=relations_pb2.Relation(sql=relations_pb2.SQL(query=query))),
    )
    metadata = [("authorization", f"Bearer {token}")] if token else []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = base_pb2_grpc.SparkConnectServiceStub(channel)  # type: ignore[no-untyped-call]
        try:
            async for _ in stub.ExecutePlan(request, metadata=metadata, timeout=timeout):
                pass
        except grpc.aio.AioRpcError as e:
            if e.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                raise EngineRefused(f"Spark Connect at {target} refused: {e.details()}") from e
            raise EngineUnreachable(
                f"Spark Connect at {target} did not run {query!r}: {e.code().name}"
            ) from e


def _major(version: str) -> int:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


#: Where a launch's own log4j2 config goes, under `Site.files_dir`.
_OWN_CONF_DIR = PurePath("conf")


class SparkKind:
    """Apache Spark, served by a Spark Connect server run with spark-submit."""

    engine_type = EngineType.Spark

    def versions(self, *, installed: Mapping[str, str], bundled: bool) -> list[str]:
        return offered_versions(installed, bundled=bundled)

    def reserved_confs(self) -> frozenset[str]:
        return RESERVED_CONFS

    def validate(
        self, request: CreateEngineRequest, *, platform: str, versions: list[str], policy: Policy
    ) -> CreateEngineRequest:
        return validate_request(request, platform=platform, versions=versions, policy=policy)

    def application_name(self, engine_id: EngineId) -> str:
        return app_name(engine_id)

    async def probe(
        self, *, engine_id: EngineId, target: str, token: str | None, timeout: float
    ) -> str:
        return await connect_version(
            target, token=token, timeout=timeout, session_id=probe_session_id(engine_id)
        )

    async def warm_up(
        self, *, engine_id: EngineId, target: str, token: str | None, timeout: float
    ) -> None:
        await connect_query(
            target,
            token=token,
            timeout=timeout,
            query="select 1",
            session_id=probe_session_id(engine_id),
        )

    def load_probe(self) -> None:
        # grpc and pyspark's protos (pyspark/__init__ with them): about 1 s of CPU.
        import grpc  # noqa: F401
        from pyspark.sql.connect.proto import base_pb2, base_pb2_grpc  # noqa: F401

    def check_installations(self, *, homes: Mapping[str, str], bundled: bool, where: str) -> None:
        if bundled:
            version, home = bundled_spark_version(), bundled_spark_home()
            if not os.access(spark_submit(home), os.X_OK):
                raise ConfigError(
                    f"the installed pyspark {version} at {home} has no bin/spark-submit"
                )
        for version, home_text in homes.items():
            if not os.access(spark_submit(Path(home_text)), os.X_OK):
                raise ConfigError(
                    f"{where}.spark_homes.{version}: {home_text} has no bin/spark-submit"
                )

    def port_rules(self, *, site: Site) -> tuple[PortRule, ...]:
        connect = (
            CONNECT_PORT_RULE
            if site.connect_port == 0
            else PortRule(CONNECT, fixed=site.connect_port)
        )
        # The UI's port is the site's spark.ui.port (reserved), or Spark's 4040.
        ui_port = int({**site.defaults, **site.platform_confs}.get("spark.ui.port", "4040"))
        ui = UI_PORT_RULE if ui_port == 0 else PortRule(UI, fixed=ui_port)
        return (connect, ui)

    def launch(self, *, engine: Engine, site: Site) -> Launch:
        """The spark-submit of a Spark Connect server for `engine` at `site`.

        Confs, lowest first: spark-defaults.conf (an installation on this
        machine), the site's defaults, the user's, the endpoint's; the site's
        own confs are argv pairs, which win over any file. The user's confs
        may hold secrets: with `Site.user_confs_private` they go in the 0600
        properties file, never on the command line, which every OS user can
        read in /proc/<pid>/cmdline.
        """
        spark_home = self._home(engine.version, site)
        files_dir = site.files_dir
        env: dict[str, str] = {}
        fresh: list[PurePath] = []
        files: list[PrivateFile] = []
        links: list[Link] = []
        defaults_text = ""
        if site.local_install:
            home = Path(spark_home)
            env = dict(site.base_env)
            env["SPARK_HOME"] = str(home)
            if site.address is not None:
                env["SPARK_LOCAL_IP"] = site.address  # the driver, its UI and block manager
            if site.java_home is not None:
                env["JAVA_HOME"] = site.java_home
            if home == bundled_spark_home():  # Python UDFs run in workers that need this pyspark
                env.setdefault("PYSPARK_PYTHON", sys.executable)
            conf_dir = Path(env.get("SPARK_CONF_DIR") or home / "conf")
            if not has_log4j2_config(conf_dir):
                # Spark's conf dir, its files linked, plus a log4j2 config that keeps the
                # line naming the Connect port whatever the user's log level.
                fresh.append(_OWN_CONF_DIR)
                if conf_dir.is_dir():
                    links += [
                        Link(_OWN_CONF_DIR / entry.name, entry.absolute())
                        for entry in sorted(conf_dir.iterdir())
                        if entry.name != "log4j2.properties"
                    ]
                files.append(
                    PrivateFile(_OWN_CONF_DIR / "log4j2.properties", log4j2_config_text(home))
                )
                env["SPARK_CONF_DIR"] = str(Path(files_dir) / _OWN_CONF_DIR)
            defaults_text = spark_defaults_text(home, conf_dir)
        # Spark 3.5's Connect server has no token option: such engines are unprotected.
        token = engine.connect_token if _major(engine.version) >= 4 else None
        endpoint: dict[str, str] = {}
        if site.address is not None:
            endpoint = connect_properties(token=token, address=site.address, port=site.connect_port)
        elif token is not None:
            endpoint = {"spark.connect.authenticate.token": token}
        # Rucat's own confs, none secret, stay visible to `ps` (the app name names
        # the engine's processes) and win over any file.
        owned = {
            "spark.app.name": app_name(engine.id),
            "spark.ui.proxyBase": ui_proxy_base(engine.id),
            **site.platform_confs,
        }
        if site.user_confs_private:
            argv_confs = owned
            properties = {**site.defaults, **engine.configs, **endpoint}
        else:
            argv_confs = {**site.defaults, **engine.configs, **owned}
            properties = endpoint
        files.insert(
            0,
            PrivateFile(
                PurePath(site.properties_file),
                properties_text(properties, defaults=defaults_text),
            ),
        )
        extra = list(site.extra_args)
        if not site.local_install and _major(engine.version) < 4:
            # Spark 3.5 ships no Connect server jar; it comes from Maven Central.
            extra += ["--packages", f"org.apache.spark:spark-connect_2.12:{engine.version}"]
        argv = connect_server_argv(
            Path(spark_home),
            master=site.master,
            confs=argv_confs,
            properties_file=Path(files_dir) / site.properties_file,
            extra_args=extra,
        )
        return Launch(
            argv=tuple(argv),
            env=env,
            fresh_dirs=tuple(fresh),
            files=tuple(files),
            links=tuple(links),
            ports=self.port_rules(site=site),
        )

    def _home(self, version: str, site: Site) -> PurePath:
        if site.home is not None:
            return site.home
        try:
            return spark_home_for(version, site.homes)
        except InvalidRequest as e:
            raise PlatformRejected(f"{e.message} on the {site.platform} platform") from e


#: The Spark engine kind.
SPARK = SparkKind()
