"""Small file operations of engines run as local processes: logs and private state.

Kept apart from the platform so any process platform (Local, Standalone) can
share them: private files are created with their final mode (no moment of
wider access), state files are replaced atomically, logs are read from the end.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


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


def tail(path: Path, lines: int, *, start: int = 0) -> str:
    """The last `lines` lines of `path` from byte `start` on; '' if there is none."""
    if lines <= 0:
        return ""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            pos, data = end, b""
            while pos > start and data.count(b"\n") <= lines:
                step = min(64 << 10, pos - start)
                pos -= step
                f.seek(pos)
                data = f.read(step) + data
    except FileNotFoundError:
        return ""
    kept = data.decode("utf-8", "replace").splitlines(keepends=True)[-lines:]
    return "".join(kept)
