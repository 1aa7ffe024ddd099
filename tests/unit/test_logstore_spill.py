"""A LogStore over its memory limit spills old chunks to disk and answers exactly as before."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from matui.engine.logstore import CHUNK_LINES, LogStore

WORDS = ["make", "ERROR: boom", "error: x", "Résumé", "exec format error", "", "#5 0.1 cc", "日本"]


def numbered(count: int, start: int = 0) -> list[str]:
    return [f"#5 {i / 1000:.3f} {WORDS[i % len(WORDS)]} line {i}" for i in range(start, count)]


def fill(store: LogStore, lines: list[str], batch: int = 1000) -> LogStore:
    for i in range(0, len(lines), batch):
        store.append(lines[i : i + batch])
    return store


def answers(store: LogStore, tmp: Path) -> tuple[object, ...]:
    n = len(store)
    probes = [0, 1, n // 3, n // 2, n - 2, n - 1] if n else []
    path = tmp / f"save-{id(store)}.log"
    store.save(path)
    return (
        n,
        store.dropped,
        [store.line(i) for i in probes],
        store.lines(n // 4, n // 4 + 3 * CHUNK_LINES // 2),
        store.search("error", start=n // 2),
        store.search("error", start=n // 2, backwards=True),
        store.search(r"line \d+7$"),
        store.search(r"LINE \d+3$", backwards=True),
        store.search("résumé"),
        store.find_all(r"exec format|日本"),
        store.find_all("Line 1", regex=False, ignore_case=True),
        store.first_error(),
        path.read_bytes(),
    )


def test_spilled_store_answers_like_an_in_memory_one(tmp_path: Path) -> None:
    lines = numbered(6 * CHUNK_LINES + 123)
    spilling = fill(LogStore(memory_limit=CHUNK_LINES * 40, spill_dir=tmp_path), lines)
    assert spilling._spilled >= 4, "most chunks should be on disk"
    assert spilling._memory_chars <= CHUNK_LINES * 40
    in_memory = fill(LogStore(memory_limit=None), lines)
    assert answers(spilling, tmp_path) == answers(in_memory, tmp_path)


def test_spill_with_max_lines_drops_spilled_chunks(tmp_path: Path) -> None:
    lines = numbered(8 * CHUNK_LINES)
    spilling = fill(LogStore(max_lines=3 * CHUNK_LINES, memory_limit=CHUNK_LINES * 40), lines)
    in_memory = fill(LogStore(max_lines=3 * CHUNK_LINES, memory_limit=None), lines)
    assert spilling.dropped == in_memory.dropped > 0
    assert answers(spilling, tmp_path) == answers(in_memory, tmp_path)


def test_spill_file_is_anonymous(tmp_path: Path) -> None:
    store = fill(LogStore(memory_limit=CHUNK_LINES * 40, spill_dir=tmp_path), numbered(50_000))
    assert store._spilled > 0
    assert list(tmp_path.iterdir()) == []  # created unlinked: nothing to clean up


def test_no_room_to_spill_keeps_lines_in_memory(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    store = fill(LogStore(memory_limit=CHUNK_LINES * 40, spill_dir=missing), numbered(30_000))
    assert store.memory_limit is None and store._spilled == 0
    assert len(store) == 30_000 and store.line(-1) == numbered(30_000)[-1]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=3 * CHUNK_LINES), min_size=1, max_size=6),
    st.integers(min_value=1, max_value=200),
)
def test_random_batches(sizes: list[int], limit_lines: int) -> None:
    spilling = LogStore(memory_limit=limit_lines * 30)
    in_memory = LogStore(memory_limit=None)
    total = 0
    for size in sizes:
        batch = numbered(total + size, total)
        total += size
        spilling.append(batch)
        in_memory.append(batch)
    n = len(in_memory)
    assert len(spilling) == n
    if n:
        picks = sorted({0, n - 1, n // 2, n // 7})
        assert [spilling.line(i) for i in picks] == [in_memory.line(i) for i in picks]
        assert spilling.lines(0, n) == in_memory.lines(0, n)
        for pattern in ("error", r"line \d*5$", "日本"):
            assert spilling.find_all(pattern) == in_memory.find_all(pattern)
            for start in (0, n // 2, n - 1):
                for back in (False, True):
                    assert spilling.search(pattern, start=start, backwards=back) == (
                        in_memory.search(pattern, start=start, backwards=back)
                    )
        assert spilling.first_error() == in_memory.first_error()
