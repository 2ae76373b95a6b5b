"""The Local platform's engine folders: their files, run.json, and who may change them.

Kept apart from the platform so that starting, stopping, reading logs and
watching all name an engine's files the same way. Layout, under
``<data_dir>/engines/<engine id>/``; the data dir and every folder in it are
0700 and every file 0600, whatever the umask (``files``), and
`Folders.make_private` tightens what an older Rucat left wider:

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
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path

from rucat.domain.engine import EngineId, is_engine_id
from rucat.domain.errors import PlatformError, PlatformRejected
from rucat.platforms import files

log = logging.getLogger(__name__)

LOG, OLDER_LOG, RUN, EXIT, PROPS, LOCK, ROTATED = (
    "engine.log",
    "engine.log.1",
    "run.json",
    "exit.json",
    "spark.properties",
    ".lock",
    "engine.log.rotated",
)


@dataclass(frozen=True)
class Run:
    """What run.json records about the engine's current run."""

    pid: int  # the supervisor: leader of the group, pgid == pid
    start_time: int  # the supervisor's start time, /proc/<pid>/stat field 22
    created_at: str
    log_offset: int  # where this run's output starts in engine.log
    host: str
    port: int | None = None  # the port Spark Connect bound, once seen in the log


class Folders:
    """The engines' folders under ``<data_dir>/engines``; see the module docstring."""

    def __init__(self, data_dir: Path) -> None:
        # Absolute: engines run with their own folder as working directory.
        self.data_dir = Path(data_dir).absolute()
        self.root = self.data_dir / "engines"
        self._locks: dict[EngineId, asyncio.Lock] = {}

    def dir(self, engine_id: EngineId) -> Path:
        if not is_engine_id(engine_id):  # it becomes a path: refuse anything odd
            raise PlatformRejected(f"invalid engine id {engine_id!r}")
        return self.root / engine_id

    def read_run(self, engine_id: EngineId) -> Run | None:
        try:
            raw = (self.dir(engine_id) / RUN).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return Run(**json.loads(raw))
        except (ValueError, TypeError) as e:
            raise PlatformError(f"engine {engine_id}: unreadable {RUN}: {e}") from e

    def write_run(self, engine_id: EngineId, run: Run) -> None:
        files.write_atomically(self.dir(engine_id) / RUN, json.dumps(asdict(run)))

    def with_run(self) -> list[Path]:
        """The folders that hold a current run (run.json); [] before any engine."""
        try:
            return [p for p in self.root.iterdir() if (p / RUN).exists()]
        except FileNotFoundError:
            return []

    def lock(self, engine_id: EngineId) -> asyncio.Lock:
        """This process's lock of the engine (`exclusive` also takes the flock)."""
        return self._locks.setdefault(engine_id, asyncio.Lock())

    def drop_lock(self, engine_id: EngineId) -> None:
        """Forget the engine's lock: its folder is gone."""
        self._locks.pop(engine_id, None)

    @contextlib.asynccontextmanager
    async def exclusive(self, engine_id: EngineId) -> AsyncIterator[Path]:
        """This engine, for us alone: in this process (asyncio lock) and across
        processes (flock on its .lock file). Yields the engine's folder."""
        folder = self.dir(engine_id)
        async with self.lock(engine_id):
            files.make_private_dir(folder)
            fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
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

    def make_private(self) -> None:
        """The data dir and what engines left in it, owner-only (a data dir from an
        older Rucat, or made by hand, may be readable by others); logs each change."""
        files.make_private_dir(self.root)
        folders = [self.data_dir, self.root]
        with contextlib.suppress(FileNotFoundError):
            folders += [p for p in self.root.iterdir() if p.is_dir() and not p.is_symlink()]
        for folder in folders:
            _tighten(folder, files.PRIVATE_DIR)
            if folder.parent != self.root:
                continue
            for entry in folder.iterdir():
                is_dir = entry.is_dir() and not entry.is_symlink()
                _tighten(entry, files.PRIVATE_DIR if is_dir else files.PRIVATE_FILE)


def _tighten(path: Path, mode: int) -> None:
    try:
        old = files.tighten(path, mode)
    except OSError as e:  # not ours (a shared folder named as data dir): say so
        log.warning("cannot make %s private (mode %o): %s", path, mode, e.strerror or e)
        return
    if old is not None:
        log.warning("made %s private: mode %o -> %o", path, old, old & mode)
