"""Warm pools as pure decisions: which pool a create takes from, what a hand-out writes,
and how many engines a pool starts, stops and removes."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import pytest

from rucat.domain.access import AccessLevel, Grant, GranteeKind
from rucat.domain.engine import CreateEngineRequest, Engine, EngineType, new_engine
from rucat.domain.errors import InvalidRequest
from rucat.domain.pool import (
    KEPT_FAILURES,
    PoolProfile,
    choose_pool,
    hand_out,
    is_idle_member,
    needs_warm_up,
    plan_orphans,
    plan_pool,
    warm_first,
)
from rucat.domain.quota import counts_anew
from rucat.domain.state import EngineState

S = EngineState
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SMALL = PoolProfile(
    name="small",
    engine_type=EngineType.Spark,
    version="4.0.1",
    configs={"spark.sql.shuffle.partitions": "4"},
    min_idle=2,
    max_idle=3,
    platform="Local",
)
BIG = dataclasses.replace(SMALL, name="big", configs={"spark.sql.shuffle.partitions": "64"})


def request(**changes: object) -> CreateEngineRequest:
    fields: dict[str, object] = {
        "name": "mine",
        "engine_type": EngineType.Spark,
        "version": "4.0.1",
        "configs": {"spark.sql.shuffle.partitions": "4"},
        **changes,
    }
    return CreateEngineRequest(**fields)  # type: ignore[arg-type]


def member(
    state: EngineState = S.Running,
    *,
    age: float = 0.0,
    profile: PoolProfile = SMALL,
    **changes: object,
) -> Engine:
    engine = new_engine(
        profile.request(),
        platform=profile.platform,
        now=T0 + timedelta(seconds=age),
        pool=profile.name,
    )
    return dataclasses.replace(
        engine, state=state, update_time=T0 + timedelta(seconds=age), **changes
    )  # type: ignore[arg-type]


# --- choosing a pool ---------------------------------------------------------


def test_a_create_with_a_pools_type_version_and_configs_takes_from_that_pool() -> None:
    assert choose_pool([BIG, SMALL], request(), named=None) == SMALL


@pytest.mark.parametrize(
    "changes",
    [
        {"version": "3.5.4"},
        {"configs": {}},
        {"configs": {"spark.sql.shuffle.partitions": "4", "spark.executor.memory": "1g"}},
    ],
    ids=["other-version", "fewer-configs", "more-configs"],
)
def test_a_create_with_another_profile_takes_from_no_pool(changes: dict[str, object]) -> None:
    assert choose_pool([SMALL, BIG], request(**changes), named=None) is None


def test_a_create_naming_a_pool_takes_from_it() -> None:
    assert choose_pool([SMALL, BIG], request(configs=dict(BIG.configs)), named="big") == BIG


def test_naming_an_unknown_pool_is_refused_with_the_known_ones() -> None:
    with pytest.raises(InvalidRequest, match="unknown pool 'huge'; pools: big, small"):
        choose_pool([SMALL, BIG], request(), named="huge")


def test_naming_a_pool_but_asking_for_other_configs_is_refused_naming_them() -> None:
    with pytest.raises(InvalidRequest, match=re.escape("spark.sql.shuffle.partitions differ")):
        choose_pool([SMALL, BIG], request(), named="big")


def test_naming_a_pool_but_asking_for_another_version_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=re.escape("runs version 4.0.1, not 3.5.4")):
        choose_pool([SMALL], request(version="3.5.4"), named="small")


# --- a hand-out --------------------------------------------------------------


def test_a_hand_out_gives_the_engine_the_requests_name_and_owner_and_takes_it_out_of_the_pool() -> (
    None
):
    idle = member(auto_stop_minutes=0.0)
    now = T0 + timedelta(hours=1)
    taken = hand_out(idle, name="mine", owner="alice", auto_stop_minutes=30.0, now=now)
    assert (taken.name, taken.owner, taken.pool) == ("mine", "alice", None)
    assert taken.state is S.Running
    assert taken.auto_stop_minutes == 30.0
    assert taken.update_time == now  # its idle time starts at the hand-out
    assert (taken.id, taken.revision, taken.connect_token) == (
        idle.id,
        idle.revision,
        idle.connect_token,
    )


def test_only_running_ownerless_engines_of_the_pools_profile_are_idle_members() -> None:
    assert is_idle_member(member(), SMALL)
    assert not is_idle_member(member(S.StartInProgress), SMALL)
    assert not is_idle_member(member(owner="alice"), SMALL)
    assert not is_idle_member(member(pool=None), SMALL)
    assert not is_idle_member(member(profile=BIG), SMALL)
    assert not is_idle_member(member(configs={}), SMALL)  # the pool's profile changed
    assert not is_idle_member(member(platform="Kubernetes"), SMALL)


def test_a_hand_out_counts_against_the_new_owners_quota() -> None:
    assert counts_anew(S.Running, None, S.Running, "alice")
    assert not counts_anew(S.Running, "alice", S.Running, "alice")
    assert not counts_anew(S.Running, None, S.Running, None)
    assert counts_anew(S.Terminated, "alice", S.WaitToStart, "alice")
    assert not counts_anew(S.Running, None, S.Terminated, "alice")


# --- keeping a pool ----------------------------------------------------------


def test_an_empty_pool_starts_min_idle_engines() -> None:
    assert plan_pool(SMALL, []).start == 2


def test_engines_on_their_way_count_so_a_slow_start_is_not_doubled() -> None:
    plan = plan_pool(SMALL, [member(S.WaitToStart), member(S.StartInProgress)])
    assert plan.start == 0 and plan.stop == () and plan.remove == ()


def test_a_pool_at_min_idle_starts_nothing() -> None:
    assert plan_pool(SMALL, [member(), member()]).start == 0


def test_a_dead_engine_no_longer_counts_and_is_replaced_at_once() -> None:
    plan = plan_pool(SMALL, [member(), member(S.ErrorWaitToClean)])
    assert plan.start == 1


def test_a_pool_above_max_idle_stops_the_surplus_starting_ones_first_then_the_newest() -> None:
    old, new, starting = member(age=0), member(age=10), member(S.StartInProgress, age=5)
    extra = member(age=20)
    plan = plan_pool(SMALL, [old, new, starting, extra, member(age=1)])
    assert plan.start == 0
    assert plan.stop == (starting, extra)


def test_engines_of_an_old_profile_are_stopped_and_replaced() -> None:
    stale = member(configs={})
    plan = plan_pool(SMALL, [stale, member()])
    assert plan.stop == (stale,)
    assert plan.start == 1


def test_stopped_engines_are_removed_and_failed_ones_but_the_newest_few() -> None:
    stopped = member(S.Terminated)
    failed = [member(S.ErrorClean, age=i) for i in range(KEPT_FAILURES + 2)]
    plan = plan_pool(SMALL, [stopped, *failed, member(), member()])
    assert plan.remove == (stopped, failed[1], failed[0])


def test_engines_of_other_pools_are_not_this_pools() -> None:
    plan = plan_pool(SMALL, [member(profile=BIG), member(profile=BIG, state=S.Terminated)])
    assert plan.start == 2 and plan.remove == () and plan.stop == ()


def test_a_handed_out_engine_is_never_the_pools_again() -> None:
    taken = hand_out(member(), name="x", owner="bob", auto_stop_minutes=None, now=T0)
    assert plan_pool(SMALL, [taken]).start == 2
    assert not is_idle_member(taken, SMALL)


def test_grants_never_follow_an_engine_out_of_the_pool() -> None:
    granted = member(grants=(Grant(kind=GranteeKind.user, name="eve", level=AccessLevel.MANAGE),))
    assert hand_out(granted, name="x", owner="bob", auto_stop_minutes=None, now=T0).grants == ()


def test_engines_of_a_pool_no_longer_configured_are_stopped_or_removed() -> None:
    running, starting = member(profile=BIG), member(S.WaitToStart, profile=BIG)
    stopped, failed = member(S.Terminated, profile=BIG), member(S.ErrorClean, profile=BIG)
    stopping = member(S.WaitToTerminate, profile=BIG)
    handed = hand_out(member(profile=BIG), name="x", owner="bob", auto_stop_minutes=None, now=T0)
    plan = plan_orphans([SMALL], [running, starting, stopped, failed, stopping, handed, member()])
    assert plan.stop == (running, starting)
    assert plan.remove == (stopped, failed)
    assert plan.start == 0


def test_a_hand_out_tries_warm_engines_first_and_keeps_the_given_order_within_each() -> None:
    cold_a, warm_a, cold_b, warm_b = (
        member(last_activity_time=T0 if warm else None) for warm in (False, True, False, True)
    )
    assert warm_first([cold_a, warm_a, cold_b, warm_b]) == [warm_a, warm_b, cold_a, cold_b]


def test_only_a_cold_idle_member_needs_a_warm_up() -> None:
    assert needs_warm_up(member(), SMALL)
    assert not needs_warm_up(member(last_activity_time=T0), SMALL)
    assert not needs_warm_up(member(S.StartInProgress), SMALL)
    assert not needs_warm_up(member(owner="alice"), SMALL)
