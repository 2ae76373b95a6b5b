"""The `platform` section: where engines run (local processes, a Spark standalone
master, or Kubernetes) and each platform's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rucat.config.base import OneOf, Strict


class LocalPlatformConfig(Strict):
    spark_homes: dict[str, str] = Field(
        default_factory=dict,
        description="Extra Spark versions: version -> SPARK_HOME. The Spark shipped with the "
        "installed pyspark is always available.",
    )
    host: str = Field("127.0.0.1", description="Address engines bind and advertise.")
    stop_grace_secs: float = Field(
        10.0, gt=0, description="Seconds between SIGTERM and SIGKILL when stopping an engine."
    )
    java_home: str | None = Field(None, description="JAVA_HOME for engines; default: the PATH's.")
    log_max_bytes: int = Field(
        64 << 20,
        ge=64 << 10,
        description="Most disk one engine's log takes: engine.log is rotated to engine.log.1 "
        "(replacing the one before) when it would pass half of this.",
    )


class StandalonePlatformConfig(Strict):
    master_url: str = Field(
        "spark://127.0.0.1:7077",
        pattern=r"^spark://\S+$",
        description="The standalone master drivers register with (spark://host:port).",
    )
    master_web_url: str = Field(
        "http://127.0.0.1:8080",
        pattern=r"^https?://\S+$",
        description="The master's web UI; Rucat reads its JSON (<url>/json/) to see each "
        "engine's application, its cores and executors.",
    )
    spark_homes: dict[str, str] = Field(
        default_factory=dict,
        description="Extra Spark versions: version -> SPARK_HOME. The Spark shipped with the "
        "installed pyspark is always available. A driver must run the cluster's Spark version.",
    )
    host: str = Field(
        "127.0.0.1",
        description="Address drivers bind and advertise; the cluster's workers must reach it.",
    )
    stop_grace_secs: float = Field(10.0, gt=0, description="Seconds from SIGTERM to SIGKILL.")
    java_home: str | None = Field(None, description="JAVA_HOME for drivers; default: the PATH's.")
    poll_interval_secs: float = Field(
        5.0,
        gt=0,
        description="How often the master's JSON is read for the engines on it, so a master "
        "that goes away, or ends an engine's application, fails the engine this fast.",
    )
    master_timeout_secs: float = Field(
        5.0, gt=0, description="Deadline of one request to the master's web UI."
    )
    master_lost_after_secs: float = Field(
        60.0,
        gt=0,
        description="A master that refuses connections fails its engines at once; one that "
        "only times out fails them after this long.",
    )


class KubernetesPlatformConfig(Strict):
    namespace: str = Field("default", description="Namespace of engine pods and services.")
    kubeconfig: str | None = Field(
        None, description="Path to a kubeconfig; absent means in-cluster configuration."
    )
    images: dict[str, str] = Field(
        default_factory=dict,
        description="Spark version -> image. Versions not listed use apache/spark:<version>.",
    )
    versions: list[str] = Field(
        default_factory=lambda: ["3.5.3", "3.5.4", "4.0.1"],
        description="Spark versions this platform offers (besides those in images).",
    )
    service_account: str = Field(
        "rucat-spark", description="Service account of driver pods (manages executors)."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Pull policy of driver and executor images."
    )
    spark_home: str = Field("/opt/spark", description="SPARK_HOME inside the images.")
    run_as_user: int = Field(
        185,
        ge=1,
        description="Numeric uid driver and executor containers run as (the Pod Security "
        "Standard `restricted` requires a non-root user; apache/spark images use 185).",
    )
    fs_group: int | None = Field(
        185,
        description="fsGroup of driver and executor pods, so the image's user (185 in "
        "apache/spark) can read the engine's token file; null leaves it unset.",
    )
    network_policies: bool = Field(
        True,
        description="Create a NetworkPolicy per engine admitting ingress to its driver and "
        "block-manager ports only from the engine's own pods (needs a CNI that enforces "
        "NetworkPolicies; the monitor's Role must allow networkpolicies).",
    )
    fail_when_unschedulable: bool = Field(
        True,
        description="An unschedulable driver pod fails the engine at once with the "
        "scheduler's message. Set false on clusters with an autoscaler: the pod then stays "
        "Pending (with that message) until the start timeout.",
    )


class PlatformConfig(OneOf):
    Local: LocalPlatformConfig | None = Field(None, description="Engines as local processes.")
    Standalone: StandalonePlatformConfig | None = Field(
        None, description="Drivers attached to a Spark standalone master."
    )
    Kubernetes: KubernetesPlatformConfig | None = Field(
        None, description="Driver pod + headless service per engine."
    )
