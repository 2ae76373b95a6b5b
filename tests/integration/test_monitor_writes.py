"""Each decision is one compare-and-set, counted on a real store by the row's revision.

The real monitor, a SQLite store and the Kubernetes platform against the fake
API server (no Java). The monitor's loop is not running: the test wakes it for
one pass at a time, so nothing else writes between two readings of the row.
Every write bumps the revision by one (the store contract), and every state
change leaves an event: the revision counts writes, the events name them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
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
from tests.integration.test_kubernetes_monitor import NS, fake
from tests.support import eventually
from tests.support.fake_kube import FakeKube

__all__ = ["fake"]  # fixture

S = EngineState
TIMING = Timing(check_interval=0.5, start_timeout=60, lease=10, fast_poll=0.1, resync=3600)
SECRET = "s3cr3t-in-the-driver-log"


@dataclass
class OnePass:
    fake: FakeKube
    store: EngineStore
    monitor: Monitor

    async def step(
        self, engine: Engine, until: EngineState, *, passes: int = 1, wait: float = 30
    ) -> Engine:
        """Up to `passes` monitor passes over `engine`, each given `wait` seconds, until
        the row reaches `until` (where the monitor stops to wait for the platform)."""
        for _ in range(passes):
            self.monitor.wake(engine.id)
            await self.monitor.run_once()

            async def reached() -> Engine | None:
                current = await self.store.get(engine_id=engine.id)
                return current if current.state is until else None

            with contextlib.suppress(AssertionError):
                return await eventually(reached, timeout=wait, interval=0.05, what=until.value)
        raise AssertionError(f"engine not {until.value} after {passes} passes")

    async def events(self, engine: Engine) -> list[tuple[EngineState | None, EngineState]]:
        return [(e.from_state, e.to_state) for e in await self.store.events(engine_id=engine.id)]


@pytest.fixture
async def one_pass(fake: FakeKube, tmp_path: Path) -> AsyncIterator[OnePass]:
    store = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=str(tmp_path / "w.db"))))
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    platform = KubernetesPlatform(
        KubernetesPlatformConfig(namespace=NS, kubeconfig=str(kubeconfig))
    )
    try:
        yield OnePass(fake, store, Monitor(store=store, platform=platform, timing=TIMING))
    finally:
        await platform.close()
        await store.close()


async def running(rig: OnePass) -> Engine:
    request = CreateEngineRequest(
        name="counted",
        engine_type=EngineType.Spark,
        version="4.0.1",
        configs={"spark.hadoop.fs.s3a.secret.key": SECRET},
    )
    engine = await rig.store.add(
        engine=new_engine(request, platform="Kubernetes", now=datetime.now(UTC)), actor="test"
    )
    # The pod watch may lag: a pass that sees it pending only looks again later.
    starting = await rig.step(engine, S.StartInProgress, passes=15, wait=2)
    pod = m.driver_pod_name(engine.id)
    rig.fake.kubelet_ready(NS, pod)
    rig.fake.set_pod_log(NS, pod, f"INFO started\nINFO conf secret.key={SECRET}\nINFO last line\n")
    return await rig.step(starting, S.Running, passes=15, wait=2)


async def test_a_stop_costs_the_user_one_write_and_the_monitor_two_with_the_logs_in_the_claim(
    one_pass: OnePass,
) -> None:
    engine = await running(one_pass)
    stopped = await apply_user_action(
        one_pass.store,
        engine_id=engine.id,
        action=UserAction.STOP,
        principal=ANONYMOUS_ADMIN,
        clock=lambda: datetime.now(UTC),
    )
    assert stopped is not None
    assert stopped.state is S.WaitToTerminate
    assert stopped.revision == engine.revision + 1

    # One pass: the claim and the stop need no observation.
    terminating = await one_pass.step(stopped, S.TerminateInProgress)
    # The claim (with the log tail) and "stop issued": two compare-and-sets, no third
    # write for the logs.
    assert terminating.revision == stopped.revision + 2
    assert terminating.saved_logs == (
        f"INFO started\nINFO conf secret.key={REDACTED}\nINFO last line\n"
    )
    assert (await one_pass.events(engine))[-3:] == [
        (S.Running, S.WaitToTerminate),
        (S.WaitToTerminate, S.TriggerTermination),
        (S.TriggerTermination, S.TerminateInProgress),
    ]
