"""What the fake Kubernetes API server checks: names, labels, ports, selectors, patches.

Kept apart from the server (tests/support/fake_kube.py) so the rules read as
one list: the checks a real API server makes that matter to Rucat's manifests
(422 Invalid), label selector syntax, and JSON merge patches.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse

Obj = dict[str, Any]

KINDS = {
    "pods": "Pod",
    "services": "Service",
    "secrets": "Secret",
    "serviceaccounts": "ServiceAccount",
    "configmaps": "ConfigMap",
    "namespaces": "Namespace",
    "networkpolicies": "NetworkPolicy",
}
#: apiVersion of each kind outside the core group (served under /apis/<group>/<version>).
GROUP_VERSIONS = {"networkpolicies": "networking.k8s.io/v1"}
_LABEL_NAMES = frozenset({"services", "namespaces"})  # DNS-1123 labels, not subdomains
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_IANA = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dns_label(value: str) -> bool:
    return len(value) <= 63 and _DNS_LABEL.match(value) is not None


def dns_subdomain(value: str) -> bool:
    return 0 < len(value) <= 253 and all(dns_label(p) for p in value.split("."))


class ApiFailure(Exception):
    """An error answered as a Kubernetes Status object."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def response(self) -> JSONResponse:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        return JSONResponse(body, status_code=self.code)


# --- label selectors ---------------------------------------------------------

Requirement = Callable[[dict[str, str]], bool]


@dataclass(frozen=True)
class _Requirement:
    """One clause of a label selector: `key` `op` `values`."""

    key: str
    op: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def __call__(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        found = labels.get(self.key) in self.values
        return found if self.op == "in" else not found


def parse_selector(text: str | None) -> list[Requirement]:
    """Kubernetes label selector syntax: a=b, a==b, a!=b, a, !a, a in (x,y), a notin (x)."""
    if not text:
        return []
    out: list[Requirement] = []
    for raw in re.findall(r"[^,(]+(?:\([^)]*\))?", text):
        part = raw.strip()
        if not part:
            continue
        if m := re.fullmatch(r"([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)", part):
            values = frozenset(v.strip() for v in m.group(3).split(","))
            out.append(_Requirement(m.group(1), m.group(2), values))
        elif m := re.fullmatch(r"([^\s!=]+)\s*!=\s*(\S*)", part):
            out.append(_Requirement(m.group(1), "notin", frozenset({m.group(2)})))
        elif m := re.fullmatch(r"([^\s!=]+)\s*==?\s*(\S*)", part):
            out.append(_Requirement(m.group(1), "in", frozenset({m.group(2)})))
        elif m := re.fullmatch(r"!\s*(\S+)", part):
            out.append(_Requirement(m.group(1), "!exists"))
        elif re.fullmatch(r"\S+", part):
            out.append(_Requirement(part, "exists"))
        else:
            raise ApiFailure(400, "BadRequest", f"unable to parse requirement: {part!r}")
    return out


def matches(obj: Obj, selector: list[Requirement]) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(req(labels) for req in selector)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also serves strategic merge patches of plain fields)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- validation ---------------------------------------------------------------


def _invalid(kind: str, name: str, problems: list[str]) -> ApiFailure:
    return ApiFailure(422, "Invalid", f'{kind} "{name}" is invalid: ' + "; ".join(problems))


def _check_port(where: str, port: Any, problems: list[str]) -> None:
    if not isinstance(port, int) or not 1 <= port <= 65535:
        problems.append(f"{where}: Invalid value: {port!r}: must be between 1 and 65535")


def validate(plural: str, obj: Obj) -> None:
    kind = KINDS[plural]
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    problems: list[str] = []
    if not name:
        problems.append("metadata.name: Required value: name or generateName is required")
    elif not (dns_label(name) if plural in _LABEL_NAMES else dns_subdomain(name)):
        problems.append(f"metadata.name: Invalid value: {name!r}: must be a DNS-1123 name")
    for key, value in (meta.get("labels") or {}).items():
        prefix, _, label = key.rpartition("/")
        if (
            (prefix and not dns_subdomain(prefix))
            or len(label) > 63
            or not _LABEL_NAME.match(label)
        ):
            problems.append(f"metadata.labels: Invalid value: {key!r}")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            problems.append(f"metadata.labels: Invalid value: {value!r}")
    spec = obj.get("spec") or {}
    if plural == "pods":
        containers = spec.get("containers") or []
        if not containers:
            problems.append("spec.containers: Required value")
        for i, c in enumerate(containers):
            where = f"spec.containers[{i}]"
            if not dns_label(c.get("name") or ""):
                problems.append(f"{where}.name: Invalid value: {c.get('name')!r}")
            if not str(c.get("image") or "").strip():
                problems.append(f"{where}.image: Required value")
            for j, p in enumerate(c.get("ports") or []):
                _check_port(f"{where}.ports[{j}].containerPort", p.get("containerPort"), problems)
                pname = p.get("name")
                if pname is not None and (len(pname) > 15 or not _IANA.match(pname)):
                    problems.append(f"{where}.ports[{j}].name: Invalid value: {pname!r}")
    if plural == "services":
        for j, p in enumerate(spec.get("ports") or []):
            _check_port(f"spec.ports[{j}].port", p.get("port"), problems)
            target = p.get("targetPort", p.get("port"))
            if not isinstance(target, str):
                _check_port(f"spec.ports[{j}].targetPort", target, problems)
    if plural == "secrets":
        for key, value in (obj.get("data") or {}).items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError):
                problems.append(f"data[{key}]: Invalid value: not base64")
    if problems:
        raise _invalid(kind, name, problems)


# --- Pod Security Admission -----------------------------------------------------

#: The namespace label that makes the API server enforce a Pod Security level.
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
#: Labels of a namespace enforcing (and warning and auditing) `restricted`.
RESTRICTED = {
    PSA_ENFORCE: "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}
_BASELINE_CAPS = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
_SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
_RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
_VOLUME_META = frozenset({"name"})


def _containers(spec: Obj) -> list[Obj]:
    return [
        c
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    ]


def _names(containers: list[Obj]) -> str:
    return ", ".join(f'"{c.get("name")}"' for c in containers)


def _baseline(spec: Obj) -> list[str]:
    problems: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    containers = _containers(spec)
    hosts = [k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    if hosts:
        problems.append(f"host namespaces ({', '.join(f'{k}=true' for k in hosts)})")
    privileged = [c for c in containers if (c.get("securityContext") or {}).get("privileged")]
    if privileged:
        problems.append(f"privileged (containers {_names(privileged)} must not set privileged)")
    added = {
        cap
        for c in containers
        for cap in ((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or []
    }
    if added - _BASELINE_CAPS:
        problems.append(f"non-default capabilities ({sorted(added - _BASELINE_CAPS)})")
    host_paths = [v.get("name") for v in spec.get("volumes") or [] if "hostPath" in v]
    if host_paths:
        problems.append(f"hostPath volumes (volumes {host_paths})")
    host_ports = [
        p["hostPort"] for c in containers for p in c.get("ports") or [] if p.get("hostPort")
    ]
    if host_ports:
        problems.append(f"hostPort (ports {host_ports})")
    seccomp = [(pod_sc.get("seccompProfile") or {}).get("type")] + [
        ((c.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
        for c in containers
    ]
    if "Unconfined" in seccomp:
        problems.append('seccompProfile (must not set type to "Unconfined")')
    if any(
        (c.get("securityContext") or {}).get("procMount") not in (None, "Default")
        for c in containers
    ):
        problems.append("procMount (must be Default)")
    sysctls = [
        s.get("name") for s in pod_sc.get("sysctls") or [] if s.get("name") not in _SAFE_SYSCTLS
    ]
    if sysctls:
        problems.append(f"forbidden sysctls ({sysctls})")
    for where in [pod_sc, *(c.get("securityContext") or {} for c in containers)]:
        selinux = where.get("seLinuxOptions") or {}
        if (
            selinux.get("user")
            or selinux.get("role")
            or selinux.get("type")
            not in (
                None,
                "",
                "container_t",
                "container_init_t",
                "container_kvm_t",
                "container_engine_t",
            )
        ):
            problems.append("seLinuxOptions (forbidden user, role or type)")
            break
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        problems.append("hostProcess")
    return problems


def _restricted(spec: Obj) -> list[str]:
    problems: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    containers = _containers(spec)
    volumes = [
        v.get("name")
        for v in spec.get("volumes") or []
        if not (set(v) - _VOLUME_META) <= _RESTRICTED_VOLUMES
    ]
    if volumes:
        problems.append(f"restricted volume types (volumes {volumes})")
    escalating = [
        c
        for c in containers
        if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False
    ]
    if escalating:
        problems.append(
            f"allowPrivilegeEscalation != false (containers {_names(escalating)} must set "
            "securityContext.allowPrivilegeEscalation=false)"
        )
    unrestricted = []
    for c in containers:
        caps = (c.get("securityContext") or {}).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []) or set(caps.get("add") or []) - {
            "NET_BIND_SERVICE"
        }:
            unrestricted.append(c)
    if unrestricted:
        problems.append(
            f"unrestricted capabilities (containers {_names(unrestricted)} must set "
            'securityContext.capabilities.drop=["ALL"])'
        )
    rooted = [
        c
        for c in containers
        if (c.get("securityContext") or {}).get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        is not True
    ]
    if rooted:
        problems.append(
            f"runAsNonRoot != true (pod or containers {_names(rooted)} must set "
            "securityContext.runAsNonRoot=true)"
        )
    if pod_sc.get("runAsUser") == 0 or any(
        (c.get("securityContext") or {}).get("runAsUser") == 0 for c in containers
    ):
        problems.append("runAsUser=0 (pod and containers must not set runAsUser=0)")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    unconfined = [
        c
        for c in containers
        if ((c.get("securityContext") or {}).get("seccompProfile") or {}).get("type", pod_seccomp)
        not in ("RuntimeDefault", "Localhost")
    ]
    if unconfined:
        problems.append(
            f"seccompProfile (pod or containers {_names(unconfined)} must set "
            'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
        )
    return problems


def pod_security_problems(pod: Obj, level: str) -> list[str]:
    """What the Pod Security Standard `level` (privileged, baseline, restricted) refuses."""
    if level == "privileged":
        return []
    spec = pod.get("spec") or {}
    problems = _baseline(spec)
    if level == "restricted":
        problems += _restricted(spec)
    return problems


def admit_pod(namespace: Obj | None, pod: Obj) -> None:
    """Pod Security Admission: 403 when the namespace enforces a level the pod breaks."""
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    level = labels.get(PSA_ENFORCE)
    if level is None:
        return
    problems = pod_security_problems(pod, level)
    if problems:
        name = (pod.get("metadata") or {}).get("name", "")
        version = labels.get("pod-security.kubernetes.io/enforce-version", "latest")
        raise ApiFailure(
            403,
            "Forbidden",
            f'pods "{name}" is forbidden: violates PodSecurity "{level}:{version}": '
            + ", ".join(problems),
        )
