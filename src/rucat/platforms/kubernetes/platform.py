"""Engines as Kubernetes driver pods: the Kubernetes Platform.

Each engine is a Secret, a headless Service, a NetworkPolicy and a driver Pod
named after its id (see kubernetes.manifests), so every action is idempotent: start()
treats 409 AlreadyExists as "adopt what is there" and never makes a second
pod; stop() treats 404 as done.

Drivers run user code and may create pods in the namespace (their executors),
so labels and names prove nothing: the uid the API server gave the driver pod
Rucat created is recorded on the engine's Secret, which no driver may write,
and a pod is only ever taken for an engine when its uid is the recorded one. A
monitor that restarts (or another monitor) learns the uid from the Secret; a
pod holding the driver's name without it is removed at start and reported as
a failure, never adopted. Observation is watch-driven (kubernetes.watch): inspect()
answers from memory, so idle engines cost no API calls; only a miss (which
may mean "gone") is confirmed with one direct read before saying Absent.

Errors are converted at this boundary: refusals by the API server (422, 400,
403, 404 on the namespace) are PlatformRejected; anything that may pass
(5xx, 429, connection errors) is PlatformError; a wrong config is ConfigError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.core.exceptions import ConfigError as LightkubeConfigError
from lightkube.resources.core_v1 import Namespace, Pod, Secret, Service
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.types import PatchType

from rucat.config import KubernetesPlatformConfig
from rucat.domain.engine import Engine, EngineId
from rucat.domain.errors import ConfigError, PlatformError, PlatformRejected
from rucat.domain.observation import Absent, Failed, Observation, Unknown
from rucat.platforms import files
from rucat.platforms.kubernetes import manifests as manifests
from rucat.platforms.kubernetes.errors import as_api_error, status_code, status_message
from rucat.platforms.kubernetes.security import network_policy_name
from rucat.platforms.kubernetes.status import observe_pod
from rucat.platforms.kubernetes.watch import PodCache

log = logging.getLogger("rucat.platforms.kubernetes.platform")

#: Engine ids buffered per changes() consumer; beyond that, ids are dropped
#: (the monitor's periodic check still finds every engine).
_CHANGES_BUFFER = 10_000
#: Status codes that will not pass by retrying the same request.
_REJECTED = frozenset({400, 403, 404, 422})

_Resource = type[Pod] | type[Service] | type[Secret] | type[NetworkPolicy]


class KubernetesPlatform:
    """Spark Connect engines as driver pods in one namespace."""

    name = "Kubernetes"

    def __init__(self, config: KubernetesPlatformConfig, *, timeout: float = 15.0) -> None:
        self.config = config
        self._timeout = timeout
        self._client: AsyncClient | None = None
        self._cache: PodCache | None = None
        self._subscribers: set[asyncio.Queue[EngineId | None]] = set()
        #: engine id -> uid of the driver pod Rucat created (as recorded on its Secret).
        self._driver_uids: dict[EngineId, str] = {}

    # --- plumbing ---------------------------------------------------------------

    def _api(self) -> AsyncClient:
        if self._client is None:
            try:
                if self.config.kubeconfig is not None:
                    kubeconfig = KubeConfig.from_file(self.config.kubeconfig)
                else:
                    kubeconfig = KubeConfig.from_service_account()
                self._client = AsyncClient(
                    kubeconfig,
                    namespace=self.config.namespace,
                    timeout=httpx2.Timeout(self._timeout),
                    field_manager="rucat",
                )
            except (LightkubeConfigError, OSError, ValueError, KeyError) as e:
                where = self.config.kubeconfig or "the in-cluster service account"
                raise ConfigError(
                    f"platform.Kubernetes: cannot load the Kubernetes config from {where}: {e}"
                ) from e
        return self._client

    def _watch(self) -> PodCache:
        """The pod view, started on first use (it needs a running event loop)."""
        if self._cache is None:
            self._cache = PodCache(
                self._api(),
                self.config.namespace,
                observe=self._observe,
                on_change=self._notify,
                accept=self._known_driver,
            )
        self._cache.start()
        return self._cache

    def _observe(self, engine_id: EngineId, pod: Mapping[str, Any]) -> Observation:
        return observe_pod(
            pod,
            endpoint=manifests.endpoint(engine_id, self.config.namespace),
            fail_when_unschedulable=self.config.fail_when_unschedulable,
        )

    def _known_driver(self, engine_id: EngineId, uid: str) -> bool:
        return bool(uid) and self._driver_uids.get(engine_id) == uid

    def _notify(self, engine_id: EngineId) -> None:
        for queue in self._subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(engine_id)

    def _server(self) -> str:
        try:
            return str(self._api().config.cluster.server)
        except ConfigError:
            raise
        except Exception:
            return "the Kubernetes API server"

    def _failure(self, action: str, e: Exception) -> PlatformError | PlatformRejected:
        code = status_code(e)
        message = status_message(e)
        if code in _REJECTED:
            return PlatformRejected(f"Kubernetes refused to {action}: {message} (HTTP {code})")
        what = f"HTTP {code}" if code else type(e).__name__
        return PlatformError(f"cannot {action} ({what}): {message or e}")

    # --- Platform ---------------------------------------------------------------

    async def check(self) -> None:
        api = self._api()
        ns = self.config.namespace
        try:
            try:
                await api.get(Namespace, ns)
            except httpx2.HTTPStatusError as e:
                raise as_api_error(e) from e
        except ApiError as e:
            code = status_code(e)
            if code == 404:
                raise ConfigError(
                    f"platform.Kubernetes.namespace: namespace {ns!r} does not exist; "
                    f"create it (kubectl create namespace {ns}) or name another"
                ) from e
            if code == 401:
                raise ConfigError(
                    f"the API server at {self._server()} refused the credentials"
                ) from e
            if code != 403:
                raise ConfigError(f"the API server at {self._server()} failed: {e}") from e
            # Namespaced RBAC cannot read the namespace itself; reading pods proves enough.
            try:
                async for _pod in api.list(Pod, namespace=ns, chunk_size=1):
                    break
            except httpx2.HTTPStatusError as inner:
                raise ConfigError(
                    f"cannot list pods in namespace {ns!r}: {status_message(inner)}; "
                    "grant the monitor's service account the Role from the Helm chart"
                ) from inner
        except (httpx2.HTTPError, OSError) as e:
            why = str(e) or type(e).__name__
            raise ConfigError(
                f"cannot reach the Kubernetes API server at {self._server()}: {why}"
            ) from e

    async def start(self, *, engine: Engine) -> None:
        offered = set(self.config.versions) | set(self.config.images)
        if engine.version not in offered:
            raise PlatformRejected(
                f"Spark {engine.version} is not offered on Kubernetes; "
                f"available: {', '.join(sorted(offered))}"
            )
        built = manifests.engine_manifests(engine, self.config)
        cache = self._watch()
        # The pod mounts the secret, so it goes first; the pod goes last.
        await self._create(Secret, built.secret)
        await self._create(Service, built.service)
        if built.network_policy is not None:
            await self._create(NetworkPolicy, built.network_policy)
        pod = await self._create(Pod, built.pod)
        if pod is not None:
            uid = str(pod["metadata"]["uid"])
            # Trusted from now on (the watch may already have held its events back),
            # then recorded where a restarted or another monitor will find it.
            self._driver_uids[engine.id] = uid
            cache.put(pod)
            cache.trust(engine.id)
            await self._record_driver(engine.id, uid)
            return
        # The name is taken: adopt the pod only if it is the one Rucat created.
        pod = await self._read_pod(engine.id)
        if pod is None:
            return  # gone meanwhile; the next inspect says Absent
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            # The driver of an earlier run is still going: adopting it would
            # report a dying engine. Start again once it is gone.
            raise PlatformError(
                f"the previous driver pod of engine {engine.id} is still terminating"
            )
        if await self._is_rucats(engine.id, pod):
            cache.put(pod)
            cache.trust(engine.id)
            # Idempotent; completes a record that failed after the pod was made.
            await self._record_driver(engine.id, str(pod["metadata"]["uid"]))
            return
        # Not recorded: made by someone else, or by a monitor that died before
        # recording it. Either way it is not trusted; remove it and start afresh.
        name = manifests.driver_pod_name(engine.id)
        log.warning("removing pod %s: it is not the driver pod Rucat recorded creating", name)
        await self._delete(Pod, name)
        raise PlatformError(
            f"pod {name} held the driver's name but is not the driver pod Rucat recorded "
            "creating; removed it, starting again"
        )

    async def _record_driver(self, engine_id: EngineId, uid: str) -> None:
        """Record on the engine's Secret that `uid` is its driver pod."""
        name = manifests.secret_name(engine_id)
        patch = {"metadata": {"annotations": {manifests.DRIVER_UID_ANNOTATION: uid}}}
        try:
            await self._api().patch(
                Secret, name, patch, namespace=self.config.namespace, patch_type=PatchType.MERGE
            )
        except httpx2.HTTPError as e:
            raise self._failure(f"record the driver pod on secret {name}", e) from e
        self._driver_uids[engine_id] = uid

    async def _recorded_uid(self, engine_id: EngineId) -> str | None:
        """The driver pod uid recorded on the engine's Secret; None when there is none."""
        name = manifests.secret_name(engine_id)
        try:
            secret = await self._api().get(Secret, name, namespace=self.config.namespace)
        except httpx2.HTTPError as e:
            if status_code(e) == 404:
                return None
            raise self._failure(f"read secret {name}", e) from e
        annotations = (secret.metadata.annotations if secret.metadata else None) or {}
        return annotations.get(manifests.DRIVER_UID_ANNOTATION) or None

    async def _is_rucats(self, engine_id: EngineId, pod: Mapping[str, Any]) -> bool:
        """Whether `pod` is the driver pod Rucat created for the engine (by uid)."""
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        if self._known_driver(engine_id, uid):
            return True
        # Not what this monitor knows: the record on the Secret is the truth
        # (another monitor may have started the engine since).
        recorded = await self._recorded_uid(engine_id)
        if recorded is None:
            return False
        self._driver_uids[engine_id] = recorded
        return recorded == uid

    async def _create(self, res: _Resource, manifest: manifests.Manifest) -> dict[str, Any] | None:
        """Create one object; None when it already exists (then it is adopted, as is)."""
        name = manifest["metadata"]["name"]
        kind = manifest["kind"]
        try:
            obj: Any = res.from_dict(manifest)
            created = await self._api().create(obj)
        except httpx2.HTTPError as e:
            if status_code(e) == 409:
                log.info("adopting existing %s %s", kind, name)
                return None
            raise self._failure(f"create {kind} {name}", e) from e
        result: dict[str, Any] = created.to_dict()
        return result

    async def _read_pod(self, engine_id: EngineId) -> dict[str, Any] | None:
        name = manifests.driver_pod_name(engine_id)
        try:
            pod = await self._api().get(Pod, name, namespace=self.config.namespace)
        except httpx2.HTTPError as e:
            if status_code(e) == 404:
                return None
            raise self._failure(f"read pod {name}", e) from e
        result: dict[str, Any] = pod.to_dict()
        return result

    async def inspect(self, *, engine: Engine) -> Observation:
        cache = self._watch()
        if cache.synced:
            entry = cache.get(engine.id)
            if entry is not None:
                return entry.observation
        # A miss may be a pod the watch has not reported yet: confirm it.
        try:
            pod = await self._read_pod(engine.id)
            if pod is None:
                return Absent()
            ours = await self._is_rucats(engine.id, pod)
        except (PlatformError, PlatformRejected) as e:
            return Unknown(e.message)
        if ours:
            cache.put(pod)
            cache.trust(engine.id)
            return self._observe(engine.id, pod)
        return Failed(
            f"pod {manifests.driver_pod_name(engine.id)} holds the driver's name but is "
            "not the driver pod Rucat created for this engine"
        )

    async def stop(self, *, engine: Engine) -> None:
        ns = self.config.namespace
        pod_name = manifests.driver_pod_name(engine.id)
        await self._delete(Pod, pod_name)
        # Executors die with their driver (owner reference); delete any that
        # were created without one, e.g. when the driver pod name was unknown.
        try:
            executors: list[str] = [
                p.metadata.name
                async for p in self._api().list(
                    Pod, namespace=ns, labels=dict(manifests.engine_selector(engine.id))
                )
                if p.metadata is not None and p.metadata.name not in (None, pod_name)
            ]
        except httpx2.HTTPError as e:
            raise self._failure(f"list the executors of engine {engine.id}", e) from e
        for name in executors:
            await self._delete(Pod, name)
        if self.config.network_policies:
            await self._delete(NetworkPolicy, network_policy_name(engine.id))
        await self._delete(Service, manifests.service_name(engine.id))
        await self._delete(Secret, manifests.secret_name(engine.id))
        self._driver_uids.pop(engine.id, None)

    async def _delete(self, res: _Resource, name: str) -> None:
        try:
            await self._api().delete(res, name, namespace=self.config.namespace)
        except httpx2.HTTPError as e:
            if status_code(e) == 404:
                return
            raise self._failure(f"delete {res.__name__} {name}", e) from e

    async def forget(self, *, engine: Engine) -> None:
        # Nothing outlives the objects stop() deletes; make sure they are gone.
        await self.stop(engine=engine)

    async def changes(self) -> AsyncIterator[EngineId]:
        queue: asyncio.Queue[EngineId | None] = asyncio.Queue(_CHANGES_BUFFER)
        self._subscribers.add(queue)
        try:
            self._watch()
            while True:
                engine_id = await queue.get()
                if engine_id is None:
                    return
                yield engine_id
        finally:
            self._subscribers.discard(queue)

    async def ui_port(self, *, engine: Engine) -> int | None:
        """Port 4040 of the engine's Service (the driver binds spark.ui.port there)."""
        if engine.configs.get("spark.ui.enabled", "true").strip().lower() == "false":
            return None
        return manifests.UI_PORT

    async def logs(self, *, engine: Engine, tail: int | None = None) -> str:
        name = manifests.driver_pod_name(engine.id)
        # The kubelet caps a container's log (containerLogMaxSize, 10 MiB by
        # default); the window bounds what Rucat keeps of it, in linear time.
        window = files.LineWindow(tail)
        try:
            async for line in self._api().log(
                name,
                namespace=self.config.namespace,
                container=manifests.DRIVER_CONTAINER,
                tail_lines=tail,
            ):
                window.add(line)
        except httpx2.HTTPError as e:
            # 404: no pod; 400: its container has not started. Either way, no log.
            if status_code(e) in (400, 404):
                return ""
            raise self._failure(f"read the log of pod {name}", e) from e
        return window.text()

    async def close(self) -> None:
        for queue in self._subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        if self._cache is not None:
            await self._cache.close()
            self._cache = None
        if self._client is not None:
            await self._client.close()
            self._client = None

    # --- for tests and benchmarks -----------------------------------------------

    @property
    def watch_stats(self) -> dict[str, int | bool]:
        """How the pod view is doing: synced, engines cached, relists, events."""
        cache = self._cache
        if cache is None:
            return {"synced": False, "cached": 0, "relists": 0, "events": 0}
        return {
            "synced": cache.synced,
            "cached": len(cache),
            "relists": cache.relists,
            "events": cache.events,
        }
