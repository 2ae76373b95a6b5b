"""Only the driver pod Rucat created is ever taken for an engine, and engines are fenced off.

Drivers run user code with a service account that may create pods in the
engines' namespace, so anyone there can copy an engine's labels, or take its
driver pod's name while it is free. The platform records the uid the API
server gave the pod it created (on the engine's Secret, which drivers cannot
write) and trusts nothing else.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rucat.config import KubernetesPlatformConfig
from rucat.domain.engine import Engine, EngineType, new_engine_id
from rucat.domain.errors import PlatformError
from rucat.domain.observation import Failed, Observation, Pending, Ready
from rucat.domain.state import EngineState
from rucat.platforms.kubernetes import manifests as m
from rucat.platforms.kubernetes import security as sec
from rucat.platforms.kubernetes.platform import KubernetesPlatform
from tests.support import eventually
from tests.support.fake_kube import FakeKube
from tests.support.fake_kube_rules import RESTRICTED

NS = "engines"


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube(namespaces=(NS,), namespace_labels={NS: RESTRICTED}) as server:
        yield server


@pytest.fixture
def kubeconfig(fake: FakeKube, tmp_path: Path) -> Path:
    return fake.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)


def make_platform(kubeconfig: Path, **kw: Any) -> KubernetesPlatform:
    return KubernetesPlatform(
        KubernetesPlatformConfig(namespace=NS, kubeconfig=str(kubeconfig), **kw)
    )


@pytest.fixture
async def platform(kubeconfig: Path) -> AsyncIterator[KubernetesPlatform]:
    p = make_platform(kubeconfig)
    yield p
    await p.close()


def engine() -> Engine:
    now = datetime.now(UTC)
    return Engine(
        id=new_engine_id(),
        name="victim",
        engine_type=EngineType.Spark,
        version="4.0.1",
        configs={},
        state=EngineState.TriggerStart,
        platform="Kubernetes",
        create_time=now,
        update_time=now,
        next_update_time=now,
        connect_token="tok",
    )


def forged_driver(e: Engine, name: str | None = None) -> dict[str, Any]:
    """A pod another engine's code could create: the victim's labels (and maybe its
    driver's name), its own image, compliant with the namespace's Pod Security."""
    pod = copy.deepcopy(m.pod_manifest(e, KubernetesPlatformConfig(namespace=NS)))
    pod["metadata"]["name"] = name or f"evil-{e.id}"
    pod["spec"]["containers"][0]["image"] = "attacker/spark-connect-impostor:1"
    pod["spec"]["volumes"] = []
    pod["spec"]["containers"][0]["volumeMounts"] = []
    return pod


async def observed(p: KubernetesPlatform, e: Engine, kind: type[Observation]) -> Observation:
    async def probe() -> Observation | None:
        obs = await p.inspect(engine=e)
        return obs if isinstance(obs, kind) else None

    return await eventually(probe, timeout=20, interval=0.05, what=kind.__name__)


async def test_a_ready_pod_with_an_engines_driver_labels_is_ignored(
    platform: KubernetesPlatform, fake: FakeKube
) -> None:
    e = engine()
    await platform.start(engine=e)
    assert isinstance(await platform.inspect(engine=e), Pending)
    await eventually(lambda: _synced(platform), timeout=20, what="the pod watch")
    seen = int(platform.watch_stats["events"])
    fake.add("pods", NS, forged_driver(e))
    fake.kubelet_ready(NS, f"evil-{e.id}")
    # The watch sees the impostor created, then Ready; the engine is still its own
    # pending driver.
    await eventually(
        lambda: _events_since(platform, seen, 2), timeout=20, what="the watch to see the impostor"
    )
    assert isinstance(await platform.inspect(engine=e), Pending)
    fake.kubelet_ready(NS, m.driver_pod_name(e.id))
    assert await observed(platform, e, Ready) == Ready(m.endpoint(e.id, NS))


async def _synced(platform: KubernetesPlatform) -> bool:
    return bool(platform.watch_stats["synced"])


async def _events_since(platform: KubernetesPlatform, seen: int, count: int) -> bool:
    return int(platform.watch_stats["events"]) >= seen + count


async def test_a_pod_squatting_the_drivers_name_is_removed_never_adopted(
    platform: KubernetesPlatform, fake: FakeKube
) -> None:
    e = engine()
    name = m.driver_pod_name(e.id)
    fake.add("pods", NS, forged_driver(e, name))
    fake.kubelet_ready(NS, name)
    with pytest.raises(PlatformError, match="not the driver pod Rucat recorded creating"):
        await platform.start(engine=e)
    assert fake.get("pods", NS, name) is None
    await platform.start(engine=e)  # the retry creates Rucat's own
    pod = fake.get("pods", NS, name)
    assert pod is not None and pod["spec"]["containers"][0]["image"] == "apache/spark:4.0.1"
    assert isinstance(await platform.inspect(engine=e), Pending)


async def test_a_driver_replaced_behind_rucats_back_fails_the_engine(
    platform: KubernetesPlatform, fake: FakeKube
) -> None:
    e = engine()
    await platform.start(engine=e)
    name = m.driver_pod_name(e.id)
    fake.kubelet_ready(NS, name)
    await observed(platform, e, Ready)
    fake.delete("pods", NS, name)
    fake.add("pods", NS, forged_driver(e, name))
    fake.kubelet_ready(NS, name)
    failed = await observed(platform, e, Failed)
    assert isinstance(failed, Failed) and "not the driver pod Rucat created" in failed.reason
    await platform.stop(engine=e)
    assert fake.objects("pods", NS) == []


async def test_a_restarted_monitor_trusts_the_pod_rucat_recorded(
    kubeconfig: Path, fake: FakeKube
) -> None:
    e = engine()
    first = make_platform(kubeconfig)
    await first.start(engine=e)
    await first.close()
    fake.kubelet_ready(NS, m.driver_pod_name(e.id))
    secret = fake.get("secrets", NS, m.secret_name(e.id))
    pod = fake.get("pods", NS, m.driver_pod_name(e.id))
    assert secret is not None and pod is not None
    assert secret["metadata"]["annotations"][m.DRIVER_UID_ANNOTATION] == pod["metadata"]["uid"]
    second = make_platform(kubeconfig)  # knows nothing but what the cluster records
    try:
        assert await observed(second, e, Ready) == Ready(m.endpoint(e.id, NS))
        await second.start(engine=e)  # a retried start adopts it
        assert [p["metadata"]["uid"] for p in fake.objects("pods", NS)] == [pod["metadata"]["uid"]]
    finally:
        await second.close()


async def test_a_driver_pod_left_unrecorded_by_a_dead_monitor_is_replaced(
    platform: KubernetesPlatform, fake: FakeKube
) -> None:
    # The monitor died between creating the pod and recording its uid.
    e = engine()
    built = m.engine_manifests(e, platform.config)
    fake.add("secrets", NS, built.secret)
    fake.add("pods", NS, built.pod)
    old = fake.get("pods", NS, m.driver_pod_name(e.id))
    assert old is not None
    with pytest.raises(PlatformError, match="removed it, starting again"):
        await platform.start(engine=e)
    await platform.start(engine=e)
    new = fake.get("pods", NS, m.driver_pod_name(e.id))
    assert new is not None and new["metadata"]["uid"] != old["metadata"]["uid"]


# --- the engine's NetworkPolicy ------------------------------------------------------


async def test_each_engine_admits_driver_and_block_manager_traffic_only_from_itself(
    platform: KubernetesPlatform, fake: FakeKube
) -> None:
    e = engine()
    await platform.start(engine=e)
    (policy,) = fake.objects("networkpolicies", NS)
    assert policy["metadata"]["name"] == sec.network_policy_name(e.id)
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": m.engine_selector(e.id)}
    assert spec["policyTypes"] == ["Ingress"]
    (rule,) = spec["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": m.engine_selector(e.id)}}]
    assert sorted(p["port"] for p in rule["ports"]) == [m.DRIVER_PORT, m.BLOCK_MANAGER_PORT]
    # The driver and the executors Spark labels for the engine are both selected.
    driver = fake.get("pods", NS, m.driver_pod_name(e.id))
    assert driver is not None
    executor_labels = {
        k.removeprefix("spark.kubernetes.executor.label."): v
        for k, v in m.spark_confs(e, platform.config).items()
        if k.startswith("spark.kubernetes.executor.label.")
    }
    for labels in (driver["metadata"]["labels"], executor_labels):
        assert m.engine_selector(e.id).items() <= labels.items()
    await platform.stop(engine=e)
    assert fake.objects("networkpolicies", NS) == []


async def test_engine_network_policies_can_be_turned_off(kubeconfig: Path, fake: FakeKube) -> None:
    p = make_platform(kubeconfig, network_policies=False)
    try:
        e = engine()
        await p.start(engine=e)
        assert fake.objects("networkpolicies", NS) == []
        await p.stop(engine=e)
    finally:
        await p.close()
