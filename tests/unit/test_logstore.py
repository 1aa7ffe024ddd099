"""LogStore: the append-only, chunked line store behind each log pane."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import pytest

from matui.engine.logstore import CHUNK_LINES, LogStore

DATA = Path(__file__).parent.parent / "data" / "progress"


def make(lines: list[str], batch: int = 1000, max_lines: int | None = None) -> LogStore:
    store = LogStore(max_lines=max_lines)
    for i in range(0, len(lines), batch):
        store.append(lines[i : i + batch])
    return store


def numbered(n: int) -> list[str]:
    return [f"#7 {i / 100:.2f} line {i}" for i in range(n)]


# -- append / len / line ------------------------------------------------------------------


def test_append_len_line_across_chunks() -> None:
    lines = numbered(3 * CHUNK_LINES + 17)
    store = make(lines, batch=999)
    assert len(store) == len(lines)
    for i in (0, 1, CHUNK_LINES - 1, CHUNK_LINES, 2 * CHUNK_LINES + 5, len(lines) - 1):
        assert store.line(i) == lines[i]
    assert store.line(-1) == lines[-1]
    assert store.lines(CHUNK_LINES - 2, CHUNK_LINES + 3) == lines[CHUNK_LINES - 2 : CHUNK_LINES + 3]
    assert store.lines(0, len(lines) + 50) == lines
    assert store.lines(10, 5) == []
    with pytest.raises(IndexError):
        store.line(len(lines))


def test_empty_lines_and_empty_batches() -> None:
    store = LogStore()
    store.append([])
    assert len(store) == 0
    assert store.search("x") is None
    store.append(["", "a", ""])
    assert [store.line(i) for i in range(3)] == ["", "a", ""]
    assert store.lines(0, 3) == ["", "a", ""]


def test_huge_lines_seal_chunks_early() -> None:
    big = "x" * 300_000
    store = make([big, "small", big, big, big, "tail"], batch=2)
    assert len(store) == 6
    assert store.line(0) == big and store.line(1) == "small" and store.line(5) == "tail"


# -- search -------------------------------------------------------------------------------


@pytest.fixture
def searchable() -> LogStore:
    lines = numbered(2 * CHUNK_LINES + 100)
    lines[10] = "#8 0.1 Needle in a haystack"
    lines[CHUNK_LINES + 3] = "#8 0.2 another needle"
    lines[-5] = "#8 0.3 NEEDLE at the end"
    return make(lines, batch=777)


def test_search_forward_wraps(searchable: LogStore) -> None:
    n = len(searchable)
    assert searchable.search("needle") == 10
    assert searchable.search("needle", start=10) == 10
    assert searchable.search("needle", start=11) == CHUNK_LINES + 3
    assert searchable.search("needle", start=CHUNK_LINES + 4) == n - 5
    assert searchable.search("needle", start=n - 4) == 10  # wrapped
    assert searchable.search("needle", start=n) == 10  # start is taken modulo len


def test_search_backwards_wraps(searchable: LogStore) -> None:
    n = len(searchable)
    assert searchable.search("needle", start=n - 1, backwards=True) == n - 5
    assert searchable.search("needle", start=n - 6, backwards=True) == CHUNK_LINES + 3
    assert searchable.search("needle", start=CHUNK_LINES + 3, backwards=True) == CHUNK_LINES + 3
    assert searchable.search("needle", start=9, backwards=True) == n - 5  # wrapped
    assert searchable.search("needle", start=-1, backwards=True) == n - 5


def test_search_ignore_case_and_regex(searchable: LogStore) -> None:
    n = len(searchable)
    assert searchable.search("needle", ignore_case=False) == CHUNK_LINES + 3
    assert searchable.search("NEEDLE", ignore_case=False) == n - 5
    assert searchable.search(r"^#8 0\.\d (?:another|NEEDLE)\b", ignore_case=False) == (
        CHUNK_LINES + 3
    )
    assert searchable.search(r"^#8 0\.\d (?:another|NEEDLE)\b") == 10
    assert searchable.search(r"haystack$") == 10
    assert searchable.search("a.other", regex=False) is None
    assert searchable.search("a.other") == CHUNK_LINES + 3
    assert searchable.search("line 4242$") == 4242
    assert searchable.search("no such text") is None


def test_search_tail_only_and_non_ascii() -> None:
    store = LogStore()
    store.append(["first", "Ünïcode NEEDLE", "last"])  # all in the unsealed tail
    assert store.search("needle") == 1
    assert store.search("ünïcode") == 1
    assert store.search("ÜNÏCODE", ignore_case=False) is None


def test_matches_never_span_lines() -> None:
    store = make(["alpha", "beta gamma", "delta"])
    # On the joined text "alpha\nbeta gamma" would match from line 0; per line only line 1 does.
    assert store.find_all(r"\w+\s\w+") == [1]
    assert store.find_all(r"a\sb") == []
    assert store.find_all("^") == [0, 1, 2]  # an empty match on every line
    assert store.find_all("ta$") == [2]


def test_invalid_regex_raises_value_error(searchable: LogStore) -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        searchable.search("(unclosed")
    with pytest.raises(ValueError, match="invalid regular expression"):
        searchable.find_all("[z-a]")
    assert searchable.search("(unclosed", regex=False) is None


def test_find_all(searchable: LogStore) -> None:
    n = len(searchable)
    assert searchable.find_all("needle") == [10, CHUNK_LINES + 3, n - 5]
    assert searchable.find_all("needle", start=11) == [CHUNK_LINES + 3, n - 5]
    assert searchable.find_all("needle", stop=n - 5) == [10, CHUNK_LINES + 3]
    assert searchable.find_all("needle", ignore_case=False) == [CHUNK_LINES + 3]
    assert len(searchable.find_all("line")) == n - 3


# -- first_error --------------------------------------------------------------------------


def fixture_store(name: str) -> LogStore:
    return make((DATA / name).read_text().splitlines())


def test_first_error_on_failed_run_step() -> None:
    store = fixture_store("fail_with_output.log")
    index = store.first_error()
    assert index is not None
    assert store.line(index).startswith("#6 ERROR: executor failed running")


def test_first_error_exec_format_error_comes_first() -> None:
    store = fixture_store("exec_format_error.log")
    index = store.first_error()
    assert index is not None
    assert store.line(index) == "#7 0.216 exec /usr/local/bin/foreign-bin: exec format error"


def test_first_error_ignores_warnings_and_noise() -> None:
    store = fixture_store("synthetic_modern_fail.log")
    index = store.first_error()
    assert index is not None
    assert store.line(index).startswith("#6 ERROR: process")
    assert fixture_store("ok.log").first_error() is None


def test_first_error_final_solve_line_and_compiler_errors() -> None:
    store = LogStore()
    store.append(["#3 0.1 compiling", "#3 0.2 -Werror=format is on", "#3 0.3 terror: no"])
    assert store.first_error() is None
    store.append(["#3 0.4 error[E0425]: cannot find value `x` in this scope"])
    assert store.first_error() == 3
    gcc = LogStore()
    gcc.append(["#4 1.5 gcc -c main.c", "#4 1.6 main.c:3:5: error: expected ';'"])
    assert gcc.first_error() == 1
    other = LogStore()
    other.append(["all good", "ERROR: failed to solve: process did not complete"])
    assert other.first_error() == 1


def test_first_error_is_incremental() -> None:
    store = make(numbered(3 * CHUNK_LINES))
    assert store.first_error() is None
    store.append(["#9 ERROR: boom"])
    assert store.first_error() == 3 * CHUNK_LINES
    store.append(["ERROR: failed to solve: boom"])
    assert store.first_error() == 3 * CHUNK_LINES


# -- save ---------------------------------------------------------------------------------


def test_save_writes_all_lines(tmp_path: Path) -> None:
    lines = numbered(CHUNK_LINES + 10)
    lines[3] = "ünïcode ✓"
    store = make(lines)
    store.append(["tail"])
    out = tmp_path / "job.log"
    store.save(out)
    assert out.read_text(encoding="utf-8") == "\n".join([*lines, "tail"]) + "\n"
    assert [p.name for p in tmp_path.iterdir()] == ["job.log"]


def test_save_empty_store(tmp_path: Path) -> None:
    out = tmp_path / "empty.log"
    LogStore().save(out)
    assert out.read_text() == ""


# -- bounds -------------------------------------------------------------------------------


def test_max_lines_drops_whole_old_chunks() -> None:
    lines = numbered(5 * CHUNK_LINES)
    store = make(lines, max_lines=2 * CHUNK_LINES)
    assert 2 * CHUNK_LINES <= len(store) < 3 * CHUNK_LINES
    assert store.dropped + len(store) == len(lines)
    assert store.line(0) == lines[store.dropped]
    assert store.line(-1) == lines[-1]
    assert store.search("line 0$") is None
    assert store.search(f"line {len(lines) - 1}$") == len(store) - 1


def test_memory_per_line_is_bounded() -> None:
    """200k 80-byte lines: the store holds them in joined chunks, not one str per line."""
    lines = [
        f"#12 {i / 1000:9.3f} " + f"compiling src/module_{i:07d}.c ".ljust(64, ".")
        for i in range(200_000)
    ]
    assert {len(line) for line in lines} == {78}
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        store = make(lines, batch=2000)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    per_line = used / len(store)
    assert per_line < 250, f"{per_line:.0f} bytes per line"
    # The text itself is 79 bytes a line (with its separator): overhead is small.
    assert per_line < 79 + 40, f"{per_line:.0f} bytes per line"
