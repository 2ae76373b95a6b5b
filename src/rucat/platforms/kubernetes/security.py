"""How engine pods are confined on Kubernetes: Pod Security and network policy (pure).

User code runs in the driver (a Spark Connect session can run Python UDFs and
JVM code), so an engine must be as confined as a cluster allows:

- Every driver and executor pod satisfies the Pod Security Standard
  `restricted` (non-root with a numeric uid, no privilege escalation, every
  capability dropped, the runtime's default seccomp profile), on the pod and on
  each container, so a namespace enforcing `restricted` admits them.
- Spark builds executor pods itself; they get the same settings from an
  executor pod template Rucat writes into the engine's Secret. A Secret rather
  than a ConfigMap because drivers may create and delete ConfigMaps (Spark's own
  executor config map) but cannot touch Secrets, so no engine can swap
  another's template. Executors never call the API server, so the template also
  turns off the service account token.
- One NetworkPolicy per engine admits ingress to its pods on the driver and
  block-manager ports only from pods of the same engine; the Helm chart's
  namespace-wide policy admits Spark Connect and the UI only from Rucat's
  server pods. NetworkPolicies add up, so together nothing else gets in.
"""

from __future__ import annotations

import json
from typing import Any

from rucat.config import KubernetesPlatformConfig
from rucat.domain.engine import EngineId

Manifest = dict[str, Any]

#: The template container Spark builds each executor from
#: (spark.kubernetes.executor.podTemplateContainerName).
EXECUTOR_CONTAINER = "spark-executor"
#: Key of the executor pod template in the engine's Secret (a file in the driver).
EXECUTOR_TEMPLATE_KEY = "executor-pod-template.json"


def pod_security_context(config: KubernetesPlatformConfig) -> Manifest:
    """The pod-level security context of drivers and executors."""
    context: Manifest = {
        "runAsNonRoot": True,
        "runAsUser": config.run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if config.fs_group is not None:
        context["fsGroup"] = config.fs_group
    return context


def container_security_context(config: KubernetesPlatformConfig) -> Manifest:
    """The container-level security context: what `restricted` checks per container."""
    return {
        "runAsNonRoot": True,
        "runAsUser": config.run_as_user,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def executor_pod_template(config: KubernetesPlatformConfig) -> Manifest:
    """The pod Spark starts every executor from (it fills in image, args, ports, resources)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {
            # Executors talk to the driver, never to the API server.
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": pod_security_context(config),
            "containers": [
                {
                    "name": EXECUTOR_CONTAINER,
                    "securityContext": container_security_context(config),
                }
            ],
        },
    }


def executor_pod_template_text(config: KubernetesPlatformConfig) -> str:
    return json.dumps(executor_pod_template(config), indent=2, sort_keys=True) + "\n"


def network_policy_name(engine_id: EngineId) -> str:
    return f"rucat-spark-{engine_id}"


def engine_network_policy(
    engine_id: EngineId,
    *,
    namespace: str,
    selector: dict[str, str],
    labels: dict[str, str],
    ports: tuple[int, ...],
) -> Manifest:
    """Ingress to the engine's pods on `ports` only from pods of the same engine."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": network_policy_name(engine_id),
            "namespace": namespace,
            "labels": labels,
        },
        "spec": {
            "podSelector": {"matchLabels": dict(selector)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": dict(selector)}}],
                    "ports": [{"protocol": "TCP", "port": port} for port in ports],
                }
            ],
        },
    }
