"""Starting and ending an engine's process group: its supervisor, its run.json, its signals.

The group's leader is a tiny supervisor (``_supervise.py``) that runs the
engine's command, waits, and records the exit status, so a monitor started
later can still say why an engine died. The group is recorded in run.json by
its leader's pid plus start time (see `process`) before `Groups.launch`
returns, so a restarted monitor adopts its engines and never mistakes a
reused pid for one; a group that cannot be recorded is killed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from rucat.domain.engine import EngineId
from rucat.domain.errors import PlatformError
from rucat.engines.kind import Launch
from rucat.platforms import files
from rucat.platforms.local import process
from rucat.platforms.local.layout import EXIT, LOG, Folders, Run

_SUPERVISOR = Path(__file__).with_name("_supervise.py")


class Groups:
    """The engines' process groups: launched here, or adopted from run.json."""

    def __init__(self, folders: Folders, *, log_max_bytes: int) -> None:
        self._folders = folders
        self._log_max_bytes = log_max_bytes
        #: Our own children (supervisors), kept to reap them.
        self._children: dict[EngineId, subprocess.Popen[bytes]] = {}

    def launch(
        self,
        engine_id: EngineId,
        folder: Path,
        launch: Launch,
        *,
        host: str,
        now: datetime,
        banner: str,
    ) -> None:
        """Run `launch.argv` under a supervisor as a new group, its output appended
        to the engine's log after `banner`, and record the run."""
        with files.open_private_log(folder / LOG) as log:
            offset = log.tell()
            log.write(banner.encode())
            log.flush()
            try:
                child = subprocess.Popen(
                    [
                        sys.executable,
                        "-I",
                        "-S",
                        str(_SUPERVISOR),
                        str(folder / EXIT),
                        "--log",
                        str(folder / LOG),
                        "--max-log-bytes",
                        str(self._log_max_bytes),
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
            self._record(engine_id, child, now=now, offset=offset, host=host)
        except BaseException:
            # Unrecorded, the group could never be adopted or stopped, and the
            # monitor's retry would start another: end it before failing.
            with contextlib.suppress(OSError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            raise

    def _record(
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
        self._folders.write_run(
            engine_id,
            Run(
                pid=child.pid,
                start_time=started,
                created_at=now.isoformat(),
                log_offset=offset,
                host=host,
            ),
        )

    async def end(self, engine_id: EngineId, run: Run, *, grace_secs: float) -> None:
        """SIGTERM to the group, SIGKILL after `grace_secs`; returns once no
        process of the group remains."""
        if process.signal_group(run.pid, run.start_time, signal.SIGTERM):
            deadline = time.monotonic() + grace_secs
            # Polling /proc: a process we did not start gives no event to wait on.
            while time.monotonic() < deadline and self.alive(engine_id, run):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        deadline = time.monotonic() + 30.0
        while self.alive(engine_id, run):
            process.signal_group(run.pid, run.start_time, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise PlatformError(f"engine {engine_id}: processes survive SIGKILL")
            await asyncio.sleep(0.05)

    def alive(self, engine_id: EngineId, run: Run) -> bool:
        """Whether the run's group has a running member (reaping our child first)."""
        self.reap(engine_id)
        return process.group_alive(run.pid, run.start_time)

    def reap(self, engine_id: EngineId) -> None:
        """Collect our supervisor's exit status once it ended (no zombie left)."""
        child = self._children.get(engine_id)
        if child is not None and child.poll() is not None:
            del self._children[engine_id]
