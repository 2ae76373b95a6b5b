"""The deployment artefacts, checked without a cluster or a Docker engine.

No Kubernetes API server and no Docker daemon run on these machines, so:
- the chart is linted by the real helm 3 (from the dev dependency, see
  tools/get_helm.py), rendered with several value sets, and every manifest is
  validated against the official schema of a pinned Kubernetes version in
  strict mode; on top, the checks the schema misses: names, ports, every
  reference between objects, the RBAC the Kubernetes platform needs, and that
  the rendered config.json (with the rendered Secret as environment) loads
  through rucat.config;
- the chart mounts config.json where the image's default command reads it
  (the Dockerfile itself is checked in test_dockerfile.py).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kv
from tools.get_helm import HelmUnavailable, helm_path

from rucat.config import RucatConfig, load_config
from rucat.domain.engine import Engine, EngineType, new_engine_id
from rucat.domain.state import EngineState
from rucat.platforms.kubernetes import manifests as m
from rucat.platforms.kubernetes import security as sec
from rucat.platforms.kubernetes.rbac import DRIVER_RULES, MONITOR_RULES
from tests.integration.test_dockerfile import (
    DOCKERFILE,
    final_stage,
    instructions_of,
    parse_dockerfile,
)
from tests.support import require
from tests.support.fake_kube_rules import pod_security_problems

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "rucat"
K8S_VERSION = "1.31.0"
RELEASE, NAMESPACE = "rucat", "rucat"

DEFAULT: dict[str, Any] = {}
POSTGRES: dict[str, Any] = {
    "database": {"type": "postgres", "postgres": {"uri": "postgresql://rucat:pg-pass@pg:5432/r"}},
    "server": {"replicas": 2, "connectTlsSecret": "rucat-connect-tls"},
    "monitor": {"replicas": 3},
    "auth": {"bearerToken": "tok-123", "username": "admin", "password": "basic-pass"},
    # A namespace the cluster's admin made (and labelled) beforehand.
    "engines": {"namespace": "spark-jobs", "createNamespace": False},
    "spark": {
        "images": {"4.0.1": "registry.example/spark:4.0.1"},
        "versions": ["4.0.1"],
    },
    "config": {
        "check_interval_secs": 2,
        "max_concurrency": 8,
        # Deep-merged into the generated platform section.
        "platform": {"Kubernetes": {"fail_when_unschedulable": False}},
    },
}
EXISTING_SECRETS: dict[str, Any] = {
    "database": {
        "type": "postgres",
        "postgres": {"existingSecret": "my-pg", "existingSecretKey": "uri"},
    },
    "auth": {"existingSecret": "my-auth", "username": "admin"},
}
#: What the user's own Secrets hold in EXISTING_SECRETS.
USER_SECRETS = {
    "my-pg": {"uri": "postgresql://u:p@elsewhere/db"},
    "my-auth": {"bearer-token": "their-token", "password": "their-pass"},
    "rucat-connect-tls": {"tls.crt": "PEM", "tls.key": "PEM"},
}
VALUE_SETS = {"default": DEFAULT, "postgres": POSTGRES, "existing-secrets": EXISTING_SECRETS}

#: The kinds the chart makes that live outside any namespace.
CLUSTER_SCOPED = frozenset(
    {"Namespace", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
)
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
IANA_PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# --- helm -------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm() -> Path:
    try:
        return helm_path()
    except HelmUnavailable as e:
        require(False, str(e))
        raise


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )


def render(helm: Path, values: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    values_file = tmp_path / "values.json"  # JSON is YAML
    values_file.write_text(json.dumps(values), encoding="utf-8")
    result = run_helm(
        helm,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        K8S_VERSION,
        "-f",
        str(values_file),
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@dataclass(frozen=True)
class Rendered:
    docs: list[dict[str, Any]]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        found = [
            d
            for d in self.of(kind)
            if d["metadata"]["name"] == name and d["metadata"].get("namespace") == namespace
        ]
        assert len(found) == 1, f"expected one {kind} {namespace}/{name}, found {len(found)}"
        return found[0]

    def containers(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(deployment, container) for every container of every Deployment."""
        for dep in self.of("Deployment"):
            for container in dep["spec"]["template"]["spec"]["containers"]:
                yield dep, container

    def container(self, command: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The (deployment, container) running `rucat <command>`; there must be one kind."""
        found = [(d, c) for d, c in self.containers() if c["args"][0] == command]
        assert found, f"no container runs `rucat {command}`"
        return found[0]

    def config_text(self) -> str:
        config_map = self.one("ConfigMap", RELEASE)
        return str(config_map["data"]["config.json"])

    def secret_value(self, name: str, key: str) -> str | None:
        if name in USER_SECRETS:
            return USER_SECRETS[name].get(key)
        secret = self.one("Secret", name)
        encoded = secret.get("data", {}).get(key)
        return None if encoded is None else base64.b64decode(encoded).decode()

    def env_of(self, container: dict[str, Any]) -> dict[str, str]:
        """The container's environment as Kubernetes would resolve it."""
        env: dict[str, str] = {}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
                continue
            ref = item["valueFrom"]["secretKeyRef"]
            value = self.secret_value(ref["name"], ref["key"])
            if value is None:
                assert ref.get("optional"), f"{item['name']}: Secret key {ref} is missing"
                continue
            env[item["name"]] = value
        return env


@pytest.fixture(scope="module", params=list(VALUE_SETS))
def rendered(
    request: pytest.FixtureRequest, helm: Path, tmp_path_factory: pytest.TempPathFactory
) -> Rendered:
    name = str(request.param)
    return Rendered(render(helm, VALUE_SETS[name], tmp_path_factory.mktemp(name)))


@pytest.fixture(scope="module")
def default(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return Rendered(render(helm, DEFAULT, tmp_path_factory.mktemp("default")))


@pytest.fixture(scope="module")
def postgres(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return Rendered(render(helm, POSTGRES, tmp_path_factory.mktemp("postgres")))


def test_helm_is_helm_3(helm: Path) -> None:
    result = run_helm(helm, "version", "--short")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("v3."), result.stdout


def test_get_helm_reuses_the_binary_it_extracted(helm: Path) -> None:
    before = helm.stat().st_mtime_ns
    assert helm_path() == helm
    assert helm.stat().st_mtime_ns == before


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_chart_passes_helm_lint_strict(helm: Path, tmp_path: Path, values: str) -> None:
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(VALUE_SETS[values]), encoding="utf-8")
    result = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(values_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert chart["appVersion"] == project["version"]


# --- schema and what the schema misses ---------------------------------------


def test_every_rendered_manifest_is_valid_for_the_pinned_kubernetes(rendered: Rendered) -> None:
    assert rendered.docs
    for doc in rendered.docs:
        where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            kv.validate(doc, K8S_VERSION, strict=True)
        except kv.ValidationError as e:
            pytest.fail(f"{where}: {'.'.join(map(str, e.absolute_path))}: {e.message}")


def test_names_labels_and_ports_are_what_kubernetes_accepts(rendered: Rendered) -> None:
    for doc in rendered.docs:
        meta = doc["metadata"]
        name = meta["name"]
        if doc["kind"] in ("Service", "Namespace"):
            assert DNS1123_LABEL.match(name) and len(name) <= 63, name
        else:
            assert DNS1123_SUBDOMAIN.match(name) and len(name) <= 253, name
        if doc["kind"] not in CLUSTER_SCOPED:
            assert DNS1123_LABEL.match(meta["namespace"]), meta
        for value in meta.get("labels", {}).values():
            assert len(value) <= 63 and re.match(
                r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", value
            )
    for service in rendered.of("Service"):
        for port in service["spec"]["ports"]:
            assert 1 <= port["port"] <= 65535 and IANA_PORT_NAME.match(port["name"]), port
    for _, container in rendered.containers():
        assert container["image"].strip(), container["name"]
        for port in container.get("ports", []):
            assert 1 <= port["containerPort"] <= 65535, port
            assert len(port["name"]) <= 15 and IANA_PORT_NAME.match(port["name"]), port


def test_every_reference_between_objects_resolves(rendered: Rendered) -> None:
    def exists(kind: str, name: str, namespace: str = NAMESPACE) -> bool:
        return any(
            d["metadata"]["name"] == name and d["metadata"]["namespace"] == namespace
            for d in rendered.of(kind)
        )

    for dep in rendered.of("Deployment"):
        pod = dep["spec"]["template"]
        selector = dep["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod["metadata"]["labels"].items()
        assert exists("ServiceAccount", pod["spec"]["serviceAccountName"])
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        for volume in volumes.values():
            if "configMap" in volume:
                assert exists("ConfigMap", volume["configMap"]["name"])
            if "secret" in volume:
                name = volume["secret"]["secretName"]
                assert name in USER_SECRETS or exists("Secret", name), name
            if "persistentVolumeClaim" in volume:
                assert exists("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
        for container in pod["spec"]["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, mount
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] not in USER_SECRETS:
                    secret = rendered.one("Secret", ref["name"])
                    assert ref["key"] in secret["data"] or ref.get("optional"), ref
    for service in rendered.of("Service"):
        selector = service["spec"]["selector"]
        targets = [
            d
            for d in rendered.of("Deployment")
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, f"Service {service['metadata']['name']} selects {len(targets)}"
        named_ports = {
            p["name"]
            for c in targets[0]["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in named_ports, port
    for binding in rendered.of("RoleBinding"):
        namespace = binding["metadata"]["namespace"]
        assert exists("Role", binding["roleRef"]["name"], namespace)
        for subject in binding["subjects"]:
            assert exists("ServiceAccount", subject["name"], subject["namespace"]), subject
    # Every object is in the release's namespace or the engines' (the only one made).
    engines = platform_section(rendered)["namespace"]
    assert {d["metadata"]["name"] for d in rendered.of("Namespace")} <= {engines}
    for doc in rendered.docs:
        assert doc["metadata"].get("namespace") in (None, NAMESPACE, engines), doc["metadata"]


# --- RBAC ---------------------------------------------------------------------


def granted(rendered: Rendered, account: str, account_namespace: str, namespace: str) -> set[str]:
    """Every "resource:verb" the account may use in `namespace`, via Roles there."""
    grants: set[str] = set()
    for binding in rendered.of("RoleBinding"):
        if binding["metadata"]["namespace"] != namespace:
            continue
        if not any(
            s["kind"] == "ServiceAccount"
            and s["name"] == account
            and s["namespace"] == account_namespace
            for s in binding["subjects"]
        ):
            continue
        role = rendered.one("Role", binding["roleRef"]["name"], namespace)
        grants |= rule_grants(role["rules"])
    return grants


def platform_section(rendered: Rendered) -> dict[str, Any]:
    platform: dict[str, Any] = json.loads(rendered.config_text())["platform"]["Kubernetes"]
    return platform


def rule_grants(rules: list[dict[str, Any]]) -> set[str]:
    """Every "[group/]resource:verb" the rules grant (no group for the core API)."""
    return {
        f"{group + '/' if group else ''}{resource}:{verb}"
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_monitor_role_grants_what_the_kubernetes_platform_needs(rendered: Rendered) -> None:
    dep, _ = rendered.container("monitor")
    account = dep["spec"]["template"]["spec"]["serviceAccountName"]
    engines_namespace = platform_section(rendered)["namespace"]
    grants = granted(rendered, account, NAMESPACE, engines_namespace)
    # Exactly what the platform declares it needs: nothing missing, nothing more.
    assert grants == rule_grants(MONITOR_RULES)
    assert {"pods:create", "secrets:patch", "networking.k8s.io/networkpolicies:create"} <= grants
    assert not any(g.startswith(("roles", "rolebindings", "serviceaccounts")) for g in grants)
    assert not [g for g in grants if g.split(":")[1] in ("update", "deletecollection", "*")]


def test_driver_service_account_may_manage_its_executors(rendered: Rendered) -> None:
    platform = platform_section(rendered)
    namespace = platform["namespace"]
    account = rendered.one("ServiceAccount", platform["service_account"], namespace)
    grants = granted(rendered, account["metadata"]["name"], namespace, namespace)
    # Only what a client-mode driver uses: its executor pods.
    assert grants == rule_grants(DRIVER_RULES)
    assert {g.split(":")[0] for g in grants} == {"pods"}


def test_server_reads_driver_logs_and_changes_nothing_on_its_own_account(
    postgres: Rendered,
) -> None:
    dep, _ = postgres.container("server")
    account = dep["spec"]["template"]["spec"]["serviceAccountName"]
    assert (
        account
        != postgres.container("monitor")[0]["spec"]["template"]["spec"]["serviceAccountName"]
    )
    grants = granted(postgres, account, NAMESPACE, platform_section(postgres)["namespace"])
    assert {"pods:get", "pods/log:get"} <= grants
    writes = {"create", "delete", "deletecollection", "patch", "update"}
    assert not [g for g in grants if g.split(":")[1] in writes]


def test_with_sqlite_the_one_pod_runs_as_the_monitor(default: Rendered) -> None:
    (dep,) = default.of("Deployment")
    account = dep["spec"]["template"]["spec"]["serviceAccountName"]
    grants = granted(default, account, NAMESPACE, platform_section(default)["namespace"])
    assert {"pods:create", "pods/log:get"} <= grants


# --- config -------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.upper().startswith("RUCAT_"):
            monkeypatch.delenv(key)
    return monkeypatch


def load_as(
    rendered: Rendered, command: str, tmp_path: Path, env: pytest.MonkeyPatch
) -> RucatConfig:
    """Load config.json the way the container would: file + its environment."""
    _, container = rendered.container(command)
    path = tmp_path / "config.json"
    path.write_text(rendered.config_text(), encoding="utf-8")
    with env.context() as scoped:
        for key, value in rendered.env_of(container).items():
            scoped.setenv(key, value)
        return load_config(path)


def test_config_json_loads_through_rucat_config_in_every_container(
    rendered: Rendered, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    for command in ("server", "monitor"):
        config = load_as(rendered, command, tmp_path, clean_env)
        kubernetes = config.platform.Kubernetes
        assert kubernetes is not None and kubernetes.kubeconfig is None  # in-cluster
        assert config.host == "0.0.0.0"
        assert config.data_dir == "/data"


def test_the_server_answers_the_services_names_and_no_rebound_host(
    helm: Path, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    from rucat.domain.request_origin import host_allowed

    extra = Rendered(render(helm, {"server": {"allowedHosts": ["rucat.example.com"]}}, tmp_path))
    server = load_as(extra, "server", tmp_path, clean_env)
    assert server.allowed_hosts is not None
    service = extra.one("Service", RELEASE)["metadata"]["name"]
    for host in (
        f"{service}:3000",
        f"{service}.{NAMESPACE}",
        f"{service}.{NAMESPACE}.svc:3000",
        f"{service}.{NAMESPACE}.svc.cluster.local:3000",
        "localhost:3000",  # kubectl port-forward
        "rucat.example.com",
    ):
        assert host_allowed(host, server.allowed_hosts), host
    assert not host_allowed("evil.example:3000", server.allowed_hosts)
    assert not host_allowed("10.1.2.3:3000", server.allowed_hosts)  # /health only
    for container in extra.of("Deployment")[0]["spec"]["template"]["spec"]["containers"]:
        for probe in ("readinessProbe", "livenessProbe"):
            if probe in container:
                assert container[probe]["httpGet"]["path"] == "/health"


def test_default_values_store_in_sqlite_on_the_volume_and_require_a_token(
    default: Rendered, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    server = load_as(default, "server", tmp_path, clean_env)
    assert server.database.Sqlite is not None
    assert server.database.Sqlite.path == "/data/rucat.db"
    assert server.auth_provider is not None
    auth = server.auth_provider.StaticAuthProviderConfig
    assert auth is not None and auth.bearer_token is not None
    assert len(auth.bearer_token.get_secret_value()) >= 32
    monitor = load_as(default, "monitor", tmp_path, clean_env)
    assert monitor.auth_provider is None  # the monitor serves nobody
    assert monitor.database == server.database


def test_postgres_values_reach_rucat_from_the_secret_only(
    postgres: Rendered, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    text = postgres.config_text()
    for secret in ("pg-pass", "tok-123", "basic-pass"):
        assert secret not in text
    for command in ("server", "monitor"):
        config = load_as(postgres, command, tmp_path, clean_env)
        assert config.database.Postgres is not None
        assert config.database.Postgres.uri.get_secret_value().endswith("pg-pass@pg:5432/r")
        assert config.check_interval_secs == 2 and config.max_concurrency == 8
        kubernetes = config.platform.Kubernetes
        assert kubernetes is not None
        assert kubernetes.namespace == "spark-jobs"
        assert kubernetes.images == {"4.0.1": "registry.example/spark:4.0.1"}
        assert kubernetes.fail_when_unschedulable is False
        assert kubernetes.service_account == "rucat-spark"
    server = load_as(postgres, "server", tmp_path, clean_env)
    assert server.auth_provider is not None
    auth = server.auth_provider.StaticAuthProviderConfig
    assert auth is not None and auth.username == "admin"
    assert auth.password is not None and auth.password.get_secret_value() == "basic-pass"
    assert auth.bearer_token is not None and auth.bearer_token.get_secret_value() == "tok-123"


def test_proxy_tls_files_are_mounted_where_the_config_points(postgres: Rendered) -> None:
    config = json.loads(postgres.config_text())
    dep, server = postgres.container("server")
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    for key, file in (("connect_tls_cert", "tls.crt"), ("connect_tls_key", "tls.key")):
        path = Path(config[key])
        assert path.name == file
        (mount,) = [m for m in server["volumeMounts"] if Path(m["mountPath"]) == path.parent]
        assert mount["readOnly"] is True
        secret = volumes[mount["name"]]["secret"]["secretName"]
        assert file in USER_SECRETS[secret]


def test_users_own_secrets_are_read_and_no_chart_secret_is_made(
    helm: Path, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    rendered = Rendered(render(helm, EXISTING_SECRETS, tmp_path))
    assert rendered.of("Secret") == []
    server = load_as(rendered, "server", tmp_path, clean_env)
    assert server.database.Postgres is not None
    assert server.database.Postgres.uri.get_secret_value() == "postgresql://u:p@elsewhere/db"
    assert server.auth_provider is not None
    auth = server.auth_provider.StaticAuthProviderConfig
    assert auth is not None and auth.password is not None
    assert auth.password.get_secret_value() == "their-pass"


def test_ports_match_rucat_config_defaults(default: Rendered) -> None:
    port = RucatConfig.model_fields["port"].default
    connect_port = RucatConfig.model_fields["connect_port"].default
    config = json.loads(default.config_text())
    assert (config["port"], config["connect_port"]) == (port, connect_port)
    _, server = default.container("server")
    assert {p["name"]: p["containerPort"] for p in server["ports"]} == {
        "http": port,
        "spark-connect": connect_port,
    }
    service = default.one("Service", RELEASE)
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
        "http": port,
        "spark-connect": connect_port,
    }


# --- topology -----------------------------------------------------------------


def test_sqlite_runs_server_and_monitor_in_one_pod_on_one_claim(default: Rendered) -> None:
    (dep,) = default.of("Deployment")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    pod = dep["spec"]["template"]["spec"]
    assert sorted(c["args"][0] for c in pod["containers"]) == ["monitor", "server"]
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    claim = default.one("PersistentVolumeClaim", data["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    db_path = json.loads(default.config_text())["database"]["Sqlite"]["path"]
    for container in pod["containers"]:
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert db_path.startswith(mounts["data"] + "/")


def test_postgres_runs_server_and_monitors_as_separate_scalable_deployments(
    postgres: Rendered,
) -> None:
    replicas = {
        d["spec"]["template"]["spec"]["containers"][0]["args"][0]: d["spec"]["replicas"]
        for d in postgres.of("Deployment")
    }
    assert replicas == {"server": 2, "monitor": 3}
    assert all(
        len(d["spec"]["template"]["spec"]["containers"]) == 1 for d in postgres.of("Deployment")
    )
    assert postgres.of("PersistentVolumeClaim") == []


def test_containers_run_hardened_as_the_images_user(rendered: Rendered) -> None:
    for _, container in rendered.containers():
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
        assert {"/data", "/tmp"} <= writable


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"database": {"type": "postgres"}}, "database.postgres.uri"),
        ({"server": {"replicas": 2}}, "server.replicas must be 1"),
        ({"database": {"type": "mysql"}}, "database.type must be sqlite or postgres"),
        ({"auth": {"username": "admin"}}, "auth.password"),
        ({"auth": {"password": "x"}}, "auth.username"),
        ({"server": {"connectPort": 3000}}, "must differ"),
        ({"server": {"port": 70000}}, "between 1 and 65535"),
        ({"engines": {"namespace": NAMESPACE}}, "must differ from the release namespace"),
        ({"engines": {"namespace": "Engines_NS"}}, "is not a DNS-1123 label"),
        ({"engines": {"podSecurity": "loose"}}, "engines.podSecurity must be"),
        ({"spark": {"namespace": "old-style"}}, "spark.namespace is now engines.namespace"),
    ],
)
def test_chart_refuses_values_that_cannot_work(
    helm: Path, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values), encoding="utf-8")
    result = run_helm(
        helm, "template", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(values_file)
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_chart_mounts_config_where_the_image_looks_for_it(default: Rendered) -> None:
    cmd = instructions_of(final_stage(parse_dockerfile(DOCKERFILE)), "CMD")[-1]
    image_path = Path(json.loads(cmd)[json.loads(cmd).index("--config-path") + 1])
    for dep, container in default.containers():
        args = container["args"]
        assert Path(args[args.index("--config-path") + 1]) == image_path
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volume = next(
            v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"
        )
        assert Path(mounts["config"]) / "config.json" == image_path
        assert volume["configMap"]["name"] == RELEASE


# --- isolation of the engines ----------------------------------------------------------


def test_engines_run_in_their_own_namespace_enforcing_pod_security_restricted(
    default: Rendered,
) -> None:
    engines = platform_section(default)["namespace"]
    assert engines == f"{RELEASE}-engines" != NAMESPACE
    (namespace,) = default.of("Namespace")
    assert namespace["metadata"]["name"] == engines
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_the_engines_namespace_holds_nothing_of_rucats_own(rendered: Rendered) -> None:
    engines = platform_section(rendered)["namespace"]
    there = {d["kind"] for d in rendered.docs if d["metadata"].get("namespace") == engines}
    # RBAC for the monitor and the drivers, the drivers' account and the network policy.
    assert there <= {"Role", "RoleBinding", "ServiceAccount", "NetworkPolicy"}, there
    for kind in ("Secret", "PersistentVolumeClaim", "Service", "ConfigMap", "Deployment"):
        assert all(d["metadata"]["namespace"] == NAMESPACE for d in rendered.of(kind)), kind


def test_a_namespace_made_beforehand_is_used_as_is(postgres: Rendered) -> None:
    assert postgres.of("Namespace") == []
    assert platform_section(postgres)["namespace"] == "spark-jobs"
    assert postgres.one("NetworkPolicy", f"{RELEASE}-engines", "spark-jobs")


def test_rucats_own_pods_and_its_driver_pods_satisfy_pod_security_restricted(
    rendered: Rendered, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    for dep in rendered.of("Deployment"):
        name = dep["metadata"]["name"]
        assert pod_security_problems(dep["spec"]["template"], "restricted") == [], name
    # The driver pods the monitor will create with the chart's config.
    config = load_as(rendered, "monitor", tmp_path, clean_env).platform.Kubernetes
    assert config is not None
    driver = m.pod_manifest(chart_engine(), config)
    assert pod_security_problems(driver, "restricted") == []
    template = sec.executor_pod_template(config)
    assert pod_security_problems(template, "restricted") == []


def chart_engine() -> Engine:
    now = datetime.now(UTC)
    return Engine(
        id=new_engine_id(),
        name="chart",
        engine_type=EngineType.Spark,
        version="4.0.1",
        configs={},
        state=EngineState.TriggerStart,
        platform="Kubernetes",
        create_time=now,
        update_time=now,
        next_update_time=now,
    )


def test_engines_admit_spark_connect_and_the_ui_only_from_rucats_server_pods(
    rendered: Rendered,
) -> None:
    engines = platform_section(rendered)["namespace"]
    policy = rendered.one("NetworkPolicy", f"{RELEASE}-engines", engines)
    spec = policy["spec"]
    assert spec["podSelector"] == {}  # every pod in the namespace
    assert spec["policyTypes"] == ["Ingress"]
    (rule,) = spec["ingress"]
    assert {(p["protocol"], p["port"]) for p in rule["ports"]} == {
        ("TCP", m.CONNECT_PORT),
        ("TCP", m.UI_PORT),
    }
    (peer,) = rule["from"]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}
    selector = peer["podSelector"]["matchLabels"]
    selected = {
        c["args"][0]
        for d in rendered.of("Deployment")
        if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert "server" in selected
    # With PostgreSQL the monitors have pods of their own, and no way in.
    for dep in rendered.of("Deployment"):
        commands = {c["args"][0] for c in dep["spec"]["template"]["spec"]["containers"]}
        if commands == {"monitor"}:
            labels = dep["spec"]["template"]["metadata"]["labels"]
            assert not selector.items() <= labels.items()
    assert platform_section(rendered)["network_policies"] is True


def test_network_policies_can_be_turned_off(
    helm: Path, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    rendered = Rendered(render(helm, {"engines": {"networkPolicy": {"enabled": False}}}, tmp_path))
    assert rendered.of("NetworkPolicy") == []
    assert platform_section(rendered)["network_policies"] is False
    dep, _ = rendered.container("monitor")
    account = dep["spec"]["template"]["spec"]["serviceAccountName"]
    grants = granted(rendered, account, NAMESPACE, platform_section(rendered)["namespace"])
    assert not [g for g in grants if g.startswith("networking.k8s.io/")]
    monitor = load_as(rendered, "monitor", tmp_path, clean_env).platform.Kubernetes
    assert monitor is not None and monitor.network_policies is False
