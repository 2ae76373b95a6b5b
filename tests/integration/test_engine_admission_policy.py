"""The chart's ValidatingAdmissionPolicy keeps each driver to its own engine's executors.

No API server runs here, so the rendered policy's CEL is evaluated the way
the API server's admission does it (match conditions, then variables in
order, then every validation) by cel-python, a pure-Python implementation of
CEL, over admission requests as the API server would build them for a
driver's service account token.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import celpy
import pytest
from celpy import celtypes

from rucat.config import KubernetesPlatformConfig
from rucat.platforms.kubernetes import manifests as m
from rucat.platforms.kubernetes import security as sec
from tests.integration.test_helm_chart import NAMESPACE, Rendered, helm, render  # noqa: F401

Obj = dict[str, Any]
ENGINES = "rucat-engines"
DRIVER_ACCOUNT = f"system:serviceaccount:{ENGINES}:rucat-spark"
A, B = "a" * 20, "b" * 20


@pytest.fixture(scope="module")
def policy(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Obj:  # noqa: F811
    rendered = Rendered(render(helm, {}, tmp_path_factory.mktemp("vap")))
    (found,) = rendered.of("ValidatingAdmissionPolicy")
    (binding,) = rendered.of("ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == found["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    selector = found["spec"]["matchConstraints"]["namespaceSelector"]["matchLabels"]
    assert selector == {"kubernetes.io/metadata.name": ENGINES}
    return found


def _eval(expression: str, activation: dict[str, Any]) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(expression)).evaluate(activation)


def admit(policy: Obj, request: Obj, obj: Obj | None, old: Obj | None = None) -> str | None:
    """None when admitted; else the message of the first failing validation."""
    spec = policy["spec"]
    rules = spec["matchConstraints"]["resourceRules"]
    if not any(request["operation"] in r["operations"] for r in rules):
        return None
    activation: dict[str, Any] = {
        "request": celpy.json_to_cel(request),
        "object": celpy.json_to_cel(obj),
        "oldObject": celpy.json_to_cel(old),
    }
    for condition in spec.get("matchConditions", []):
        if not _eval(condition["expression"], activation):
            return None  # not a request this policy looks at
    variables: dict[celtypes.StringType, Any] = {}
    for variable in spec.get("variables", []):
        activation["variables"] = celtypes.MapType(variables)
        variables[celtypes.StringType(variable["name"])] = _eval(variable["expression"], activation)
    activation["variables"] = celtypes.MapType(variables)
    for validation in spec["validations"]:
        try:
            ok = _eval(validation["expression"], activation)
        except celpy.CELEvalError:
            ok = False  # failurePolicy: Fail
        if not (isinstance(ok, celtypes.BoolType) and bool(ok)):  # errors count as "no"
            return str(validation["message"])
    return None


def by_driver_of(engine_id: str, operation: str) -> Obj:
    """What the API server puts in a request made with a driver pod's bound token."""
    return {
        "operation": operation,
        "userInfo": {
            "username": DRIVER_ACCOUNT,
            "extra": {"authentication.kubernetes.io/pod-name": [m.driver_pod_name(engine_id)]},
        },
    }


def executor(engine_id: str) -> Obj:
    """An executor pod as Spark builds it from Rucat's template."""
    pod = copy.deepcopy(sec.executor_pod_template(KubernetesPlatformConfig(namespace=ENGINES)))
    pod["metadata"] = {
        "name": f"{m.service_name(engine_id)}-exec-1",
        "namespace": ENGINES,
        "labels": {**m.engine_labels(engine_id, "executor"), "spark-role": "executor"},
    }
    container = pod["spec"]["containers"][0]
    container.update(image="apache/spark:4.0.1", args=["executor"])
    pod["spec"]["volumes"] = [{"name": "spark-local-dir-1", "emptyDir": {}}]
    return pod


def test_a_driver_may_create_and_delete_its_own_executors(policy: Obj) -> None:
    assert admit(policy, by_driver_of(A, "CREATE"), executor(A)) is None
    assert admit(policy, by_driver_of(A, "DELETE"), None, executor(A)) is None


def _with(pod: Obj, change: Any) -> Obj:
    changed = copy.deepcopy(pod)
    change(changed)
    return changed


REFUSED = {
    "another engine's pod": (
        lambda p: p["metadata"]["labels"].update({m.ENGINE_ID_LABEL: B}),
        "only create and delete pods of its own engine",
    ),
    "a pod without an engine": (
        lambda p: p["metadata"]["labels"].pop(m.ENGINE_ID_LABEL),
        "only create and delete pods of its own engine",
    ),
    "a pod passing for a driver": (
        lambda p: p["metadata"]["labels"].update({m.COMPONENT_LABEL: "driver"}),
        "only create executor pods",
    ),
    "a service account token": (
        lambda p: p["spec"].pop("automountServiceAccountToken"),
        "no service account token",
    ),
    "a Secret volume": (
        lambda p: p["spec"]["volumes"].append(
            {"name": "loot", "secret": {"secretName": m.secret_name(B)}}
        ),
        "may not mount Secrets",
    ),
    "a projected Secret": (
        lambda p: p["spec"]["volumes"].append(
            {"name": "loot", "projected": {"sources": [{"secret": {"name": m.secret_name(B)}}]}}
        ),
        "may not mount Secrets",
    ),
    "a Secret in the environment": (
        lambda p: p["spec"]["containers"][0].update(
            env=[
                {
                    "name": "T",
                    "valueFrom": {"secretKeyRef": {"name": m.secret_name(B), "key": "k"}},
                }
            ]
        ),
        "may not read Secrets into their environment",
    ),
    "a whole Secret as environment": (
        lambda p: p["spec"]["containers"][0].update(
            envFrom=[{"secretRef": {"name": m.secret_name(B)}}]
        ),
        "may not read Secrets into their environment",
    ),
}


@pytest.mark.parametrize("what", list(REFUSED))
def test_a_driver_may_not_create(policy: Obj, what: str) -> None:
    change, message = REFUSED[what]
    refused = admit(policy, by_driver_of(A, "CREATE"), _with(executor(A), change))
    assert refused is not None and message in refused


def test_a_driver_may_not_delete_another_engines_pods(policy: Obj) -> None:
    other_driver = {
        "metadata": {"name": m.driver_pod_name(B), "labels": m.engine_labels(B, "driver")}
    }
    refused = admit(policy, by_driver_of(A, "DELETE"), None, other_driver)
    assert refused is not None and "own engine" in refused


def test_a_token_not_bound_to_a_driver_pod_may_do_nothing(policy: Obj) -> None:
    request = by_driver_of(A, "CREATE")
    request["userInfo"]["extra"] = {}
    refused = admit(policy, request, executor(A))
    assert refused is not None and "own engine" in refused


def test_other_accounts_are_not_this_policys_business(policy: Obj) -> None:
    request = {
        "operation": "CREATE",
        "userInfo": {"username": f"system:serviceaccount:{NAMESPACE}:rucat-monitor"},
    }
    driver = {"metadata": {"name": m.driver_pod_name(B), "labels": m.engine_labels(B, "driver")}}
    assert admit(policy, request, driver) is None


def test_the_policy_can_be_turned_off_for_clusters_before_1_30(
    helm: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    values = {"engines": {"admissionPolicy": {"enabled": False}}}
    rendered = Rendered(render(helm, values, tmp_path))
    assert rendered.of("ValidatingAdmissionPolicy") == []
    assert rendered.of("ValidatingAdmissionPolicyBinding") == []
