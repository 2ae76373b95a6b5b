"""A driver pod's status maps to the Observation a user needs, with a specific reason."""

from __future__ import annotations

from typing import Any

from rucat.domain.observation import Failed, Pending, Ready, Unknown
from rucat.platforms.kubernetes.status import observe_pod

EP = "sc://rucat-spark-x.ns.svc:15002"


def pod(phase: str = "Pending", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "status": {"phase": phase, **status}}


def waiting(reason: str, message: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "name": "spark-driver",
        "image": "apache/spark:9.9.9",
        "ready": False,
        "state": {"waiting": {"reason": reason, "message": message}},
        **extra,
    }


def test_a_fresh_pod_is_pending() -> None:
    assert observe_pod(pod(), endpoint=EP) == Pending("driver pod is pending")


def test_a_running_pod_is_only_ready_when_its_ready_condition_is_true() -> None:
    running = pod("Running", conditions=[{"type": "Ready", "status": "False"}])
    assert isinstance(observe_pod(running, endpoint=EP), Pending)
    ready = pod("Running", conditions=[{"type": "Ready", "status": "True"}])
    assert observe_pod(ready, endpoint=EP) == Ready(EP)


def test_image_pull_backoff_fails_naming_the_image() -> None:
    obs = observe_pod(
        pod(containerStatuses=[waiting("ImagePullBackOff", "Back-off pulling image")]),
        endpoint=EP,
    )
    assert isinstance(obs, Failed)
    assert "apache/spark:9.9.9" in obs.reason and "ImagePullBackOff" in obs.reason


def test_err_image_pull_fails_too() -> None:
    obs = observe_pod(pod(containerStatuses=[waiting("ErrImagePull", "not found")]), endpoint=EP)
    assert isinstance(obs, Failed) and "ErrImagePull" in obs.reason


def test_crash_loop_backoff_fails_with_the_last_exit_code() -> None:
    status = waiting(
        "CrashLoopBackOff",
        lastState={"terminated": {"exitCode": 101, "reason": "Error"}},
    )
    obs = observe_pod(pod("Running", containerStatuses=[status]), endpoint=EP)
    assert isinstance(obs, Failed)
    assert "CrashLoopBackOff" in obs.reason and "code 101" in obs.reason


def test_oom_killed_fails_saying_so() -> None:
    status = {
        "name": "spark-driver",
        "image": "i",
        "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
    }
    obs = observe_pod(pod("Failed", containerStatuses=[status]), endpoint=EP)
    assert isinstance(obs, Failed) and "OOMKilled" in obs.reason and "137" in obs.reason


def test_a_terminated_driver_fails_with_its_exit_code() -> None:
    status = {
        "name": "d",
        "image": "i",
        "state": {"terminated": {"exitCode": 3, "reason": "Error"}},
    }
    obs = observe_pod(pod("Failed", containerStatuses=[status]), endpoint=EP)
    assert obs == Failed("driver exited with code 3")


def test_unschedulable_fails_with_the_scheduler_message_or_stays_pending_if_configured() -> None:
    message = "0/3 nodes are available: 3 Insufficient memory."
    p = pod(
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
            }
        ]
    )
    obs = observe_pod(p, endpoint=EP)
    assert isinstance(obs, Failed) and message in obs.reason
    relaxed = observe_pod(p, endpoint=EP, fail_when_unschedulable=False)
    assert isinstance(relaxed, Pending) and message in relaxed.detail


def test_an_evicted_pod_fails_with_the_kubelet_reason() -> None:
    obs = observe_pod(pod("Failed", reason="Evicted", message="low on memory"), endpoint=EP)
    assert isinstance(obs, Failed) and "Evicted" in obs.reason and "low on memory" in obs.reason


def test_a_terminating_pod_is_still_pending_not_absent() -> None:
    p = pod("Running", conditions=[{"type": "Ready", "status": "True"}])
    p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert observe_pod(p, endpoint=EP) == Pending("driver pod is terminating")


def test_container_creating_is_pending_with_the_reason() -> None:
    obs = observe_pod(pod(containerStatuses=[waiting("ContainerCreating")]), endpoint=EP)
    assert obs == Pending("driver container is waiting (ContainerCreating)")


def test_a_pod_whose_node_is_lost_is_unknown_not_failed() -> None:
    assert isinstance(observe_pod(pod("Unknown"), endpoint=EP), Unknown)
