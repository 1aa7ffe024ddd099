"""LogStore search under a time limit, cancellation, snapshots searched from another thread, and
search semantics against ``re`` line by line.

Patterns an operator types can backtrack for seconds on one line. The store matches with the
``regex`` package: ``(a+)+$`` and ``(\\w+\\s?)+$``, which freeze ``re``, finish at once; ``(a|a)+$``
backtracks there too and must stop at the caller's limit with :class:`SearchTimeout`. A search
running in another thread must leave the calling thread free (``regex`` releases the GIL while
it matches; ``re`` would hold it for the whole call).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import pytest
import regex  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from matui.engine.logstore import (
    CHUNK_LINES,
    Hit,
    LogStore,
    SearchCancelled,
    SearchTimeout,
)

TRAP = "a" * 30 + "!"
WORDS = "#9 12.345 the quick brown fox jumps over the lazy dog again and again, yes!"


def trapped(count: int = 10_000) -> LogStore:
    """``count`` build-like lines ending in punctuation, a trap every hundred lines."""
    lines = [f"#7 {i / 100:.2f} cc -c src/unit_{i:05d}.c ok." for i in range(count)]
    for i in range(50, count, 100):
        lines[i] = TRAP if (i // 100) % 2 == 0 else WORDS
    store = LogStore()
    for i in range(0, count, 1000):
        store.append(lines[i : i + 1000])
    return store


@pytest.mark.parametrize("pattern", ["(a+)+$", r"(\w+\s?)+$"])
def test_patterns_that_freeze_re_finish(pattern: str) -> None:
    store = trapped()
    assert store.search(pattern, timeout=30) is None
    assert store.search(pattern, backwards=True, timeout=30) is None
    assert store.find_all(pattern, timeout=30) == []


def test_a_backtracking_search_stops_at_its_limit() -> None:
    store = trapped()
    for run in (
        lambda: store.search("(a|a)+$", timeout=0.2),
        lambda: store.search("(a|a)+$", timeout=0.2, backwards=True),
        lambda: store.find_all("(a|a)+$", timeout=0.2),
        lambda: store.snapshot().find("(a|a)+$", timeout=0.2),
    ):
        started = time.monotonic()
        with pytest.raises(SearchTimeout) as caught:
            run()
        took = time.monotonic() - started
        # 2^30 steps without the limit; the regex package's own timeout can run late, so the
        # bound is loose, but far below what an unbounded search takes.
        assert took < 2.0, took
        message = str(caught.value)
        assert message.startswith("search stopped after 0.2 s: the pattern backtracks too much")
        assert "simplify it" in message
    # The same store searches normally afterwards, under the same limit.
    assert store.search("a{30}!", timeout=0.2) == 50


def test_cancelled_stops_a_search_between_regex_calls() -> None:
    store = trapped(3 * CHUNK_LINES)  # three chunks: at least one regex call each
    calls = 0

    def cancelled() -> bool:
        nonlocal calls
        calls += 1
        return calls > 1

    for search in (
        lambda: store.find_all("ok", cancelled=cancelled),
        lambda: store.search("absent", cancelled=cancelled),
        lambda: store.search("absent", backwards=True, cancelled=cancelled),
    ):
        calls = 0
        with pytest.raises(SearchCancelled):
            search()
        assert calls == 2
    traps = len(range(50, 3 * CHUNK_LINES, 100))
    assert len(store.find_all("ok", cancelled=lambda: False)) == 3 * CHUNK_LINES - traps


def longest_stall(work: Callable[[], object]) -> tuple[float, int, list[BaseException]]:
    """Run ``work`` in a thread while this one ticks every 5 ms: the longest gap between ticks,
    the number of ticks, and what ``work`` raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the test's thread
            raised.append(exc)

    worker = threading.Thread(target=run)
    last = time.perf_counter()
    worker.start()
    gaps = []
    while worker.is_alive():
        time.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    worker.join()
    return max(gaps, default=0.0), len(gaps), raised


def test_a_search_in_a_thread_leaves_this_thread_free() -> None:
    """A backtracking search runs one long regex call; with ``regex`` it releases the GIL, so a
    loop on this thread keeps ticking (``re`` would hold the GIL for the whole call). A machine
    busy with other work stalls any thread now and then, and a search holding the GIL would
    show in every run: the best of three runs is judged."""
    snapshot = trapped().snapshot()
    longest = []
    for _ in range(3):
        stall, ticks, raised = longest_stall(lambda: snapshot.search("(a|a)+$", timeout=0.5))
        assert len(raised) == 1 and isinstance(raised[0], SearchTimeout), raised
        assert ticks > 20, "the search ended too soon to tell"
        longest.append(stall)
    shown = ", ".join(f"{g * 1000:.0f}" for g in longest)
    assert min(longest) < 0.1, f"this thread was held {shown} ms"


def test_a_snapshot_keeps_its_lines_while_the_store_goes_on(tmp_path: object) -> None:
    """Searched from another thread while the store appends, drops and spills, a snapshot
    answers for the lines it was taken with."""
    store = LogStore(max_lines=4 * CHUNK_LINES, memory_limit=CHUNK_LINES * 20)
    first = [f"#1 {i} first needle {i}" if i % 1000 == 0 else f"#1 {i} x" for i in range(10_000)]
    store.append(first)
    snapshot = store.snapshot()
    expected = snapshot.find_all("needle")
    kept = [i - snapshot.dropped for i in range(0, 10_000, 1000) if i >= snapshot.dropped]
    assert expected == kept
    results: list[list[int]] = []

    def search_many() -> None:
        for _ in range(20):
            results.append(snapshot.find_all("needle"))

    worker = threading.Thread(target=search_many)
    worker.start()
    for batch in range(40):  # drops and spills chunks the snapshot holds
        store.append([f"#2 {batch} {k} later needle" for k in range(1000)])
    worker.join()
    assert store.dropped > snapshot.dropped
    assert results == [expected] * 20
    assert snapshot.line(expected[-1]) == first[expected[-1] + snapshot.dropped]
    assert snapshot.search("needle", start=expected[0] + 1) == expected[1]
    assert len(snapshot) == 10_000 - snapshot.dropped


def test_find_gives_the_line_and_the_first_match_in_it() -> None:
    store = LogStore()
    store.append(["nothing", "#5 0.1 find ME and me", "x\ty me"])
    assert store.snapshot().find("me") == Hit(1, 12, 14)
    assert store.snapshot().find("me", ignore_case=False, start=1) == Hit(1, 19, 21)
    assert store.snapshot().find("y me", start=2) == Hit(2, 2, 6)
    assert store.snapshot().find("absent") is None


def test_an_invalid_pattern_is_a_clear_error() -> None:
    store = trapped(100)
    for pattern in ("(", "a{2,1}", "[z-a]", "a" + "{99999999999}"):
        with pytest.raises(ValueError, match="invalid regular expression"):
            store.search(pattern, timeout=1)
    assert store.search("(", regex=False) is None


# -- the same answers as re, line by line ---------------------------------------------------

ATOMS = [
    "a",
    "B",
    "z",
    "Q",
    "0",
    "7",
    " ",
    ":",
    "_",
    "-",
    r"\.",
    r"\d",
    r"\w",
    r"\W",
    r"\s",
    r"\S",
    r"\D",
    r"\b",
    r"\B",
    ".",
    "[A-C]",
    "[a-c]",
    "[^B]",
    "[^a-c]",
    "[X-b]",
    r"[\w-]",
    r"[^\W_]",
    "(?:A|b)",
    "(X)",
    "(?:ab|AB|Ab)",
    "(?=B)",
    "(?!a)",
    "(?<=A)",
    "(?<!b)",
    "^",
    "$",
]
UNQUANTIFIED = ("^", "$", r"\b", r"\B")
QUANTIFIERS = ["", "", "", "*", "+", "?", "{2}", "{1,3}", "*?", "+?"]

texts = st.text(alphabet="aAbBcCqQxXzZ09 :_-.\t@[]^", max_size=40)


@st.composite
def patterns(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(
            st.tuples(st.sampled_from(ATOMS), st.sampled_from(QUANTIFIERS)), min_size=1, max_size=6
        )
    )
    out = ""
    for atom, quantifier in parts:
        if atom in UNQUANTIFIED or atom.startswith(("(?=", "(?!", "(?<")):
            quantifier = ""
        out += atom + quantifier
    if draw(st.booleans()) and "(X)" in out:
        out += r"\1"
    return out


@settings(max_examples=400, deadline=None)
@given(patterns(), st.lists(texts, min_size=1, max_size=8), st.booleans())
def test_matching_lines_are_those_a_search_of_each_line_finds(
    pattern: str, lines: list[str], ignore_case: bool
) -> None:
    """No answer depends on a neighbouring line; and on these patterns the regex package
    answers as ``re`` does, but for ``\\B`` on an empty line (``re`` 3.11: no match)."""
    store = LogStore()
    store.append(lines)
    flags = regex.MULTILINE | (regex.IGNORECASE if ignore_case else 0)
    expected = [i for i, line in enumerate(lines) if regex.search(pattern, line, flags)]
    re_flags = re.MULTILINE | (re.IGNORECASE if ignore_case else 0)
    by_re = [i for i, line in enumerate(lines) if re.search(pattern, line, re_flags)]
    assert by_re == [i for i in expected if lines[i] or r"\B" not in pattern], pattern
    assert store.find_all(pattern, ignore_case=ignore_case, timeout=5) == expected, pattern
    first = store.search(pattern, ignore_case=ignore_case, timeout=5)
    assert first == (expected[0] if expected else None)
    last = store.search(pattern, ignore_case=ignore_case, backwards=True, start=-1, timeout=5)
    assert last == (expected[-1] if expected else None)
