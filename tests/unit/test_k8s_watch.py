"""The pod view's ordering invariants: late or stale events never hide newer pods."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rucat.domain.observation import Observation, Pending, Ready
from rucat.platforms.kubernetes.manifests import ENGINE_ID_LABEL
from rucat.platforms.kubernetes.watch import PodCache


def pod(engine_id: str, uid: str, version: int, phase: str = "Pending") -> dict[str, Any]:
    ready = [{"type": "Ready", "status": "True"}] if phase == "Running" else []
    return {
        "metadata": {
            "name": f"rucat-spark-{engine_id}-driver",
            "uid": uid,
            "resourceVersion": str(version),
            "labels": {ENGINE_ID_LABEL: engine_id},
        },
        "status": {"phase": phase, "conditions": ready},
    }


def observe(engine_id: str, p: Mapping[str, Any]) -> Observation:
    phase = p["status"]["phase"]
    return Ready(f"sc://{engine_id}") if phase == "Running" else Pending(phase)


def cache(changed: list[str]) -> PodCache:
    # The API client is only used by the watch loop, which these tests do not run.
    return PodCache(None, "ns", observe=observe, on_change=changed.append)  # type: ignore[arg-type]


def test_a_late_delete_of_an_old_pod_does_not_hide_its_successor() -> None:
    changed: list[str] = []
    c = cache(changed)
    c.put(pod("e1", "old", 5, "Running"))
    c.put(pod("e1", "new", 9))  # restarted: a new pod with the same name
    c._apply("DELETED", pod("e1", "old", 7))
    entry = c.get("e1")
    assert entry is not None and entry.uid == "new"
    c._apply("DELETED", pod("e1", "new", 10))
    assert c.get("e1") is None


def test_an_older_version_never_replaces_a_newer_one() -> None:
    c = cache([])
    c.put(pod("e1", "u", 8, "Running"))
    c._apply("MODIFIED", pod("e1", "u", 6, "Pending"))
    entry = c.get("e1")
    assert entry is not None and entry.observation == Ready("sc://e1")


def test_changes_are_reported_only_when_the_observation_changes() -> None:
    changed: list[str] = []
    c = cache(changed)
    c.put(pod("e1", "u", 1))
    c._apply("MODIFIED", pod("e1", "u", 2))  # e.g. an annotation: same observation
    c._apply("MODIFIED", pod("e1", "u", 3, "Running"))
    c._apply("DELETED", pod("e1", "u", 4))
    assert changed == ["e1", "e1", "e1"]


def test_a_relist_drops_vanished_pods_but_keeps_pods_created_after_the_list() -> None:
    changed: list[str] = []
    c = cache(changed)
    c.put(pod("gone", "u1", 3))
    c.put(pod("kept", "u2", 4))
    c.put(pod("fresh", "u3", 12))  # created by start() after the list below was taken
    changed.clear()
    c._replace_all([pod("kept", "u2", 4)], list_version=10)
    assert c.get("gone") is None and c.get("kept") is not None and c.get("fresh") is not None
    assert changed == ["gone"]


def trusting(changed: list[str], uids: dict[str, str]) -> PodCache:
    """A cache that takes a pod for an engine only when its uid is the recorded one."""
    return PodCache(
        None,  # type: ignore[arg-type]
        "ns",
        observe=observe,
        on_change=changed.append,
        accept=lambda engine_id, uid: uids.get(engine_id) == uid,
    )


def test_a_pod_with_an_engines_labels_but_another_uid_never_becomes_its_entry() -> None:
    changed: list[str] = []
    c = trusting(changed, {"e1": "real"})
    c.put(pod("e1", "real", 3))
    c._apply("ADDED", pod("e1", "forged", 4, "Running"))
    c._apply("MODIFIED", pod("e1", "forged", 5, "Running"))
    entry = c.get("e1")
    assert entry is not None and entry.uid == "real" and entry.observation == Pending("Pending")
    c._apply("DELETED", pod("e1", "forged", 6))  # its deletion does not remove the real one
    assert c.get("e1") is not None


def test_a_pod_of_an_unknown_uid_wakes_the_monitor_to_check_it() -> None:
    changed: list[str] = []
    c = trusting(changed, {})
    c._apply("ADDED", pod("e2", "someone", 1, "Running"))
    assert c.get("e2") is None
    assert changed == ["e2"]


def test_a_relist_keeps_the_real_driver_whatever_else_carries_its_labels() -> None:
    c = trusting([], {"e1": "real"})
    c._replace_all([pod("e1", "real", 2), pod("e1", "forged", 3, "Running")], 3)
    entry = c.get("e1")
    assert entry is not None and entry.uid == "real"
    c._replace_all([pod("e1", "forged", 4, "Running"), pod("e1", "real", 2)], 4)
    entry = c.get("e1")
    assert entry is not None and entry.uid == "real"


def test_events_of_a_new_driver_seen_before_its_uid_is_known_are_applied_once_trusted() -> None:
    uids: dict[str, str] = {}
    c = trusting([], uids)
    # The watch reports the pod (even Ready) before the create call has returned.
    c._apply("ADDED", pod("e1", "new", 2))
    c._apply("MODIFIED", pod("e1", "new", 3, "Running"))
    assert c.get("e1") is None
    uids["e1"] = "new"
    c.put(pod("e1", "new", 2))  # what the create call returned
    c.trust("e1")
    entry = c.get("e1")
    assert entry is not None and entry.observation == Ready("sc://e1")


def test_a_held_pod_that_was_deleted_is_not_brought_back() -> None:
    uids: dict[str, str] = {}
    c = trusting([], uids)
    c._apply("ADDED", pod("e1", "gone", 2, "Running"))
    c._apply("DELETED", pod("e1", "gone", 3))
    uids["e1"] = "gone"
    c.trust("e1")
    assert c.get("e1") is None
