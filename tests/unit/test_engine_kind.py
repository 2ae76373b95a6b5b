"""The engine-kind seam: each platform's offer and the launch it gets from the Spark kind.

For every platform config: the argv, environment and private files of a
launch, the ports to discover, and the confs the platform reserves.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path, PurePath

import pytest

from rucat.config import (
    KubernetesPlatformConfig,
    LocalPlatformConfig,
    PlatformConfig,
    StandalonePlatformConfig,
)
from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine
from rucat.domain.errors import PlatformRejected
from rucat.engines.kind import CONNECT, UI, Launch
from rucat.engines.spark import SPARK
from rucat.engines.spark_versions import bundled_spark_home, bundled_spark_version
from rucat.platforms.kubernetes import manifests
from rucat.platforms.local.platform import site as local_site
from rucat.platforms.offer import platform_offer

BUNDLED = bundled_spark_version()
USER_CONFS = {"spark.sql.shuffle.partitions": "4", "spark.hadoop.fs.s3a.secret.key": "s3cr3t"}


def engine(version: str = BUNDLED, token: str | None = "t0ken", **configs: str) -> Engine:
    made = new_engine(
        CreateEngineRequest(
            name="e", engine_type=EngineType.Spark, version=version, configs=configs or USER_CONFS
        ),
        platform="Local",
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return dataclasses.replace(made, connect_token=token)


def confs_on_argv(launch: Launch) -> dict[str, str]:
    argv = launch.argv
    return dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--conf")


def option(launch: Launch, name: str) -> str:
    return launch.argv[launch.argv.index(name) + 1]


def local_launch(tmp_path: Path, e: Engine, master: str = "local[*]") -> Launch:
    folder = tmp_path / e.id
    site = local_site(
        LocalPlatformConfig(host="127.0.0.2"), folder=folder, master=master, platform="Local"
    )
    return SPARK.launch(engine=e, site=site)


# --- Local and Standalone: a process on this machine -------------------------


def test_a_local_launch_runs_spark_submit_of_the_connect_server_against_its_master(
    tmp_path: Path,
) -> None:
    e = engine()
    launch = local_launch(tmp_path, e)
    assert launch.argv[0] == str(bundled_spark_home() / "bin" / "spark-submit")
    assert option(launch, "--class") == "org.apache.spark.sql.connect.service.SparkConnectServer"
    assert option(launch, "--master") == "local[*]"
    assert option(launch, "--properties-file") == str(tmp_path / e.id / "spark.properties")
    assert launch.argv[-1] == "spark-internal"
    # Only Rucat's own confs, none secret, are on the command line.
    assert confs_on_argv(launch) == {
        "spark.app.name": f"rucat-{e.id}",
        "spark.ui.proxyBase": f"/engine/{e.id}/sparkui",
        "spark.driver.host": "127.0.0.2",
        "spark.driver.bindAddress": "127.0.0.2",
    }


def test_a_local_launchs_private_file_holds_the_users_confs_the_token_and_the_endpoint(
    tmp_path: Path,
) -> None:
    e = engine()
    launch = local_launch(tmp_path, e)
    text = launch.file("spark.properties").text
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == [
        f"spark.local.dir={tmp_path / e.id / 'tmp'}",
        "spark.ui.port=0",
        "spark.sql.shuffle.partitions=4",
        "spark.hadoop.fs.s3a.secret.key=s3cr3t",
        "spark.connect.grpc.binding.address=127.0.0.2",
        "spark.connect.grpc.binding.port=0",
        "spark.connect.authenticate.token=t0ken",
    ]
    assert not any("t0ken" in arg or "s3cr3t" in arg for arg in launch.argv)


def test_a_local_launch_keeps_the_connect_ports_log_line_in_its_own_conf_dir(
    tmp_path: Path,
) -> None:
    e = engine()
    launch = local_launch(tmp_path, e)
    assert launch.fresh_dirs == (PurePath("conf"),)
    log4j = launch.file("conf/log4j2.properties").text
    assert (
        "logger.rucat_connect.name = org.apache.spark.sql.connect.service.SparkConnectServer"
        in log4j
    )
    assert launch.env["SPARK_CONF_DIR"] == str(tmp_path / e.id / "conf")


def test_a_local_launchs_environment_names_the_home_and_address_and_drops_rucats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUCAT_DATABASE__URI", "secret")
    monkeypatch.setenv("KEPT", "1")
    launch = local_launch(tmp_path, engine())
    assert launch.env["SPARK_HOME"] == str(bundled_spark_home())
    assert launch.env["SPARK_LOCAL_IP"] == "127.0.0.2"
    assert launch.env["KEPT"] == "1"
    assert not [k for k in launch.env if k.startswith("RUCAT_")]


def test_the_connect_and_ui_ports_of_a_local_launch_are_read_from_the_log(tmp_path: Path) -> None:
    launch = local_launch(tmp_path, engine())
    ui = launch.port_rule(UI)
    assert ui.fixed is None
    assert ui.find("INFO Utils: Successfully started service 'SparkUI' on port 4567.\n") == 4567
    rule = launch.port_rule(CONNECT)
    assert rule.fixed is None
    assert (
        rule.find("x\nINFO SparkConnectServer: Spark Connect server started at: 127.0.0.2:4321\n")
        == 4321
    )
    assert rule.find("starting\n") is None


def test_a_standalone_launch_is_a_local_one_against_the_cluster(tmp_path: Path) -> None:
    e = engine()
    launch = local_launch(tmp_path, e, master="spark://m:7077")
    assert option(launch, "--master") == "spark://m:7077"
    assert set(confs_on_argv(launch)) == {
        "spark.app.name",
        "spark.ui.proxyBase",
        "spark.driver.host",
        "spark.driver.bindAddress",
    }


def test_a_version_not_installed_is_rejected_naming_the_platform(tmp_path: Path) -> None:
    with pytest.raises(
        PlatformRejected, match=r"Spark 2\.4\.0 is not available; .* on the Local platform"
    ):
        local_launch(tmp_path, engine("2.4.0"))


# --- Kubernetes: a container in a pod --------------------------------------


K8S = KubernetesPlatformConfig(
    namespace="spark", versions=["4.0.1"], images={"3.5.3": "x", "4.0.1": "y"}
)


def test_a_kubernetes_launch_is_the_images_spark_submit_with_its_files_in_the_secret() -> None:
    e = engine("4.0.1")
    launch = manifests.launch(e, K8S)
    assert launch.argv[0] == f"{K8S.spark_home}/bin/spark-submit"
    assert option(launch, "--master") == "k8s://https://kubernetes.default.svc"
    assert option(launch, "--deploy-mode") == "client"
    assert (
        option(launch, "--properties-file")
        == f"{manifests.SECRET_MOUNT}/{manifests.PROPERTIES_KEY}"
    )
    confs = confs_on_argv(launch)
    assert confs["spark.sql.shuffle.partitions"] == "4"  # the user's, in the pod spec
    assert confs["spark.kubernetes.namespace"] == "spark"
    assert confs["spark.connect.grpc.binding.port"] == "15002"
    assert launch.env == {}
    assert [f.path for f in launch.files] == [PurePath(manifests.PROPERTIES_KEY)]
    assert launch.file(manifests.PROPERTIES_KEY).text.splitlines()[1:] == [
        "spark.connect.authenticate.token=t0ken"
    ]
    assert launch.port_rule(CONNECT).fixed == 15002
    assert launch.port_rule(UI).fixed == 4040
    assert confs["spark.ui.proxyBase"] == f"/engine/{e.id}/sparkui"


def test_a_spark_3_5_pod_fetches_the_connect_jar_and_gets_no_token() -> None:
    launch = manifests.launch(engine("3.5.3"), K8S)
    assert option(launch, "--packages") == "org.apache.spark:spark-connect_2.12:3.5.3"
    assert "t0ken" not in launch.file(manifests.PROPERTIES_KEY).text


# --- offers: versions and reserved confs ------------------------------------


OFFERS = {
    "Local": platform_offer(PlatformConfig(Local=LocalPlatformConfig(spark_homes={"3.5.3": "/o"}))),
    "Standalone": platform_offer(PlatformConfig(Standalone=StandalonePlatformConfig())),
    "Kubernetes": platform_offer(PlatformConfig(Kubernetes=K8S)),
}


def test_every_platform_offers_the_spark_kind_with_its_reserved_confs_on_top() -> None:
    for name, offer in OFFERS.items():
        assert offer.platform == name
        assert offer.kind.engine_type is EngineType.Spark
        assert SPARK.reserved_confs() <= offer.reserved
    assert OFFERS["Local"].reserved - SPARK.reserved_confs() == {
        "spark.driver.host",
        "spark.driver.bindAddress",
        "spark.ui.port",
    }
    assert OFFERS["Standalone"].reserved == OFFERS["Local"].reserved
    assert {"spark.kubernetes.namespace", "spark.driver.port", "spark.ui.port"} <= (
        OFFERS["Kubernetes"].reserved
    )


def test_process_platforms_offer_the_installed_pyspark_and_kubernetes_only_its_images() -> None:
    assert OFFERS["Local"].versions == tuple(sorted({"3.5.3", BUNDLED}))
    assert OFFERS["Standalone"].versions == (BUNDLED,)
    assert OFFERS["Kubernetes"].versions == ("3.5.3", "4.0.1")


def test_the_kind_reserves_its_endpoint_and_identity_and_names_no_platform() -> None:
    assert {
        "spark.app.name",
        "spark.master",
        "spark.connect.grpc.binding.port",
        "spark.connect.authenticate.token",
    } <= SPARK.reserved_confs()
    assert not [
        k for k in SPARK.reserved_confs() if "kubernetes" in k or k.startswith("spark.driver")
    ]


def test_asking_a_launch_for_a_port_or_file_it_lacks_is_a_rucat_error(tmp_path: Path) -> None:
    launch = local_launch(tmp_path, engine())
    with pytest.raises(PlatformRejected, match="opens no 'jmx' port"):
        launch.port_rule("jmx")
    with pytest.raises(PlatformRejected, match=r"has no file 'x\.conf'"):
        launch.file("x.conf")
