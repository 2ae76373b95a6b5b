"""The Standalone platform: drivers on this host, executors on a Spark standalone cluster.

Each engine is a Spark Connect server in client mode: a driver process on
this machine, started with ``--master <master_url>``, whose executors the
master places on its workers. The driver is supervised, adopted and stopped
exactly as the Local platform's engines are (this platform runs a
`LocalPlatform` for its drivers, with the master URL), so the files under
``<data_dir>/engines/<id>/`` are the same.

What the Local platform cannot see is the cluster. This platform reads the
master's JSON (`master.py`): an engine is Running only when its Connect server
answers and the master lists its application (named ``rucat-<engine id>``);
the decision is `status.observe`. A client-mode driver whose master dies does
not exit, so a poller reads the master every `poll_interval_secs` for the
engines it knows and reports a change (master gone, application ended) on
`changes()`; the monitor then inspects and fails the engine with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from rucat.config import LocalPlatformConfig, StandalonePlatformConfig
from rucat.domain.engine import Engine, EngineId
from rucat.domain.errors import ConfigError, PlatformRejected
from rucat.domain.observation import Absent, Failed, Observation, Ready, Unknown
from rucat.engines.kind import EngineKind
from rucat.platforms.local.platform import LocalPlatform
from rucat.platforms.standalone.master import MasterClient, MasterUnreachable, MasterView
from rucat.platforms.standalone.offer import KIND
from rucat.platforms.standalone.status import (
    MasterTrouble,
    explain_driver_failure,
    observe,
    version_mismatch,
)

log = logging.getLogger(__name__)

#: A reading of the master shared by inspections this close together (seconds).
MASTER_VIEW_MAX_AGE = 1.0
#: Lines of a failed driver's log searched for the exception that ended it.
FAILURE_LOG_SCAN_LINES = 400
#: How long stop() waits for the master to show the application finished (seconds).
STOP_CONFIRM_SECS = 30.0


class StandalonePlatform:
    """Engines whose drivers run here and whose executors run on a standalone cluster."""

    name = "Standalone"

    def __init__(
        self,
        config: StandalonePlatformConfig,
        *,
        data_dir: Path,
        clock: Callable[[], float] = time.monotonic,
        kind: EngineKind = KIND,
    ) -> None:
        self._config = config
        self._kind = kind
        self._clock = clock
        drivers = LocalPlatformConfig(
            spark_homes=config.spark_homes,
            host=config.host,
            stop_grace_secs=config.stop_grace_secs,
            java_home=config.java_home,
        )
        self._drivers = LocalPlatform(
            drivers, data_dir=data_dir, master=config.master_url, kind=kind, name=self.name
        )
        self._master = MasterClient(config.master_web_url, timeout=config.master_timeout_secs)
        self._view: tuple[float, MasterView | MasterTrouble] | None = None
        self._view_lock = asyncio.Lock()
        #: When the master last stopped answering (None: it answers).
        self._unanswered_since: float | None = None
        #: Engines whose driver runs, as last seen on the master (see _summary).
        self._watched: dict[EngineId, str | None] = {}
        self._subscribers: set[asyncio.Queue[EngineId]] = set()
        self._poller: asyncio.Task[None] | None = None

    # --- the master -------------------------------------------------------------

    async def _master_view(self, *, max_age: float) -> MasterView | MasterTrouble:
        async with self._view_lock:
            now = self._clock()
            if self._view is not None and now - self._view[0] <= max_age:
                return self._view[1]
            view: MasterView | MasterTrouble
            try:
                view = await self._master.view()
                self._unanswered_since = None
            except MasterUnreachable as e:
                if self._unanswered_since is None:
                    self._unanswered_since = now
                silent = now - self._unanswered_since
                lost = e.refused or silent >= self._config.master_lost_after_secs
                view = MasterTrouble(e.message, lost=lost)
            self._view = (self._clock(), view)
            return view

    def _observe(
        self, engine_id: EngineId, driver: Observation, view: MasterView | MasterTrouble
    ) -> Observation:
        return observe(
            driver,
            view,
            app_name=self._kind.application_name(engine_id),
            master_web_url=self._config.master_web_url,
        )

    # --- Platform ---------------------------------------------------------------

    async def check(self) -> None:
        try:
            await self._drivers.check()
        except ConfigError as e:  # the same checks (Java, SPARK_HOMEs), our section's name
            raise ConfigError(e.message.replace("platform.Local", "platform.Standalone")) from e
        view = await self._master_view(max_age=0.0)
        if isinstance(view, MasterTrouble):
            # Not fatal: the master may come later. Engines started meanwhile fail, saying why.
            log.warning("the standalone master at %s %s", self._config.master_web_url, view.reason)

    async def start(self, *, engine: Engine) -> None:
        where = f"the standalone master at {self._config.master_web_url}"
        try:
            master_version = await self._master.version()
        except MasterUnreachable as e:
            raise PlatformRejected(f"{where} {e.message}") from e
        if version_mismatch(engine.version, master_version):
            raise PlatformRejected(
                f"Spark {engine.version} cannot run on {where}, which runs Spark "
                f"{master_version}: create the engine with version {master_version}"
            )
        await self._drivers.start(engine=engine)
        self._watched.setdefault(engine.id, None)

    async def inspect(self, *, engine: Engine) -> Observation:
        driver = await self._drivers.inspect(engine=engine)
        if isinstance(driver, Absent | Failed):
            self._watched.pop(engine.id, None)
            if isinstance(driver, Failed):
                return Failed(await self._explain(engine, driver.reason))
            return driver
        if isinstance(driver, Unknown):
            return driver
        self._watched.setdefault(engine.id, None)
        # A starting driver is inspected several times a second: the master is read
        # for it once per poll interval (soon enough to notice it gone), a ready one
        # on a reading at most MASTER_VIEW_MAX_AGE old.
        max_age = (
            MASTER_VIEW_MAX_AGE if isinstance(driver, Ready) else self._config.poll_interval_secs
        )
        view = await self._master_view(max_age=max_age)
        seen = self._observe(engine.id, driver, view)
        if isinstance(driver, Ready) and isinstance(seen, Failed):
            # Decide on a fresh reading, not one from before the driver registered.
            seen = self._observe(engine.id, driver, await self._master_view(max_age=0.0))
        return seen

    async def _explain(self, engine: Engine, reason: str) -> str:
        master_version = None
        with contextlib.suppress(MasterUnreachable):
            master_version = await self._master.version()
        return explain_driver_failure(
            reason,
            engine_version=engine.version,
            master_url=self._config.master_url,
            master_version=master_version,
            log_text=await self._drivers.logs(engine=engine, tail=FAILURE_LOG_SCAN_LINES),
        )

    async def stop(self, *, engine: Engine) -> None:
        await self._drivers.stop(engine=engine)
        self._watched.pop(engine.id, None)
        # The master marks the application finished when its driver disconnects;
        # wait for that (bounded), so a restart never overlaps the old application.
        name = self._kind.application_name(engine.id)
        deadline = self._clock() + STOP_CONFIRM_SECS
        while self._clock() < deadline:
            view = await self._master_view(max_age=0.0)
            if not isinstance(view, MasterView) or view.active_app(name) is None:
                return
            await asyncio.sleep(0.25)
        log.warning("engine %s: the master still lists application %s as active", engine.id, name)

    async def forget(self, *, engine: Engine) -> None:
        await self.stop(engine=engine)
        await self._drivers.forget(engine=engine)

    async def logs(self, *, engine: Engine, tail: int | None = None) -> str:
        return await self._drivers.logs(engine=engine, tail=tail)

    async def ui_port(self, *, engine: Engine) -> int | None:
        return await self._drivers.ui_port(engine=engine)  # the driver's own UI, on this host

    # --- changes ----------------------------------------------------------------

    async def changes(self) -> AsyncIterator[EngineId]:
        """The drivers' changes (exit, Connect answering), and the master's: the
        master going away or ending an engine's application."""
        queue: asyncio.Queue[EngineId] = asyncio.Queue()
        self._subscribers.add(queue)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="rucat-standalone-poll")
        drivers = self._drivers.changes()

        async def forward() -> None:
            async for engine_id in drivers:
                queue.put_nowait(engine_id)

        forwarding = asyncio.create_task(forward(), name="rucat-standalone-drivers")
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)
            forwarding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forwarding
            await drivers.aclose()  # type: ignore[attr-defined]

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._config.poll_interval_secs)
            if not self._watched:
                continue
            view = await self._master_view(max_age=0.0)
            for engine_id, before in list(self._watched.items()):
                now = _summary(view, self._kind.application_name(engine_id))
                if engine_id not in self._watched:
                    continue
                self._watched[engine_id] = now
                if before is not None and now != before:
                    log.info("engine %s: on the master: %s -> %s", engine_id, before, now)
                    for queue in self._subscribers:
                        queue.put_nowait(engine_id)

    async def close(self) -> None:
        """Stop watching. Drivers keep running: a later platform adopts them."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        await self._drivers.close()
        await self._master.aclose()


def _summary(view: MasterView | MasterTrouble, app_name: str) -> str:
    """What the poller compares between readings: a change wakes the monitor."""
    if isinstance(view, MasterTrouble):
        return "master lost" if view.lost else "master not answering"
    if view.status != "ALIVE":
        return f"master {view.status}"
    app = view.active_app(app_name)
    return "no active application" if app is None else f"{app.id} {app.state}"
