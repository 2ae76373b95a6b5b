"""Kubernetes manifests of a Spark Connect engine, built as plain dicts (no I/O).

One engine is three namespaced objects whose names derive from its id, so a
retried start finds (and adopts) what an earlier attempt created:

- Secret ``rucat-spark-<id>``: a properties file holding the engine's Spark
  Connect token, mounted read-only into the driver. The token never appears in
  the pod spec, its environment or its command line.
- Service ``rucat-spark-<id>`` (headless): the stable DNS name of the driver,
  used by clients (15002), the UI (4040) and executors (7078, 7079).
- Pod ``rucat-spark-<id>-driver``: spark-submit in client mode against the
  cluster; Spark creates the executors as pods owned by this pod.

The builders are pure so tests can validate every manifest against the
official schema and our own rules (`manifest_problems`), which the schema
misses: DNS-1123 names, port ranges, a non-empty image.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from rucat.config import KubernetesPlatformConfig
from rucat.domain.engine import Engine, EngineId
from rucat.domain.errors import PlatformRejected
from rucat.engines.kind import EngineKind, Launch, Site
from rucat.platforms.kubernetes.offer import KIND, RESERVED
from rucat.platforms.kubernetes.security import (
    EXECUTOR_CONTAINER,
    EXECUTOR_TEMPLATE_KEY,
    container_security_context,
    engine_network_policy,
    executor_pod_template_text,
    pod_security_context,
)

Manifest = dict[str, Any]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "rucat"
ENGINE_ID_LABEL = "rucat.io/engine-id"
COMPONENT_LABEL = "rucat.io/component"
NAME_ANNOTATION = "rucat.io/engine-name"
VERSION_ANNOTATION = "rucat.io/spark-version"
#: On the engine's Secret (which no driver may write): the uid of the driver pod
#: Rucat created. A pod with the driver's labels or name but another uid is not
#: the engine's, whoever made it.
DRIVER_UID_ANNOTATION = "rucat.io/driver-pod-uid"

#: Selects every driver pod Rucat manages (what the platform watches).
DRIVER_SELECTOR = {MANAGED_BY_LABEL: MANAGED_BY, COMPONENT_LABEL: "driver"}

#: Fixed in the pod: the service and the network rules name it.
CONNECT_PORT = 15002
UI_PORT = 4040
DRIVER_PORT = 7078
BLOCK_MANAGER_PORT = 7079
#: (name, port) of everything the driver listens on; names are IANA service names.
DRIVER_PORTS: tuple[tuple[str, int], ...] = (
    ("spark-connect", CONNECT_PORT),
    ("spark-ui", UI_PORT),
    ("driver-rpc", DRIVER_PORT),
    ("blockmanager", BLOCK_MANAGER_PORT),
)

DRIVER_CONTAINER = "spark-driver"
SECRET_VOLUME = "rucat-secret"  # noqa: S105 (a volume name)
SECRET_MOUNT = "/opt/rucat/secret"  # noqa: S105 (a path)
PROPERTIES_KEY = "spark-connect.properties"
MASTER = "k8s://https://kubernetes.default.svc"

_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_IANA_SVC_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE_RE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_CPU_RE = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)m?$")
_BYTES_RE = re.compile(r"^\s*([0-9]+)\s*([a-z]*)\s*$")
_UNIT_MIB = {
    "": 1.0,  # Spark's default unit for driver memory sizes is MiB
    "b": 1 / (1 << 20),
    "k": 1 / 1024,
    "kb": 1 / 1024,
    "m": 1.0,
    "mb": 1.0,
    "g": 1024.0,
    "gb": 1024.0,
    "t": 1024.0**2,
    "tb": 1024.0**2,
    "p": 1024.0**3,
    "pb": 1024.0**3,
}
_MIN_OVERHEAD_MIB = 384


def driver_pod_name(engine_id: EngineId) -> str:
    return f"rucat-spark-{engine_id}-driver"


def service_name(engine_id: EngineId) -> str:
    return f"rucat-spark-{engine_id}"


def secret_name(engine_id: EngineId) -> str:
    return f"rucat-spark-{engine_id}"


def service_host(engine_id: EngineId, namespace: str) -> str:
    return f"{service_name(engine_id)}.{namespace}.svc"


def endpoint(engine_id: EngineId, namespace: str) -> str:
    """The engine's Spark Connect address, reachable inside the cluster."""
    return f"sc://{service_host(engine_id, namespace)}:{CONNECT_PORT}"


def engine_labels(engine_id: EngineId, component: str) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY, ENGINE_ID_LABEL: engine_id, COMPONENT_LABEL: component}


def engine_selector(engine_id: EngineId) -> dict[str, str]:
    """Selects every pod of one engine: its driver and its executors."""
    return {MANAGED_BY_LABEL: MANAGED_BY, ENGINE_ID_LABEL: engine_id}


def image_for(version: str, config: KubernetesPlatformConfig) -> str:
    return config.images.get(version) or f"apache/spark:{version}"


def _mib(key: str, value: str) -> int:
    found = _BYTES_RE.match(value.lower())
    if found is None or found.group(2) not in _UNIT_MIB:
        raise PlatformRejected(f"config {key}={value!r} is not a size such as '2g' or '512m'")
    return max(1, int(int(found.group(1)) * _UNIT_MIB[found.group(2)]))


def _cpu(key: str, value: str) -> str:
    if not _CPU_RE.match(value.strip()):
        raise PlatformRejected(f"config {key}={value!r} is not a CPU amount such as '2' or '500m'")
    return value.strip()


def driver_resources(confs: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Requests and limits of the driver container from Spark's own driver confs.

    Memory is spark.driver.memory plus the overhead Spark would add
    (spark.driver.memoryOverhead, else max(384 MiB, factor x memory)); request
    and limit are equal so the JVM is never squeezed. CPU requests
    spark.kubernetes.driver.request.cores or spark.driver.cores, limited to
    spark.kubernetes.driver.limit.cores or spark.driver.cores.
    """
    memory = _mib("spark.driver.memory", confs.get("spark.driver.memory", "1g"))
    if "spark.driver.memoryOverhead" in confs:
        overhead = _mib("spark.driver.memoryOverhead", confs["spark.driver.memoryOverhead"])
    else:
        raw_factor = confs.get("spark.driver.memoryOverheadFactor", "0.10")
        try:
            factor = float(raw_factor)
        except ValueError as e:
            raise PlatformRejected(
                f"config spark.driver.memoryOverheadFactor={raw_factor!r} is not a number"
            ) from e
        overhead = max(_MIN_OVERHEAD_MIB, int(memory * factor))
    cores = _cpu("spark.driver.cores", confs.get("spark.driver.cores", "1"))
    request_cpu = _cpu(
        "spark.kubernetes.driver.request.cores",
        confs.get("spark.kubernetes.driver.request.cores", cores),
    )
    limit_cpu = _cpu(
        "spark.kubernetes.driver.limit.cores",
        confs.get("spark.kubernetes.driver.limit.cores", cores),
    )
    total = f"{memory + overhead}Mi"
    return {
        "requests": {"cpu": request_cpu, "memory": total},
        "limits": {"cpu": limit_cpu, "memory": total},
    }


#: Confs under the user's: Ivy (used by --packages) must write somewhere the image's user can.
_DEFAULT_CONFS = {"spark.jars.ivy": "/tmp/.ivy2"}  # noqa: S108 (inside the container)


def platform_confs(engine: Engine, config: KubernetesPlatformConfig) -> dict[str, str]:
    """The confs Rucat owns on Kubernetes: they come last, so a user conf can
    never move the endpoint or rename the pods."""
    engine_id = engine.id
    image = image_for(engine.version, config)
    owned = {
        "spark.app.id": engine_id,
        "spark.submit.deployMode": "client",
        "spark.kubernetes.namespace": config.namespace,
        "spark.kubernetes.driver.pod.name": driver_pod_name(engine_id),
        "spark.kubernetes.executor.podNamePrefix": service_name(engine_id),
        "spark.kubernetes.container.image": image,
        "spark.kubernetes.container.image.pullPolicy": config.image_pull_policy,
        "spark.driver.host": service_host(engine_id, config.namespace),
        "spark.driver.bindAddress": "0.0.0.0",
        "spark.driver.port": str(DRIVER_PORT),
        "spark.driver.blockManager.port": str(BLOCK_MANAGER_PORT),
        "spark.ui.port": str(UI_PORT),
        "spark.driver.extraJavaOptions": "-Divy.cache.dir=/tmp -Divy.home=/tmp",
        "spark.connect.grpc.binding.port": str(CONNECT_PORT),
        # Executors are built from Rucat's template: restricted pod security, no token.
        "spark.kubernetes.executor.podTemplateFile": f"{SECRET_MOUNT}/{EXECUTOR_TEMPLATE_KEY}",
        "spark.kubernetes.executor.podTemplateContainerName": EXECUTOR_CONTAINER,
        # Drivers may not list claims or make config maps (their Role has neither).
        "spark.kubernetes.driver.reusePersistentVolumeClaim": "false",
        "spark.kubernetes.executor.disableConfigMap": "true",
    }
    for key, value in engine_labels(engine_id, "executor").items():
        owned[f"spark.kubernetes.executor.label.{key}"] = value
    return owned


def site(engine: Engine, config: KubernetesPlatformConfig) -> Site:
    """Where the driver runs, for its engine kind: in the image, files in the Secret."""
    return Site(
        platform="Kubernetes",
        master=MASTER,
        files_dir=PurePosixPath(SECRET_MOUNT),
        home=PurePosixPath(config.spark_home),
        local_install=False,
        connect_port=CONNECT_PORT,
        platform_confs=platform_confs(engine, config),
        defaults=_DEFAULT_CONFS,
        # Kept as before: the user's confs are --conf pairs of the pod spec.
        user_confs_private=False,
        extra_args=("--deploy-mode", "client"),
        properties_file=PROPERTIES_KEY,
    )


def launch(engine: Engine, config: KubernetesPlatformConfig, kind: EngineKind = KIND) -> Launch:
    return kind.launch(engine=engine, site=site(engine, config))


def spark_confs(engine: Engine, config: KubernetesPlatformConfig) -> dict[str, str]:
    """The --conf pairs of the driver: defaults, then the user's, then Rucat's own."""
    args = driver_args(engine, config)
    return dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--conf")


def driver_args(engine: Engine, config: KubernetesPlatformConfig) -> list[str]:
    """The driver container's args (an argv list; the image's entrypoint runs it)."""
    return list(launch(engine, config).argv)


def check_confs(engine: Engine) -> None:
    """Refuse confs Rucat owns on Kubernetes (the server refuses them earlier, with 400)."""
    reserved = KIND.reserved_confs() | RESERVED
    taken = sorted(k for k in engine.configs if k in reserved)
    if taken:
        raise PlatformRejected(f"config {taken[0]!r} is reserved: Rucat sets it on Kubernetes")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def secret_manifest(engine: Engine, config: KubernetesPlatformConfig) -> Manifest:
    """The engine's Secret: its properties file (Spark 3.5 has no Connect token, so
    its file holds none) and the executor pod template, which no driver can change."""
    text = launch(engine, config).file(PROPERTIES_KEY).text
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(engine.id),
            "namespace": config.namespace,
            "labels": engine_labels(engine.id, "secret"),
        },
        "type": "Opaque",
        "data": {
            PROPERTIES_KEY: _b64(text),
            EXECUTOR_TEMPLATE_KEY: _b64(executor_pod_template_text(config)),
        },
    }


def service_manifest(engine: Engine, config: KubernetesPlatformConfig) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(engine.id),
            "namespace": config.namespace,
            "labels": engine_labels(engine.id, "service"),
        },
        "spec": {
            "clusterIP": "None",
            # Executors dial the driver before its Connect port (the readiness
            # probe) is up, so its address must be published while not ready.
            "publishNotReadyAddresses": True,
            "selector": {ENGINE_ID_LABEL: engine.id, COMPONENT_LABEL: "driver"},
            "ports": [
                {"name": name, "port": port, "targetPort": port, "protocol": "TCP"}
                for name, port in DRIVER_PORTS
            ],
        },
    }


def pod_manifest(engine: Engine, config: KubernetesPlatformConfig) -> Manifest:
    """The driver pod. Raises PlatformRejected on reserved or malformed confs."""
    check_confs(engine)
    image = image_for(engine.version, config)
    spec: dict[str, Any] = {
        "serviceAccountName": config.service_account,
        # A dead driver is a dead engine: the monitor decides, not the kubelet.
        "restartPolicy": "Never",
        # 1,000 services would otherwise become 7,000 environment variables.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        # Pod Security `restricted`; fsGroup lets the image's user read the secret files.
        "securityContext": pod_security_context(config),
        "containers": [
            {
                "name": DRIVER_CONTAINER,
                "image": image,
                "imagePullPolicy": config.image_pull_policy,
                "args": driver_args(engine, config),
                "ports": [
                    {"name": name, "containerPort": port, "protocol": "TCP"}
                    for name, port in DRIVER_PORTS
                ],
                "resources": driver_resources(engine.configs),
                "securityContext": container_security_context(config),
                "readinessProbe": {
                    "tcpSocket": {"port": CONNECT_PORT},
                    "initialDelaySeconds": 2,
                    "periodSeconds": 3,
                    "timeoutSeconds": 2,
                    "failureThreshold": 3,
                },
                "volumeMounts": [
                    {"name": SECRET_VOLUME, "mountPath": SECRET_MOUNT, "readOnly": True}
                ],
            }
        ],
        "volumes": [
            {
                "name": SECRET_VOLUME,
                # 0440 with fsGroup: readable by the image's user, nobody else.
                "secret": {"secretName": secret_name(engine.id), "defaultMode": 0o440},
            }
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": driver_pod_name(engine.id),
            "namespace": config.namespace,
            "labels": engine_labels(engine.id, "driver"),
            "annotations": {NAME_ANNOTATION: engine.name, VERSION_ANNOTATION: engine.version},
        },
        "spec": spec,
    }


@dataclass(frozen=True)
class EngineManifests:
    """What start() creates, in creation order (the pod mounts the secret)."""

    secret: Manifest
    service: Manifest
    #: None when config.network_policies is off.
    network_policy: Manifest | None
    pod: Manifest


def network_policy_manifest(engine: Engine, config: KubernetesPlatformConfig) -> Manifest:
    """Driver RPC and block manager ports (drivers and executors listen on them) are
    open only to pods of the same engine."""
    return engine_network_policy(
        engine.id,
        namespace=config.namespace,
        selector=engine_selector(engine.id),
        labels=engine_labels(engine.id, "network-policy"),
        ports=(DRIVER_PORT, BLOCK_MANAGER_PORT),
    )


def engine_manifests(engine: Engine, config: KubernetesPlatformConfig) -> EngineManifests:
    return EngineManifests(
        secret=secret_manifest(engine, config),
        service=service_manifest(engine, config),
        network_policy=network_policy_manifest(engine, config) if config.network_policies else None,
        pod=pod_manifest(engine, config),
    )


# --- our own checks (what the JSON schema misses) ----------------------------


def is_dns_label(value: str) -> bool:
    return len(value) <= 63 and _DNS_LABEL_RE.match(value) is not None


def is_dns_subdomain(value: str) -> bool:
    return len(value) <= 253 and all(is_dns_label(part) for part in value.split("."))


def _port_problems(where: str, port: object, name: object) -> list[str]:
    problems = []
    if not isinstance(port, int) or not 1 <= port <= 65535:
        problems.append(f"{where}: port {port!r} is not in 1..65535")
    if name is not None and (
        not isinstance(name, str)
        or len(name) > 15
        or not _IANA_SVC_RE.match(name)
        or not re.search("[a-z]", name)
    ):
        problems.append(f"{where}: port name {name!r} is not an IANA service name")
    return problems


def manifest_problems(manifest: Manifest) -> list[str]:
    """Rule breaches the JSON schema cannot see; [] when the manifest is fine."""
    problems: list[str] = []
    kind = manifest.get("kind")
    meta = manifest.get("metadata", {})
    name = meta.get("name", "")
    # Services and namespaces are DNS labels; most other kinds DNS subdomains.
    dns_ok = is_dns_label(name) if kind in ("Service", "Namespace") else is_dns_subdomain(name)
    if not dns_ok:
        problems.append(f"{kind} name {name!r} is not a valid DNS-1123 name")
    namespace = meta.get("namespace")
    if namespace is not None and not is_dns_label(namespace):
        problems.append(f"namespace {namespace!r} is not a DNS-1123 label")
    for key, value in (meta.get("labels") or {}).items():
        if len(value) > 63 or not re.fullmatch(
            r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?", value
        ):
            problems.append(f"label {key}={value!r} has an invalid value")
    spec = manifest.get("spec", {})
    if kind == "Pod":
        containers = spec.get("containers") or []
        if not containers:
            problems.append("pod has no containers")
        for container in containers:
            where = f"container {container.get('name')!r}"
            if not is_dns_label(container.get("name", "")):
                problems.append(f"{where}: name is not a DNS-1123 label")
            if not str(container.get("image", "")).strip():
                problems.append(f"{where}: image is empty")
            for port in container.get("ports") or []:
                problems += _port_problems(where, port.get("containerPort"), port.get("name"))
            probe = (container.get("readinessProbe") or {}).get("tcpSocket")
            if probe is not None:
                problems += _port_problems(f"{where} probe", probe.get("port"), None)
    if kind == "Service":
        for port in spec.get("ports") or []:
            problems += _port_problems("service", port.get("port"), None)
            problems += _port_problems("service target", port.get("targetPort"), None)
            if not is_dns_label(str(port.get("name", ""))):
                problems.append(f"service port name {port.get('name')!r} is not a DNS label")
    return problems
