"""Linux process groups, identified so that a reused pid is never mistaken for ours.

A process is named by (pid, start time): the start time is field 22 of
``/proc/<pid>/stat`` (clock ticks since boot) and never changes for the
process's life, so a new process that later receives the same pid differs.

An engine runs as one process group whose leader is the supervisor. The
kernel keeps a pid allocated while any process still uses it as its group
id, so while a group has members no new process can be born with the
leader's pid. Hence group `pgid` is still the engine's iff its leader is the
recorded process, or no process has pid `pgid` at all and members remain
(the leader died first, its children live on).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat that Rucat uses."""

    pid: int
    comm: str
    state: str
    pgrp: int
    start_time: int

    @property
    def running(self) -> bool:
        """Not a zombie (exited, not yet reaped) or dead."""
        return self.state not in ("Z", "X", "x")


def read_stat(pid: int) -> ProcStat | None:
    """The process `pid` as it is now, or None when there is none."""
    try:
        raw = (_PROC / str(pid) / "stat").read_bytes().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may hold spaces and parentheses: it ends at the LAST ')'.
    head, _, tail = raw.rpartition(")")
    fields = tail.split()
    # tail starts at field 3 (state); field N is fields[N - 3].
    try:
        return ProcStat(
            pid=pid,
            comm=head.partition("(")[2],
            state=fields[0],
            pgrp=int(fields[2]),
            start_time=int(fields[19]),
        )
    except (IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    stat = read_stat(pid)
    return None if stat is None else stat.start_time


def snapshot() -> list[ProcStat]:
    """Every process visible now (one pass over /proc, to check many groups at once)."""
    out = []
    for entry in os.listdir(_PROC):
        if entry.isdigit():
            stat = read_stat(int(entry))
            if stat is not None:
                out.append(stat)
    return out


def group_members(
    pgid: int, leader_start_time: int, processes: list[ProcStat] | None = None
) -> list[ProcStat]:
    """The running processes of the group led by (pgid, leader_start_time).

    Empty when the group is gone, including when `pgid` now names someone else.
    `processes` is a `snapshot()` to reuse; default: a fresh one.
    """
    if processes is None:
        processes = snapshot()
    leader = next((p for p in processes if p.pid == pgid), None)
    if leader is not None and leader.start_time != leader_start_time:
        return []  # the pid was reused: our group emptied before that could happen
    return [
        stat
        for stat in processes
        if stat.pgrp == pgid and stat.running and stat.start_time >= leader_start_time
    ]


def group_alive(pgid: int, leader_start_time: int) -> bool:
    """Whether the group led by (pgid, leader_start_time) still has a running member.

    The same answer as `bool(group_members(...))`, in one read of /proc while the
    leader runs: a leader alive with its start time and group is a member. Only
    a leader gone (or a zombie) needs the scan of every process that tells
    whether its children live on. Monitors ask this several times a second.
    """
    leader = read_stat(pgid)
    if leader is not None:
        if leader.start_time != leader_start_time:
            return False  # the pid was reused: our group emptied before that could happen
        if leader.running and leader.pgrp == pgid:
            return True
    return bool(group_members(pgid, leader_start_time))


def signal_group(pgid: int, leader_start_time: int, sig: signal.Signals) -> bool:
    """Send `sig` to the group if it is still ours; returns whether it had members."""
    if not group_alive(pgid, leader_start_time):
        return False
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True
