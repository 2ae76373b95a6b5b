"""Every manifest the Kubernetes platform generates is valid: the official schema
(kubernetes-validate, pinned version, strict) plus our own rules it misses."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import kubernetes_validate
import pytest

from rucat.config import KubernetesPlatformConfig
from rucat.domain.engine import Engine, EngineType, new_engine_id
from rucat.domain.errors import PlatformRejected
from rucat.domain.state import EngineState
from rucat.platforms.kubernetes import manifests as m
from rucat.platforms.kubernetes import security as sec
from tests.support.k8s_rbac import driver_rbac_manifests

#: The Kubernetes version whose schema the manifests must satisfy.
K8S_SCHEMA_VERSION = "1.31.0"


def engine(version: str = "4.0.1", configs: dict[str, str] | None = None, **kw: Any) -> Engine:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Engine(
        id=kw.pop("id", new_engine_id()),
        name=kw.pop("name", "my engine: ünïcode & 'quotes'"),
        engine_type=EngineType.Spark,
        version=version,
        configs=configs or {},
        state=EngineState.TriggerStart,
        platform="Kubernetes",
        create_time=now,
        update_time=now,
        next_update_time=now,
        connect_token=kw.pop("connect_token", "s3cr3t-token-value"),
    )


CONFIG = KubernetesPlatformConfig(namespace="spark-jobs")


def all_manifests(e: Engine, config: KubernetesPlatformConfig = CONFIG) -> list[dict[str, Any]]:
    built = m.engine_manifests(e, config)
    assert built.network_policy is not None
    return [
        built.secret,
        built.service,
        built.network_policy,
        built.pod,
        *driver_rbac_manifests("spark-jobs", "sa"),
    ]


def validate(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, K8S_SCHEMA_VERSION, strict=True)
    assert m.manifest_problems(manifest) == []


@pytest.mark.parametrize("version", ["3.5.3", "3.5.4", "4.0.1"])
def test_every_generated_manifest_passes_the_strict_schema_and_our_rules(version: str) -> None:
    confs = {"spark.executor.instances": "3", "spark.driver.memory": "2g", "spark.sql.x": "a=b c"}
    for manifest in all_manifests(engine(version, confs)):
        validate(manifest)


def test_names_derive_from_the_engine_id_and_fit_dns_limits() -> None:
    e = engine()
    built = m.engine_manifests(e, CONFIG)
    assert built.pod["metadata"]["name"] == f"rucat-spark-{e.id}-driver"
    assert built.service["metadata"]["name"] == f"rucat-spark-{e.id}"
    assert built.secret["metadata"]["name"] == f"rucat-spark-{e.id}"
    assert m.is_dns_label(built.service["metadata"]["name"])
    assert m.endpoint(e.id, "spark-jobs") == f"sc://rucat-spark-{e.id}.spark-jobs.svc:15002"


def test_the_token_is_only_in_the_secret_never_in_the_pod_spec() -> None:
    e = engine(connect_token="tok-ABC-123")
    built = m.engine_manifests(e, CONFIG)
    assert "tok-ABC-123" not in repr(built.pod)
    props = base64.b64decode(built.secret["data"][m.PROPERTIES_KEY]).decode()
    assert "spark.connect.authenticate.token=tok-ABC-123" in props
    args = built.pod["spec"]["containers"][0]["args"]
    assert args[args.index("--properties-file") + 1] == f"{m.SECRET_MOUNT}/{m.PROPERTIES_KEY}"
    volume = built.pod["spec"]["volumes"][0]
    assert volume["secret"]["secretName"] == built.secret["metadata"]["name"]
    assert volume["secret"]["defaultMode"] == 0o440


def test_spark_35_has_no_token_and_pulls_the_connect_package() -> None:
    e = engine("3.5.3", connect_token="tok-ABC-123")
    built = m.engine_manifests(e, CONFIG)
    assert "tok-ABC-123" not in repr(built.secret) + repr(built.pod)
    args = built.pod["spec"]["containers"][0]["args"]
    assert args[args.index("--packages") + 1] == "org.apache.spark:spark-connect_2.12:3.5.3"
    assert "--packages" not in m.driver_args(engine("4.0.1"), CONFIG)


def test_driver_args_run_the_connect_server_in_client_mode_with_rucat_confs_last() -> None:
    e = engine(configs={"spark.executor.instances": "2", "spark.jars.ivy": "/data/ivy"})
    args = m.driver_args(e, CONFIG)
    assert args[0] == "/opt/spark/bin/spark-submit"
    assert (
        args[args.index("--class") + 1] == "org.apache.spark.sql.connect.service.SparkConnectServer"
    )
    assert args[args.index("--master") + 1] == "k8s://https://kubernetes.default.svc"
    assert args[args.index("--deploy-mode") + 1] == "client"
    assert args[-1] == "spark-internal"
    confs = [args[i + 1] for i, a in enumerate(args) if a == "--conf"]
    expected = {
        "spark.executor.instances=2",
        "spark.jars.ivy=/data/ivy",
        f"spark.kubernetes.driver.pod.name=rucat-spark-{e.id}-driver",
        f"spark.kubernetes.executor.podNamePrefix=rucat-spark-{e.id}",
        f"spark.driver.host=rucat-spark-{e.id}.spark-jobs.svc",
        "spark.kubernetes.container.image=apache/spark:4.0.1",
        f"spark.app.id={e.id}",
        "spark.connect.grpc.binding.port=15002",
        "spark.driver.port=7078",
        "spark.driver.blockManager.port=7079",
        f"spark.kubernetes.executor.label.rucat.io/engine-id={e.id}",
    }
    assert expected <= set(confs)


def test_configured_images_win_over_the_apache_default() -> None:
    config = KubernetesPlatformConfig(images={"4.0.1": "registry.local/spark:4.0.1-custom"})
    pod = m.pod_manifest(engine("4.0.1"), config)
    assert pod["spec"]["containers"][0]["image"] == "registry.local/spark:4.0.1-custom"
    assert m.image_for("3.5.4", config) == "apache/spark:3.5.4"


def test_reserved_confs_are_refused() -> None:
    with pytest.raises(PlatformRejected, match=r"spark\.kubernetes\.driver\.pod\.name"):
        m.pod_manifest(engine(configs={"spark.kubernetes.driver.pod.name": "x"}), CONFIG)


@pytest.mark.parametrize(
    ("confs", "requests", "limits"),
    [
        ({}, {"cpu": "1", "memory": "1408Mi"}, {"cpu": "1", "memory": "1408Mi"}),
        (
            {"spark.driver.cores": "2", "spark.driver.memory": "8g"},
            {"cpu": "2", "memory": f"{8192 + 819}Mi"},
            {"cpu": "2", "memory": f"{8192 + 819}Mi"},
        ),
        (
            {
                "spark.driver.memory": "512m",
                "spark.driver.memoryOverhead": "1g",
                "spark.kubernetes.driver.request.cores": "500m",
                "spark.kubernetes.driver.limit.cores": "3",
            },
            {"cpu": "500m", "memory": "1536Mi"},
            {"cpu": "3", "memory": "1536Mi"},
        ),
    ],
)
def test_driver_cpu_and_memory_confs_become_requests_and_limits(
    confs: dict[str, str], requests: dict[str, str], limits: dict[str, str]
) -> None:
    pod = m.pod_manifest(engine(configs=confs), CONFIG)
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources == {"requests": requests, "limits": limits}
    validate(pod)


@pytest.mark.parametrize("confs", [{"spark.driver.memory": "lots"}, {"spark.driver.cores": "two"}])
def test_malformed_driver_sizes_are_refused(confs: dict[str, str]) -> None:
    with pytest.raises(PlatformRejected, match="is not a"):
        m.pod_manifest(engine(configs=confs), CONFIG)


def test_labels_identify_the_engine_and_the_service_selects_only_its_driver() -> None:
    e = engine()
    built = m.engine_manifests(e, CONFIG)
    labels = built.pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "rucat"
    assert labels["rucat.io/engine-id"] == e.id
    selector = built.service["spec"]["selector"]
    assert all(labels[k] == v for k, v in selector.items())
    assert built.service["spec"]["clusterIP"] == "None"
    ports = {p["port"] for p in built.service["spec"]["ports"]}
    assert ports == {15002, 4040, 7078, 7079}
    probe = built.pod["spec"]["containers"][0]["readinessProbe"]
    assert probe["tcpSocket"]["port"] == 15002
    assert built.pod["spec"]["serviceAccountName"] == CONFIG.service_account


def test_driver_rbac_lets_drivers_manage_executor_pods_and_nothing_else() -> None:
    sa, role, binding = driver_rbac_manifests("ns1", "rucat-spark")
    assert sa["kind"] == "ServiceAccount"
    (rule,) = role["rules"]
    assert rule["apiGroups"] == [""] and rule["resources"] == ["pods"]
    assert set(rule["verbs"]) == {"create", "get", "list", "watch", "delete", "deletecollection"}
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == "rucat-spark"
    for manifest in (sa, role, binding):
        validate(manifest)


def test_drivers_need_no_config_maps_or_claims() -> None:
    confs = m.spark_confs(engine(), CONFIG)
    assert confs["spark.kubernetes.executor.disableConfigMap"] == "true"
    assert confs["spark.kubernetes.driver.reusePersistentVolumeClaim"] == "false"


# --- our checks catch what the schema lets through --------------------------


def test_our_checks_catch_a_bad_name_a_bad_port_and_an_empty_image() -> None:
    pod = m.pod_manifest(engine(), CONFIG)
    pod["metadata"]["name"] = "Not_A_DNS_Name"
    container = pod["spec"]["containers"][0]
    container["image"] = " "
    container["ports"][0]["containerPort"] = 70000
    # The schema alone lets all three through; that is why we check them.
    kubernetes_validate.validate(pod, K8S_SCHEMA_VERSION, strict=True)
    problems = " | ".join(m.manifest_problems(pod))
    assert "not a valid DNS-1123 name" in problems
    assert "image is empty" in problems
    assert "70000" in problems


def test_our_checks_catch_a_service_name_longer_than_63_characters() -> None:
    service = m.service_manifest(engine(), CONFIG)
    service["metadata"]["name"] = "a" * 64
    assert any("DNS-1123" in p for p in m.manifest_problems(service))


def test_the_schema_rejects_an_unknown_field_in_strict_mode() -> None:
    pod = m.pod_manifest(engine(), CONFIG)
    pod["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_SCHEMA_VERSION, strict=True)


# --- Pod Security `restricted` -------------------------------------------------------


RESTRICTED_CONTAINER = {
    "runAsNonRoot": True,
    "runAsUser": 185,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def test_the_driver_pod_is_restricted_on_pod_and_container_level() -> None:
    pod = m.pod_manifest(engine(), CONFIG)
    assert pod["spec"]["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 185,
        "fsGroup": 185,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (container,) = pod["spec"]["containers"]
    assert container["securityContext"] == RESTRICTED_CONTAINER


def executor_template(e: Engine, config: KubernetesPlatformConfig = CONFIG) -> dict[str, Any]:
    secret = m.secret_manifest(e, config)
    text = base64.b64decode(secret["data"][sec.EXECUTOR_TEMPLATE_KEY]).decode()
    template: dict[str, Any] = json.loads(text)
    return template


def test_the_executor_template_is_restricted_has_no_token_and_is_valid() -> None:
    template = executor_template(engine())
    spec = template["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    (container,) = spec["containers"]
    assert container["name"] == sec.EXECUTOR_CONTAINER
    assert container["securityContext"] == RESTRICTED_CONTAINER
    kubernetes_validate.validate(template, K8S_SCHEMA_VERSION, strict=True)


def test_a_custom_uid_reaches_drivers_and_executors() -> None:
    config = KubernetesPlatformConfig(namespace="spark-jobs", run_as_user=1000, fs_group=None)
    pod = m.pod_manifest(engine(), config)
    template = executor_template(engine(), config)
    for spec in (pod["spec"], template["spec"]):
        assert spec["securityContext"]["runAsUser"] == 1000
        assert "fsGroup" not in spec["securityContext"]
        assert spec["containers"][0]["securityContext"]["runAsUser"] == 1000


def test_spark_reads_the_executor_template_from_the_mounted_secret() -> None:
    confs = m.spark_confs(engine(), CONFIG)
    path = confs["spark.kubernetes.executor.podTemplateFile"]
    assert path == f"{m.SECRET_MOUNT}/{sec.EXECUTOR_TEMPLATE_KEY}"
    assert confs["spark.kubernetes.executor.podTemplateContainerName"] == sec.EXECUTOR_CONTAINER


@pytest.mark.parametrize(
    "key",
    [
        "spark.kubernetes.executor.podTemplateFile",
        "spark.kubernetes.executor.podTemplateContainerName",
    ],
)
def test_users_cannot_replace_the_executor_template(key: str) -> None:
    with pytest.raises(PlatformRejected, match=key.replace(".", r"\.")):
        m.pod_manifest(engine(configs={key: "https://evil.example/pod.yaml"}), CONFIG)


def test_the_spark_ui_listens_on_the_services_4040_under_rucats_prefix() -> None:
    e = engine(configs={"spark.sql.shuffle.partitions": "4"})
    confs = m.spark_confs(e, CONFIG)
    assert confs["spark.ui.port"] == "4040"
    assert confs["spark.ui.proxyBase"] == f"/engine/{e.id}/sparkui"
    ports = {p["name"]: p["port"] for p in m.engine_manifests(e, CONFIG).service["spec"]["ports"]}
    assert ports["spark-ui"] == m.UI_PORT == 4040
