"""What a local engine's run tells in its log: the ports it bound, and why it ended.

The Spark Connect server and the Spark UI bind port 0, so the ports they
really bound are read from the run's log by the engine kind's `PortRule`s
(concurrent starts cannot collide); a dead run is explained by its
supervisor's exit.json and the last lines of its log. A run's output starts
at its `Run.log_offset` in engine.log, or at engine.log's beginning once the
supervisor rotated it (engine.log.rotated), the older part then in
engine.log.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from dataclasses import replace
from pathlib import Path

from rucat.domain.engine import EngineId
from rucat.engines.kind import PortRule
from rucat.platforms import files
from rucat.platforms.local.layout import EXIT, LOG, OLDER_LOG, ROTATED, Folders, Run

log = logging.getLogger(__name__)

#: Lines of the log quoted in a Failed reason, and the most bytes read for them.
FAILURE_LOG_LINES = 20
FAILURE_LOG_BYTES = 16 << 10
#: Largest part of a run's log searched for the bound port.
_PORT_SCAN_BYTES = 4 << 20
#: Most runs whose Spark UI port is remembered (a bound on memory, not a tuning).
_UI_PORT_CACHE = 4096


def log_head(folder: Path, run: Run) -> str:
    """The first `_PORT_SCAN_BYTES` of this run's log ('' when there is none)."""
    rotated = (folder / ROTATED).exists()
    scanned = b""
    try:
        if rotated:  # the line may have gone to engine.log.1, which is this run's
            with open(folder / OLDER_LOG, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - _PORT_SCAN_BYTES))
                scanned = f.read(_PORT_SCAN_BYTES)
        with open(folder / LOG, "rb") as f:
            f.seek(0 if rotated else run.log_offset)
            scanned += f.read(_PORT_SCAN_BYTES)
    except FileNotFoundError:
        return ""
    return scanned.decode("utf-8", "replace")


def connect_port(folders: Folders, engine_id: EngineId, run: Run, rule: PortRule) -> int | None:
    """The port this run's Spark Connect server bound, found by `rule` in its log
    (cached in run.json)."""
    if run.port is not None:
        return run.port
    port = rule.find(log_head(folders.dir(engine_id), run))
    if port is not None:
        log.debug("engine %s: Spark Connect port %d found in the log", engine_id, port)
        with contextlib.suppress(OSError):  # only a cache
            folders.write_run(engine_id, replace(run, port=port))
    return port


class UiPorts:
    """The port each run's Spark UI bound, read from its log and remembered.

    Remembered in memory per run, never in run.json: the server asks too, and a
    write racing a monitor's stop would bring a removed run.json back.
    """

    def __init__(self) -> None:
        #: (engine id, supervisor pid, start time) -> its Spark UI port (None: no UI).
        self._ports: dict[tuple[EngineId, int, int], int | None] = {}

    async def find(
        self, engine_id: EngineId, folder: Path, run: Run, *, ui: PortRule, connect: PortRule
    ) -> int | None:
        key = (engine_id, run.pid, run.start_time)
        if key in self._ports:
            return self._ports[key]
        text = await asyncio.to_thread(log_head, folder, run)
        port = ui.find(text)
        # The UI starts before the Connect server: once Connect's port is in the
        # log, a UI port that is not is never coming (spark.ui.enabled=false).
        if port is not None or connect.find(text) is not None:
            if len(self._ports) >= _UI_PORT_CACHE:
                self._ports.clear()
            self._ports[key] = port
        return port


def failure_reason(folder: Path, run: Run) -> str:
    """Why the run ended: its exit status (exit.json) and its last log lines."""
    try:
        status = json.loads((folder / EXIT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        status = None
    if status is None:
        how = "stopped without an exit status (its supervisor was killed)"
    elif status.get("returncode") is None:
        how = f"could not be started: {status.get('error', 'unknown error')}"
    else:
        how = _describe_exit(int(status["returncode"]))
    rotated = (folder / ROTATED).exists()  # then engine.log.1 is this run's too
    lines = files.tail(
        folder / LOG,
        FAILURE_LOG_LINES,
        start=0 if rotated else run.log_offset,
        max_bytes=FAILURE_LOG_BYTES,
        older=folder / OLDER_LOG if rotated else None,
    )
    reason = f"the Spark Connect server {how}"
    return f"{reason}; last log lines:\n{lines}" if lines else reason


def _describe_exit(returncode: int) -> str:
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "an unknown signal"
    return f"was killed by signal {-returncode} ({name})"
