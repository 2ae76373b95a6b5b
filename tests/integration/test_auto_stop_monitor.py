"""Auto-stop by the real monitor over a real store, with an injected clock (no Java).

The platform is the Kubernetes one against the fake API server, which makes an
engine Running without starting Spark; the monitor's clock is a FakeClock, so
"an hour later" takes no time. The engine's proxy activity is recorded in the
store as a proxy records it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from rucat.config import DatabaseConfig, KubernetesPlatformConfig, SqliteConfig
from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine
from rucat.domain.monitor_decisions import Timing
from rucat.domain.state import EngineState
from rucat.monitor.reconciler import Monitor
from rucat.platforms.kubernetes import manifests as m
from rucat.platforms.kubernetes.platform import KubernetesPlatform
from rucat.store import EngineStore, open_store
from tests.conftest import FakeClock
from tests.integration.test_kubernetes_monitor import NS, fake
from tests.support import eventually
from tests.support.fake_kube import FakeKube

__all__ = ["fake"]  # fixture

S = EngineState
TIMING = Timing(check_interval=0.2, start_timeout=60, lease=10, fast_poll=0.05, resync=3600)


class Rig:
    def __init__(self, fake: FakeKube, store: EngineStore, monitor: Monitor, clock: FakeClock):
        self.fake, self.store, self.monitor, self.clock = fake, store, monitor, clock

    async def running(self, auto_stop_minutes: float) -> Engine:
        request = CreateEngineRequest(name="idle", engine_type=EngineType.Spark, version="4.0.1")
        engine = new_engine(
            request, platform="Kubernetes", now=self.clock(), auto_stop_minutes=auto_stop_minutes
        )
        await self.store.add(engine=engine, actor="test")
        self.monitor.wake(engine.id)
        await self.until(engine, lambda e: e.state is S.StartInProgress, "StartInProgress")
        self.fake.kubelet_ready(NS, m.driver_pod_name(engine.id))
        return await self.until(engine, lambda e: e.state is S.Running, "Running")

    async def later(self, engine: Engine, seconds: float) -> Engine:
        """Move the clock on and let the monitor look at the engine (twice, to be sure)."""
        self.clock.advance(seconds)
        for _ in range(2):
            self.monitor.wake(engine.id)
            await asyncio.sleep(0.3)
        return await self.store.get(engine_id=engine.id)

    async def until(self, engine: Engine, test: object, what: str) -> Engine:
        async def probe() -> Engine | None:
            current = await self.store.get(engine_id=engine.id)
            return current if test(current) else None  # type: ignore[operator]

        return await eventually(probe, timeout=30, interval=0.05, what=what)

    async def terminated(self, engine: Engine) -> Engine:
        """Wait for Terminated while time passes (the monitor polls a stopping engine)."""

        async def probe() -> Engine | None:
            self.clock.advance(0.5)
            current = await self.store.get(engine_id=engine.id)
            return current if current.state is S.Terminated else None

        return await eventually(probe, timeout=30, interval=0.05, what="Terminated")


@pytest.fixture
async def rig(fake: FakeKube, tmp_path: Path) -> AsyncIterator[Rig]:
    store = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=str(tmp_path / "r.db"))))
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    platform = KubernetesPlatform(
        KubernetesPlatformConfig(namespace=NS, kubeconfig=str(kubeconfig))
    )
    clock = FakeClock()
    monitor = Monitor(store=store, platform=platform, timing=TIMING, clock=clock)
    task = asyncio.create_task(monitor.run())
    try:
        yield Rig(fake, store, monitor, clock)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await platform.close()
        await store.close()


async def test_an_idle_engine_is_stopped_by_auto_stop_saying_why(rig: Rig) -> None:
    engine = await rig.running(auto_stop_minutes=1)
    still = await rig.later(engine, 59)
    assert still.state is S.Running

    await rig.later(engine, 2)
    stopped = await rig.terminated(engine)
    assert stopped.state is S.Terminated
    event = next(
        e for e in await rig.store.events(engine_id=engine.id) if e.from_state is S.Running
    )
    assert (event.to_state, event.actor) == (S.WaitToTerminate, "auto-stop")
    assert event.message == "no Spark Connect activity for 1 minute"
    assert rig.monitor.auto_stops == 1


async def test_an_engine_with_auto_stop_zero_is_never_stopped(rig: Rig) -> None:
    engine = await rig.running(auto_stop_minutes=0)
    after_a_year = await rig.later(engine, 365 * 24 * 3600)
    assert after_a_year.state is S.Running
    assert rig.monitor.auto_stops == 0


async def test_activity_recorded_by_a_proxy_postpones_the_stop(rig: Rig) -> None:
    engine = await rig.running(auto_stop_minutes=1)
    for _ in range(3):  # a proxy refreshing a long query's activity every 50 s
        rig.clock.advance(50)
        await rig.store.record_activity(engine_id=engine.id, at=rig.clock())
        assert (await rig.later(engine, 0)).state is S.Running
    last = rig.clock()
    await rig.later(engine, 61)  # the refreshes stopped: a minute later it is idle
    stopped = await rig.terminated(engine)
    event = next(e for e in await rig.store.events(engine_id=engine.id) if e.actor == "auto-stop")
    assert event.time - last >= timedelta(minutes=1)
    assert stopped.last_activity_time == last
