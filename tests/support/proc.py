"""One pass over /proc for the processes a test looks for, by their command line.

The fake servers, the Local platform's JVMs and the engines under a data dir
are all found the same way: read each process's argv, keep the ones a
predicate picks. Only live processes count: a zombie (exited, not yet
reaped) or a process gone mid-scan is never returned.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from rucat.platforms.local.process import read_stat


def pids_where(matches: Callable[[list[bytes]], bool]) -> list[int]:
    """Pids of live processes, other than this one, whose argv `matches`.

    argv is /proc/<pid>/cmdline split on NUL (its last item is the empty
    string after the final NUL).
    """
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not matches(args):
            continue
        stat = read_stat(int(entry))
        if stat is not None and stat.running:
            pids.append(int(entry))
    return pids
