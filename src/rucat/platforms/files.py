"""Small file operations of engines run as local processes: logs and private state.

Kept apart from the platform so any process platform (Local, Standalone) can
share them: private files are created with their final mode (no moment of
wider access), state files are replaced atomically, logs are read from the end.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import deque
from pathlib import Path
from typing import BinaryIO


def append(path: Path, text: str) -> None:
    with open(path, "ab") as f:
        f.write(text.encode())


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old text or the new, never a part (one temp file per writer)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, without a moment of wider access."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)  # if it existed with a wider mode
        f.write(text)


#: Most bytes a tail reads from the end of a log, whatever its lines: the cost of
#: a tail is bounded (the saved tail is cut to 64 KiB, a failure reason shorter).
TAIL_MAX_BYTES = 1 << 20
_CHUNK = 64 << 10


def cut_marker(max_bytes: int) -> str:
    """Starts a line whose beginning a tail left out: it is longer than `max_bytes`."""
    return f"[rucat: line cut, a log tail reads at most {max_bytes} bytes] "


def tail(path: Path, lines: int, *, start: int = 0, max_bytes: int = TAIL_MAX_BYTES) -> str:
    """The last `lines` lines of `path` from byte `start` on; '' if there is none.

    Reads at most `max_bytes` from the end, in chunks counted once each, so its
    cost is linear in the bytes read and bounded. A line that starts before
    that window is cut: its end is kept, after `cut_marker`. Blocking: call it
    from async code with asyncio.to_thread.
    """
    if lines <= 0:
        return ""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            floor = max(start, end - max_bytes)
            chunks: list[bytes] = []  # from the end backwards
            newlines, pos = 0, end
            # lines + 1 newlines: the first of the last `lines` lines is whole.
            while pos > floor and newlines <= lines:
                step = min(_CHUNK, pos - floor)
                pos -= step
                f.seek(pos)
                chunk = f.read(step)
                chunks.append(chunk)
                newlines += chunk.count(b"\n")
            starts_mid_line = pos > start and _byte_before(f, pos) != b"\n"
    except FileNotFoundError:
        return ""
    return _last_lines(b"".join(reversed(chunks)), lines, starts_mid_line, max_bytes)


def _byte_before(f: BinaryIO, pos: int) -> bytes:
    f.seek(pos - 1)
    return f.read(1)


def _last_lines(data: bytes, lines: int, starts_mid_line: bool, max_bytes: int) -> str:
    pieces = data.split(b"\n")
    found = [p + b"\n" for p in pieces[:-1]]
    if pieces[-1]:
        found.append(pieces[-1])  # the last line, still without its newline
    kept = found[-lines:]
    text = b"".join(kept).decode("utf-8", "replace")
    if starts_mid_line and len(kept) == len(found) and kept:
        return cut_marker(max_bytes) + text
    return text


class LineWindow:
    """The last `lines` lines of a log that arrives line by line (a pod's), in at
    most about `max_bytes` characters; a longer line is cut as `tail` cuts it."""

    def __init__(self, lines: int, *, max_bytes: int = TAIL_MAX_BYTES) -> None:
        self._lines, self._max = lines, max_bytes
        self._kept: deque[str] = deque()
        self._size = 0

    def add(self, line: str) -> None:
        kept = self._kept
        kept.append(line)
        self._size += len(line)
        while len(kept) > self._lines or (self._size > self._max and len(kept) > 1):
            self._size -= len(kept.popleft())

    def text(self) -> str:
        if self._size > self._max:  # one line, longer than the window
            return cut_marker(self._max) + self._kept[0][-self._max :]
        return "".join(self._kept)
