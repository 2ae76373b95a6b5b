"""POST /engine applies the platform's conf policy: refused keys answer 400 naming the key
and the rule, and nothing is stored.

The servers are real (uvicorn + SQLite) with a Kubernetes platform config; validation
reads config only, so no cluster is needed. One server per module keeps the tables cheap.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from rucat.config import (
    DatabaseConfig,
    EnginePolicyConfig,
    KubernetesPlatformConfig,
    PlatformConfig,
    RucatConfig,
    SqliteConfig,
    StandalonePlatformConfig,
)
from rucat.domain.engine import CreateEngineRequest, EngineType, new_engine
from rucat.domain.state import EngineState
from rucat.store import open_store
from tests.integration.conftest import SPARK, Api, force_state, running_api

pytestmark = pytest.mark.asyncio(loop_scope="module")

KUBERNETES = PlatformConfig(Kubernetes=KubernetesPlatformConfig())

# (case id, key, value): each one alone must be refused on Kubernetes by default.
DANGEROUS: list[tuple[str, str, str]] = [
    ("hostpath-executor-mount", "spark.kubernetes.executor.volumes.hostPath.r.mount.path", "/h"),
    ("hostpath-executor-source", "spark.kubernetes.executor.volumes.hostPath.r.options.path", "/"),
    ("hostpath-driver", "spark.kubernetes.driver.volumes.hostPath.r.options.path", "/"),
    (
        "pvc-of-rucat",
        "spark.kubernetes.executor.volumes.persistentVolumeClaim.d.options.claimName",
        "rucat-data",
    ),
    ("executor-secret-mount", "spark.kubernetes.executor.secrets.rucat-server", "/s"),
    ("driver-secret-mount", "spark.kubernetes.driver.secrets.rucat-spark-other", "/s"),
    ("executor-secret-key-ref", "spark.kubernetes.executor.secretKeyRef.T", "rucat-spark-x:token"),
    ("driver-secret-key-ref", "spark.kubernetes.driver.secretKeyRef.T", "rucat-server:password"),
    (
        "executor-service-account",
        "spark.kubernetes.authenticate.executor.serviceAccountName",
        "rucat-monitor",
    ),
    (
        "driver-service-account",
        "spark.kubernetes.authenticate.driver.serviceAccountName",
        "rucat-monitor",
    ),
    ("executor-image", "spark.kubernetes.executor.container.image", "evil/spark:latest"),
    ("driver-image", "spark.kubernetes.driver.container.image", "evil/spark:latest"),
    ("executor-pod-template", "spark.kubernetes.executor.podTemplateFile", "https://e.vil/p.yaml"),
    ("driver-pod-template", "spark.kubernetes.driver.podTemplateFile", "/etc/passwd"),
    ("node-selector", "spark.kubernetes.node.selector.kubernetes.io/hostname", "control-plane"),
    ("executor-node-selector", "spark.kubernetes.executor.node.selector.pool", "system"),
    ("executor-label-spoof", "spark.kubernetes.executor.label.rucat.io/engine-id", "other"),
    ("executor-annotation", "spark.kubernetes.executor.annotation.x", "y"),
    ("scheduler-name", "spark.kubernetes.executor.scheduler.name", "other"),
    ("keep-dead-executors", "spark.kubernetes.executor.deleteOnTermination", "false"),
    ("upload-path", "spark.kubernetes.file.upload.path", "s3a://x/"),
    ("pull-policy", "spark.kubernetes.container.image.pullPolicy", "Always"),
    ("namespace", "spark.kubernetes.namespace", "kube-system"),
    ("jars", "spark.jars", "https://e.vil/x.jar"),
    ("jars-packages", "spark.jars.packages", "evil:evil:1.0"),
    ("jars-repositories", "spark.jars.repositories", "https://e.vil/maven"),
    ("plugins", "spark.plugins", "org.evil.Plugin"),
    ("files", "spark.files", "https://e.vil/x"),
    ("archives", "spark.archives", "https://e.vil/x.zip"),
    ("py-files", "spark.submit.pyFiles", "https://e.vil/x.py"),
    ("redaction-regex", "spark.redaction.regex", "nothing"),
    ("redaction-string-regex", "spark.redaction.string.regex", "nothing"),
    ("executor-java-options", "spark.executor.extraJavaOptions", "-javaagent:/tmp/a.jar"),
    ("driver-java-options", "spark.driver.extraJavaOptions", "-javaagent:/tmp/a.jar"),
    ("executor-default-java-options", "spark.executor.defaultJavaOptions", "-javaagent:/a"),
    ("executor-class-path", "spark.executor.extraClassPath", "/tmp"),
    ("driver-class-path", "spark.driver.extraClassPath", "/tmp"),
    ("executor-library-path", "spark.executor.extraLibraryPath", "/tmp"),
    ("executor-env-ld-preload", "spark.executorEnv.LD_PRELOAD", "/tmp/evil.so"),
    ("executor-env-java-tool-options", "spark.executorEnv.JAVA_TOOL_OPTIONS", "-javaagent:/a"),
    ("gpu-discovery-script", "spark.executor.resource.gpu.discoveryScript", "/tmp/x.sh"),
    ("metastore-jars", "spark.sql.hive.metastore.jars", "maven"),
    ("metastore-jars-path", "spark.sql.hive.metastore.jars.path", "https://e.vil/*.jar"),
    (
        "s3a-provider",
        "spark.hadoop.fs.s3a.aws.credentials.provider",
        "com.amazonaws.auth.InstanceProfileCredentialsProvider",
    ),
    ("s3a-bucket-provider", "spark.hadoop.fs.s3a.bucket.b.aws.credentials.provider", "x.Y"),
    ("s3a-assumed-role", "spark.hadoop.fs.s3a.assumed.role.arn", "arn:aws:iam::1:role/admin"),
    ("filesystem-class", "spark.hadoop.fs.file.impl", "org.evil.Fs"),
    ("listeners", "spark.extraListeners", "org.evil.Listener"),
    ("connect-token", "spark.connect.authenticate.token", "mine"),
    ("driver-port", "spark.driver.port", "1"),
    ("ui-filters", "spark.ui.filters", "org.evil.Filter"),
    ("unknown-key", "spark.whatever.else", "x"),
    ("non-spark-key", "a.b", "c"),
    ("too-many-executors", "spark.executor.instances", "51"),
    ("too-much-executor-memory", "spark.executor.memory", "17g"),
    ("too-much-executor-memory-in-mib", "spark.executor.memory", "16385"),
    ("fractional-memory", "spark.executor.memory", "1.5g"),
    ("negative-executors", "spark.executor.instances", "-1"),
    ("too-much-driver-memory", "spark.driver.memory", "1t"),
    ("unbounded-dynamic-allocation", "spark.dynamicAllocation.maxExecutors", "100000"),
    ("too-many-cores", "spark.executor.cores", "64"),
]

# (case id, key, value): what ordinary jobs set is accepted on Kubernetes by default.
SAFE: list[tuple[str, str, str]] = [
    ("shuffle-partitions", "spark.sql.shuffle.partitions", "8"),
    ("adaptive", "spark.sql.adaptive.enabled", "true"),
    ("executor-memory-at-the-cap", "spark.executor.memory", "16g"),
    ("executor-memory-in-mib", "spark.executor.memory", "4096"),
    ("executor-memory-upper-case", "spark.executor.memory", "2G"),
    ("executor-cores", "spark.executor.cores", "4"),
    ("executor-instances-at-the-cap", "spark.executor.instances", "50"),
    ("driver-memory", "spark.driver.memory", "2g"),
    ("dynamic-allocation", "spark.dynamicAllocation.enabled", "true"),
    ("shuffle-tracking", "spark.dynamicAllocation.shuffleTracking.enabled", "true"),
    ("executor-request-cores", "spark.kubernetes.executor.request.cores", "500m"),
    ("executor-limit-cores", "spark.kubernetes.executor.limit.cores", "2"),
    ("executor-overhead-factor", "spark.executor.memoryOverheadFactor", "0.2"),
    ("kubernetes-overhead-factor", "spark.kubernetes.memoryOverheadFactor", "0.4"),
    ("executor-overhead", "spark.executor.memoryOverhead", "1g"),
    ("s3a-endpoint", "spark.hadoop.fs.s3a.endpoint", "http://minio:9000"),
    ("s3a-keys", "spark.hadoop.fs.s3a.access.key", "AKIA0"),
    ("log-level", "spark.log.level", "WARN"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kube_api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    """A server whose platform is Kubernetes with the built-in default policy."""
    async with _server(tmp_path_factory.mktemp("kube"), RucatConfig(platform=KUBERNETES)) as api:
        yield api


@contextlib.asynccontextmanager
async def _server(folder: Path, config: RucatConfig) -> AsyncIterator[Api]:
    store = await open_store(DatabaseConfig(Sqlite=SqliteConfig(path=str(folder / "rucat.db"))))
    try:
        async with running_api(config, store=store) as api:
            yield api
    finally:
        await store.close()


async def _post(api: Api, configs: dict[str, str]) -> tuple[int, Any]:
    response = await api.client.post("/engine", json={**SPARK, "configs": configs})
    return response.status_code, response.json()


@pytest.mark.parametrize(
    ("key", "value"), [c[1:] for c in DANGEROUS], ids=[c[0] for c in DANGEROUS]
)
async def test_a_dangerous_conf_is_refused_on_kubernetes_naming_key_and_rule(
    kube_api: Api, key: str, value: str
) -> None:
    before = len(await kube_api.store.list())
    status, body = await _post(kube_api, {"spark.sql.shuffle.partitions": "4", key: value})
    assert status == 400, body
    assert f"config {key!r}" in body["detail"]
    assert "rule" in body["detail"]
    assert len(await kube_api.store.list()) == before


@pytest.mark.parametrize(("key", "value"), [c[1:] for c in SAFE], ids=[c[0] for c in SAFE])
async def test_an_ordinary_conf_is_accepted_on_kubernetes(
    kube_api: Api, key: str, value: str
) -> None:
    status, body = await _post(kube_api, {key: value})
    assert status == 200, body
    assert (await kube_api.engine(body["id"])).configs[key] == value


async def test_a_refusal_names_the_matching_rule_and_its_policy(kube_api: Api) -> None:
    key = "spark.kubernetes.executor.volumes.hostPath.root.options.path"
    _, body = await _post(kube_api, {key: "/"})
    assert body["detail"] == (
        f"config {key!r} is not allowed: "
        "rule 'spark.kubernetes.*' (deny) of the Kubernetes default policy"
    )
    _, body = await _post(kube_api, {"spark.executor.instances": "51"})
    assert body["detail"] == (
        "config 'spark.executor.instances'='51' is above the limit of "
        "rule 'spark.executor.instances' (max 50) of the Kubernetes default policy"
    )


async def test_every_refused_key_is_named_at_once(kube_api: Api) -> None:
    status, body = await _post(
        kube_api, {"spark.jars": "x", "spark.plugins": "y", "spark.sql.x": "fine"}
    )
    assert status == 400
    assert "'spark.jars'" in body["detail"] and "'spark.plugins'" in body["detail"]


async def test_the_dynamic_allocation_cap_holds_when_the_user_sets_none(kube_api: Api) -> None:
    status, body = await _post(kube_api, {"spark.dynamicAllocation.enabled": "true"})
    assert status == 200, body
    stored = await kube_api.engine(body["id"])
    assert stored.configs == {
        "spark.dynamicAllocation.enabled": "true",
        "spark.dynamicAllocation.maxExecutors": "50",
    }


def _policy(mode: str, *rules: dict[str, Any]) -> EnginePolicyConfig:
    return EnginePolicyConfig.model_validate({"mode": mode, "rules": list(rules)})


async def test_extend_checks_the_operators_rules_before_the_default(tmp_path: Path) -> None:
    policy = _policy(
        "extend",
        {"pattern": "spark.kubernetes.node.selector.pool", "action": "allow"},
        {"pattern": "spark.sql.catalog.*", "action": "deny"},
        {"pattern": "spark.executor.instances", "action": "max", "value": 10},
        {"pattern": "spark.sql.ansi.enabled", "action": "fixed", "value": "true"},
    )
    config = RucatConfig(platform=KUBERNETES, engine_policy=policy)
    async with _server(tmp_path, config) as api:
        status, body = await _post(api, {"spark.kubernetes.node.selector.pool": "batch"})
        assert status == 200, body
        assert (await api.engine(body["id"])).configs["spark.sql.ansi.enabled"] == "true"
        # The default still refuses the rest of spark.kubernetes.*.
        status, body = await _post(api, {"spark.kubernetes.node.selector.zone": "a"})
        assert status == 400 and "Kubernetes default policy" in body["detail"]
        status, body = await _post(api, {"spark.sql.catalog.evil": "org.Evil"})
        assert status == 400 and "the engine_policy config" in body["detail"]
        status, body = await _post(api, {"spark.executor.instances": "11"})
        assert status == 400 and "(max 10)" in body["detail"]
        status, body = await _post(api, {"spark.sql.ansi.enabled": "false"})
        assert status == 400 and "fixed to 'true'" in body["detail"]
        status, body = await _post(api, {"spark.sql.ansi.enabled": "true"})
        assert status == 200, body


async def test_replace_drops_the_default_but_keeps_rucats_reserved_confs(tmp_path: Path) -> None:
    policy = _policy(
        "replace",
        {"pattern": "spark.sql.*", "action": "allow"},
        {"pattern": "spark.executor.memory", "action": "max", "value": "8g", "unit": "m"},
    )
    config = RucatConfig(platform=KUBERNETES, engine_policy=policy)
    async with _server(tmp_path, config) as api:
        assert (await _post(api, {"spark.sql.x": "1", "spark.executor.memory": "8192"}))[0] == 200
        status, body = await _post(api, {"spark.executor.cores": "2"})  # the default allowed it
        assert status == 400 and "no rule of the engine policy allows it" in body["detail"]
        status, body = await _post(api, {"spark.executor.memory": "9g"})
        assert status == 400 and "(max 8g)" in body["detail"]
        status, body = await _post(api, {"spark.kubernetes.namespace": "kube-system"})
        assert status == 400 and "is reserved" in body["detail"]
        assert len(await api.store.list()) == 1


async def test_the_standalone_default_allows_resources_and_reserves_the_driver(
    tmp_path: Path,
) -> None:
    config = RucatConfig(platform=PlatformConfig(Standalone=StandalonePlatformConfig()))
    async with _server(tmp_path, config) as api:
        ok = {"spark.cores.max": "8", "spark.executor.cores": "2", "spark.executor.memory": "2g"}
        assert (await _post(api, ok))[0] == 200
        for key in ("spark.master", "spark.driver.host", "spark.driver.port"):
            status, body = await _post(api, {key: "x"})
            assert status == 400 and "reserved" in body["detail"], (key, body)
        status, body = await _post(api, {"spark.executor.extraJavaOptions": "-javaagent:/a"})
        assert status == 400 and "Standalone default policy" in body["detail"]


async def test_the_local_default_allows_any_conf_but_the_redaction_ones(tmp_path: Path) -> None:
    async with _server(tmp_path, RucatConfig()) as api:
        ok = {"a.b": "x=y", "spark.driver.extraJavaOptions": "-Dx=1", "spark.jars": "/x.jar"}
        assert (await _post(api, ok))[0] == 200
        status, body = await _post(api, {"spark.redaction.regex": "none"})
        assert status == 400 and "Local default policy" in body["detail"]


async def test_an_engine_stored_before_the_policy_does_not_restart_with_refused_confs(
    kube_api: Api,
) -> None:
    key = "spark.kubernetes.executor.volumes.hostPath.root.options.path"
    request = CreateEngineRequest(
        name="old", engine_type=EngineType.Spark, version="4.0.1", configs={key: "/"}
    )
    old = await kube_api.store.add(
        engine=new_engine(request, platform="Kubernetes", now=kube_api.clock()), actor="before"
    )
    await force_state(kube_api.store, old.id, EngineState.Terminated)
    response = await kube_api.client.post(f"/engine/{old.id}/restart")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"engine {old.id} cannot restart: the engine policy refuses its confs: "
        f"config {key!r} is not allowed: "
        "rule 'spark.kubernetes.*' (deny) of the Kubernetes default policy"
    )
    assert (await kube_api.engine(old.id)).state is EngineState.Terminated
    # An engine within the policy restarts as before.
    status, body = await _post(kube_api, {"spark.executor.memory": "2g"})
    assert status == 200, body
    await force_state(kube_api.store, body["id"], EngineState.Terminated)
    assert (await kube_api.client.post(f"/engine/{body['id']}/restart")).status_code == 200
