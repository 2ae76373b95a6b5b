"""The Kubernetes RBAC Rucat's accounts need, as data (no I/O).

Least privilege, because drivers run user code: the rules here are exactly what
the Kubernetes platform (the monitor) and a client-mode Spark driver use, and
the Helm chart renders the same rules (tests/integration/test_helm_chart.py
checks they agree verb for verb). docs/deploy.md gives the reason for each.
"""

from __future__ import annotations

from typing import Any

Manifest = dict[str, Any]

#: What a client-mode driver needs, and no more (docs/deploy.md gives the reason for
#: each verb). Executors run with Rucat's pod template and the engine's NetworkPolicy
#: and Service are Rucat's, so drivers create nothing but executor pods; Rucat sets
#: spark.kubernetes.executor.disableConfigMap and turns off PVC reuse, so they need no
#: config maps or claims either. No Secrets: the engine's token and the record of
#: its driver pod stay out of reach of user code.
DRIVER_RULES: list[Manifest] = [
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "get", "list", "watch", "delete", "deletecollection"],
    }
]

#: What a monitor needs to run engines with this platform (and no more).
MONITOR_RULES: list[Manifest] = [
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "get", "list", "watch", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["create", "delete"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "get", "patch", "delete"]},
    {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": ["create", "delete"],
    },
]
