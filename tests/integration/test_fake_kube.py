"""The fake API server behaves like Kubernetes for the real client (lightkube)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.resources.core_v1 import Namespace, Pod, Secret, Service

from tests.support import eventually
from tests.support.fake_kube import FakeKube, merge_patch, parse_selector


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube(namespaces=("default", "other")) as server:
        yield server


@pytest.fixture
async def client(fake: FakeKube, tmp_path: Path) -> AsyncIterator[AsyncClient]:
    path = fake.write_kubeconfig(tmp_path / "kubeconfig")
    c = AsyncClient(KubeConfig.from_file(path), namespace="default")
    yield c
    await c.close()


async def _watching(fake: FakeKube) -> bool:
    return fake.active_watches > 0


def pod(name: str, image: str = "apache/spark:4.0.1", **labels: str) -> Pod:
    return Pod.from_dict(
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "main", "image": image}]},
        }
    )


async def status_of(call: Any) -> int:
    with pytest.raises(ApiError) as info:
        await call
    return int(info.value.status.code)


async def test_create_get_and_list_by_label_selector(client: AsyncClient) -> None:
    await client.create(pod("a", app="x", tier="web"))
    await client.create(pod("b", app="y"))
    got = await client.get(Pod, "a")
    assert got.metadata.labels == {"app": "x", "tier": "web"}
    assert got.status.phase == "Pending"
    names = [p.metadata.name async for p in client.list(Pod, labels={"app": "x"})]
    assert names == ["a"]
    all_names = sorted([p.metadata.name async for p in client.list(Pod)])
    assert all_names == ["a", "b"]


async def test_duplicates_are_409_missing_are_404_invalid_are_422(client: AsyncClient) -> None:
    await client.create(pod("a"))
    assert await status_of(client.create(pod("a"))) == 409
    assert await status_of(client.get(Pod, "nope")) == 404
    assert await status_of(client.delete(Pod, "nope")) == 404
    assert await status_of(client.create(pod("Bad_Name"))) == 422
    assert await status_of(client.create(pod("no-image", image=""))) == 422
    bad_port = Pod.from_dict(
        {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "m", "image": "i", "ports": [{"containerPort": 0}]}]},
        }
    )
    assert await status_of(client.create(bad_port)) == 422
    long_service = Service.from_dict(
        {"metadata": {"name": "s" * 64}, "spec": {"ports": [{"port": 80}]}}
    )
    assert await status_of(client.create(long_service)) == 422


async def test_creating_in_a_missing_namespace_is_404(client: AsyncClient) -> None:
    assert await status_of(client.create(pod("a"), namespace="missing")) == 404
    assert await status_of(client.get(Namespace, "missing")) == 404
    assert (await client.get(Namespace, "other")).metadata.name == "other"


async def test_patch_merges_and_delete_removes(client: AsyncClient) -> None:
    secret = Secret.from_dict({"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    await client.create(secret)
    await client.patch(Secret, "s", {"metadata": {"labels": {"a": "b"}}})
    got = await client.get(Secret, "s")
    assert got.metadata.labels == {"a": "b"}
    assert got.data == {"k": "dg=="}
    await client.delete(Secret, "s")
    assert await status_of(client.get(Secret, "s")) == 404


async def test_watch_streams_changes_and_resumes_from_a_version(
    fake: FakeKube, client: AsyncClient
) -> None:
    listing = client.list(Pod)
    _ = [p async for p in listing]
    start = listing.resourceVersion
    events: list[tuple[str, str, str | None]] = []

    async def collect(n: int, rv: str) -> None:
        async for kind, obj in client.watch(Pod, resource_version=rv):
            events.append((kind, obj.metadata.name, obj.status.phase if obj.status else None))
            if len(events) >= n:
                return

    task = asyncio.create_task(collect(3, start))
    await client.create(pod("a"))
    await eventually(lambda: _watching(fake), timeout=10, interval=0.01, what="a watch")
    assert fake.kubelet_ready("default", "a")
    await client.delete(Pod, "a")
    await asyncio.wait_for(task, 10)
    assert events == [
        ("ADDED", "a", "Pending"),
        ("MODIFIED", "a", "Running"),
        ("DELETED", "a", "Running"),
    ]
    # Resuming from the first version replays the same history.
    events.clear()
    await asyncio.wait_for(collect(3, start), 10)
    assert [e[0] for e in events] == ["ADDED", "MODIFIED", "DELETED"]


async def test_a_compacted_history_answers_410_gone(fake: FakeKube, client: AsyncClient) -> None:
    listing = client.list(Pod)
    _ = [p async for p in listing]
    await client.create(pod("a"))
    fake.compact()
    with pytest.raises(ApiError) as info:
        async for _event in client.watch(Pod, resource_version=listing.resourceVersion):
            pass
    assert info.value.status.code == 410


async def test_dropping_watches_ends_their_streams(fake: FakeKube, client: AsyncClient) -> None:
    async def watch_once() -> None:
        async for _event in client.watch(Pod, resource_version="1"):
            pass

    task = asyncio.create_task(watch_once())
    await eventually(lambda: _watching(fake), timeout=10, interval=0.01, what="a watch")
    assert fake.drop_watches(abrupt=True) == 1
    with pytest.raises(Exception):  # noqa: B017 - the client sees a cut connection
        await asyncio.wait_for(task, 10)


async def test_pod_logs_can_be_tailed_and_a_missing_pod_is_404(
    fake: FakeKube, client: AsyncClient
) -> None:
    await client.create(pod("a"))
    assert await status_of(_read_log(client, "a")) == 400  # container still waiting
    fake.kubelet_ready("default", "a")
    fake.set_pod_log("default", "a", "one\ntwo\nthree\n")
    assert await _read_log(client, "a", tail=2) == "two\nthree\n"
    assert await status_of(_read_log(client, "nope")) == 404


async def _read_log(client: AsyncClient, name: str, tail: int | None = None) -> str:
    return "".join([line async for line in client.log(name, tail_lines=tail)])


async def test_deleting_an_owner_pod_deletes_its_dependents(
    fake: FakeKube, client: AsyncClient
) -> None:
    owner = await client.create(pod("driver"))
    dependent = pod("executor-1")
    dependent.metadata.ownerReferences = [  # type: ignore[attr-defined]
        {"apiVersion": "v1", "kind": "Pod", "name": "driver", "uid": owner.metadata.uid}
    ]
    await client.create(dependent)
    await client.delete(Pod, "driver")
    assert fake.objects("pods") == []


async def test_a_wrong_token_is_401(fake: FakeKube, tmp_path: Path) -> None:
    path = fake.write_kubeconfig(tmp_path / "kc")
    path.write_text(path.read_text().replace(fake.token, "wrong"))
    c = AsyncClient(KubeConfig.from_file(path))
    try:
        assert await status_of(c.get(Pod, "x")) == 401
    finally:
        await c.close()


def test_label_selectors_follow_kubernetes_syntax() -> None:
    labels = {"a": "1", "b": "2"}

    def ok(text: str) -> bool:
        return all(req(labels) for req in parse_selector(text))

    assert ok("a=1,b==2") and ok("a!=2") and ok("a") and ok("!c")
    assert ok("a in (1,3),b notin (3)") and not ok("a in (3)") and not ok("c")


def test_merge_patch_follows_rfc_7386() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {
        "a": {"c": 2, "d": 3}
    }
