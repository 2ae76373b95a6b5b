"""Issue 5's scenarios in engine states: the real monitor, a SQLite store, the
Kubernetes platform and the fake API server playing scheduler and kubelet."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rucat.config import DatabaseConfig, KubernetesPlatformConfig, SqliteConfig
from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine
from rucat.domain.monitor_decisions import Timing
from rucat.domain.principal import ANONYMOUS_ADMIN
from rucat.domain.redaction import REDACTED
from rucat.domain.state import EngineState, UserAction
from rucat.monitor.reconciler import Monitor
from rucat.platforms.kubernetes import manifests as m
from rucat.platforms.kubernetes.platform import KubernetesPlatform
from rucat.server.actions import apply_user_action
from rucat.store import EngineStore, open_store
from tests.support import eventually
from tests.support.fake_kube import FakeKube
from tests.support.fake_kube_rules import RESTRICTED

NS = "engines"
S = EngineState


def timing(start_timeout: float = 60.0) -> Timing:
    return Timing(
        check_interval=0.5, start_timeout=start_timeout, lease=10, fast_poll=0.1, resync=1
    )


@dataclass
class Rig:
    fake: FakeKube
    store: EngineStore
    kubeconfig: Path
    monitors: list[tuple[Monitor, KubernetesPlatform, asyncio.Task[None]]]

    async def start_monitor(self, *, start_timeout: float = 60.0, **config: object) -> Monitor:
        platform = KubernetesPlatform(
            KubernetesPlatformConfig(namespace=NS, kubeconfig=str(self.kubeconfig), **config)  # type: ignore[arg-type]
        )
        monitor = Monitor(store=self.store, platform=platform, timing=timing(start_timeout))
        task = asyncio.create_task(monitor.run())
        self.monitors.append((monitor, platform, task))
        return monitor

    async def kill_monitors(self) -> None:
        for _monitor, platform, task in self.monitors:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await platform.close()
        self.monitors.clear()

    async def create(self, version: str = "4.0.1", **configs: str) -> Engine:
        request = CreateEngineRequest(
            name="scenario", engine_type=EngineType.Spark, version=version, configs=configs
        )
        engine = new_engine(request, platform="Kubernetes", now=datetime.now(UTC))
        stored = await self.store.add(engine=engine, actor="test")
        for monitor, _, _ in self.monitors:
            monitor.wake(stored.id)
        return stored

    async def until(
        self, engine: Engine, test: Callable[[Engine], bool], what: str, timeout: float = 30
    ) -> Engine:
        async def probe() -> Engine | None:
            current = await self.store.get(engine_id=engine.id)
            return current if test(current) else None

        return await eventually(probe, timeout=timeout, interval=0.1, what=what)

    async def state(self, engine: Engine, state: EngineState, timeout: float = 30) -> Engine:
        return await self.until(engine, lambda e: e.state is state, f"{state.value}", timeout)

    async def user(self, engine: Engine, action: UserAction) -> None:
        await apply_user_action(
            self.store,
            engine_id=engine.id,
            action=action,
            principal=ANONYMOUS_ADMIN,
            clock=lambda: datetime.now(UTC),
        )
        for monitor, _, _ in self.monitors:
            monitor.wake(engine.id)

    def names(self, plural: str) -> list[str]:
        return [o["metadata"]["name"] for o in self.fake.objects(plural, NS)]


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube(namespaces=(NS,), namespace_labels={NS: RESTRICTED}) as server:
        yield server


@pytest.fixture
async def rig(fake: FakeKube, tmp_path: Path) -> AsyncIterator[Rig]:
    store = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=str(tmp_path / "r.db"))))
    r = Rig(fake, store, fake.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS), [])
    try:
        yield r
    finally:
        await r.kill_monitors()
        await store.close()


def driver(engine: Engine) -> str:
    return m.driver_pod_name(engine.id)


async def test_an_engine_runs_when_its_pod_is_ready_and_stop_terminates_it(rig: Rig) -> None:
    await rig.start_monitor()
    engine = await rig.create()
    await rig.state(engine, S.StartInProgress)
    assert rig.names("pods") == [driver(engine)]
    rig.fake.kubelet_ready(NS, driver(engine))
    running = await rig.state(engine, S.Running)
    assert running.endpoint == f"sc://rucat-spark-{engine.id}.{NS}.svc:15002"

    await rig.user(engine, UserAction.STOP)
    stopped = await rig.state(engine, S.Terminated)
    assert rig.names("pods") == rig.names("services") == rig.names("secrets") == []
    # The driver's log was kept in the store before its pod went away.
    assert stopped.saved_logs is not None and "Spark Connect server started" in stopped.saved_logs


async def test_image_pull_backoff_ends_in_error_clean_with_the_image_named(rig: Rig) -> None:
    await rig.start_monitor()
    engine = await rig.create("3.5.4")
    await rig.state(engine, S.StartInProgress)
    rig.fake.kubelet_image_pull_backoff(NS, driver(engine))
    failed = await rig.state(engine, S.ErrorClean)
    assert failed.message is not None and "apache/spark:3.5.4" in failed.message
    assert rig.names("pods") == rig.names("services") == rig.names("secrets") == []


async def test_a_pod_deleted_behind_rucats_back_is_an_error_and_cleaned_up(rig: Rig) -> None:
    await rig.start_monitor()
    engine = await rig.create()
    await rig.state(engine, S.StartInProgress)
    rig.fake.kubelet_ready(NS, driver(engine))
    await rig.state(engine, S.Running)
    rig.fake.delete("pods", NS, driver(engine))
    failed = await rig.state(engine, S.ErrorClean)
    assert failed.message and "disappeared" in failed.message
    assert rig.names("services") == rig.names("secrets") == []


async def test_a_monitor_restarted_mid_start_adopts_the_pod_and_never_makes_a_second(
    rig: Rig,
) -> None:
    await rig.start_monitor()
    engine = await rig.create()
    await rig.state(engine, S.StartInProgress)
    uid = rig.fake.objects("pods", NS)[0]["metadata"]["uid"]
    await rig.kill_monitors()  # the monitor dies while the pod is still pending

    await rig.start_monitor()  # a new process: new platform, new watch
    rig.fake.kubelet_ready(NS, driver(engine))
    await rig.state(engine, S.Running)
    pods = rig.fake.objects("pods", NS)
    assert [p["metadata"]["uid"] for p in pods] == [uid]
    assert rig.fake.requests[("create", "pods")] == 1


async def test_stop_while_pending_terminates_and_removes_the_pod(rig: Rig) -> None:
    await rig.start_monitor()
    engine = await rig.create()
    await rig.state(engine, S.StartInProgress)
    await rig.user(engine, UserAction.STOP)
    await rig.state(engine, S.Terminated)
    assert rig.names("pods") == rig.names("services") == rig.names("secrets") == []


async def test_terminated_is_recorded_only_once_the_pod_is_gone(rig: Rig) -> None:
    rig.fake.hold_pod_deletion = True  # the kubelet takes its time to stop the driver
    await rig.start_monitor()
    engine = await rig.create()
    await rig.state(engine, S.StartInProgress)
    rig.fake.kubelet_ready(NS, driver(engine))
    await rig.state(engine, S.Running)
    await rig.user(engine, UserAction.STOP)
    await rig.until(
        engine,
        lambda e: e.state is S.TerminateInProgress,
        "TerminateInProgress",
    )
    await asyncio.sleep(1.0)  # several monitor passes while the pod is terminating
    assert (await rig.store.get(engine_id=engine.id)).state is S.TerminateInProgress
    rig.fake.finish_pod_deletion(NS, driver(engine))
    await rig.state(engine, S.Terminated)


async def test_a_pod_pending_past_the_start_timeout_fails_with_the_schedulers_reason(
    rig: Rig,
) -> None:
    await rig.start_monitor(start_timeout=2.0, fail_when_unschedulable=False)
    engine = await rig.create(**{"spark.driver.memory": "900g"})
    await rig.state(engine, S.StartInProgress)
    message = "0/3 nodes are available: 3 Insufficient memory."
    rig.fake.scheduler_unschedulable(NS, driver(engine), message)
    failed = await rig.until(
        engine, lambda e: e.state in (S.ErrorCleanInProgress, S.ErrorClean), "an error state"
    )
    assert failed.message is not None
    assert "start timed out" in failed.message and message in failed.message


SECRET = "wJalrXUtnFEMI-K7MDENG"


async def test_the_engine_gets_the_real_secret_but_the_saved_log_tail_is_redacted(
    rig: Rig,
) -> None:
    await rig.start_monitor()
    engine = await rig.create(**{"spark.hadoop.fs.s3a.secret.key": SECRET})
    await rig.state(engine, S.StartInProgress)
    # The launch spec carries the real value, on the command line or in the Secret's file.
    pod = rig.fake.objects("pods", NS)[0]
    secret = rig.fake.objects("secrets", NS)[0]
    properties = base64.b64decode(secret["data"][m.PROPERTIES_KEY]).decode()
    assert SECRET in " ".join(pod["spec"]["containers"][0]["args"]) + properties
    rig.fake.kubelet_ready(NS, driver(engine))
    await rig.state(engine, S.Running)
    rig.fake.set_pod_log(
        NS,
        driver(engine),
        f"spark.hadoop.fs.s3a.secret.key={SECRET}\n"
        f"user code printed {SECRET} and token={engine.connect_token}\n",
    )
    await rig.user(engine, UserAction.STOP)
    stopped = await rig.state(engine, S.Terminated)
    assert stopped.saved_logs == (
        f"spark.hadoop.fs.s3a.secret.key={REDACTED}\n"
        f"user code printed {REDACTED} and token={REDACTED}\n"
    )
    assert stopped.configs["spark.hadoop.fs.s3a.secret.key"] == SECRET


async def test_a_failure_message_quoting_a_secret_is_stored_redacted(rig: Rig) -> None:
    await rig.start_monitor()
    engine = await rig.create(**{"spark.hadoop.fs.s3a.secret.key": SECRET})
    await rig.state(engine, S.StartInProgress)
    rig.fake.scheduler_unschedulable(NS, driver(engine), f"0/1 nodes: {SECRET} is not a node")
    failed = await rig.state(engine, S.ErrorClean)
    assert failed.message is not None and f"{REDACTED} is not a node" in failed.message
    events = await rig.store.events(engine_id=engine.id)
    assert not any(SECRET in (e.message or "") for e in events)
