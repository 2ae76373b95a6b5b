"""What a driver pod's status says about its engine, as an Observation (pure).

Kubernetes reports trouble in several places: the pod phase, the
PodScheduled condition (scheduler), and each container's state (kubelet).
`observe_pod` reads them in order of finality so the reason a user sees is the
specific one ("cannot pull image apache/spark:9.9.9: ..."), never just
"Pending" or "Failed".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rucat.domain.observation import Failed, Observation, Pending, Ready, Unknown

#: Waiting reasons that will not fix themselves: the engine has failed.
_IMAGE_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName"})
_CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})


def _terminated_text(terminated: Mapping[str, Any]) -> str:
    code = terminated.get("exitCode")
    reason = terminated.get("reason") or ""
    message = (terminated.get("message") or "").strip()
    text = f"driver exited with code {code}"
    if reason == "OOMKilled":
        text = f"driver was killed for running out of memory (OOMKilled, exit code {code})"
    elif reason and reason not in ("Error", "Completed"):
        text += f" ({reason})"
    if message:
        text += f": {message[:500]}"
    return text


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def observe_pod(
    pod: Mapping[str, Any], *, endpoint: str, fail_when_unschedulable: bool = True
) -> Observation:
    """The Observation of an engine whose driver pod is `pod` (a Pod as a dict)."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    containers = list(status.get("containerStatuses") or [])
    if meta.get("deletionTimestamp"):
        return Pending("driver pod is terminating")
    # Container states first: they carry the most specific reason.
    for container in containers:
        state = container.get("state") or {}
        last = container.get("lastState") or {}
        waiting = state.get("waiting")
        image = container.get("image") or "?"
        if waiting:
            reason = waiting.get("reason") or ""
            message = (waiting.get("message") or "").strip()
            detail = f": {message[:500]}" if message else ""
            if reason in _IMAGE_REASONS:
                return Failed(f"cannot pull image {image} ({reason}){detail}")
            if reason == "CrashLoopBackOff":
                before = last.get("terminated")
                why = f"; last run: {_terminated_text(before)}" if before else ""
                return Failed(f"driver keeps crashing (CrashLoopBackOff){why}")
            if reason in _CONFIG_REASONS:
                return Failed(f"cannot create the driver container ({reason}){detail}")
        terminated = state.get("terminated")
        if terminated:
            return Failed(_terminated_text(terminated))
        before = last.get("terminated")
        if before and before.get("reason") == "OOMKilled":
            return Failed(_terminated_text(before))
    if phase in ("Failed", "Succeeded"):
        reason = status.get("reason") or phase
        message = (status.get("message") or "").strip()
        return Failed(
            f"driver pod {phase.lower()} ({reason})" + (f": {message}" if message else "")
        )
    if phase == "Unknown":
        return Unknown("the driver pod's node stopped reporting its state")
    scheduled = _condition(status, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        message = scheduled.get("message") or "no node can run the driver pod"
        if scheduled.get("reason") == "Unschedulable":
            text = f"driver pod is unschedulable: {message}"
            return Failed(text) if fail_when_unschedulable else Pending(text)
        return Pending(f"driver pod is not scheduled: {message}")
    ready = _condition(status, "Ready")
    if phase == "Running" and ready is not None and ready.get("status") == "True":
        return Ready(endpoint)
    for container in containers:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return Pending(f"driver container is waiting ({waiting['reason']})")
    if phase == "Running":
        return Pending("driver is running; Spark Connect is not accepting calls yet")
    return Pending("driver pod is pending")
