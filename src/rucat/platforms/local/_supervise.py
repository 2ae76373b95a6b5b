"""Run one engine command, wait for it, and record how it ended.

The local platform starts this script as the leader of an engine's process
group. An engine outlives the monitor that started it, so that monitor cannot
always collect its exit status; this supervisor can, and writes it to
EXIT_FILE for whichever monitor looks next.

The engine inherits the supervisor's stdout and stderr: LOG_FILE, opened for
appending by the platform, so the engine's output reaches it even if the
supervisor dies. With ``--log LOG_FILE`` the supervisor keeps it on disk
within ``--max-log-bytes``, as logrotate's copytruncate does: once LOG_FILE
passes half of that, its newest half-cap becomes LOG_FILE.1 (replacing the
one before), LOG_FILE is truncated, and LOG_FILE.rotated marks that the
current run's output now starts at its beginning. A chatty engine can then
never fill the disk, and its newest output is kept.

It is run by path with ``python -I -S`` and uses the standard library only, so
it starts in milliseconds and imports nothing of Rucat.

usage: python -I -S _supervise.py EXIT_FILE [--log LOG_FILE --max-log-bytes N] -- COMMAND [ARG...]
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from types import FrameType

#: How often the log's size is checked (seconds): it may pass its cap by what
#: the engine writes in that time.
_CHECK_SECS = 0.25
_CHUNK = 1 << 20


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


def _rotate_if_large(log: str, limit: int) -> None:
    """Copy-truncate `log` once it passed `limit` bytes: its last `limit` bytes
    become LOG.1, `log` restarts empty, and LOG.rotated says so. The engine
    keeps its file descriptor (O_APPEND: its next write lands at the new end)."""
    try:
        size = os.stat(log).st_size
        if size <= limit:
            return
        tmp = f"{log}.1.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(log, "rb") as src, os.fdopen(fd, "wb") as dst:
            src.seek(max(0, size - limit))
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
        os.replace(tmp, f"{log}.1")
        os.truncate(log, 0)  # what was written since the last read is lost
        os.close(os.open(f"{log}.rotated", os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError:
        pass  # a full disk or a removed folder: try again next time


def _parse(argv: list[str]) -> tuple[str, str | None, int, list[str]] | None:
    if "--" not in argv:
        return None
    split = argv.index("--")
    head, command = argv[:split], argv[split + 1 :]
    if len(head) not in (1, 5) or not command:
        return None
    if len(head) == 1:
        return head[0], None, 0, command
    if head[1] != "--log" or head[3] != "--max-log-bytes" or not head[4].isdigit():
        return None
    return head[0], head[2], int(head[4]), command


def main(argv: list[str]) -> int:
    parsed = _parse(argv)
    if parsed is None:
        print(__doc__.rsplit("usage: ", 1)[1], file=sys.stderr)
        return 2
    exit_file, log_file, max_log_bytes, command = parsed
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _outlive)
    try:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    except OSError as e:
        print(f"rucat: cannot run {command[0]}: {e}", file=sys.stderr, flush=True)
        _record(exit_file, {"returncode": None, "error": str(e), "time": time.time()})
        return 127
    returncode: int | None = None
    while returncode is None:
        try:
            returncode = child.wait(timeout=_CHECK_SECS)
        except subprocess.TimeoutExpired:
            if log_file is not None:
                _rotate_if_large(log_file, max(max_log_bytes // 2, 1))
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
