"""Process groups as the Local platform sees them: `group_alive` gives the answer
`group_members` gives, with real processes (leaders alive, gone, zombies)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from rucat.platforms.local import process as proc


def spawn(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, start_new_session=True)


def started(child: subprocess.Popen[bytes]) -> int:
    start = proc.start_time(child.pid)
    assert start is not None
    return start


@pytest.fixture
def groups() -> Iterator[list[int]]:
    """Process groups a test started; killed afterwards whatever happened."""
    pgids: list[int] = []
    yield pgids
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_group_whose_leader_runs_is_alive(groups: list[int]) -> None:
    child = spawn("sleep", "30")
    groups.append(child.pid)
    assert proc.group_alive(child.pid, started(child))
    assert proc.group_members(child.pid, started(child))


def test_a_group_named_with_another_start_time_is_not_ours(groups: list[int]) -> None:
    child = spawn("sleep", "30")
    groups.append(child.pid)
    assert not proc.group_alive(child.pid, started(child) - 1)


def test_a_group_whose_leader_exited_is_alive_while_a_member_runs(groups: list[int]) -> None:
    # The leader starts a member, then exits and is reaped: the group lives on.
    leader = spawn("sh", "-c", "sleep 30 & echo started")
    groups.append(leader.pid)
    start = started(leader)
    leader.wait(timeout=10)
    wait_until(lambda: proc.group_members(leader.pid, start))
    assert proc.group_alive(leader.pid, start)
    os.killpg(leader.pid, signal.SIGKILL)
    wait_until(lambda: not proc.group_members(leader.pid, start))
    assert not proc.group_alive(leader.pid, start)


def test_a_zombie_leader_with_no_member_left_is_not_alive(groups: list[int]) -> None:
    leader = spawn("true")
    groups.append(leader.pid)
    start = started(leader)
    # Exited, not reaped yet: a zombie, which runs nothing.
    wait_until(lambda: (stat := proc.read_stat(leader.pid)) is None or not stat.running)
    assert not proc.group_alive(leader.pid, start)
    assert not proc.group_members(leader.pid, start)
    leader.wait(timeout=10)
    assert not proc.group_alive(leader.pid, start)
