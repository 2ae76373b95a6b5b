"""One embedded SurrealDB engine per database per process, shared by every store that opens it.

The SDK's embedded engine keeps the database state in the instance: two
instances on one `surrealkv://` path do not see each other's writes while
both write the same files, and two `mem://` instances are two unrelated
databases. So within a process every store opened on the same embedded URI
shares one instance (reference-counted; the last close closes it), and
across processes a `surrealkv://` path is guarded by an exclusive lock on the
file `<path>.lock`: a second process gets a clear StoreUnavailable instead
of silently diverging. (`rucat up` runs server and monitor in one process and
shares the store; separate `rucat server` and `rucat monitor` processes need a
SurrealDB server: ws://, http://.)

Writes to one engine are serialised (one write transaction at a time, reads
run freely): the embedded engine of SurrealDB 2.0 does not always detect two
concurrent transactions writing the same record. Measured here, 20 racing
`UPDATE ... WHERE revision = 0` statements let two of them commit in about
1-10% of races, on mem:// and surrealkv:// alike; serialised, a CAS is exact.
The file lock makes the process the only writer, so the in-process lock is
enough.

`mem://NAME` names an in-memory database of this process; plain `mem://` is
the process's default one. The data of an in-memory database goes away with
its last store.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import weakref
from dataclasses import dataclass, field
from typing import IO, Any

from rucat.domain.errors import StoreUnavailable


@dataclass
class _Engine:
    db: Any
    users: int = 0
    lock_file: IO[bytes] | None = field(default=None, repr=False)
    writes: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True)
class Embedded:
    """A shared embedded engine: its SDK connection and its write lock."""

    db: Any
    #: Held around every write transaction (see the module docstring).
    writes: asyncio.Lock


_engines: dict[str, _Engine] = {}
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _lock() -> asyncio.Lock:
    """The registry's lock for the running loop (an asyncio.Lock serves one loop)."""
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock


def sdk_url(key: str) -> str:
    """The URL the SDK opens for a registry key (`mem://NAME` -> `mem://`)."""
    return "mem://" if key.startswith("mem://") else key


def _lock_path(key: str) -> str | None:
    if key.startswith("mem://"):
        return None
    return key.split("://", 1)[1].rstrip("/") + ".lock"


def _take_file_lock(path: str, shown: str) -> IO[bytes]:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    handle = open(path, "a+b")  # noqa: SIM115 - held open for the engine's lifetime
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        handle.seek(0)
        holder = handle.read(64).decode("ascii", "replace").strip() or "unknown"
        handle.close()
        raise StoreUnavailable(
            f"{shown} is in use by another process (pid {holder}); an embedded SurrealDB "
            "database serves one process: run `rucat up`, or use a SurrealDB server (ws://)"
        ) from e
    except OSError as e:
        handle.close()
        raise StoreUnavailable(f"cannot lock {path} for {shown}: {e.strerror or e}") from e
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()).encode("ascii"))
    handle.flush()
    return handle


def _release_file_lock(handle: IO[bytes] | None) -> None:
    if handle is None:
        return
    with contextlib.suppress(OSError):
        handle.seek(0)
        handle.truncate()
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    handle.close()


async def acquire(key: str, *, shown: str, timeout: float) -> Embedded:
    """The shared engine for embedded database `key`, opened if needed."""
    from surrealdb import AsyncSurreal

    async with _lock():
        engine = _engines.get(key)
        if engine is None:
            path = _lock_path(key)
            lock_file = None if path is None else _take_file_lock(path, shown)
            try:
                db: Any = AsyncSurreal(sdk_url(key))
                async with asyncio.timeout(timeout):
                    await db.connect()
            except TimeoutError as e:
                _release_file_lock(lock_file)
                raise StoreUnavailable(f"{shown} did not open within {timeout:g} s") from e
            except Exception as e:
                _release_file_lock(lock_file)
                raise StoreUnavailable(f"cannot open {shown}: {e}") from e
            engine = _Engine(db=db, lock_file=lock_file)
            _engines[key] = engine
        engine.users += 1
        return Embedded(db=engine.db, writes=engine.writes)


async def release(key: str, db: Any) -> None:
    """Give back what `acquire` returned; the last user closes the engine."""
    async with _lock():
        engine = _engines.get(key)
        if engine is None or engine.db is not db:
            return
        engine.users -= 1
        if engine.users > 0:
            return
        del _engines[key]
        # Closed under the lock: a store opening the same database meanwhile
        # waits, then opens it afresh (and takes the file lock again).
        try:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(db.close(), 30.0)
        finally:
            _release_file_lock(engine.lock_file)
