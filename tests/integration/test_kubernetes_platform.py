"""The Kubernetes platform against the fake API server, through the real client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rucat.config import KubernetesPlatformConfig
from rucat.domain.engine import Engine, EngineType, new_engine_id
from rucat.domain.errors import ConfigError, PlatformError, PlatformRejected
from rucat.domain.observation import Absent, Failed, Observation, Pending, Ready
from rucat.domain.state import EngineState
from rucat.platforms.kubernetes import manifests as m
from rucat.platforms.kubernetes import security as sec
from rucat.platforms.kubernetes.platform import KubernetesPlatform
from tests.support import eventually, free_port
from tests.support.fake_kube import FakeKube
from tests.support.fake_kube_rules import RESTRICTED

NS = "spark"


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    # The engines' namespace enforces Pod Security `restricted`, as the chart's does.
    with FakeKube(namespaces=(NS,), namespace_labels={NS: RESTRICTED}) as server:
        yield server


@pytest.fixture
def kubeconfig(fake: FakeKube, tmp_path: Path) -> Path:
    return fake.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)


def make_platform(kubeconfig: Path, **kw: object) -> KubernetesPlatform:
    return KubernetesPlatform(
        KubernetesPlatformConfig(namespace=NS, kubeconfig=str(kubeconfig), **kw)  # type: ignore[arg-type]
    )


@pytest.fixture
async def platform(kubeconfig: Path) -> AsyncIterator[KubernetesPlatform]:
    p = make_platform(kubeconfig)
    yield p
    await p.close()


def engine(version: str = "4.0.1", configs: dict[str, str] | None = None) -> Engine:
    now = datetime.now(UTC)
    return Engine(
        id=new_engine_id(),
        name="test engine",
        engine_type=EngineType.Spark,
        version=version,
        configs=configs or {},
        state=EngineState.TriggerStart,
        platform="Kubernetes",
        create_time=now,
        update_time=now,
        next_update_time=now,
        connect_token="tok-" + new_engine_id(),
    )


async def observed(
    platform: KubernetesPlatform, e: Engine, kind: type[Observation], timeout: float = 20
) -> Observation:
    async def probe() -> Observation | None:
        obs = await platform.inspect(engine=e)
        return obs if isinstance(obs, kind) else None

    return await eventually(probe, timeout=timeout, interval=0.05, what=f"{kind.__name__}")


def names(fake: FakeKube, plural: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in fake.objects(plural, NS))


# --- the happy path ---------------------------------------------------------------


async def test_start_makes_secret_service_and_pod_and_ready_follows_the_kubelet(
    fake: FakeKube, platform: KubernetesPlatform
) -> None:
    e = engine()
    await platform.start(engine=e)
    assert names(fake, "pods") == [m.driver_pod_name(e.id)]
    assert names(fake, "services") == [m.service_name(e.id)]
    assert names(fake, "secrets") == [m.secret_name(e.id)]
    assert e.connect_token is not None
    assert e.connect_token not in json.dumps(fake.objects("pods", NS))
    assert isinstance(await platform.inspect(engine=e), Pending)

    fake.kubelet_running(NS, m.driver_pod_name(e.id), ready=False)
    assert isinstance(await observed(platform, e, Pending), Pending)
    fake.kubelet_ready(NS, m.driver_pod_name(e.id))
    ready = await observed(platform, e, Ready)
    assert ready == Ready(f"sc://rucat-spark-{e.id}.{NS}.svc:15002")


async def test_stop_deletes_pod_service_secret_and_executors_then_absent(
    fake: FakeKube, platform: KubernetesPlatform
) -> None:
    e = engine()
    await platform.start(engine=e)
    fake.kubelet_ready(NS, m.driver_pod_name(e.id))
    await observed(platform, e, Ready)
    # An executor Spark made without an owner reference still goes.
    executor = {
        "metadata": {"name": f"rucat-spark-{e.id}-exec-1", "labels": m.engine_labels(e.id, "x")},
        "spec": {
            **sec.executor_pod_template(platform.config)["spec"],
            "containers": [
                {
                    "name": "executor",
                    "image": "apache/spark:4.0.1",
                    "securityContext": sec.container_security_context(platform.config),
                }
            ],
        },
    }
    fake.add("pods", NS, executor)
    await platform.stop(engine=e)
    assert names(fake, "pods") == names(fake, "services") == names(fake, "secrets") == []
    await observed(platform, e, Absent)


async def test_inspecting_ready_engines_costs_no_api_calls(
    fake: FakeKube, platform: KubernetesPlatform
) -> None:
    engines = [engine() for _ in range(5)]
    for e in engines:
        await platform.start(engine=e)
        fake.kubelet_ready(NS, m.driver_pod_name(e.id))
    for e in engines:
        await observed(platform, e, Ready)
    before = sum(fake.requests.values())
    for _ in range(100):
        for e in engines:
            assert isinstance(await platform.inspect(engine=e), Ready)
    assert sum(fake.requests.values()) == before


async def test_logs_are_the_driver_pod_log_and_empty_without_a_pod(
    fake: FakeKube, platform: KubernetesPlatform
) -> None:
    e = engine()
    assert await platform.logs(engine=e) == ""
    await platform.start(engine=e)
    assert await platform.logs(engine=e) == ""  # container not started yet
    fake.kubelet_ready(NS, m.driver_pod_name(e.id))
    fake.set_pod_log(NS, m.driver_pod_name(e.id), "starting\nlistening on 15002\nready\n")
    assert await platform.logs(engine=e, tail=2) == "listening on 15002\nready\n"
    assert (await platform.logs(engine=e)).startswith("starting\n")


# --- failures with a reason -------------------------------------------------------


async def test_image_pull_backoff_fails_naming_the_image(
    fake: FakeKube, platform: KubernetesPlatform
) -> None:
    e = engine("3.5.4")
    await platform.start(engine=e)
    fake.kubelet_image_pull_backoff(NS, m.driver_pod_name(e.id))
    failed = await observed(platform, e, Failed)
    assert isinstance(failed, Failed)
    assert "apache/spark:3.5.4" in failed.reason and "ImagePullBackOff" in failed.reason


async def test_unschedulable_fails_with_the_scheduler_message(
    fake: FakeKube, platform: KubernetesPlatform
) -> None:
    e = engine(configs={"spark.driver.memory": "512g"})
    await platform.start(engine=e)
    message = "0/3 nodes are available: 3 Insufficient memory."
    fake.scheduler_unschedulable(NS, m.driver_pod_name(e.id), message)
    failed = await observed(platform, e, Failed)
    assert isinstance(failed, Failed) and message in failed.reason


async def test_a_crashed_driver_fails_with_its_exit_code(
    fake: FakeKube, platform: KubernetesPlatform
) -> None:
    e = engine()
    await platform.start(engine=e)
    fake.kubelet_ready(NS, m.driver_pod_name(e.id))
    await observed(platform, e, Ready)
    fake.kubelet_terminated(NS, m.driver_pod_name(e.id), exit_code=137, reason="OOMKilled")
    failed = await observed(platform, e, Failed)
    assert isinstance(failed, Failed) and "OOMKilled" in failed.reason


async def test_a_pod_deleted_behind_rucats_back_is_absent(
    fake: FakeKube, platform: KubernetesPlatform
) -> None:
    e = engine()
    await platform.start(engine=e)
    fake.kubelet_ready(NS, m.driver_pod_name(e.id))
    await observed(platform, e, Ready)
    assert fake.delete("pods", NS, m.driver_pod_name(e.id))
    await observed(platform, e, Absent)
    await platform.stop(engine=e)  # the clean-up still removes the rest
    assert names(fake, "services") == names(fake, "secrets") == []


async def test_reserved_confs_and_unknown_versions_are_rejected_before_creating_anything(
    fake: FakeKube, platform: KubernetesPlatform
) -> None:
    with pytest.raises(PlatformRejected, match="reserved"):
        await platform.start(engine=engine(configs={"spark.driver.host": "evil"}))
    with pytest.raises(PlatformRejected, match="not offered"):
        await platform.start(engine=engine("9.9.9"))
    assert names(fake, "pods") == names(fake, "secrets") == []


# --- idempotence and adoption -------------------------------------------------------


async def test_start_twice_makes_one_pod_and_stop_twice_is_fine(
    fake: FakeKube, platform: KubernetesPlatform
) -> None:
    e = engine()
    await platform.start(engine=e)
    uid = fake.objects("pods", NS)[0]["metadata"]["uid"]
    await platform.start(engine=e)
    pods = fake.objects("pods", NS)
    assert [p["metadata"]["uid"] for p in pods] == [uid]
    await platform.stop(engine=e)
    await platform.stop(engine=e)
    await platform.forget(engine=e)
    await platform.stop(engine=engine())  # never started: nothing to do
    await observed(platform, e, Absent)


async def test_a_restarted_platform_adopts_the_existing_pod(
    fake: FakeKube, kubeconfig: Path
) -> None:
    e = engine()
    first = make_platform(kubeconfig)
    await first.start(engine=e)
    await first.close()  # the monitor died mid-start

    second = make_platform(kubeconfig)
    try:
        assert isinstance(await second.inspect(engine=e), Pending)
        await second.start(engine=e)  # the retried start adopts
        assert names(fake, "pods") == [m.driver_pod_name(e.id)]
        fake.kubelet_ready(NS, m.driver_pod_name(e.id))
        await observed(second, e, Ready)
    finally:
        await second.close()


async def test_stop_while_pending_removes_everything(
    fake: FakeKube, platform: KubernetesPlatform
) -> None:
    e = engine()
    await platform.start(engine=e)
    assert isinstance(await platform.inspect(engine=e), Pending)
    await platform.stop(engine=e)
    assert names(fake, "pods") == names(fake, "services") == names(fake, "secrets") == []
    await observed(platform, e, Absent)


async def test_a_terminating_pod_is_not_absent_until_it_is_gone(
    fake: FakeKube, platform: KubernetesPlatform
) -> None:
    fake.hold_pod_deletion = True
    e = engine()
    await platform.start(engine=e)
    fake.kubelet_ready(NS, m.driver_pod_name(e.id))
    await observed(platform, e, Ready)
    await platform.stop(engine=e)
    terminating = await observed(platform, e, Pending)
    assert terminating == Pending("driver pod is terminating")
    assert fake.finish_pod_deletion(NS, m.driver_pod_name(e.id))
    await observed(platform, e, Absent)


async def test_a_restart_waits_for_the_previous_driver_pod_to_be_gone(
    fake: FakeKube, platform: KubernetesPlatform
) -> None:
    fake.hold_pod_deletion = True
    e = engine()
    await platform.start(engine=e)
    await platform.stop(engine=e)
    with pytest.raises(PlatformError, match="still terminating"):
        await platform.start(engine=e)
    fake.finish_pod_deletion(NS, m.driver_pod_name(e.id))
    await platform.start(engine=e)
    pods = fake.objects("pods", NS)
    assert len(pods) == 1 and not pods[0]["metadata"].get("deletionTimestamp")
    await observed(platform, e, Pending)


# --- the watch recovers ---------------------------------------------------------------


async def _changes(platform: KubernetesPlatform, seen: list[str]) -> None:
    async for engine_id in platform.changes():
        seen.append(engine_id)


async def test_changes_yield_the_engine_id_on_pod_events(
    fake: FakeKube, platform: KubernetesPlatform
) -> None:
    seen: list[str] = []
    task = asyncio.create_task(_changes(platform, seen))
    try:
        e = engine()
        await platform.start(engine=e)
        fake.kubelet_ready(NS, m.driver_pod_name(e.id))

        async def saw() -> bool:
            return e.id in seen

        await eventually(saw, timeout=20, what="a change for the engine")
    finally:
        task.cancel()


@pytest.mark.parametrize("abrupt", [False, True], ids=["clean-drop", "cut-connection"])
async def test_a_dropped_watch_recovers_and_later_events_arrive(
    fake: FakeKube, platform: KubernetesPlatform, abrupt: bool
) -> None:
    e = engine()
    await platform.start(engine=e)
    assert await _synced(platform)
    fake.drop_watches(abrupt=abrupt)
    fake.kubelet_ready(NS, m.driver_pod_name(e.id))
    await _wait_synced_and_watching(platform, fake)
    await observed(platform, e, Ready)
    later = engine()
    await platform.start(engine=later)
    fake.kubelet_image_pull_backoff(NS, m.driver_pod_name(later.id))
    await observed(platform, later, Failed)


async def test_a_410_gone_relists_and_later_events_arrive(
    fake: FakeKube, platform: KubernetesPlatform
) -> None:
    e = engine()
    await platform.start(engine=e)
    assert await _synced(platform)
    relists = platform.watch_stats["relists"]
    fake.compact()
    fake.drop_watches()  # the client resumes from a version that is now too old
    fake.delete("pods", NS, m.driver_pod_name(e.id))  # missed while relisting or seen after

    async def relisted() -> bool:
        return int(platform.watch_stats["relists"]) > int(relists)

    await eventually(relisted, timeout=20, what="a relist after 410")
    await observed(platform, e, Absent)
    later = engine()
    await platform.start(engine=later)
    fake.kubelet_ready(NS, m.driver_pod_name(later.id))
    await _wait_synced_and_watching(platform, fake)
    await observed(platform, later, Ready)


async def test_watch_windows_resume_without_relisting_and_miss_nothing(
    fake: FakeKube, platform: KubernetesPlatform
) -> None:
    platform._watch().window = 0.5  # every half second the watch request is renewed
    e = engine()
    await platform.start(engine=e)
    assert await _synced(platform)

    async def renewed() -> bool:
        return fake.requests[("watch", "pods")] >= 3

    await eventually(renewed, timeout=20, what="several watch windows")
    fake.kubelet_ready(NS, m.driver_pod_name(e.id))
    await observed(platform, e, Ready)
    assert platform.watch_stats["relists"] == 1


async def _synced(platform: KubernetesPlatform) -> bool:
    async def probe() -> bool:
        return bool(platform.watch_stats["synced"])

    return await eventually(probe, timeout=20, what="the pod watch to sync")


async def _wait_synced_and_watching(platform: KubernetesPlatform, fake: FakeKube) -> None:
    async def probe() -> bool:
        return bool(platform.watch_stats["synced"]) and fake.active_watches > 0

    await eventually(probe, timeout=30, what="the pod watch to recover")


# --- check() ----------------------------------------------------------------------------


async def test_check_passes_on_a_reachable_api_with_the_namespace(
    platform: KubernetesPlatform,
) -> None:
    await platform.check()


async def test_check_names_a_missing_namespace(kubeconfig: Path) -> None:
    p = KubernetesPlatform(KubernetesPlatformConfig(namespace="nope", kubeconfig=str(kubeconfig)))
    try:
        with pytest.raises(ConfigError, match="namespace 'nope' does not exist"):
            await p.check()
    finally:
        await p.close()


async def test_check_says_when_the_api_server_is_unreachable(tmp_path: Path) -> None:
    dead = FakeKube(namespaces=(NS,))
    dead.port = free_port()  # never started: nothing listens there
    path = dead.write_kubeconfig(tmp_path / "kc", namespace=NS)
    p = make_platform(path)
    try:
        with pytest.raises(ConfigError, match="cannot reach the Kubernetes API server"):
            await p.check()
    finally:
        await p.close()


async def test_a_missing_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    p = make_platform(tmp_path / "missing")
    with pytest.raises(ConfigError, match="cannot load the Kubernetes config"):
        await p.check()


# --- an API server behind a proxy that adds a charset -----------------------------------

CHARSET_JSON = "application/json; charset=utf-8"


async def test_404_and_409_count_whatever_the_content_type(tmp_path: Path) -> None:
    with FakeKube(namespaces=(NS,), json_content_type=CHARSET_JSON) as fake:
        p = make_platform(fake.write_kubeconfig(tmp_path / "kc", namespace=NS))
        try:
            e = engine()
            assert isinstance(await p.inspect(engine=e), Absent)  # 404 on the pod
            assert await p.logs(engine=e) == ""
            await p.stop(engine=e)  # 404s on everything: already gone
            await p.start(engine=e)
            await p.start(engine=e)  # 409s: adopted, not refused
            assert names(fake, "pods") == [m.driver_pod_name(e.id)]
            await p.stop(engine=e)
            assert names(fake, "pods") == [] and names(fake, "secrets") == []
        finally:
            await p.close()


async def test_check_names_a_missing_namespace_whatever_the_content_type(tmp_path: Path) -> None:
    with FakeKube(namespaces=(NS,), json_content_type=CHARSET_JSON) as fake:
        path = fake.write_kubeconfig(tmp_path / "kc", namespace=NS)
        p = KubernetesPlatform(KubernetesPlatformConfig(namespace="nope", kubeconfig=str(path)))
        try:
            with pytest.raises(ConfigError, match="namespace 'nope' does not exist"):
                await p.check()
        finally:
            await p.close()


async def test_refusals_keep_the_api_servers_message_whatever_the_content_type(
    tmp_path: Path,
) -> None:
    with FakeKube(namespaces=(NS,), json_content_type=CHARSET_JSON) as fake:
        p = make_platform(fake.write_kubeconfig(tmp_path / "kc", namespace=NS))
        try:
            # A name the API server refuses (422) is rejected with its own words.
            with pytest.raises(PlatformRejected, match=r"Invalid value.*HTTP 422"):
                await p.start(engine=replace(engine(), id="Not_A_Dns_Name"))
        finally:
            await p.close()
