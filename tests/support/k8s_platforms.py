"""The Kubernetes platform as seen by the platform contract suite.

Two flavours, listed in tests/support/platforms.py:

- kubernetes-fake: the fake API server (tests/support/fake_kube.py) with an
  automatic kubelet. There is no Spark behind its pods, so the suite's query
  tests do not run on it (PlatformUnderTest.runs_spark is False); everything
  about pods, adoption, watch events, crashes and stop does.
- kubernetes-real: a real cluster, only when RUCAT_K8S_KUBECONFIG names a
  kubeconfig (RUCAT_K8S_NAMESPACE, default "default", must exist and hold the
  driver RBAC of the Helm chart). Endpoints are cluster-internal, so queries
  go through `kubectl port-forward` to localhost (pyspark needs the literal
  host `localhost` to send a token without TLS). Skipped with that reason
  otherwise; never required under CI (no cluster runs there).
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from rucat.config import KubernetesPlatformConfig
from rucat.domain.engine import Engine
from rucat.platforms import Platform
from rucat.platforms.kubernetes import manifests as m
from rucat.platforms.kubernetes.platform import KubernetesPlatform
from tests.support.fake_kube import FakeKube
from tests.support.fake_kube_rules import RESTRICTED

FAKE_NAMESPACE = "rucat-contract"
#: Seconds from pod creation to Ready on the fake: long enough for the suite
#: to see Pending right after start().
FAKE_READY_AFTER = 1.0

_fake: FakeKube | None = None
_fake_lock = threading.Lock()


def shared_fake() -> FakeKube:
    """One fake API server for the test session (platform instances share it)."""
    global _fake
    with _fake_lock:
        if _fake is None:
            _fake = FakeKube(
                namespaces=(FAKE_NAMESPACE,),
                namespace_labels={FAKE_NAMESPACE: RESTRICTED},
                auto_kubelet=FAKE_READY_AFTER,
            ).start()
            atexit.register(_fake.stop)
        return _fake


def fake_require() -> None:
    """The fake needs nothing installed beyond the test dependencies."""


def fake_make(data_dir: Path) -> Platform:
    path = data_dir / "kubeconfig"
    if not path.exists():
        shared_fake().write_kubeconfig(path, namespace=FAKE_NAMESPACE)
    return KubernetesPlatform(
        KubernetesPlatformConfig(namespace=FAKE_NAMESPACE, kubeconfig=str(path))
    )


def _live(pod: dict[str, object]) -> bool:
    status = pod.get("status")
    phase = status.get("phase") if isinstance(status, dict) else None
    return phase not in ("Failed", "Succeeded")


async def fake_servers(engine: Engine) -> int:
    """Driver pods of the engine whose container has not ended."""
    pods = shared_fake().objects("pods", FAKE_NAMESPACE)
    name = m.driver_pod_name(engine.id)
    return sum(1 for p in pods if p["metadata"]["name"] == name and _live(p))


async def fake_crash(engine: Engine) -> None:
    crashed = shared_fake().kubelet_terminated(
        FAKE_NAMESPACE, m.driver_pod_name(engine.id), exit_code=137, reason="Error"
    )
    assert crashed, f"no driver pod of engine {engine.id} to crash"


def fake_client_url(endpoint: str, token: str | None) -> str:
    raise AssertionError("the fake API server runs no Spark: no query can reach it")


# --- a real cluster -------------------------------------------------------------

REAL_KUBECONFIG = os.environ.get("RUCAT_K8S_KUBECONFIG", "")
REAL_NAMESPACE = os.environ.get("RUCAT_K8S_NAMESPACE", "default")


def real_require() -> None:
    if not REAL_KUBECONFIG:
        pytest.skip(
            "no real Kubernetes cluster: set RUCAT_K8S_KUBECONFIG (and RUCAT_K8S_NAMESPACE) "
            "to run the platform contract against one"
        )


def real_config() -> KubernetesPlatformConfig:
    return KubernetesPlatformConfig(namespace=REAL_NAMESPACE, kubeconfig=REAL_KUBECONFIG)


def real_make(data_dir: Path) -> Platform:
    return KubernetesPlatform(real_config())


def _real_client():  # type: ignore[no-untyped-def]
    from lightkube import AsyncClient, KubeConfig

    return AsyncClient(KubeConfig.from_file(REAL_KUBECONFIG), namespace=REAL_NAMESPACE)


async def real_servers(engine: Engine) -> int:
    from lightkube.resources.core_v1 import Pod

    client = _real_client()
    try:
        pods = [
            p.to_dict()
            async for p in client.list(Pod, labels={m.ENGINE_ID_LABEL: engine.id})
            if p.metadata is not None and p.metadata.name == m.driver_pod_name(engine.id)
        ]
    finally:
        await client.close()
    return sum(1 for p in pods if _live(p) and not p["metadata"].get("deletionTimestamp"))


async def real_crash(engine: Engine) -> None:
    """SIGKILL every process in the driver container but its init, as an OOM kill would."""
    client = _real_client()
    try:
        await client.exec(
            m.driver_pod_name(engine.id),
            container=m.DRIVER_CONTAINER,
            command=["sh", "-c", "kill -9 -1"],
            timeout=30,
        )
    except Exception as e:
        # The exec's own connection dies with the processes it killed.
        print(f"exec in the driver ended with {type(e).__name__}: {e}")
    finally:
        await client.close()


_forwards: dict[str, tuple[subprocess.Popen[bytes], int]] = {}


def _stop_forwards() -> None:
    for proc, _ in _forwards.values():
        proc.terminate()


def real_client_url(endpoint: str, token: str | None) -> str:
    """sc://localhost:PORT through `kubectl port-forward` to the engine's service."""
    host = endpoint.removeprefix("sc://").rsplit(":", 1)[0]
    service = host.split(".", 1)[0]
    if service not in _forwards:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        proc = subprocess.Popen(
            [
                "kubectl",
                "--kubeconfig",
                REAL_KUBECONFIG,
                "-n",
                REAL_NAMESPACE,
                "port-forward",
                f"svc/{service}",
                f"{port}:{m.CONNECT_PORT}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not _forwards:
            atexit.register(_stop_forwards)
        _forwards[service] = (proc, port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
    url = f"sc://localhost:{_forwards[service][1]}"
    return f"{url}/;token={token}" if token else url
