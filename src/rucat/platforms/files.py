"""Small file operations of engines run as local processes: logs and private state.

Kept apart from the platform so any process platform (Local, Standalone) can
share them: private files are created with their final mode (no moment of
wider access) whatever the umask, state files are replaced atomically, logs
are read from the end. Everything an engine leaves on disk is its owner's
only (folders 0700, files 0600): logs and properties may hold secrets, and
another OS user on the machine must not read them.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections import deque
from pathlib import Path
from typing import BinaryIO

#: Modes of what Rucat keeps on disk: its owner's only.
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def open_private_log(path: Path) -> BinaryIO:
    """`path` opened for appending, created 0600 (an existing file is made 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
        return os.fdopen(fd, "ab")
    except BaseException:
        os.close(fd)
        raise


def append(path: Path, text: str) -> None:
    with open_private_log(path) as f:
        f.write(text.encode())


def make_private_dir(path: Path) -> None:
    """Create `path` and any missing parent 0700 (the umask cannot widen them)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a concurrent creator
            folder.mkdir(mode=PRIVATE_DIR)
            os.chmod(folder, PRIVATE_DIR)


def tighten(path: Path, mode: int) -> int | None:
    """Remove every permission bit of `path` beyond `mode`; the old mode if it
    changed, else None (also when it is absent). Never follows a symlink."""
    try:
        current = stat.S_IMODE(os.lstat(path).st_mode)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(os.lstat(path).st_mode) or current & ~mode == 0:
        return None
    os.chmod(path, current & mode)
    return current


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
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), PRIVATE_FILE)  # if it existed with a wider mode
        f.write(text)


#: Most bytes a tail reads from the end of a log, whatever its lines: the cost of
#: a tail is bounded (the saved tail is cut to 64 KiB, a failure reason shorter).
TAIL_MAX_BYTES = 1 << 20
_CHUNK = 64 << 10


def cut_marker(max_bytes: int) -> str:
    """Starts a line whose beginning a tail left out: it is longer than `max_bytes`."""
    return f"[rucat: line cut, a log tail reads at most {max_bytes} bytes] "


def tail(
    path: Path,
    lines: int,
    *,
    start: int = 0,
    max_bytes: int = TAIL_MAX_BYTES,
    older: Path | None = None,
) -> str:
    """The last `lines` lines of `path` from byte `start` on; '' if there is none.

    Reads at most `max_bytes` from the end, in chunks counted once each, so its
    cost is linear in the bytes read and bounded. A line that starts before
    that window is cut: its end is kept, after `cut_marker`. `older` is the
    file `path` was rotated from (its output came first), read when `path`
    alone has too few lines. Blocking: call it from async code with
    asyncio.to_thread.
    """
    if lines <= 0:
        return ""
    data, starts_mid_line = _read_back(path, lines, start, max_bytes)
    if (
        older is not None
        and not starts_mid_line
        and data.count(b"\n") <= lines
        and len(data) < max_bytes
    ):
        before, starts_mid_line = _read_back(older, lines, 0, max_bytes - len(data))
        data = before + data
    return _last_lines(data, lines, starts_mid_line, max_bytes)


def _read_back(path: Path, lines: int, start: int, max_bytes: int) -> tuple[bytes, bool]:
    """The end of `path` holding `lines` whole lines, within `max_bytes`, and
    whether it starts in the middle of a line."""
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
        return b"", False
    return b"".join(reversed(chunks)), starts_mid_line


def left_out_marker(left_out: int, max_bytes: int) -> str:
    """The first line of a whole log longer than a read may return."""
    return (
        f"[rucat: {left_out} earlier bytes of this log left out: "
        f"a read returns at most its last {max_bytes} bytes]\n"
    )


def whole(path: Path, *, max_bytes: int = TAIL_MAX_BYTES, older: Path | None = None) -> str:
    """All of the log at `path` (after `older`, as in `tail`), or only its last
    `max_bytes` after `left_out_marker`; '' if there is none. Blocking, bounded."""
    size = 0
    for part in (path, older):
        with contextlib.suppress(FileNotFoundError):
            size += os.stat(part).st_size if part is not None else 0
    text = tail(path, sys.maxsize, max_bytes=max_bytes, older=older)
    if size > max_bytes:
        return left_out_marker(size - max_bytes, max_bytes) + text
    return text


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
    """The last `lines` lines (None: all) of a log that arrives line by line (a
    pod's), in at most about `max_bytes` characters; a longer line is cut as
    `tail` cuts it, and a whole log cut short starts with `left_out_marker`."""

    def __init__(self, lines: int | None, *, max_bytes: int = TAIL_MAX_BYTES) -> None:
        self._lines = sys.maxsize if lines is None else lines
        self._whole = lines is None
        self._max = max_bytes
        self._kept: deque[str] = deque()
        self._size = self._left_out = 0

    def add(self, line: str) -> None:
        kept = self._kept
        kept.append(line)
        self._size += len(line)
        while len(kept) > self._lines or (self._size > self._max and len(kept) > 1):
            dropped = len(kept.popleft())
            self._size -= dropped
            self._left_out += dropped

    def text(self) -> str:
        if self._size > self._max:  # one line, longer than the window
            text = cut_marker(self._max) + self._kept[0][-self._max :]
            left_out = self._left_out + self._size - self._max
        else:
            text, left_out = "".join(self._kept), self._left_out
        if self._whole and left_out:
            return left_out_marker(left_out, self._max) + text
        return text
