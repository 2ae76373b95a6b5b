"""The Local platform: each engine is a detached process group on this machine.

`LocalPlatform` composes the package's parts and owns the order of their
steps: `layout` (the engine's folder, its run.json and lock), `groups` (the
supervised process group: launch, reap, end), `runlog` (the ports a run bound
and why it ended, from its log), `readiness` (which engines are starting and
whether each answers) and `watcher` (`changes()`). A run is recorded in
run.json before start() returns and removed by stop(), so a monitor started
later adopts its engines; start and stop hold the engine's lock across
processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from rucat.config import LocalPlatformConfig
from rucat.domain.engine import Engine, EngineId
from rucat.domain.errors import ConfigError, PlatformError
from rucat.domain.observation import Absent, Failed, Observation, Pending, Ready, Unknown
from rucat.engines.kind import CONNECT, UI, EngineKind, PortRule, Site, port_rule
from rucat.platforms import files
from rucat.platforms.local import process, runlog
from rucat.platforms.local.groups import Groups
from rucat.platforms.local.layout import EXIT, LOG, OLDER_LOG, PROPS, ROTATED, RUN, Folders, Run
from rucat.platforms.local.offer import KIND
from rucat.platforms.local.readiness import Answered, NotYet, Readiness
from rucat.platforms.local.watcher import Watcher

log = logging.getLogger(__name__)

#: Deadline of inspect's readiness probe (see `watcher.WATCH_PROBE_TIMEOUT`).
INSPECT_PROBE_TIMEOUT = 5.0


class LocalPlatform:
    """Engines as local process groups; see the module docstring."""

    name = "Local"

    def __init__(
        self,
        config: LocalPlatformConfig,
        *,
        data_dir: Path,
        master: str = "local[*]",
        kind: EngineKind = KIND,
        name: str = "Local",
    ) -> None:
        self._config = config
        self._kind = kind
        #: For messages: the Standalone platform runs its drivers on this one.
        self._name = name
        #: spark-submit's --master: the Standalone platform runs its drivers here too.
        self._master = master
        self._folders = Folders(data_dir)
        self._groups = Groups(self._folders, log_max_bytes=config.log_max_bytes)
        #: Which engines are starting and whether each answers (watcher and inspect).
        self._readiness = Readiness(self._probe)
        self._watcher = Watcher(
            folders=self._folders,
            groups=self._groups,
            readiness=self._readiness,
            connect_port=self._connect_port,
        )
        self._ui_ports = runlog.UiPorts()
        #: The probe's imports, loading in a thread from check() on.
        self._probe_loaded: asyncio.Future[None] | None = None

    # --- Platform ---------------------------------------------------------------

    async def check(self) -> None:
        if self._probe_loaded is None:
            # A second of CPU, off the event loop and before any engine's first probe,
            # which would otherwise stall every engine and the monitor right then.
            self._probe_loaded = asyncio.ensure_future(asyncio.to_thread(self._kind.load_probe))
            self._probe_loaded.add_done_callback(_retrieve)
        await asyncio.to_thread(self._folders.make_private)
        # The same choice as spark-class: JAVA_HOME if set, else `java` on the PATH.
        java_home = self._config.java_home
        env_java_home = os.environ.get("JAVA_HOME")
        if java_home is not None:
            if not os.access(Path(java_home) / "bin" / "java", os.X_OK):
                raise ConfigError(
                    f"platform.Local.java_home: {java_home} has no bin/java; "
                    "point it at a Java 17+ runtime"
                )
        elif env_java_home:
            if not os.access(Path(env_java_home) / "bin" / "java", os.X_OK):
                raise ConfigError(
                    f"JAVA_HOME={env_java_home} has no bin/java: fix or unset it, "
                    "or set platform.Local.java_home"
                )
        elif not shutil.which("java"):
            raise ConfigError(
                "no Java runtime found: install openjdk-17-jre-headless "
                "or set platform.Local.java_home"
            )
        self._kind.check_installations(
            homes=self._config.spark_homes, bundled=True, where="platform.Local"
        )

    async def start(self, *, engine: Engine) -> None:
        async with self._folders.exclusive(engine.id) as folder:
            run = self._folders.read_run(engine.id)
            if run is not None and process.group_alive(run.pid, run.start_time):
                self._readiness.expect(engine.id, engine.connect_token)
                return  # already running: adopt it
            self._launch(engine, folder)
            self._readiness.expect(engine.id, engine.connect_token)
            self._watcher.forget_exit(engine.id)

    def _site(self, folder: Path) -> Site:
        return site(self._config, folder=folder, master=self._master, platform=self._name)

    def _launch(self, engine: Engine, folder: Path) -> None:
        launch = self._kind.launch(engine=engine, site=self._site(folder))
        for fresh in launch.fresh_dirs:
            shutil.rmtree(folder / fresh, ignore_errors=True)
            (folder / fresh).mkdir(mode=files.PRIVATE_DIR)
        for link in launch.links:
            (folder / link.path).symlink_to(link.target)
        # Private files (0600): the user's confs and the token are in them, never on
        # the command line, which every OS user can read in /proc/<pid>/cmdline.
        for private in launch.files:
            files.write_private(folder / private.path, private.text)
        for stale in (EXIT, ROTATED):  # of the run before
            with contextlib.suppress(FileNotFoundError):
                (folder / stale).unlink()
        now = datetime.now(UTC)
        self._groups.launch(
            engine.id,
            folder,
            launch,
            host=self._config.host,
            now=now,
            banner=f"rucat: starting {engine.engine_type} {engine.version} engine {engine.id} "
            f"at {now.isoformat(timespec='seconds')}\n",
        )

    async def inspect(self, *, engine: Engine) -> Observation:
        self._groups.reap(engine.id)
        try:
            run = self._folders.read_run(engine.id)
        except PlatformError as e:
            return Unknown(e.message)
        if run is None:
            return Absent()
        if not process.group_alive(run.pid, run.start_time):
            folder = self._folders.dir(engine.id)
            return Failed(await asyncio.to_thread(runlog.failure_reason, folder, run))
        port = await asyncio.to_thread(self._connect_port, engine.id, run)
        answer = await self._readiness.check(
            engine.id,
            target=None if port is None else f"{run.host}:{port}",
            token=engine.connect_token,
            timeout=INSPECT_PROBE_TIMEOUT,
        )
        match answer:
            case Answered(target):
                return Ready(f"sc://{target}")
            case NotYet(detail):
                # Not ready yet: the watcher reports (changes()) when it is.
                return Pending(detail)
            case _:
                return Unknown(answer.reason)

    async def _probe(
        self, engine_id: EngineId, target: str, token: str | None, timeout: float
    ) -> str:
        return await self._kind.probe(
            engine_id=engine_id, target=target, token=token, timeout=timeout
        )

    def _connect_port(self, engine_id: EngineId, run: Run) -> int | None:
        """The port this run's Spark Connect server bound (blocking: reads its log)."""
        return runlog.connect_port(
            self._folders, engine_id, run, self._port_rule(engine_id, CONNECT)
        )

    def _port_rule(self, engine_id: EngineId, name: str) -> PortRule:
        return port_rule(self._kind.port_rules(site=self._site(self._folders.dir(engine_id))), name)

    async def ui_port(self, *, engine: Engine) -> int | None:
        """The port the current run's Spark UI bound, read from its log (`runlog.UiPorts`)."""
        try:
            run = self._folders.read_run(engine.id)
        except PlatformError:
            return None
        if run is None:
            return None
        return await self._ui_ports.find(
            engine.id,
            self._folders.dir(engine.id),
            run,
            ui=self._port_rule(engine.id, UI),
            connect=self._port_rule(engine.id, CONNECT),
        )

    async def stop(self, *, engine: Engine) -> None:
        if not self._folders.dir(engine.id).exists():
            self._forget_memory(engine.id)
            return
        async with self._folders.exclusive(engine.id) as folder:
            run = self._folders.read_run(engine.id)
            if run is not None:
                await self._groups.end(engine.id, run, grace_secs=self._config.stop_grace_secs)
                await asyncio.to_thread(
                    files.append, folder / LOG, f"rucat: engine stopped at {_now()}\n"
                )
            for leftover in (RUN, EXIT, PROPS):
                with contextlib.suppress(FileNotFoundError):
                    (folder / leftover).unlink()
            self._forget_memory(engine.id)

    def _forget_memory(self, engine_id: EngineId) -> None:
        self._groups.reap(engine_id)
        self._readiness.drop(engine_id)
        self._watcher.forget_exit(engine_id)

    async def forget(self, *, engine: Engine) -> None:
        await self.stop(engine=engine)
        folder = self._folders.dir(engine.id)
        async with self._folders.lock(engine.id):
            await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)
        self._folders.drop_lock(engine.id)

    async def logs(self, *, engine: Engine, tail: int | None = None) -> str:
        folder = self._folders.dir(engine.id)
        path, older = folder / LOG, folder / OLDER_LOG
        # Off the event loop: a log's file may be large and its disk slow.
        if tail is None:
            return await asyncio.to_thread(functools.partial(files.whole, path, older=older))
        return await asyncio.to_thread(functools.partial(files.tail, path, tail, older=older))

    def changes(self) -> AsyncIterator[EngineId]:
        """Ids of engines whose process exited, or whose endpoint started answering."""
        return self._watcher.changes()

    async def close(self) -> None:
        """Stop watching. Engines keep running: a later platform adopts them."""
        await self._watcher.close()
        if self._probe_loaded is not None:
            with contextlib.suppress(Exception):  # a thread: it cannot be cancelled
                await self._probe_loaded


def site(config: LocalPlatformConfig, *, folder: Path, master: str, platform: str) -> Site:
    """Where an engine whose folder is `folder` runs: this machine, bound to `config.host`."""
    host = config.host
    return Site(
        platform=platform,
        master=master,
        files_dir=folder,
        homes=config.spark_homes,
        address=host,
        platform_confs={"spark.driver.host": host, "spark.driver.bindAddress": host},
        # The UI takes any free port; ui_port() reads the one bound from the log.
        defaults={"spark.local.dir": str(folder / "tmp"), "spark.ui.port": "0"},
        base_env={k: v for k, v in os.environ.items() if not k.startswith("RUCAT_")},
        java_home=config.java_home,
        properties_file=PROPS,
    )


def _retrieve(future: asyncio.Future[None]) -> None:
    """A failed import is only a missed head start: the probe imports and says why."""
    if not future.cancelled() and future.exception() is not None:
        log.debug("preloading the probe failed: %s", future.exception())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
