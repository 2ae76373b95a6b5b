"""The Local platform: each engine is a detached process group on this machine.

Layout, under ``<data_dir>/engines/<engine id>/``; the data dir and every folder
in it are 0700 and every file 0600, whatever the umask (``files``), and check()
tightens what an older Rucat left wider:

- ``engine.log``       stdout and stderr of every run, appended; kept until forget().
                       The supervisor keeps it within ``log_max_bytes``: past half of
                       it, its newest half goes to ``engine.log.1`` and it restarts
                       empty (``engine.log.rotated`` then marks the current run's).
- ``run.json``         the current run: supervisor pid + start time, log offset, port.
                       Present from start() until stop(); its absence means Absent.
- ``exit.json``        written by the supervisor when the engine process ends
- ``spark.properties`` mode 0600: the user's confs, the engine's Connect token and
                       endpoint confs, so none appears on a command line or in an environment
- ``conf/``            SPARK_CONF_DIR when Spark's has no log4j2 config: its files
                       linked, plus a log4j2 config that keeps the Connect port's log line
- ``.lock``            flock'ed by whoever starts or stops the engine (several monitors)

The group's leader is a tiny supervisor (``_supervise.py``) that runs
spark-submit, waits, and records the exit status, so a monitor started later
can still say why an engine died. Groups are identified by pid plus start
time (see `process`), so a restarted monitor adopts its engines and never
mistakes a reused pid for one. The Spark Connect server binds port 0 and the
port it really bound is read from its log: concurrent starts cannot collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from rucat.config import LocalPlatformConfig
from rucat.domain.engine import Engine, EngineId, is_engine_id
from rucat.domain.errors import ConfigError, PlatformError, PlatformRejected
from rucat.domain.observation import Absent, Failed, Observation, Pending, Ready, Unknown
from rucat.engines.kind import CONNECT, UI, EngineKind, PortRule, Site, port_rule
from rucat.platforms import files
from rucat.platforms.local import process
from rucat.platforms.local.offer import KIND
from rucat.platforms.local.readiness import Answered, NotYet, Readiness

log = logging.getLogger(__name__)

#: Lines of the log quoted in a Failed reason, and the most bytes read for them.
FAILURE_LOG_LINES = 20
FAILURE_LOG_BYTES = 16 << 10
#: How often the watcher looks for engines that became ready (seconds): each look
#: reads the new run's log for its port, then probes it; Running waits for it.
READY_POLL_SECS = 0.1
#: How often the watcher looks for engines whose process exited (seconds).
EXIT_POLL_SECS = 1.0
#: Deadlines of readiness probes. A server that logged its port answers its first
#: call in milliseconds on a quiet machine and in seconds on a loaded one (its first
#: session); a probe abandoned sooner only has the same work started again.
WATCH_PROBE_TIMEOUT = 5.0
INSPECT_PROBE_TIMEOUT = 5.0
#: Largest part of a run's log searched for the bound port.
_PORT_SCAN_BYTES = 4 << 20
#: Most runs whose Spark UI port is remembered (a bound on memory, not a tuning).
_UI_PORT_CACHE = 4096
_SUPERVISOR = Path(__file__).with_name("_supervise.py")
_LOG, _OLDER_LOG, _RUN, _EXIT, _PROPS, _LOCK, _ROTATED = (
    "engine.log",
    "engine.log.1",
    "run.json",
    "exit.json",
    "spark.properties",
    ".lock",
    "engine.log.rotated",
)


@dataclass(frozen=True)
class _Run:
    """What run.json records about the engine's current run."""

    pid: int  # the supervisor: leader of the group, pgid == pid
    start_time: int  # the supervisor's start time, /proc/<pid>/stat field 22
    created_at: str
    log_offset: int  # where this run's output starts in engine.log
    host: str
    port: int | None = None  # the port Spark Connect bound, once seen in the log


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
        # Absolute: engines run with their own folder as working directory.
        self._data_dir = Path(data_dir).absolute()
        self._root = self._data_dir / "engines"
        self._locks: dict[EngineId, asyncio.Lock] = {}
        #: Our own children (supervisors), kept to reap them.
        self._children: dict[EngineId, subprocess.Popen[bytes]] = {}
        #: Which engines are starting and whether each answers (watcher and inspect).
        self._readiness = Readiness(self._probe)
        #: Engines whose exit was already reported by changes().
        self._reported_exit: set[EngineId] = set()
        self._subscribers: set[asyncio.Queue[EngineId]] = set()
        self._watcher: asyncio.Task[None] | None = None
        #: The probe's imports, loading in a thread from check() on.
        self._probe_loaded: asyncio.Future[None] | None = None
        #: (engine id, supervisor pid, start time) -> its Spark UI port (None: no UI).
        self._ui_ports: dict[tuple[EngineId, int, int], int | None] = {}

    # --- paths and small files -------------------------------------------------

    def _dir(self, engine_id: EngineId) -> Path:
        if not is_engine_id(engine_id):  # it becomes a path: refuse anything odd
            raise PlatformRejected(f"invalid engine id {engine_id!r}")
        return self._root / engine_id

    def _read_run(self, engine_id: EngineId) -> _Run | None:
        try:
            raw = (self._dir(engine_id) / _RUN).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return _Run(**json.loads(raw))
        except (ValueError, TypeError) as e:
            raise PlatformError(f"engine {engine_id}: unreadable {_RUN}: {e}") from e

    def _write_run(self, engine_id: EngineId, run: _Run) -> None:
        files.write_atomically(self._dir(engine_id) / _RUN, json.dumps(asdict(run)))

    def _lock(self, engine_id: EngineId) -> asyncio.Lock:
        return self._locks.setdefault(engine_id, asyncio.Lock())

    @contextlib.asynccontextmanager
    async def _exclusive(self, engine_id: EngineId) -> AsyncIterator[Path]:
        """This engine, for us alone: in this process (asyncio lock) and across
        processes (flock on its .lock file). Yields the engine's folder."""
        folder = self._dir(engine_id)
        async with self._lock(engine_id):
            files.make_private_dir(folder)
            fd = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        await asyncio.sleep(0.05)
                yield folder
            finally:
                os.close(fd)  # releases the flock

    def _make_private(self) -> None:
        """The data dir and what engines left in it, owner-only (a data dir from an
        older Rucat, or made by hand, may be readable by others); logs each change."""
        files.make_private_dir(self._root)
        folders = [self._data_dir, self._root]
        with contextlib.suppress(FileNotFoundError):
            folders += [p for p in self._root.iterdir() if p.is_dir() and not p.is_symlink()]
        for folder in folders:
            _tighten(folder, files.PRIVATE_DIR)
            if folder.parent != self._root:
                continue
            for entry in folder.iterdir():
                is_dir = entry.is_dir() and not entry.is_symlink()
                _tighten(entry, files.PRIVATE_DIR if is_dir else files.PRIVATE_FILE)

    # --- Platform ---------------------------------------------------------------

    async def check(self) -> None:
        if self._probe_loaded is None:
            # A second of CPU, off the event loop and before any engine's first probe,
            # which would otherwise stall every engine and the monitor right then.
            self._probe_loaded = asyncio.ensure_future(asyncio.to_thread(self._kind.load_probe))
            self._probe_loaded.add_done_callback(_retrieve)
        await asyncio.to_thread(self._make_private)
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
        async with self._exclusive(engine.id) as folder:
            run = self._read_run(engine.id)
            if run is not None and process.group_alive(run.pid, run.start_time):
                self._readiness.expect(engine.id, engine.connect_token)
                return  # already running: adopt it
            self._launch(engine, folder)
            self._readiness.expect(engine.id, engine.connect_token)
            self._reported_exit.discard(engine.id)

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
        host = self._config.host
        for stale in (_EXIT, _ROTATED):  # of the run before
            with contextlib.suppress(FileNotFoundError):
                (folder / stale).unlink()
        now = datetime.now(UTC)
        with files.open_private_log(folder / _LOG) as log:
            offset = log.tell()
            log.write(
                f"rucat: starting {engine.engine_type} {engine.version} engine {engine.id} "
                f"at {now.isoformat(timespec='seconds')}\n".encode()
            )
            log.flush()
            try:
                child = subprocess.Popen(
                    [
                        sys.executable,
                        "-I",
                        "-S",
                        str(_SUPERVISOR),
                        str(folder / _EXIT),
                        "--log",
                        str(folder / _LOG),
                        "--max-log-bytes",
                        str(self._config.log_max_bytes),
                        "--",
                        *launch.argv,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=folder,
                    env=dict(launch.env),
                    start_new_session=True,  # its own group and session: outlives us
                    close_fds=True,
                )
            except OSError as e:
                raise PlatformError(f"cannot start the engine's supervisor: {e}") from e
        try:
            self._record_launch(engine.id, child, now=now, offset=offset, host=host)
        except BaseException:
            # Unrecorded, the group could never be adopted or stopped, and the
            # monitor's retry would start another: end it before failing.
            with contextlib.suppress(OSError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            raise

    def _record_launch(
        self,
        engine_id: EngineId,
        child: subprocess.Popen[bytes],
        *,
        now: datetime,
        offset: int,
        host: str,
    ) -> None:
        started = process.start_time(child.pid)
        if started is None:  # exited already; it still was this process group
            child.wait()
            started = -1
        self._children[engine_id] = child
        self._write_run(
            engine_id,
            _Run(
                pid=child.pid,
                start_time=started,
                created_at=now.isoformat(),
                log_offset=offset,
                host=host,
            ),
        )

    async def inspect(self, *, engine: Engine) -> Observation:
        self._reap(engine.id)
        try:
            run = self._read_run(engine.id)
        except PlatformError as e:
            return Unknown(e.message)
        if run is None:
            return Absent()
        if not process.group_alive(run.pid, run.start_time):
            return Failed(await asyncio.to_thread(self._failure_reason, engine.id, run))
        port = await asyncio.to_thread(self._bound_port, engine.id, run)
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

    def _bound_port(self, engine_id: EngineId, run: _Run) -> int | None:
        """The port this run's Spark Connect server bound, from its log (cached in run.json)."""
        if run.port is not None:
            return run.port
        port = self._port_rule(engine_id, CONNECT).find(self._run_log_head(engine_id, run))
        if port is not None:
            log.debug("engine %s: Spark Connect port %d found in the log", engine_id, port)
            with contextlib.suppress(OSError):  # only a cache
                self._write_run(engine_id, replace(run, port=port))
        return port

    def _port_rule(self, engine_id: EngineId, name: str) -> PortRule:
        return port_rule(self._kind.port_rules(site=self._site(self._dir(engine_id))), name)

    def _run_log_head(self, engine_id: EngineId, run: _Run) -> str:
        """The first `_PORT_SCAN_BYTES` of this run's log ('' when there is none)."""
        folder = self._dir(engine_id)
        rotated = (folder / _ROTATED).exists()
        scanned = b""
        try:
            if rotated:  # the line may have gone to engine.log.1, which is this run's
                with open(folder / _OLDER_LOG, "rb") as f:
                    f.seek(max(0, f.seek(0, os.SEEK_END) - _PORT_SCAN_BYTES))
                    scanned = f.read(_PORT_SCAN_BYTES)
            with open(folder / _LOG, "rb") as f:
                f.seek(0 if rotated else run.log_offset)
                scanned += f.read(_PORT_SCAN_BYTES)
        except FileNotFoundError:
            return ""
        return scanned.decode("utf-8", "replace")

    async def ui_port(self, *, engine: Engine) -> int | None:
        """The port the current run's Spark UI bound, read from its log.

        Cached in memory per run, never in run.json: the server calls this too,
        and a write racing a monitor's stop would bring a removed run.json back.
        """
        try:
            run = self._read_run(engine.id)
        except PlatformError:
            return None
        if run is None:
            return None
        key = (engine.id, run.pid, run.start_time)
        if key in self._ui_ports:
            return self._ui_ports[key]
        text = await asyncio.to_thread(self._run_log_head, engine.id, run)
        port = self._port_rule(engine.id, UI).find(text)
        # The UI starts before the Connect server: once Connect's port is in the
        # log, a UI port that is not is never coming (spark.ui.enabled=false).
        if port is not None or self._port_rule(engine.id, CONNECT).find(text) is not None:
            if len(self._ui_ports) >= _UI_PORT_CACHE:
                self._ui_ports.clear()
            self._ui_ports[key] = port
        return port

    def _failure_reason(self, engine_id: EngineId, run: _Run) -> str:
        folder = self._dir(engine_id)
        try:
            status = json.loads((folder / _EXIT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            status = None
        if status is None:
            how = "stopped without an exit status (its supervisor was killed)"
        elif status.get("returncode") is None:
            how = f"could not be started: {status.get('error', 'unknown error')}"
        else:
            how = _describe_exit(int(status["returncode"]))
        rotated = (folder / _ROTATED).exists()  # then engine.log.1 is this run's too
        lines = files.tail(
            folder / _LOG,
            FAILURE_LOG_LINES,
            start=0 if rotated else run.log_offset,
            max_bytes=FAILURE_LOG_BYTES,
            older=folder / _OLDER_LOG if rotated else None,
        )
        reason = f"the Spark Connect server {how}"
        return f"{reason}; last log lines:\n{lines}" if lines else reason

    async def stop(self, *, engine: Engine) -> None:
        if not self._dir(engine.id).exists():
            self._forget_memory(engine.id)
            return
        async with self._exclusive(engine.id) as folder:
            run = self._read_run(engine.id)
            if run is not None:
                await self._end_group(engine.id, run)
                await asyncio.to_thread(
                    files.append, folder / _LOG, f"rucat: engine stopped at {_now()}\n"
                )
            for leftover in (_RUN, _EXIT, _PROPS):
                with contextlib.suppress(FileNotFoundError):
                    (folder / leftover).unlink()
            self._forget_memory(engine.id)

    async def _end_group(self, engine_id: EngineId, run: _Run) -> None:
        """SIGTERM to the group, SIGKILL after the grace period; returns once no
        process of the group remains."""
        if process.signal_group(run.pid, run.start_time, signal.SIGTERM):
            deadline = time.monotonic() + self._config.stop_grace_secs
            # Polling /proc: a process we did not start gives no event to wait on.
            while time.monotonic() < deadline and self._group_alive(engine_id, run):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        deadline = time.monotonic() + 30.0
        while self._group_alive(engine_id, run):
            process.signal_group(run.pid, run.start_time, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise PlatformError(f"engine {engine_id}: processes survive SIGKILL")
            await asyncio.sleep(0.05)

    def _group_alive(self, engine_id: EngineId, run: _Run) -> bool:
        self._reap(engine_id)
        return process.group_alive(run.pid, run.start_time)

    def _reap(self, engine_id: EngineId) -> None:
        child = self._children.get(engine_id)
        if child is not None and child.poll() is not None:
            del self._children[engine_id]

    def _forget_memory(self, engine_id: EngineId) -> None:
        self._reap(engine_id)
        self._readiness.drop(engine_id)
        self._reported_exit.discard(engine_id)

    async def forget(self, *, engine: Engine) -> None:
        await self.stop(engine=engine)
        folder = self._dir(engine.id)
        async with self._lock(engine.id):
            await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)
        self._locks.pop(engine.id, None)

    async def logs(self, *, engine: Engine, tail: int | None = None) -> str:
        folder = self._dir(engine.id)
        path, older = folder / _LOG, folder / _OLDER_LOG
        # Off the event loop: a log's file may be large and its disk slow.
        if tail is None:
            return await asyncio.to_thread(functools.partial(files.whole, path, older=older))
        return await asyncio.to_thread(functools.partial(files.tail, path, tail, older=older))

    # --- changes ----------------------------------------------------------------

    async def changes(self) -> AsyncIterator[EngineId]:
        """Ids of engines whose process exited, or whose endpoint started answering."""
        queue: asyncio.Queue[EngineId] = asyncio.Queue()
        self._subscribers.add(queue)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="rucat-local-watch")
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    def _emit(self, engine_id: EngineId) -> None:
        for queue in self._subscribers:
            queue.put_nowait(engine_id)

    async def _watch(self) -> None:
        last_exit_check = 0.0
        # At most one look per awaited engine, each in its own task: a probe waiting
        # for a slow engine's first answer holds back neither other engines nor exits.
        looks: dict[EngineId, asyncio.Task[None]] = {}
        try:
            while True:
                for engine_id in [e for e, task in looks.items() if task.done()]:
                    del looks[engine_id]
                for engine_id, token in self._readiness.awaited().items():
                    if engine_id not in looks:
                        looks[engine_id] = asyncio.create_task(
                            self._look(engine_id, token), name=f"rucat-local-look-{engine_id}"
                        )
                if time.monotonic() - last_exit_check >= EXIT_POLL_SECS:
                    last_exit_check = time.monotonic()
                    try:
                        exited = self._exited()
                    except OSError as e:
                        log.warning("cannot look for exited engines under %s: %s", self._root, e)
                        exited = []
                    for engine_id in exited:
                        self._reported_exit.add(engine_id)
                        self._readiness.drop(engine_id)
                        self._emit(engine_id)
                await asyncio.sleep(READY_POLL_SECS)
        finally:
            for task in looks.values():
                task.cancel()
            await asyncio.gather(*looks.values(), return_exceptions=True)

    async def _look(self, engine_id: EngineId, token: str | None) -> None:
        """Report `engine_id` on changes() if it answers now."""
        try:
            answered = await self._answers(engine_id, token)
        except Exception as e:
            log.warning("engine %s: readiness probe failed: %s", engine_id, e)
            return
        if answered:
            self._emit(engine_id)

    async def _answers(self, engine_id: EngineId, token: str | None) -> bool:
        try:
            run = self._read_run(engine_id)
        except PlatformError:
            run = None  # inspect reports it as Unknown; nothing to probe
        if run is None:
            self._readiness.drop(engine_id)
            return False
        port = await asyncio.to_thread(self._bound_port, engine_id, run)
        if port is None:
            return False
        answer = await self._readiness.check(
            engine_id, target=f"{run.host}:{port}", token=token, timeout=WATCH_PROBE_TIMEOUT
        )
        log.debug("engine %s: the watcher's look at port %d: %s", engine_id, port, answer)
        return isinstance(answer, Answered)

    def _exited(self) -> list[EngineId]:
        """Engines with a current run whose processes are all gone, not reported yet."""
        try:
            folders = [p for p in self._root.iterdir() if (p / _RUN).exists()]
        except FileNotFoundError:
            return []
        out = []
        for folder in folders:
            engine_id = folder.name
            if engine_id in self._reported_exit or not is_engine_id(engine_id):
                continue
            self._reap(engine_id)
            try:
                run = self._read_run(engine_id)
            except PlatformError:
                continue
            if run is not None and not process.group_alive(run.pid, run.start_time):
                out.append(engine_id)
        return out

    async def close(self) -> None:
        """Stop watching. Engines keep running: a later platform adopts them."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
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
        properties_file=_PROPS,
    )


def _retrieve(future: asyncio.Future[None]) -> None:
    """A failed import is only a missed head start: the probe imports and says why."""
    if not future.cancelled() and future.exception() is not None:
        log.debug("preloading the probe failed: %s", future.exception())


def _tighten(path: Path, mode: int) -> None:
    try:
        old = files.tighten(path, mode)
    except OSError as e:  # not ours (a shared folder named as data dir): say so
        log.warning("cannot make %s private (mode %o): %s", path, mode, e.strerror or e)
        return
    if old is not None:
        log.warning("made %s private: mode %o -> %o", path, old, old & mode)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _describe_exit(returncode: int) -> str:
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "an unknown signal"
    return f"was killed by signal {-returncode} ({name})"
