"""An in-memory view of Rucat's driver pods, kept current by one watch.

Observing 1,000 idle engines must cost almost nothing, so inspect() never
asks the API server: one watch of the namespace's driver pods (by label)
feeds a dict engine id -> Observation. The loop is the usual informer:

    list (remember its resourceVersion) -> watch from that version -> apply events

A watch that ends cleanly is resumed from the last version seen (lightkube
does this). 410 Gone (history compacted) means events were missed: relist at
once. Any other failure (connection cut, API down) marks the view unsynced,
waits with exponential backoff, and relists. While unsynced, callers fall back
to direct reads, so a stale view is never presented as the truth.

Invariants: an entry is only replaced by a pod at least as new (by
resourceVersion), and a DELETED event only removes the entry of the same pod
(uid), so a late event of a deleted pod never hides its successor. Only pods
the platform accepts (by uid: the driver pods Rucat created) become entries;
anyone who may create pods in the namespace can copy Rucat's labels, so a pod
with an engine's labels but another uid is never taken for that engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.core_v1 import Pod

from rucat.domain.engine import EngineId
from rucat.domain.observation import Observation
from rucat.platforms.kubernetes.errors import status_code
from rucat.platforms.kubernetes.manifests import DRIVER_SELECTOR, ENGINE_ID_LABEL

log = logging.getLogger("rucat.platforms.kubernetes.platform")

_BACKOFF_START = 0.2
_BACKOFF_MAX = 30.0
_WATCH_WINDOW = 300.0
#: Uids of ignored pods remembered (to log each once); then forgotten.
_IGNORED_MAX = 10_000


def _version(pod: Mapping[str, Any]) -> int | None:
    raw = (pod.get("metadata") or {}).get("resourceVersion")
    # resourceVersions are opaque strings; every real server uses integers,
    # and only then can two be ordered.
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


@dataclass(frozen=True)
class Entry:
    uid: str
    version: int | None
    observation: Observation


class PodCache:
    """Driver pods of one namespace by engine id, as Observations."""

    def __init__(
        self,
        api: AsyncClient,
        namespace: str,
        *,
        observe: Callable[[EngineId, Mapping[str, Any]], Observation],
        on_change: Callable[[EngineId], None],
        accept: Callable[[EngineId, str], bool] | None = None,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._observe = observe
        self._on_change = on_change
        #: Whether the pod with this uid is the engine's driver; None accepts every pod.
        self._accept = accept
        self._ignored: set[str] = set()
        #: The latest pod refused per engine, applied by trust() once the platform
        #: learns its uid (its events may arrive before the create call returns).
        self._held: dict[EngineId, Mapping[str, Any]] = {}
        self._entries: dict[EngineId, Entry] = {}
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Counters for tests and metrics: how often the view was rebuilt.
        self.relists = 0
        self.events = 0
        #: Seconds one watch request may last before it is resumed from its last version.
        self.window = _WATCH_WINDOW

    @property
    def synced(self) -> bool:
        """True when the view reflects every event since the last list."""
        return self._synced.is_set()

    async def wait_synced(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._synced.wait(), timeout)
        return self.synced

    def get(self, engine_id: EngineId) -> Entry | None:
        return self._entries.get(engine_id)

    def __len__(self) -> int:
        return len(self._entries)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="rucat-k8s-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._synced.clear()

    # --- applying what the API server says ------------------------------------

    def put(self, pod: Mapping[str, Any]) -> None:
        """Record a pod read outside the watch (a create or a get), if it is newer."""
        self._apply("ADDED", pod)

    def _apply(self, kind: str, pod: Mapping[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        engine_id = (meta.get("labels") or {}).get(ENGINE_ID_LABEL)
        if not engine_id:
            return
        uid = str(meta.get("uid") or "")
        version = _version(pod)
        current = self._entries.get(engine_id)
        if kind in ("ADDED", "MODIFIED") and not self._accepts(engine_id, uid, meta):
            # Not known to be Rucat's: let the monitor look (it reads the pod by its
            # name and checks the recorded uid), never present it as the engine.
            self._hold(engine_id, pod)
            self._on_change(engine_id)
            return
        if kind == "DELETED":
            held = self._held.get(engine_id)
            if held is not None and str((held.get("metadata") or {}).get("uid") or "") == uid:
                del self._held[engine_id]
            if current is None or current.uid != uid:
                return
            del self._entries[engine_id]
        elif kind in ("ADDED", "MODIFIED"):
            if (
                current is not None
                and current.version is not None
                and version is not None
                and version < current.version
            ):
                return
            observation = self._observe(engine_id, pod)
            self._entries[engine_id] = Entry(uid, version, observation)
            if current is not None and current.observation == observation:
                return  # nothing a monitor acts on has changed
        else:  # BOOKMARK: only moves the version, which lightkube tracks
            return
        self._on_change(engine_id)

    def _replace_all(self, pods: Sequence[Mapping[str, Any]], list_version: int | None) -> None:
        fresh: dict[EngineId, Mapping[str, Any]] = {}
        for pod in pods:
            meta = pod.get("metadata") or {}
            engine_id = (meta.get("labels") or {}).get(ENGINE_ID_LABEL)
            if engine_id and self._accepts(engine_id, str(meta.get("uid") or ""), meta):
                fresh[engine_id] = pod
        for engine_id, entry in list(self._entries.items()):
            if engine_id in fresh:
                continue
            # Recorded by put() after the list was taken: the watch will confirm it.
            later = entry.version is not None and list_version is not None
            if later and (entry.version or 0) > (list_version or 0):
                continue
            del self._entries[engine_id]
            self._on_change(engine_id)
        for pod in fresh.values():
            self._apply("ADDED", pod)

    def trust(self, engine_id: EngineId) -> None:
        """The platform has just learnt the engine's driver uid: apply what was held."""
        held = self._held.pop(engine_id, None)
        if held is not None:
            self._apply("ADDED", held)

    def _hold(self, engine_id: EngineId, pod: Mapping[str, Any]) -> None:
        if len(self._held) >= _IGNORED_MAX:
            self._held.clear()
        held = self._held.get(engine_id)
        version, held_version = _version(pod), _version(held) if held is not None else None
        if held is None or version is None or held_version is None or version >= held_version:
            self._held[engine_id] = pod

    def _accepts(self, engine_id: EngineId, uid: str, meta: Mapping[str, Any]) -> bool:
        if self._accept is None or self._accept(engine_id, uid):
            return True
        if uid not in self._ignored:
            if len(self._ignored) >= _IGNORED_MAX:
                self._ignored.clear()
            self._ignored.add(uid)
            log.info(
                "pod %s carries the driver labels of engine %s but is not the driver pod "
                "this monitor knows Rucat created; not taken for the engine unless the "
                "engine's record names it",
                meta.get("name"),
                engine_id,
            )
        return False

    # --- the loop ---------------------------------------------------------------

    async def _relist(self) -> str:
        listing = self._api.list(Pod, namespace=self._namespace, labels=dict(DRIVER_SELECTOR))
        pods = [p.to_dict() async for p in listing]
        version = listing.resourceVersion
        self._replace_all(pods, int(version) if version.isdigit() else None)
        self.relists += 1
        return version

    async def _run(self) -> None:
        backoff = _BACKOFF_START
        while True:
            try:
                version = await self._relist()
                self._synced.set()
                backoff = _BACKOFF_START
                while True:
                    version = await self._watch_window(version)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                code = status_code(e)
                self._synced.clear()
                if code == 410:
                    log.info("pod watch expired (410 Gone); relisting")
                    continue
                log.warning(
                    "pod watch in namespace %s failed (%s: %s); relisting in %.1fs",
                    self._namespace,
                    type(e).__name__,
                    e,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)

    async def _watch_window(self, version: str) -> str:
        """Watch from `version` for at most one window; returns the last version seen.

        The window bounds how long a silently dead connection (no FIN, no
        error) can leave the view stale: the next window resumes from the last
        version, so nothing is missed.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.window):
                watch = self._api.watch(
                    Pod,
                    namespace=self._namespace,
                    labels=dict(DRIVER_SELECTOR),
                    resource_version=version,
                    server_timeout=max(1, int(self.window) - 5),
                )
                async for kind, pod in watch:
                    self.events += 1
                    seen = pod.metadata.resourceVersion if pod.metadata is not None else None
                    version = seen or version
                    self._apply(kind, pod.to_dict())
        return version
