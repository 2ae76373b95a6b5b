"""A fake Kubernetes API server, over real HTTP, for the Kubernetes platform's tests.

No real API server can run on these machines, so this one speaks enough of
core/v1 for Rucat's real client (lightkube) to drive it through a generated
kubeconfig: pods, services, secrets, service accounts, config maps and
namespaces, and networking.k8s.io/v1 network policies; create (409 on
duplicates, 422 on invalid objects), get, list (label selectors), delete (404
when missing), merge patch, replace, and watch (streamed JSON lines,
resumable from a resourceVersion, 410 when it is too old). pods/log serves
text set by the test. Namespaces labelled `pod-security.kubernetes.io/enforce`
refuse pods that break that Pod Security level (403), as Pod Security
Admission does (rules in fake_kube_rules.py).

There is no scheduler or kubelet: tests play them with plain methods
(`kubelet_ready`, `kubelet_image_pull_backoff`, `scheduler_unschedulable`,
...), and can break things the way clusters do: drop every watch connection,
compact history (resumes get 410), delete objects behind the client's back.
With `auto_kubelet=SECONDS` new pods become Running and Ready on their own.

The server runs uvicorn in a thread; state is guarded by one lock so hooks can
be called from the test's thread. `python -m tests.support.fake_kube` runs it
as its own process (used by bench/k8s_scale.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import json
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.fake_kube_rules import (
    GROUP_VERSIONS,
    KINDS,
    ApiFailure,
    Obj,
    Requirement,
    admit_pod,
    matches,
    merge_patch,
    now,
    parse_selector,
    validate,
)

__all__ = ["FakeKube", "merge_patch", "parse_selector"]

_END = b""  # queue item: end the watch stream cleanly
_ABORT = b"!"  # queue item: cut the connection mid-stream

# --- the server ---------------------------------------------------------------


@dataclass
class _Watcher:
    plural: str
    namespace: str | None
    selector: list[Requirement]
    queue: asyncio.Queue[bytes]
    loop: asyncio.AbstractEventLoop


@dataclass
class _Event:
    rv: int
    plural: str
    namespace: str
    line: bytes
    obj: Obj = field(repr=False)


class FakeKube:
    """The fake API server. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        namespaces: tuple[str, ...] = ("default",),
        token: str = "fake-token",
        auto_kubelet: float | None = None,
        hold_pod_deletion: bool = False,
        history_limit: int = 100_000,
        json_content_type: str = "application/json",
        namespace_labels: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.token = token
        #: The Content-Type of every JSON answer. kube-apiserver sends exactly
        #: "application/json"; proxies may append a charset (lightkube then
        #: raises a plain httpx error instead of ApiError).
        self.json_content_type = json_content_type
        self.auto_kubelet = auto_kubelet
        #: When set, deleting a pod only marks it terminating; finish_pod_deletion() removes it.
        self.hold_pod_deletion = hold_pod_deletion
        self.requests: Counter[tuple[str, str]] = Counter()
        self._lock = threading.RLock()
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {p: {} for p in KINDS}
        self._logs: dict[tuple[str, str], str] = {}
        self._rv = 1
        self._compacted_through = 0  # resuming from an older version answers 410
        self._history: list[_Event] = []
        self._history_limit = history_limit
        self._watchers: list[_Watcher] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        for ns in namespaces:
            labels = {"kubernetes.io/metadata.name": ns, **(namespace_labels or {}).get(ns, {})}
            meta = {"name": ns, "labels": labels}
            self._store("namespaces", "", {"metadata": meta, "status": {"phase": "Active"}})

    # --- lifecycle -------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> FakeKube:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app(),
            log_level="critical",
            lifespan="off",
            timeout_graceful_shutdown=2,
            backlog=4096,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-kube", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake API server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.should_exit = True
        self.drop_watches()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(self, path: Path, *, namespace: str = "default") -> Path:
        """A kubeconfig pointing at this server (plain HTTP, bearer token)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    # --- test hooks: inspection -------------------------------------------------

    def objects(self, plural: str, namespace: str = "default") -> list[Obj]:
        with self._lock:
            return [
                copy.deepcopy(o) for (ns, _), o in self._objects[plural].items() if ns == namespace
            ]

    def get(self, plural: str, namespace: str, name: str) -> Obj | None:
        with self._lock:
            found = self._objects[plural].get((namespace, name))
            return copy.deepcopy(found) if found is not None else None

    @property
    def active_watches(self) -> int:
        with self._lock:
            return len(self._watchers)

    # --- test hooks: kubelet and scheduler ---------------------------------------

    def set_pod_status(self, namespace: str, name: str, **status: Any) -> bool:
        """Merge `status` fields into the pod's status (MODIFIED event); False if no pod."""
        with self._lock:
            pod = self._objects["pods"].get((namespace, name))
            if pod is None:
                return False
            updated = copy.deepcopy(pod)
            updated["status"] = {**(updated.get("status") or {}), **status}
            self._store("pods", namespace, updated, event="MODIFIED")
            return True

    def _container_status(self, pod: Obj, state: Obj, *, ready: bool, **extra: Any) -> list[Obj]:
        return [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": ready,
                "restartCount": extra.get("restartCount", 0),
                "started": "running" in state,
                "state": state,
                **({"lastState": extra["lastState"]} if "lastState" in extra else {}),
            }
            for c in pod["spec"]["containers"]
        ]

    def _conditions(self, *, scheduled: bool, ready: bool) -> list[Obj]:
        t = now()
        yes = lambda b: "True" if b else "False"  # noqa: E731
        return [
            {"type": "PodScheduled", "status": yes(scheduled), "lastTransitionTime": t},
            {"type": "Initialized", "status": "True", "lastTransitionTime": t},
            {"type": "ContainersReady", "status": yes(ready), "lastTransitionTime": t},
            {"type": "Ready", "status": yes(ready), "lastTransitionTime": t},
        ]

    def kubelet_running(self, namespace: str, name: str, *, ready: bool) -> bool:
        """The container runs; `ready` says whether its readiness probe passes."""
        pod = self.get("pods", namespace, name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return False
        state = {"running": {"startedAt": now()}}
        with self._lock:
            # What a Spark Connect driver prints as it comes up (the fake runs no Spark).
            self._logs.setdefault(
                (namespace, name),
                f"INFO SparkContext: Running Spark version (fake kubelet, pod {name})\n"
                "INFO SparkConnectServer: Starting Spark Connect server\n"
                "INFO SparkConnectServer: Spark Connect server started at: 0.0.0.0:15002\n",
            )
        return self.set_pod_status(
            namespace,
            name,
            phase="Running",
            podIP="10.0.0.%d" % (hash(name) % 250 + 2),
            startTime=now(),
            conditions=self._conditions(scheduled=True, ready=ready),
            containerStatuses=self._container_status(pod, state, ready=ready),
        )

    def kubelet_ready(self, namespace: str, name: str) -> bool:
        return self.kubelet_running(namespace, name, ready=True)

    def kubelet_waiting(self, namespace: str, name: str, reason: str, message: str = "") -> bool:
        """The container waits with `reason` (ImagePullBackOff, CrashLoopBackOff, ...)."""
        pod = self.get("pods", namespace, name)
        if pod is None:
            return False
        state = {"waiting": {"reason": reason, "message": message}}
        return self.set_pod_status(
            namespace,
            name,
            phase="Pending",
            conditions=self._conditions(scheduled=True, ready=False),
            containerStatuses=self._container_status(pod, state, ready=False),
        )

    def kubelet_image_pull_backoff(self, namespace: str, name: str) -> bool:
        pod = self.get("pods", namespace, name)
        image = pod["spec"]["containers"][0].get("image", "") if pod else ""
        message = f'Back-off pulling image "{image}"'
        return self.kubelet_waiting(namespace, name, "ImagePullBackOff", message)

    def kubelet_terminated(
        self, namespace: str, name: str, *, exit_code: int, reason: str = "Error"
    ) -> bool:
        """The container exited; the pod (restartPolicy Never) is Failed."""
        pod = self.get("pods", namespace, name)
        if pod is None:
            return False
        state = {"terminated": {"exitCode": exit_code, "reason": reason, "finishedAt": now()}}
        return self.set_pod_status(
            namespace,
            name,
            phase="Failed" if exit_code else "Succeeded",
            conditions=self._conditions(scheduled=True, ready=False),
            containerStatuses=self._container_status(pod, state, ready=False),
        )

    def scheduler_unschedulable(self, namespace: str, name: str, message: str) -> bool:
        t = now()
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": t,
        }
        return self.set_pod_status(namespace, name, phase="Pending", conditions=[condition])

    def add(self, plural: str, namespace: str, obj: Obj) -> Obj:
        """Create an object as another client would (e.g. Spark creating an executor)."""
        with self._lock:
            validate(plural, obj)
            if plural == "pods":
                admit_pod(self._objects["namespaces"].get(("", namespace)), obj)
            return copy.deepcopy(self._store(plural, namespace, copy.deepcopy(obj)))

    def set_pod_log(self, namespace: str, name: str, text: str) -> None:
        with self._lock:
            self._logs[(namespace, name)] = text

    # --- test hooks: trouble ----------------------------------------------------

    def drop_watches(self, *, abrupt: bool = False) -> int:
        """End every open watch: cleanly, or by cutting the connection mid-stream."""
        with self._lock:
            watchers, self._watchers = self._watchers, []
        for w in watchers:
            w.loop.call_soon_threadsafe(w.queue.put_nowait, _ABORT if abrupt else _END)
        return len(watchers)

    def compact(self) -> None:
        """Forget history: resuming a watch from any version seen so far answers 410 Gone."""
        with self._lock:
            self._rv += 1
            self._compacted_through = self._rv
            self._history.clear()

    def delete(self, plural: str, namespace: str, name: str) -> bool:
        """Delete an object behind the client's back (immediately, even pods)."""
        with self._lock:
            return self._remove(plural, namespace, name)

    def finish_pod_deletion(self, namespace: str, name: str) -> bool:
        with self._lock:
            return self._remove("pods", namespace, name)

    # --- state (callers hold the lock) -------------------------------------------

    def _store(self, plural: str, namespace: str, obj: Obj, *, event: str = "ADDED") -> Obj:
        self._rv += 1
        obj["apiVersion"] = GROUP_VERSIONS.get(plural, "v1")
        obj["kind"] = KINDS[plural]
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self._rv)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now())
        if plural != "namespaces":
            meta["namespace"] = namespace
        self._objects[plural][(namespace, meta["name"])] = obj
        self._emit(plural, namespace, event, obj)
        return obj

    def _remove(self, plural: str, namespace: str, name: str) -> bool:
        obj = self._objects[plural].pop((namespace, name), None)
        if obj is None:
            return False
        self._rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._emit(plural, namespace, "DELETED", obj)
        self._logs.pop((namespace, name), None)
        if plural == "pods":  # the garbage collector: dependents die with their owner
            uid = obj["metadata"]["uid"]
            for (ns, other), pod in list(self._objects["pods"].items()):
                owners = pod["metadata"].get("ownerReferences") or []
                if ns == namespace and any(o.get("uid") == uid for o in owners):
                    self._remove("pods", ns, other)
        return True

    def _emit(self, plural: str, namespace: str, event: str, obj: Obj) -> None:
        line = json.dumps({"type": event, "object": obj}).encode() + b"\n"
        self._history.append(_Event(self._rv, plural, namespace, line, copy.deepcopy(obj)))
        if len(self._history) > self._history_limit:
            dropped = self._history[: len(self._history) // 2]
            del self._history[: len(dropped)]
            self._compacted_through = dropped[-1].rv
        for w in self._watchers:
            wanted = w.plural == plural and w.namespace in (None, namespace)
            if wanted and matches(obj, w.selector):
                w.loop.call_soon_threadsafe(w.queue.put_nowait, line)

    # --- HTTP ---------------------------------------------------------------------

    def app(self) -> Any:
        """The ASGI app: the routes, with JSON answers labelled `json_content_type`."""
        inner = self._routes()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            async def relabel(message: Any) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [
                        (k, self.json_content_type.encode())
                        if k.lower() == b"content-type" and v == b"application/json"
                        else (k, v)
                        for k, v in message.get("headers", [])
                    ]
                await send(message)

            await inner(scope, receive, relabel)

        return app

    def _routes(self) -> Starlette:
        base = "/api/v1"
        routes = [
            Route("/version", self._version),
            Route(f"{base}/namespaces", self._collection, methods=["GET", "POST", "DELETE"]),
            Route(f"{base}/namespaces/{{name}}", self._namespace_item, methods=["GET", "DELETE"]),
            Route(f"{base}/{{plural}}", self._all_namespaces),
            Route(
                f"{base}/namespaces/{{ns}}/{{plural}}",
                self._collection,
                methods=["GET", "POST", "DELETE"],
            ),
            Route(f"{base}/namespaces/{{ns}}/pods/{{name}}/log", self._log),
            Route(
                f"{base}/namespaces/{{ns}}/{{plural}}/{{name}}",
                self._item,
                methods=["GET", "DELETE", "PATCH", "PUT"],
            ),
        ]
        for group_version in sorted(set(GROUP_VERSIONS.values())):
            group = f"/apis/{group_version}"
            routes += [
                Route(f"{group}/{{plural}}", self._all_namespaces),
                Route(
                    f"{group}/namespaces/{{ns}}/{{plural}}",
                    self._collection,
                    methods=["GET", "POST", "DELETE"],
                ),
                Route(
                    f"{group}/namespaces/{{ns}}/{{plural}}/{{name}}",
                    self._item,
                    methods=["GET", "DELETE", "PATCH", "PUT"],
                ),
            ]
        return Starlette(routes=routes)

    def _authorize(self, request: Request) -> None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            raise ApiFailure(401, "Unauthorized", "Unauthorized")

    async def _version(self, request: Request) -> Response:
        return JSONResponse({"major": "1", "minor": "31", "gitVersion": "v1.31.0-fake"})

    async def _all_namespaces(self, request: Request) -> Response:
        return await self._handle(request, request.path_params["plural"], None, None)

    async def _namespace_item(self, request: Request) -> Response:
        return await self._handle(request, "namespaces", "", request.path_params["name"])

    async def _collection(self, request: Request) -> Response:
        ns = request.path_params.get("ns")
        plural = request.path_params.get("plural", "namespaces")
        return await self._handle(request, plural, "" if plural == "namespaces" else ns, None)

    async def _item(self, request: Request) -> Response:
        p = request.path_params
        return await self._handle(request, p["plural"], p["ns"], p["name"])

    async def _handle(
        self, request: Request, plural: str, ns: str | None, name: str | None
    ) -> Response:
        try:
            self._authorize(request)
            served = (
                request.url.path.startswith(f"/apis/{GROUP_VERSIONS[plural]}/")
                if plural in GROUP_VERSIONS
                else request.url.path.startswith("/api/v1/")
            )
            if plural not in KINDS or not served:
                raise ApiFailure(404, "NotFound", f"the server could not find {plural}")
            return await self._dispatch(request, plural, ns, name)
        except ApiFailure as e:
            return e.response()

    def _require_namespace(self, ns: str | None) -> None:
        if ns and ("", ns) not in self._objects["namespaces"]:
            raise ApiFailure(404, "NotFound", f'namespaces "{ns}" not found')

    def _missing(self, plural: str, name: str) -> ApiFailure:
        return ApiFailure(404, "NotFound", f'{plural} "{name}" not found')

    async def _dispatch(
        self, request: Request, plural: str, ns: str | None, name: str | None
    ) -> Response:
        q = request.query_params
        method = request.method
        if name is None and method == "GET":
            if q.get("watch") in ("true", "1"):
                self.requests[("watch", plural)] += 1
                return self._watch(plural, ns, q)
            self.requests[("list", plural)] += 1
            return JSONResponse(self._list(plural, ns, parse_selector(q.get("labelSelector"))))
        body: Obj = {}
        if method in ("POST", "PUT", "PATCH"):
            try:
                body = json.loads(await request.body())
            except json.JSONDecodeError as e:
                raise ApiFailure(400, "BadRequest", f"invalid JSON: {e}") from e
            if not isinstance(body, dict):
                raise ApiFailure(400, "BadRequest", "the body must be a JSON object")
        key = (ns or "", name or "")
        with self._lock:
            if method == "POST":
                self.requests[("create", plural)] += 1
                return self._create(request, plural, ns or "", body)
            if method == "DELETE" and name is None:
                self.requests[("deletecollection", plural)] += 1
                selector = parse_selector(q.get("labelSelector"))
                items = [
                    o
                    for (o_ns, _), o in list(self._objects[plural].items())
                    if o_ns == (ns or "") and matches(o, selector)
                ]
                for o in items:
                    self._delete_one(plural, ns or "", o["metadata"]["name"])
                return JSONResponse({"kind": "Status", "apiVersion": "v1", "status": "Success"})
            assert name is not None
            current = self._objects[plural].get(key)
            if method == "GET":
                self.requests[("get", plural)] += 1
                if current is None:
                    raise self._missing(plural, name)
                return JSONResponse(current)
            if method == "DELETE":
                self.requests[("delete", plural)] += 1
                if current is None:
                    raise self._missing(plural, name)
                return JSONResponse(self._delete_one(plural, ns or "", name))
            if current is None:
                raise self._missing(plural, name)
            if method == "PATCH":
                self.requests[("patch", plural)] += 1
                kind = request.headers.get("content-type", "").split(";")[0]
                if kind not in (
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                ):
                    raise ApiFailure(415, "UnsupportedMediaType", f"unsupported patch {kind}")
                updated = merge_patch(current, body)
            else:
                self.requests[("update", plural)] += 1
                sent_rv = (body.get("metadata") or {}).get("resourceVersion")
                if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                    raise ApiFailure(409, "Conflict", "the object has been modified")
                updated = copy.deepcopy(body)
                updated.setdefault("status", current.get("status"))
            updated.setdefault("metadata", {})
            updated["metadata"]["name"] = name
            updated["metadata"]["uid"] = current["metadata"]["uid"]
            updated["metadata"]["creationTimestamp"] = current["metadata"]["creationTimestamp"]
            validate(plural, updated)
            return JSONResponse(self._store(plural, ns or "", updated, event="MODIFIED"))

    def _create(self, request: Request, plural: str, ns: str, body: Obj) -> Response:
        meta = body.get("metadata") or {}
        if plural != "namespaces":
            self._require_namespace(ns)
            if meta.get("namespace") not in (None, ns):
                raise ApiFailure(400, "BadRequest", "the namespace of the object does not match")
        validate(plural, body)
        if plural == "pods":
            admit_pod(self._objects["namespaces"].get(("", ns)), body)
        name = meta["name"]
        if (ns, name) in self._objects[plural]:
            raise ApiFailure(409, "AlreadyExists", f'{plural} "{name}" already exists')
        obj = copy.deepcopy(body)
        obj["metadata"].pop("resourceVersion", None)
        obj["metadata"].pop("uid", None)
        if plural == "secrets" and "stringData" in obj:
            data = obj.setdefault("data", {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(v.encode()).decode()
        if plural == "pods":
            obj["status"] = {"phase": "Pending", "qosClass": "Burstable"}
        if plural == "namespaces":
            obj["status"] = {"phase": "Active"}
        stored = self._store(plural, ns, obj)
        if plural == "pods" and self.auto_kubelet is not None:
            asyncio.get_running_loop().call_later(self.auto_kubelet, self.kubelet_ready, ns, name)
        return JSONResponse(stored, status_code=201)

    def _delete_one(self, plural: str, ns: str, name: str) -> Obj:
        current = self._objects[plural][(ns, name)]
        if plural == "pods" and self.hold_pod_deletion:
            if not current["metadata"].get("deletionTimestamp"):
                marked = copy.deepcopy(current)
                marked["metadata"]["deletionTimestamp"] = now()
                marked["metadata"]["deletionGracePeriodSeconds"] = 30
                return self._store(plural, ns, marked, event="MODIFIED")
            return current
        self._remove(plural, ns, name)
        return current

    def _list(self, plural: str, ns: str | None, selector: list[Requirement]) -> Obj:
        with self._lock:
            if ns:
                self._require_namespace(ns)
            items = [
                o
                for (o_ns, _), o in self._objects[plural].items()
                if (ns is None or o_ns == ns) and matches(o, selector)
            ]
            return {
                "kind": KINDS[plural] + "List",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }

    def _watch(self, plural: str, ns: str | None, q: Any) -> Response:
        selector = parse_selector(q.get("labelSelector"))
        raw_rv = q.get("resourceVersion")
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else None
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        initial: list[bytes] = []
        with self._lock:
            if raw_rv in (None, "", "0"):
                # No version: every current object as ADDED, then changes.
                for (o_ns, _), o in self._objects[plural].items():
                    if (ns is None or o_ns == ns) and matches(o, selector):
                        initial.append(json.dumps({"type": "ADDED", "object": o}).encode() + b"\n")
            elif int(raw_rv) < self._compacted_through:
                gone = {
                    "type": "ERROR",
                    "object": {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Failure",
                        "message": f"too old resource version: {raw_rv}",
                        "reason": "Expired",
                        "code": 410,
                    },
                }
                initial.append(json.dumps(gone).encode() + b"\n")
                initial.append(_END)
            else:
                since = int(raw_rv)
                for ev in self._history:
                    wanted = ev.rv > since and ev.plural == plural and ns in (None, ev.namespace)
                    if wanted and matches(ev.obj, selector):
                        initial.append(ev.line)
            watcher = _Watcher(plural, ns, selector, queue, asyncio.get_running_loop())
            if not initial or initial[-1] != _END:
                self._watchers.append(watcher)
        for line in initial:
            queue.put_nowait(line)

        async def stream() -> AsyncIterator[bytes]:
            deadline = time.monotonic() + timeout if timeout else None
            try:
                while True:
                    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                    try:
                        line = await asyncio.wait_for(queue.get(), wait)
                    except TimeoutError:
                        return
                    if line == _END:
                        return
                    if line == _ABORT:
                        raise ConnectionAbortedError("watch dropped by the test")
                    yield line
            finally:
                with self._lock:
                    if watcher in self._watchers:
                        self._watchers.remove(watcher)

        return StreamingResponse(stream(), media_type="application/json")

    async def _log(self, request: Request) -> Response:
        try:
            self._authorize(request)
            ns, name = request.path_params["ns"], request.path_params["name"]
            self.requests[("log", "pods")] += 1
            with self._lock:
                pod = self._objects["pods"].get((ns, name))
                if pod is None:
                    raise self._missing("pods", name)
                text = self._logs.get((ns, name))
                if text is None:
                    if (pod.get("status") or {}).get("phase") == "Pending":
                        container = pod["spec"]["containers"][0]["name"]
                        raise ApiFailure(
                            400,
                            "BadRequest",
                            f'container "{container}" in pod "{name}" is waiting to start',
                        )
                    text = ""
            tail = request.query_params.get("tailLines")
            if tail is not None:
                lines = text.splitlines(keepends=True)
                text = "".join(lines[-int(tail) :]) if int(tail) > 0 else ""
            return PlainTextResponse(text)
        except ApiFailure as e:
            return e.response()


def main() -> None:
    """Run the fake as its own process until SIGTERM (prints its URL when up)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--auto-kubelet", type=float, default=None)
    args = parser.parse_args()
    fake = FakeKube(namespaces=(args.namespace,), auto_kubelet=args.auto_kubelet).start()
    fake.write_kubeconfig(args.kubeconfig, namespace=args.namespace)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(fake.url, flush=True)
    done.wait()
    fake.stop()


if __name__ == "__main__":
    main()
