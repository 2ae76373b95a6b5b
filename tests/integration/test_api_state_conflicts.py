"""Every (state, user action) pair through the API: allowed moves, 409s, trigger-state waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from rucat.domain.errors import EngineNotFound
from rucat.domain.state import REMOVED, TRIGGER_STATES, USER_TRANSITIONS, EngineState, UserAction
from rucat.server.actions import TRIGGER_WAIT, TriggerWait
from tests.integration.conftest import Api, StartApi, force_state

S = EngineState
A = UserAction

ALL_PAIRS = [(state, action) for state in EngineState for action in UserAction]


def _call(action: UserAction, engine_id: str) -> tuple[str, str]:
    if action is A.DELETE:
        return "DELETE", f"/engine/{engine_id}"
    return "POST", f"/engine/{engine_id}/{action.value.lower()}"


async def _engine_in(api: Api, state: EngineState) -> str:
    engine_id = await api.create()
    if state is not S.WaitToStart:
        await force_state(
            api.store,
            engine_id,
            state,
            message="boom" if state.value.startswith("Error") else None,
            endpoint="sc://127.0.0.1:1" if state is S.Running else None,
        )
    return engine_id


class SteppedClock:
    """A monotonic clock that only moves when the action sleeps: its trigger-state
    wait runs to the end at once, and the sleeps it took are counted."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, secs: float) -> None:
        self.now += secs
        self.sleeps += 1
        await asyncio.sleep(0)


@pytest.fixture
def stepped() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
async def api_waiting_on(start_api: StartApi, stepped: SteppedClock) -> AsyncIterator[Api]:
    """The API with the production trigger wait, on a clock that moves when it sleeps."""
    wait = TriggerWait(monotonic=stepped, sleep=stepped.sleep)
    async with start_api(trigger_wait=wait) as running:
        yield running


ALLOWED = [pair for pair in ALL_PAIRS if pair in USER_TRANSITIONS]
REFUSED = [
    pair
    for pair in ALL_PAIRS
    if pair not in USER_TRANSITIONS and not (pair[0] in TRIGGER_STATES and pair[1] is not A.DELETE)
]
WAITED = [
    pair
    for pair in ALL_PAIRS
    if pair not in USER_TRANSITIONS and pair[0] in TRIGGER_STATES and pair[1] is not A.DELETE
]


def _id(pair: tuple[EngineState, UserAction]) -> str:
    return f"{pair[1].value}-in-{pair[0].value}"


@pytest.mark.parametrize(("state", "action"), ALLOWED, ids=[_id(p) for p in ALLOWED])
async def test_allowed_action_moves_the_engine_to_the_tables_target(
    api: Api, state: EngineState, action: UserAction
) -> None:
    engine_id = await _engine_in(api, state)
    method, path = _call(action, engine_id)
    response = await api.client.request(method, path)
    assert response.status_code == 200, response.text
    target = USER_TRANSITIONS[(state, action)]
    if target is REMOVED.engine:
        with pytest.raises(EngineNotFound):
            await api.engine(engine_id)
    else:
        assert response.json()["state"] == target.value
        assert (await api.engine(engine_id)).state is target


@pytest.mark.parametrize(("state", "action"), REFUSED, ids=[_id(p) for p in REFUSED])
async def test_refused_action_is_409_naming_the_current_state_and_changes_nothing(
    api: Api, state: EngineState, action: UserAction
) -> None:
    engine_id = await _engine_in(api, state)
    before = await api.engine(engine_id)
    method, path = _call(action, engine_id)
    response = await api.client.request(method, path)
    assert response.status_code == 409, response.text
    assert state.value in response.json()["detail"]
    assert await api.engine(engine_id) == before


@pytest.mark.parametrize(("state", "action"), WAITED, ids=[_id(p) for p in WAITED])
async def test_action_on_a_trigger_state_the_monitor_never_leaves_is_409_after_a_wait(
    api_waiting_on: Api, stepped: SteppedClock, state: EngineState, action: UserAction
) -> None:
    api = api_waiting_on
    engine_id = await _engine_in(api, state)
    before = await api.engine(engine_id)
    method, path = _call(action, engine_id)
    response = await api.client.request(method, path)
    assert response.status_code == 409, response.text
    detail = response.json()["detail"]
    assert state.value in detail
    assert f"within {TRIGGER_WAIT.secs:g}s" in detail
    # It waited the whole production wait, re-reading the engine every poll.
    assert stepped.now >= TRIGGER_WAIT.secs
    polls = TRIGGER_WAIT.secs / TRIGGER_WAIT.poll_secs
    assert polls - 1 <= stepped.sleeps <= polls + 1, stepped.sleeps
    assert await api.engine(engine_id) == before


async def test_stop_during_trigger_start_applies_once_the_monitor_moves_on(api: Api) -> None:
    engine_id = await _engine_in(api, S.TriggerStart)
    stop = asyncio.create_task(api.client.post(f"/engine/{engine_id}/stop"))
    await asyncio.sleep(0.3)
    assert not stop.done()
    await force_state(api.store, engine_id, S.StartInProgress)
    response = await stop
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "WaitToTerminate"


async def test_restart_during_trigger_termination_applies_once_it_is_terminated(
    api: Api,
) -> None:
    engine_id = await _engine_in(api, S.TriggerTermination)
    restart = asyncio.create_task(api.client.post(f"/engine/{engine_id}/restart"))
    await asyncio.sleep(0.3)
    # One write (as when the stop finds nothing left): with two, a waiting restart
    # that polls in between sees TerminateInProgress and rightly answers 409.
    await force_state(api.store, engine_id, S.Terminated)
    response = await restart
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "WaitToStart"


async def test_stop_during_trigger_start_is_409_if_the_monitor_lands_in_an_error(
    api: Api,
) -> None:
    engine_id = await _engine_in(api, S.TriggerStart)
    stop = asyncio.create_task(api.client.post(f"/engine/{engine_id}/stop"))
    await asyncio.sleep(0.3)
    await force_state(api.store, engine_id, S.ErrorClean, message="no such image")
    response = await stop
    assert response.status_code == 409
    assert "ErrorClean" in response.json()["detail"]


async def test_concurrent_stops_write_exactly_one_transition_and_never_fail(api: Api) -> None:
    engine_id = await _engine_in(api, S.Running)
    responses = await asyncio.gather(
        *(api.client.post(f"/engine/{engine_id}/stop") for _ in range(12))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 1, codes
    assert set(codes) <= {200, 409}, codes
    for r in responses:
        if r.status_code == 409:
            assert "WaitToTerminate" in r.json()["detail"]
    events = (await api.client.get(f"/engine/{engine_id}/events")).json()
    assert [e["to_state"] for e in events].count("WaitToTerminate") == 1


async def test_concurrent_deletes_remove_once_and_the_others_see_404(api: Api) -> None:
    engine_id = await api.create()
    responses = await asyncio.gather(*(api.client.delete(f"/engine/{engine_id}") for _ in range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 1, codes
    assert set(codes) <= {200, 404}, codes


async def test_stop_racing_a_monitor_claim_follows_the_engine_to_its_new_state(api: Api) -> None:
    """The server's compare-and-set loses to a monitor's write, re-reads and re-decides."""
    engine_id = await _engine_in(api, S.StartInProgress)
    stops = [asyncio.create_task(api.client.post(f"/engine/{engine_id}/stop")) for _ in range(3)]
    await force_state(api.store, engine_id, S.Running, endpoint="sc://127.0.0.1:1")
    responses = await asyncio.gather(*stops)
    assert all(r.status_code in (200, 409) for r in responses)
    assert (await api.engine(engine_id)).state is S.WaitToTerminate
