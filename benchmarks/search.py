"""Search: a regex over 1 M log lines, LogStore against a Python loop over one str per line.

The store holds N generated buildx-like lines (80 bytes, fed in the pane's batches) with one
failing step near the end. The baseline keeps the same lines as Textual's ``Log`` does (a list
of ``str``) and runs the same compiled pattern (case-insensitive, as the pane searches) line by
line with ``re``. matui searches as the log pane does: a snapshot of the store, with the pane's
time limit and a cancel callback (the regex package, a timeout on every call). Side by side,
median of several repetitions:

* first match: ``exit code: [0-9]+`` from the top; the only match is at 99 % of the log, so
  the search crosses nearly everything (target <= 100 ms);
* all matches: ``module_[0-9]+7\\.c``, case-insensitive too (every tenth line: 100 k matches
  for 1 M lines) with ``find_all`` (target <= 1 s);
* UI thread held: ``(a|a)+$`` backtracks for ages on a line of 30 ``a`` and a ``!``; it runs in
  a worker thread over 10 k lines holding such traps until the pane's limit stops it, while
  this thread ticks every 5 ms: the longest gap between ticks (target <= 100 ms). Baseline:
  ``re`` in a worker thread, ``(a+)+$`` on ONE 22-``a`` line (``re`` holds the GIL for the
  whole call, so a thread alone does not keep a UI live).

    .venv/bin/python -m benchmarks.search [--lines 1000000]
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import Figure, emit, log_batches, median, parser

FIRST = r"exit code: [0-9]+"
ALL = r"module_[0-9]+7\.c"
ERROR_LINE = '#42 ERROR: process "/bin/sh -c make" did not complete successfully: exit code: 2'


def build_lines(count: int) -> list[str]:
    lines = [line for batch in log_batches(count, 10_000) for line in batch]
    lines[int(count * 0.99)] = ERROR_LINE
    return lines


def best_of(reps: int, fn: Callable[[], Any]) -> tuple[list[float], Any]:
    times = []
    result = None
    for _ in range(reps):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def held(work: Callable[[], object]) -> tuple[float, float]:
    """Run ``work`` in a thread while this one ticks every 5 ms: the longest gap between ticks
    (s) and how long the work took (s)."""
    thread = threading.Thread(target=work)
    started = last = time.perf_counter()
    thread.start()
    longest = 0.0
    while thread.is_alive():
        time.sleep(0.005)
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
    thread.join()
    return longest, time.perf_counter() - started


def ui_hold(reps: int) -> None:
    from matui.engine.logstore import LogStore, SearchTimeout
    from matui.ui.widgets.log_pane import SEARCH_SECONDS

    lines = [f"#7 {i / 100:.2f} cc -c src/unit_{i:05d}.c ok." for i in range(10_000)]
    for i in range(50, len(lines), 100):
        lines[i] = "a" * 30 + "!"
    store = LogStore()
    store.append(lines)
    snapshot = store.snapshot()
    stopped: list[BaseException] = []

    def search() -> None:
        try:
            snapshot.search("(a|a)+$", timeout=SEARCH_SECONDS, cancelled=lambda: False)
        except SearchTimeout as exc:
            stopped.append(exc)

    trap = re.compile("(a+)+$")
    gaps, took, base = [], [], []
    for _ in range(reps):
        gap, t = held(search)
        gaps.append(gap)
        took.append(t)
        base.append(held(lambda: trap.search("a" * 22 + "!"))[0])
    assert len(stopped) == reps, "the backtracking search was not stopped"
    value, baseline = median(gaps) * 1000, median(base) * 1000
    emit(
        Figure(
            name="search_backtrack_ui_hold",
            what="longest UI-thread gap while (a|a)+$ searches 10 k trap lines in a worker",
            value=value,
            unit="ms",
            baseline="re in a worker thread, (a+)+$ on one 22-a line",
            baseline_value=baseline,
            ratio=baseline / value,
            ratio_text="baseline gap / matui gap",
            target="<= 100 ms",
            met=value <= 100,
            detail=f"median of {reps}; stopped by the limit after {median(took):.2f} s",
        )
    )


def main() -> None:
    from matui.engine.logstore import LogStore
    from matui.ui.widgets.log_pane import SEARCH_SECONDS

    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=None)
    args = p.parse_args()
    count = args.lines or (20_000 if args.small else 1_000_000)
    reps = args.reps or (3 if args.small else 9)
    lines = build_lines(count)
    store = LogStore()
    for i in range(0, count, 2_000):
        store.append(lines[i : i + 2_000])
    where = int(count * 0.99)
    snapshot = store.snapshot()

    def first() -> int | None:
        return snapshot.search(FIRST, timeout=SEARCH_SECONDS, cancelled=lambda: False)

    def every() -> list[int]:
        # The pane counts in slices, each under the limit; one call here, the limit generous.
        return snapshot.find_all(ALL, timeout=60, cancelled=lambda: False)

    # The pane's defaults: a regex, case-insensitive.
    first_rx = re.compile(FIRST, re.IGNORECASE)
    all_rx = re.compile(ALL, re.IGNORECASE)

    def loop_first() -> int | None:
        search = first_rx.search
        for i, line in enumerate(lines):
            if search(line):
                return i
        return None

    def loop_all() -> list[int]:
        search = all_rx.search
        return [i for i, line in enumerate(lines) if search(line)]

    # Alternate matui and baseline within each repetition.
    store_first: list[float] = []
    loop_first_t: list[float] = []
    store_all: list[float] = []
    loop_all_t: list[float] = []
    for _ in range(reps):
        t, hit = best_of(1, first)
        store_first += t
        assert hit == where, (hit, where)
        t, hit = best_of(1, loop_first)
        loop_first_t += t
        assert hit == where
        t, found = best_of(1, every)
        store_all += t
        t, expected = best_of(1, loop_all)
        loop_all_t += t
        assert found == expected, (len(found), len(expected))
    matches = len(expected)
    sf, lf = median(store_first) * 1000, median(loop_first_t) * 1000
    sa, la = median(store_all) * 1000, median(loop_all_t) * 1000
    emit(
        Figure(
            name="search_first",
            what=f"first match of /{FIRST}/i in {count:,} lines (at line {where:,})",
            value=sf,
            unit="ms",
            baseline="re.search per line over list[str]",
            baseline_value=lf,
            ratio=lf / sf,
            ratio_text="baseline time / matui time",
            target="<= 100 ms",
            met=sf <= 100,
            detail=f"median of {reps}",
        )
    )
    emit(
        Figure(
            name="search_all",
            what=f"all {matches:,} matches of /{ALL}/i in {count:,} lines",
            value=sa,
            unit="ms",
            baseline="re.search per line over list[str]",
            baseline_value=la,
            ratio=la / sa,
            ratio_text="baseline time / matui time",
            target="<= 1000 ms",
            met=sa <= 1000,
            detail=f"median of {reps}",
        )
    )
    ui_hold(1 if args.small else 3)


if __name__ == "__main__":
    main()
