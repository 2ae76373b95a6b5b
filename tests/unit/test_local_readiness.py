"""The Local platform's readiness: one owner of which engines are starting and whether they answer.

Probes are the Spark kind's real AnalyzePlan call against a real gRPC server
(tests/support/fake_connect.py), no JVM.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from rucat.engines.spark import SPARK
from rucat.platforms.local.readiness import Answered, NotYet, Readiness, Refused
from tests.support.fake_connect import FakeConnect


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server() -> AsyncIterator[FakeConnect]:
    fake = FakeConnect(token="t0ken")
    await fake.start()
    yield fake
    await fake.stop()


async def probe(engine_id: str, target: str, token: str | None, timeout: float) -> str:
    return await SPARK.probe(engine_id=engine_id, target=target, token=token, timeout=timeout)


async def test_an_engine_without_a_port_yet_is_awaited_and_not_probed(server: FakeConnect) -> None:
    readiness = Readiness(probe)
    answer = await readiness.check("e1", target=None, token="t0ken", timeout=2)
    assert answer == NotYet("the engine has not opened its port yet")
    assert readiness.awaited() == {"e1": "t0ken"}
    assert server.calls == 0


async def test_an_answer_ends_the_wait(server: FakeConnect) -> None:
    readiness = Readiness(probe)
    readiness.expect("e1", "t0ken")
    answer = await readiness.check("e1", target=server.target, token="t0ken", timeout=2)
    assert answer == Answered(server.target)
    assert readiness.awaited() == {}


async def test_a_silent_engine_stays_awaited_with_the_reason(server: FakeConnect) -> None:
    readiness = Readiness(probe)
    server.answering = False
    answer = await readiness.check("e1", target=server.target, token="t0ken", timeout=2)
    assert answer == NotYet(f"the engine at {server.target} does not answer yet")
    assert readiness.is_awaited("e1")


async def test_a_refused_token_is_refused_not_pending(server: FakeConnect) -> None:
    readiness = Readiness(probe)
    answer = await readiness.check("e1", target=server.target, token="wrong", timeout=2)
    assert isinstance(answer, Refused) and "refused" in answer.reason


async def test_the_inspect_after_the_watchers_answer_reuses_it(server: FakeConnect) -> None:
    clock = Clock()
    readiness = Readiness(probe, fresh_secs=1.0, clock=clock)
    readiness.expect("e1", "t0ken")
    assert isinstance(
        await readiness.check("e1", target=server.target, token="t0ken", timeout=1), Answered
    )
    assert isinstance(
        await readiness.check("e1", target=server.target, token="t0ken", timeout=5), Answered
    )
    assert server.calls == 1
    clock.now += 1.5  # no longer fresh: asked again
    assert isinstance(
        await readiness.check("e1", target=server.target, token="t0ken", timeout=5), Answered
    )
    assert server.calls == 2


async def test_a_restart_or_a_stop_forgets_the_earlier_answer(server: FakeConnect) -> None:
    readiness = Readiness(probe, clock=Clock())
    await readiness.check("e1", target=server.target, token="t0ken", timeout=2)
    readiness.expect("e1", "t0ken")
    assert readiness.is_awaited("e1")
    await readiness.check("e1", target=server.target, token="t0ken", timeout=2)
    assert server.calls == 2
    readiness.drop("e1")
    assert not readiness.is_awaited("e1")
    await readiness.check("e1", target=server.target, token="t0ken", timeout=2)
    assert server.calls == 3


async def test_two_callers_at_once_share_one_probe(server: FakeConnect) -> None:
    readiness = Readiness(probe, clock=Clock())
    answers = await asyncio.gather(
        readiness.check("e1", target=server.target, token="t0ken", timeout=2),
        readiness.check("e1", target=server.target, token="t0ken", timeout=2),
    )
    assert answers == [Answered(server.target)] * 2
    assert server.calls == 1


async def test_a_more_patient_caller_does_not_ride_on_a_hastier_probe(server: FakeConnect) -> None:
    readiness = Readiness(probe, clock=Clock())
    await asyncio.gather(
        readiness.check("e1", target=server.target, token="t0ken", timeout=1),
        readiness.check("e1", target=server.target, token="t0ken", timeout=5),
    )
    assert server.calls == 2
