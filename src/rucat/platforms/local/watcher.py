"""The Local platform's `changes()`: a watcher of starting engines and of exits.

A local process gives no event when it starts answering or (not being our
child, after a restart) when it exits, so one task polls: a few times a second
it looks at every engine `Readiness` awaits (its port from the log, then a
probe), and once a second at every current run's process group. Each engine
that answers, or whose group is gone, is put on every subscriber's queue; an
exit is reported once per run. The task starts with the first subscriber and
ends with `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from rucat.domain.engine import EngineId, is_engine_id
from rucat.domain.errors import PlatformError
from rucat.platforms.local import process
from rucat.platforms.local.groups import Groups
from rucat.platforms.local.layout import Folders, Run
from rucat.platforms.local.readiness import Answered, Readiness

log = logging.getLogger(__name__)

#: How often the watcher looks for engines that became ready (seconds): each look
#: reads the new run's log for its port, then probes it; Running waits for it.
READY_POLL_SECS = 0.1
#: How often the watcher looks for engines whose process exited (seconds).
EXIT_POLL_SECS = 1.0
#: Deadline of the watcher's readiness probes. A server that logged its port answers
#: its first call in milliseconds on a quiet machine and in seconds on a loaded one
#: (its first session); a probe abandoned sooner only has the same work started again.
WATCH_PROBE_TIMEOUT = 5.0

#: connect_port(engine_id, run) -> the port the run's Connect server bound, if logged.
ConnectPort = Callable[[EngineId, Run], int | None]


class Watcher:
    """Reports engines that answer or exit; see the module docstring."""

    def __init__(
        self,
        *,
        folders: Folders,
        groups: Groups,
        readiness: Readiness,
        connect_port: ConnectPort,
    ) -> None:
        self._folders = folders
        self._groups = groups
        self._readiness = readiness
        self._connect_port = connect_port
        #: Engines whose exit was already reported by changes().
        self._reported_exit: set[EngineId] = set()
        self._subscribers: set[asyncio.Queue[EngineId]] = set()
        self._task: asyncio.Task[None] | None = None

    def forget_exit(self, engine_id: EngineId) -> None:
        """`engine_id` has a new run, or none: report its next exit."""
        self._reported_exit.discard(engine_id)

    async def changes(self) -> AsyncIterator[EngineId]:
        """Ids of engines whose process exited, or whose endpoint started answering."""
        queue: asyncio.Queue[EngineId] = asyncio.Queue()
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(), name="rucat-local-watch")
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    async def close(self) -> None:
        """Stop watching (subscribers then wait for nothing more)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

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
                        log.warning(
                            "cannot look for exited engines under %s: %s", self._folders.root, e
                        )
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
            run = self._folders.read_run(engine_id)
        except PlatformError:
            run = None  # inspect reports it as Unknown; nothing to probe
        if run is None:
            self._readiness.drop(engine_id)
            return False
        port = await asyncio.to_thread(self._connect_port, engine_id, run)
        if port is None:
            return False
        answer = await self._readiness.check(
            engine_id, target=f"{run.host}:{port}", token=token, timeout=WATCH_PROBE_TIMEOUT
        )
        log.debug("engine %s: the watcher's look at port %d: %s", engine_id, port, answer)
        return isinstance(answer, Answered)

    def _exited(self) -> list[EngineId]:
        """Engines with a current run whose processes are all gone, not reported yet."""
        out = []
        for folder in self._folders.with_run():
            engine_id = folder.name
            if engine_id in self._reported_exit or not is_engine_id(engine_id):
                continue
            self._groups.reap(engine_id)
            try:
                run = self._folders.read_run(engine_id)
            except PlatformError:
                continue
            if run is not None and not process.group_alive(run.pid, run.start_time):
                out.append(engine_id)
        return out
