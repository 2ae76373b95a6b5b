"""Benchmark (not a test): the cost of an engine log's tail, whatever its lines.

Writes sparse logs (NUL bytes in holes, so hundreds of MiB cost no disk) of
short lines and of 1 MiB lines, then times `files.tail(log, 200)` (the saved
tail before every stop) on each, beside a baseline measured in the same run:
one plain read of the last `files.TAIL_MAX_BYTES` of the same file, decoded
(the least any bounded tail must do). Prints
milliseconds and the ratio to the baseline; target: ratio <= 5 for both, that
is, a tail costs about one bounded read however long the lines are. (Before
issue 15, the 1 MiB-line tail copied and rescanned 200 MiB 3,200 times and
took minutes.)

    uv run python bench/log_tail.py [--repeat 20]
"""

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from rucat.platforms import files  # noqa: E402


def sparse_log(path: Path, *, lines: int, line_bytes: int) -> None:
    with open(path, "wb") as f:
        for n in range(lines):
            end = f"line {n}\n".encode()
            f.seek((n + 1) * line_bytes - len(end))
            f.write(end)


def best_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def plain_read(path: Path) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - files.TAIL_MAX_BYTES))
        return f.read().decode("utf-8", "replace")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "201 lines of 1 MiB": (201, (1 << 20) + 100),
            "2M lines of 100 B": (2_000_000, 100),
        }
        for name, (lines, line_bytes) in cases.items():
            log = Path(tmp) / f"engine-{lines}.log"
            sparse_log(log, lines=lines, line_bytes=line_bytes)
            baseline = best_ms(functools.partial(plain_read, log), args.repeat)
            tail = best_ms(functools.partial(files.tail, log, 200), args.repeat)
            print(
                f"{name:>20}: tail(200) {tail:8.2f} ms, "
                f"baseline read+decode of {files.TAIL_MAX_BYTES >> 20} MiB {baseline:6.2f} ms, "
                f"ratio {tail / baseline:5.2f}"
            )
            log.unlink()


if __name__ == "__main__":
    main()
