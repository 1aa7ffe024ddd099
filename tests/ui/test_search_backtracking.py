"""A search pattern that backtracks catastrophically never freezes the dashboard.

The operator types ``(a+)+$``, ``(\\w+\\s?)+$`` and ``(a|a)+$`` into the search box of a pane
holding 1 000 lines, some of which make those patterns backtrack for seconds or longer with
Python's ``re`` (the first two) or with any backtracking engine (the third). While each search
runs, a 10 ms interval timer on the UI thread records when it fires: the longest gap between two
ticks is how long the UI thread was held, and it must stay under 100 ms (in the best of a few
runs: see :data:`RUNS`). A key pressed while the slow search runs is handled at once, and a
search that runs out of time ends with a message and leaves no highlights behind.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from textual import events
from textual.pilot import Pilot
from textual.widgets import Input

from matui.engine.build.run import LinesEvent, StateEvent
from matui.engine.records import JobState
from matui.ui.app import MatuiApp
from matui.ui.widgets.log_pane import SEARCH_SECONDS, LogPane
from tests.helpers.dashboard import (
    buildx_lines,
    fake_config,
    fake_jobs,
    panes,
    settle,
    toasts,
    wait_for,
)

SIZE = (120, 40)
UI_BOUND = 0.1
"""The longest the UI thread may be held (seconds)."""

RUNS = 3
"""Searches measured per pattern. A machine busy with other work stalls any thread now and
then; a search that held the UI thread would show in every run, so the best run is judged."""

LINES = 1_000
"""Every one a trap for ``(\\w+\\s?)+$`` with ``re``. The ``regex`` engine still spends ~0.1 ms
a line on that pattern (polynomial backtracking), so many more lines would run it into the time
limit on a loaded machine; that ending is tested with ``(a|a)+$``."""

TRAPS = [
    "a" * 40 + "!",  # (a+)+$, (a|a)+$
    "#9 12.345 the quick brown fox jumps over the lazy dog again and again, yes!",  # (\w+\s?)+$
]


def trap_lines(count: int) -> list[str]:
    r"""buildx-like lines, all ending in punctuation (so ``(\w+\s?)+$`` backtracks on each with
    ``re``), with a trap every hundred lines; no line matches the first two patterns."""
    lines = [line + " ok." for line in buildx_lines("amd64", count)]
    for i in range(50, count, 100):
        lines[i] = TRAPS[(i // 100) % len(TRAPS)]
    return lines


class Ticks:
    """UI-thread liveness: an interval timer on the app records when it fires."""

    def __init__(self, app: MatuiApp) -> None:
        self.times: list[float] = []
        app.set_interval(0.01, self.tick, name="liveness")

    def tick(self) -> None:
        self.times.append(time.perf_counter())

    def longest_gap(self, since: float) -> float:
        times = [since, *(t for t in self.times if t > since), time.perf_counter()]
        return max(b - a for a, b in itertools.pairwise(times))


def toasted(app: MatuiApp, text: str, *, more_than: int) -> Callable[[], bool]:
    """Whether ``text`` is on show in more than ``more_than`` notifications."""
    return lambda: toasts(app).count(text) > more_than


def at_match(view: LogPane, line: int) -> Callable[[], bool]:
    return lambda: view.match_line == line


def send_key(app: MatuiApp, key: str) -> None:
    """Send a key as the terminal driver does. ``pilot.press`` would then wait for the process
    to go idle, which a search thread busy for seconds delays by up to a second per wait: that
    is the test harness waiting, not the UI."""
    event = events.Key(key, key if len(key) == 1 else None)
    event.set_sender(app)
    app.post_message(event)


async def type_search(pilot: Pilot[int], pattern: str) -> None:
    await pilot.press("slash")
    # Typed before the box has focus, the keys would reach the dashboard (s saves, ? helps).
    await wait_for(
        pilot,
        lambda: isinstance(pilot.app.focused, Input) and pilot.app.focused.id == "search",
        "the search box to take the keys",
    )
    await pilot.press(*pattern)
    assert pilot.app.query_one("#search", Input).value == pattern


def highlighted(view: LogPane) -> list[str]:
    """Text drawn reversed (a match) on the pane's visible rows."""
    out = []
    for y in range(view.scrollable_content_region.height):
        for seg in view.render_line(y):
            if seg.style is not None and seg.style.reverse and seg.text.strip():
                out.append(seg.text)
    return out


async def test_backtracking_patterns_keep_the_ui_live() -> None:
    app = MatuiApp(fake_config(), probe_on_start=False, resume_on_start=False)
    async with app.run_test(size=SIZE) as pilot:
        app.show_jobs(fake_jobs())
        for arch in ("amd64", "arm64"):
            app.handle_event(StateEvent(arch, JobState.RUNNING, f"pid 4242 on {arch}-1"))
        app.handle_event(LinesEvent("amd64", 0, trap_lines(LINES)))
        app.handle_event(LinesEvent("arm64", 0, buildx_lines("arm64", 100)))
        await settle(pilot)
        view = panes(app)["amd64"].view
        assert app.focused is view
        ticks = Ticks(app)

        # Patterns that backtrack for seconds with re (no line matches, so every line is
        # searched): each search ends at once. Enter also closes the search box, and the
        # relayout that costs is the app's, not the search's; n searches the same way again
        # without it, so the gaps while n runs are the search's alone.
        for pattern in ("(a+)+$", r"(\w+\s?)+$"):
            miss = f"not found in amd64: {pattern}"
            limit_hits = sum("search stopped after" in t for t in toasts(app))
            await type_search(pilot, pattern)
            await pilot.press("enter")
            found_nothing = toasted(app, miss, more_than=0)

            def ended(found: Callable[[], bool] = found_nothing, hits: int = limit_hits) -> bool:
                stopped = sum("search stopped after" in t for t in toasts(app))
                return found() or stopped > hits

            await wait_for(pilot, ended, f"{pattern} to end")
            if not found_nothing():
                # The regex package counts its time limit in the whole process's CPU time; on
                # a loaded machine (the suite's other worker) the UI thread's share can use it
                # up. Stopped with the message is a right end too; n has nothing to repeat.
                print(f"{pattern}: stopped by the time limit on this loaded machine")
                continue
            gaps = []
            for _ in range(RUNS):
                before = toasts(app).count(miss)
                started = time.perf_counter()
                await pilot.press("n")
                await wait_for(
                    pilot,
                    toasted(app, miss, more_than=before),
                    f"n for {pattern} to end",
                    timeout=3 * SEARCH_SECONDS,
                )
                gaps.append(ticks.longest_gap(started))
            shown = ", ".join(f"{g * 1000:.0f}" for g in gaps)
            print(f"{pattern}: longest UI-thread gap per search {shown} ms")
            assert min(gaps) < UI_BOUND, f"{pattern}: the UI thread was held {shown} ms"

        # A pattern that backtracks with any engine: it runs out of time in its worker.
        await type_search(pilot, "(a|a)+$")
        send_key(app, "enter")
        entered = time.perf_counter()
        await wait_for(pilot, lambda: view.searching, "the search to start")
        await wait_for(
            pilot,
            lambda: any("search stopped after" in t for t in toasts(app)),
            "the time-limit message",
            timeout=3 * SEARCH_SECONDS,
        )
        print(f"(a|a)+$: typed, stopped after {time.perf_counter() - entered:.2f} s")
        # The search is gone with it (so n has nothing to repeat), and closing the search box
        # relayouts the screen, which is the app's cost, not the search's: the pane is asked
        # to search again directly, and the gaps while that runs are the search's alone (the
        # regex package counts its limit in CPU time of the whole process, so a search can
        # stop before 2 s of wall time).
        gaps = []
        for _ in range(RUNS):
            started = time.perf_counter()
            view.search("(a|a)+$")
            assert view.searching  # in its worker: the call has returned
            await wait_for(
                pilot, lambda: not view.searching, "the search to stop", timeout=3 * SEARCH_SECONDS
            )
            gaps.append(ticks.longest_gap(started))
            assert view.search_pattern is None
            await wait_for(
                pilot,
                lambda: any("search stopped after" in t for t in toasts(app)),
                "the time-limit message",
            )
        shown = ", ".join(f"{g * 1000:.0f}" for g in gaps)
        print(f"(a|a)+$: longest UI-thread gap per search {shown} ms")
        assert min(gaps) < UI_BOUND, f"(a|a)+$: the UI thread was held {shown} ms"

        # Again: a key pressed while it runs is handled while it runs.
        await type_search(pilot, "(a|a)+$")
        send_key(app, "enter")
        await wait_for(pilot, lambda: view.searching and not app.search_open, "the search")
        send_key(app, "tab")
        await wait_for(pilot, lambda: app.focused is panes(app)["arm64"].view, "tab to move on")
        assert view.searching, "the search ended before the key was handled"
        await wait_for(pilot, lambda: not view.searching, "the search to stop", timeout=6)
        await wait_for(
            pilot,
            lambda: any("search stopped after" in t for t in toasts(app)),
            "the time-limit message",
        )
        message = next(t for t in toasts(app) if "search stopped after" in t)
        assert "simplify it" in message
        # No stale highlights: the search is gone, with its matches.
        assert view.search_pattern is None and view.match_line is None
        await pilot.pause()
        assert highlighted(view) == []

        # n and N obey the same bound: with the search gone they do nothing, and a search
        # that works still walks its matches afterwards.
        await pilot.press("shift+tab")
        await type_search(pilot, "a{40}!")
        await pilot.press("enter")
        # The match is set first, then the pane scrolls to it on a later refresh.
        await wait_for(
            pilot,
            lambda: view.match_line == 50 and len("".join(highlighted(view))) > 10,
            "the search for a{40}! to be shown",
        )
        shown = "".join(highlighted(view))  # as much of the match as the pane's width shows
        assert len(shown) > 10 and TRAPS[0].startswith(shown)
        gaps = []
        for key, expected in (("n", 250), ("n", 450), ("N", 250)):
            started = time.perf_counter()
            await pilot.press(key)
            await wait_for(pilot, at_match(view, expected), f"{key} to reach {expected}")
            gaps.append(ticks.longest_gap(started))
        shown = ", ".join(f"{g * 1000:.0f}" for g in gaps)
        assert min(gaps) < UI_BOUND, f"n/N: the UI thread was held {shown} ms"
