"""The driver RBAC objects as manifests, for the schema test of every manifest Rucat's
rules describe (the Helm chart renders the real ones from the same DRIVER_RULES)."""

from __future__ import annotations

from rucat.platforms.kubernetes.rbac import DRIVER_RULES, Manifest


def driver_rbac_manifests(namespace: str, service_account: str) -> list[Manifest]:
    """ServiceAccount, Role and RoleBinding that let driver pods manage executors.

    The Helm chart renders the same rules; a test checks they agree.
    """
    role = f"{service_account}-driver"
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": service_account, "namespace": namespace},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": role, "namespace": namespace},
            "rules": DRIVER_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": role, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [
                {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
            ],
        },
    ]
