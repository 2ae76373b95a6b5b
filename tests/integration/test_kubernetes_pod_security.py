"""Driver and executor pods pass Pod Security Admission `restricted`.

The fake API server enforces the Pod Security Standards on namespaces labelled
`pod-security.kubernetes.io/enforce` (tests/support/fake_kube_rules.py), so
the driver pod the platform creates, and an executor pod built from Rucat's
executor template the way Spark builds one, are submitted through the real
client and admitted or refused as a real cluster would.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.resources.core_v1 import Pod

from rucat.config import KubernetesPlatformConfig
from rucat.domain.engine import Engine, EngineType, new_engine_id
from rucat.domain.state import EngineState
from rucat.platforms.kubernetes import manifests as m
from rucat.platforms.kubernetes import security as sec
from rucat.platforms.kubernetes.platform import KubernetesPlatform
from tests.support.fake_kube import FakeKube
from tests.support.fake_kube_rules import RESTRICTED

NS = "engines"
Obj = dict[str, Any]


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube(namespaces=(NS,), namespace_labels={NS: RESTRICTED}) as server:
        yield server


@pytest.fixture
def kubeconfig(fake: FakeKube, tmp_path: Path) -> Path:
    return fake.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)


@pytest.fixture
async def client(kubeconfig: Path) -> AsyncIterator[AsyncClient]:
    c = AsyncClient(KubeConfig.from_file(kubeconfig), namespace=NS)
    yield c
    await c.close()


@pytest.fixture
async def platform(kubeconfig: Path) -> AsyncIterator[KubernetesPlatform]:
    p = KubernetesPlatform(KubernetesPlatformConfig(namespace=NS, kubeconfig=str(kubeconfig)))
    yield p
    await p.close()


def engine(version: str = "4.0.1") -> Engine:
    now = datetime.now(UTC)
    return Engine(
        id=new_engine_id(),
        name="restricted",
        engine_type=EngineType.Spark,
        version=version,
        configs={},
        state=EngineState.TriggerStart,
        platform="Kubernetes",
        create_time=now,
        update_time=now,
        next_update_time=now,
        connect_token="tok",
    )


def spark_executor_pod(template: Obj, e: Engine, driver: Obj, number: int = 1) -> Obj:
    """An executor pod as Spark's BasicExecutorFeatureStep builds it on top of the template:
    it adds names, labels, the owner, image, args, env, ports, resources and its volumes,
    and keeps the template's security settings."""
    pod = copy.deepcopy(template)
    labels = {
        **m.engine_labels(e.id, "executor"),
        "spark-app-selector": e.id,
        "spark-role": "executor",
        "spark-exec-id": str(number),
    }
    pod["metadata"] = {
        "name": f"{m.service_name(e.id)}-exec-{number}",
        "labels": labels,
        "ownerReferences": [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": driver["metadata"]["name"],
                "uid": driver["metadata"]["uid"],
                "controller": True,
            }
        ],
    }
    spec = pod["spec"]
    spec.update(hostname=pod["metadata"]["name"], restartPolicy="Never")
    spec["volumes"] = [
        {"name": "spark-local-dir-1", "emptyDir": {}},
        {"name": "spark-conf-volume-exec", "configMap": {"name": f"spark-exec-{number}-conf-map"}},
    ]
    (container,) = [c for c in spec["containers"] if c["name"] == sec.EXECUTOR_CONTAINER]
    container.update(
        image=m.image_for(e.version, KubernetesPlatformConfig()),
        imagePullPolicy="IfNotPresent",
        args=["executor"],
        env=[{"name": "SPARK_DRIVER_URL", "value": "spark://CoarseGrainedScheduler@x:7078"}],
        ports=[{"name": "blockmanager", "containerPort": m.BLOCK_MANAGER_PORT}],
        resources={"requests": {"cpu": "1", "memory": "1408Mi"}, "limits": {"memory": "1408Mi"}},
        volumeMounts=[{"name": "spark-local-dir-1", "mountPath": "/var/data/spark-1"}],
    )
    return pod


def template_in_secret(fake: FakeKube, e: Engine) -> Obj:
    secret = fake.get("secrets", NS, m.secret_name(e.id))
    assert secret is not None
    raw = base64.b64decode(secret["data"][sec.EXECUTOR_TEMPLATE_KEY])
    template: Obj = json.loads(raw)
    return template


async def test_the_driver_pod_is_admitted_by_a_restricted_namespace(
    platform: KubernetesPlatform, fake: FakeKube
) -> None:
    e = engine()
    await platform.start(engine=e)
    driver = fake.get("pods", NS, m.driver_pod_name(e.id))
    assert driver is not None
    assert driver["spec"]["securityContext"]["runAsUser"] == 185


async def test_executors_built_from_rucats_template_are_admitted_and_get_no_token(
    platform: KubernetesPlatform, fake: FakeKube, client: AsyncClient
) -> None:
    e = engine()
    await platform.start(engine=e)
    driver = fake.get("pods", NS, m.driver_pod_name(e.id))
    assert driver is not None
    template = template_in_secret(fake, e)
    # The driver reads the template from the secret it mounts, where its conf points.
    mount = driver["spec"]["containers"][0]["volumeMounts"][0]
    confs = m.spark_confs(e, platform.config)
    path = confs["spark.kubernetes.executor.podTemplateFile"]
    assert path == f"{mount['mountPath']}/{sec.EXECUTOR_TEMPLATE_KEY}"
    assert confs["spark.kubernetes.executor.podTemplateContainerName"] == sec.EXECUTOR_CONTAINER
    created = await client.create(Pod.from_dict(spark_executor_pod(template, e, driver)))
    assert created.spec is not None
    assert created.spec.automountServiceAccountToken is False


def _drop(path: str) -> Callable[[Obj], None]:
    *parents, last = path.split(".")

    def change(pod: Obj) -> None:
        target: Any = pod
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target.pop(last)

    return change


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    *parents, last = path.split(".")

    def change(pod: Obj) -> None:
        target: Any = pod
        for key in parents:
            target = target[int(key)] if key.isdigit() else target.setdefault(key, {})
        target[last] = value

    return change


def _both(*changes: Callable[[Obj], None]) -> Callable[[Obj], None]:
    def change(pod: Obj) -> None:
        for c in changes:
            c(pod)

    return change


BREACHES = {
    "privilege escalation allowed": (
        _drop("spec.containers.0.securityContext.allowPrivilegeEscalation"),
        "allowPrivilegeEscalation != false",
    ),
    "capabilities kept": (
        _drop("spec.containers.0.securityContext.capabilities"),
        "unrestricted capabilities",
    ),
    "a capability added": (
        _set("spec.containers.0.securityContext.capabilities.add", ["SYS_ADMIN"]),
        "non-default capabilities",
    ),
    "may run as root": (
        _both(
            _drop("spec.securityContext.runAsNonRoot"),
            _drop("spec.containers.0.securityContext.runAsNonRoot"),
        ),
        "runAsNonRoot != true",
    ),
    "runs as uid 0": (_set("spec.containers.0.securityContext.runAsUser", 0), "runAsUser=0"),
    "no seccomp profile": (
        _both(
            _drop("spec.securityContext.seccompProfile"),
            _drop("spec.containers.0.securityContext.seccompProfile"),
        ),
        "seccompProfile",
    ),
    "privileged": (_set("spec.containers.0.securityContext.privileged", True), "privileged"),
    "host network": (_set("spec.hostNetwork", True), "host namespaces"),
    "a hostPath volume": (
        lambda pod: (
            pod["spec"]
            .setdefault("volumes", [])
            .append({"name": "root", "hostPath": {"path": "/"}})
        ),
        "hostPath volumes",
    ),
}


@pytest.mark.parametrize("breach", list(BREACHES))
async def test_a_driver_pod_missing_any_restricted_setting_is_refused(
    client: AsyncClient, breach: str
) -> None:
    change, rule = BREACHES[breach]
    pod = m.pod_manifest(engine(), KubernetesPlatformConfig(namespace=NS))
    change(pod)
    with pytest.raises(ApiError) as refused:
        await client.create(Pod.from_dict(pod))
    assert refused.value.status.code == 403
    assert rule in str(refused.value.status.message)


@pytest.mark.parametrize(
    "breach", ["privilege escalation allowed", "capabilities kept", "may run as root"]
)
async def test_an_executor_template_missing_a_restricted_setting_is_refused(
    platform: KubernetesPlatform, fake: FakeKube, client: AsyncClient, breach: str
) -> None:
    e = engine()
    await platform.start(engine=e)
    driver = fake.get("pods", NS, m.driver_pod_name(e.id))
    assert driver is not None
    change, rule = BREACHES[breach]
    template = template_in_secret(fake, e)
    change(template)
    with pytest.raises(ApiError) as refused:
        await client.create(Pod.from_dict(spark_executor_pod(template, e, driver)))
    assert rule in str(refused.value.status.message)
