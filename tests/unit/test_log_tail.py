"""Log tails: linear in the bytes they read, bounded whatever the lines, cut with a marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from rucat.platforms import files

MIB = 1 << 20


def sparse_log(path: Path, *, lines: int, line_bytes: int) -> None:
    """`lines` lines of `line_bytes` bytes each, ending ``line N``: NUL bytes in
    holes of a sparse file, so a log of hundreds of MiB costs no disk."""
    with open(path, "wb") as f:
        for n in range(lines):
            end = f"line {n}\n".encode()
            f.seek((n + 1) * line_bytes - len(end))
            f.write(end)


@pytest.mark.timeout(20)
def test_a_tail_of_200_lines_of_1_mib_reads_only_its_cap_and_cuts_the_line(
    tmp_path: Path,
) -> None:
    # Before, each 64 KiB step copied and rescanned all it had read: 200 MiB,
    # 3,200 times. This test then ran for many minutes instead of milliseconds.
    log = tmp_path / "engine.log"
    sparse_log(log, lines=201, line_bytes=MIB + 100)
    text = files.tail(log, 200)
    marker = files.cut_marker(files.TAIL_MAX_BYTES)
    assert text.startswith(marker)
    assert text.endswith("\0line 200\n")
    assert len(text) == len(marker) + files.TAIL_MAX_BYTES
    assert text.count("\n") == 1


def test_whole_lines_are_kept_and_only_the_one_that_starts_before_the_cap_is_cut(
    tmp_path: Path,
) -> None:
    log = tmp_path / "engine.log"
    log.write_text("".join(f"{n:03} " + "x" * 95 + "\n" for n in range(100)))  # 100 bytes each
    marker = files.cut_marker(250)
    assert files.tail(log, 2, max_bytes=250) == "".join(
        f"{n:03} " + "x" * 95 + "\n" for n in (98, 99)
    )
    cut = files.tail(log, 5, max_bytes=250)
    assert cut == marker + "x" * 49 + "\n" + files.tail(log, 2)
    assert files.tail(log, 5, max_bytes=300) == files.tail(log, 3)  # no line cut: no marker


def test_a_tail_from_a_runs_offset_never_marks_the_runs_first_line_as_cut(tmp_path: Path) -> None:
    log = tmp_path / "engine.log"
    log.write_text("old run\nnew run\nlast\n")
    assert files.tail(log, 10, start=len("old run\n")) == "new run\nlast\n"
    assert files.tail(log, 10, start=len("old run\n") + 4, max_bytes=100).startswith("run\n")


def test_a_log_with_no_newline_at_all_is_one_cut_line(tmp_path: Path) -> None:
    log = tmp_path / "engine.log"
    log.write_bytes(b"y" * 1000)
    assert files.tail(log, 3, max_bytes=10) == files.cut_marker(10) + "y" * 10


def test_a_whole_log_within_the_cap_is_all_of_it_and_a_longer_one_says_what_is_left_out(
    tmp_path: Path,
) -> None:
    log = tmp_path / "engine.log"
    assert files.whole(log) == ""
    log.write_text("".join(f"{n:03}\n" for n in range(100)))  # 4 bytes a line
    assert files.whole(log, max_bytes=400) == log.read_text()
    assert files.whole(log, max_bytes=12) == files.left_out_marker(388, 12) + "097\n098\n099\n"
    assert files.whole(log, max_bytes=10) == (
        files.left_out_marker(390, 10) + files.cut_marker(10) + "7\n098\n099\n"
    )


@pytest.mark.parametrize(
    ("lines", "max_bytes", "expected"),
    [
        pytest.param(["a\n", "b\n"], 100, "a\nb\n", id="all-of-it"),
        pytest.param(["aaaa\n", "b\n"], 4, "[left:5]b\n", id="earlier-lines-left-out"),
        pytest.param(["a\n", "b" * 9 + "\n"], 4, "[left:8][cut]bbb\n", id="one-long-line"),
    ],
)
def test_a_window_over_a_whole_log_says_how_much_it_left_out(
    lines: list[str], max_bytes: int, expected: str
) -> None:
    window = files.LineWindow(None, max_bytes=max_bytes)
    for line in lines:
        window.add(line)
    left = expected.partition("[left:")[2].partition("]")[0]
    if left:
        expected = expected.replace(f"[left:{left}]", files.left_out_marker(int(left), max_bytes))
    assert window.text() == expected.replace("[cut]", files.cut_marker(max_bytes))


@pytest.mark.parametrize(
    ("lines", "count", "max_bytes", "expected"),
    [
        pytest.param(["a\n", "b\n", "c\n"], 2, 100, "b\nc\n", id="last-count-lines"),
        pytest.param(["a\n", "b\n", "c\n"], 5, 100, "a\nb\nc\n", id="fewer-than-asked"),
        pytest.param(["aaaa\n", "bb\n", "cc\n"], 5, 6, "bb\ncc\n", id="whole-lines-in-the-cap"),
        pytest.param(["a\n", "b" * 9 + "\n"], 5, 4, "[cut]bbb\n", id="a-longer-line-is-cut"),
        pytest.param([], 5, 4, "", id="no-lines"),
    ],
)
def test_a_window_over_arriving_lines_keeps_the_last_within_its_cap(
    lines: list[str], count: int, max_bytes: int, expected: str
) -> None:
    window = files.LineWindow(count, max_bytes=max_bytes)
    for line in lines:
        window.add(line)
    assert window.text() == expected.replace("[cut]", files.cut_marker(max_bytes))


def test_a_tail_of_a_rotated_log_continues_into_the_file_it_was_rotated_from(
    tmp_path: Path,
) -> None:
    log, older = tmp_path / "engine.log", tmp_path / "engine.log.1"
    older.write_text("a\nb\nc\n")
    log.write_text("d\n")
    assert files.tail(log, 3, older=older) == "b\nc\nd\n"
    assert files.tail(log, 1, older=older) == "d\n"
    assert files.tail(log, 3, older=tmp_path / "absent") == "d\n"
    assert files.whole(log, older=older) == "a\nb\nc\nd\n"
    assert files.whole(log, older=older, max_bytes=4) == files.left_out_marker(4, 4) + "c\nd\n"
