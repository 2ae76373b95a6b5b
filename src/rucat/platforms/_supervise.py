"""Run one engine command, wait for it, and record how it ended.

The local platform starts this script as the leader of an engine's process
group, with the engine's log as stdout and stderr. An engine outlives the
monitor that started it, so that monitor cannot always collect its exit
status; this supervisor can, and writes it to EXIT_FILE for whichever monitor
looks next.

It is run by path with ``python -I -S`` and uses the standard library only, so
it starts in milliseconds and imports nothing of Rucat.

usage: python -I -S _supervise.py EXIT_FILE -- COMMAND [ARG...]
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from types import FrameType


def _outlive(signum: int, frame: FrameType | None) -> None:
    """SIGTERM/SIGINT/SIGHUP to the group stop the engine; the supervisor stays to
    record its status. A Python handler, not SIG_IGN: ignored signals would stay
    ignored in the engine across exec, and the JVM would then ignore SIGTERM."""


def _record(exit_file: str, status: dict[str, object]) -> None:
    tmp = f"{exit_file}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # owner-only
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(status, f)
    os.replace(tmp, exit_file)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: _supervise.py EXIT_FILE -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    exit_file, command = argv[0], argv[2:]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _outlive)
    try:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    except OSError as e:
        print(f"rucat: cannot run {command[0]}: {e}", file=sys.stderr, flush=True)
        _record(exit_file, {"returncode": None, "error": str(e), "time": time.time()})
        return 127
    returncode = child.wait()
    if returncode < 0:
        try:
            how = f"was killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"was killed by signal {-returncode}"
    else:
        how = f"exited with status {returncode}"
    print(f"rucat: engine process {child.pid} {how}", file=sys.stderr, flush=True)
    _record(exit_file, {"returncode": returncode, "pid": child.pid, "time": time.time()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
