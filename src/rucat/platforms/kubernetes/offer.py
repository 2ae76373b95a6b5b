"""What the Kubernetes platform offers: Spark versions by image, pod-shaping confs reserved.

Kubernetes builds executor pods from confs, so a conf can mount the node's
disk (hostPath volumes), another engine's Secret, run as another service
account, pick another image or node, or load code before any user code runs
(agents in Java options, jars, plugins, class paths, environment variables
such as LD_PRELOAD or JAVA_TOOL_OPTIONS, resource discovery scripts). The
default policy is an allowlist of what ordinary jobs need, with caps on
resources. Pure: imports no Kubernetes client.
"""

from __future__ import annotations

from rucat.config import KubernetesPlatformConfig
from rucat.domain.policy import Action, Rule
from rucat.engines.kind import EngineKind
from rucat.engines.spark import SPARK
from rucat.engines.spark_policy import CODE, ORDINARY, resource_caps, rules
from rucat.platforms.offer import PlatformOffer, offer_of

NAME = "Kubernetes"

#: The engine kind this platform runs.
KIND: EngineKind = SPARK

#: Confs the Kubernetes platform sets on top of the engine kind's: the seed's six,
#: what names the pods, and the ports the driver's service and network rules are
#: built on.
RESERVED = frozenset(
    {
        "spark.driver.bindAddress",
        "spark.driver.blockManager.port",
        "spark.driver.extraJavaOptions",
        "spark.driver.host",
        "spark.driver.port",
        "spark.kubernetes.container.image",
        "spark.kubernetes.container.image.pullPolicy",
        "spark.kubernetes.driver.pod.name",
        "spark.kubernetes.executor.podNamePrefix",
        "spark.kubernetes.namespace",
        # The executor pod template holds executors to the restricted Pod Security profile.
        "spark.kubernetes.executor.podTemplateFile",
        "spark.kubernetes.executor.podTemplateContainerName",
        "spark.kubernetes.driver.reusePersistentVolumeClaim",
        "spark.ui.port",
        "spark.kubernetes.executor.disableConfigMap",
    }
)


def default_rules() -> list[Rule]:
    origin = f"the {NAME} default policy"
    return [
        *rules(
            origin,
            # The short vetted list of spark.kubernetes.* keys: pod CPU and overhead.
            ("spark.kubernetes.executor.request.cores", Action.allow),
            ("spark.kubernetes.executor.limit.cores", Action.allow),
            ("spark.kubernetes.driver.request.cores", Action.allow),
            ("spark.kubernetes.driver.limit.cores", Action.allow),
        ),
        Rule("spark.kubernetes.memoryOverheadFactor", Action.max, value="1.0", origin=origin),
        # Everything else there shapes pods: volumes (hostPath), secrets, secretKeyRef
        # env, service accounts, images, node selectors, tolerations, pod templates.
        *rules(origin, ("spark.kubernetes.*", Action.deny), *CODE),
        *resource_caps(origin),
        *rules(origin, *ORDINARY),
    ]


def kubernetes_offer(config: KubernetesPlatformConfig) -> PlatformOffer:
    installed = {**dict.fromkeys(config.versions, ""), **config.images}
    return offer_of(
        NAME,
        KIND,
        versions=KIND.versions(installed=installed, bundled=False),
        reserved=RESERVED,
        default_rules=default_rules(),
    )
