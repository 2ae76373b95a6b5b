"""Apache Spark served over Spark Connect: `SparkKind`, the `EngineKind` platforms consume.

Everything a platform needs to know about Spark itself lives in ``engines/``,
so that a platform module only knows how to run processes or pods. This module
is the kind; its parts are its siblings: ``spark_versions.py`` (versions and
the bundled pyspark), ``spark_confs.py`` (reserved confs, validation, the
properties file), ``spark_launch.py`` (argv, log4j2 config, port rules) and
``spark_probe.py`` (the readiness probe and the warm-up).

This module names no platform. What a platform adds (its own reserved confs,
its default policy, where the driver binds) lives in the platform's offer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path, PurePath

from rucat.domain.engine import CreateEngineRequest, Engine, EngineId, EngineType
from rucat.domain.errors import ConfigError, InvalidRequest, PlatformRejected
from rucat.domain.policy import Policy
from rucat.engines.kind import CONNECT, UI, Launch, Link, PortRule, PrivateFile, Site
from rucat.engines.spark_confs import (
    RESERVED_CONFS,
    connect_properties,
    properties_text,
    spark_defaults_text,
    validate_request,
)
from rucat.engines.spark_launch import (
    CONNECT_PORT_RULE,
    UI_PORT_RULE,
    app_name,
    connect_server_argv,
    has_log4j2_config,
    log4j2_config_text,
    spark_submit,
    ui_proxy_base,
)
from rucat.engines.spark_probe import connect_query, connect_version, probe_session_id
from rucat.engines.spark_versions import (
    bundled_spark_home,
    bundled_spark_version,
    major_version,
    offered_versions,
    spark_home_for,
)

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
        token = engine.connect_token if major_version(engine.version) >= 4 else None
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
        if not site.local_install and major_version(engine.version) < 4:
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
