"""LogPane under Pilot: batched ingest, follow mode, the new-lines marker, search (in a worker,
with highlighting bounded on the UI thread), first error."""

from __future__ import annotations

import itertools
import time
from typing import Any

from textual import events
from textual.app import App, ComposeResult
from textual.message import Message
from textual.pilot import Pilot

from matui.engine.logstore import CHUNK_LINES, LogStore
from matui.engine.text import decode_lines
from matui.ui.widgets.log_pane import LogPane


class PaneApp(App[None]):
    def __init__(self, store: LogStore | None = None) -> None:
        super().__init__()
        self.store = store
        self.messages: list[Message] = []

    def compose(self) -> ComposeResult:
        yield LogPane(self.store, id="log")

    def on_mount(self) -> None:
        self.query_one(LogPane).focus()

    def on_log_pane_follow_changed(self, message: LogPane.FollowChanged) -> None:
        self.messages.append(message)

    def on_log_pane_search_done(self, message: LogPane.SearchDone) -> None:
        self.messages.append(message)

    def searches_done(self) -> list[LogPane.SearchDone]:
        return [m for m in self.messages if isinstance(m, LogPane.SearchDone)]


def build_lines(start: int, count: int) -> list[str]:
    return [f"#7 {i / 100:.2f} compiling unit {i}" for i in range(start, start + count)]


async def settle(pilot: Pilot[None], pane: LogPane) -> None:
    """Wait for the flush timer to publish pending lines, then for the repaint (polling, so a
    loaded machine only makes the test slower)."""
    for _ in range(500):
        if not pane.pending:
            break
        await pilot.pause(0.01)
    assert not pane.pending, "lines never flushed"
    await pilot.pause()
    await pilot.pause()


async def searched(pilot: Pilot[None], pane: LogPane) -> None:
    """Wait for the pane's search and count workers to end (polling, with a deadline), then
    for the messages and repaint they cause."""
    for _ in range(1000):
        if not pane.searching:
            break
        await pilot.pause(0.01)
    assert not pane.searching, "the search never ended"
    await pilot.pause()
    await pilot.pause()


def rows(pane: LogPane) -> list[str]:
    """The text of every visible row, as the pane renders it."""
    return [pane.render_line(y).text for y in range(pane.scrollable_content_region.height)]


async def flood(pilot: Pilot[None], pane: LogPane, total: int = 10_000, batch: int = 500) -> None:
    for start in range(0, total, batch):
        pane.add_lines(build_lines(start, batch))
    await settle(pilot, pane)


async def test_flood_shows_last_line_following_with_few_refreshes() -> None:
    """10 000 lines in 20 batches: the last line is on screen, follow stays on, and the pane
    refreshed a handful of times (per flush tick), not per line or per batch."""
    app = PaneApp()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(LogPane)
        await pilot.pause()
        calls: list[Any] = []
        original = pane.refresh

        def counting_refresh(*args: Any, **kwargs: Any) -> LogPane:
            calls.append(args)
            return original(*args, **kwargs)

        pane.refresh = counting_refresh  # type: ignore[method-assign]
        pane.add_lines(build_lines(0, 500))
        assert calls == []  # ingest only marks the pane dirty
        for start in range(500, 10_000, 500):
            pane.add_lines(build_lines(start, 500))
        await settle(pilot, pane)
        assert len(pane.store) == 10_000
        visible = rows(pane)
        assert visible[-1].rstrip() == "#7 99.99 compiling unit 9999"
        assert "#7 99.98 compiling unit 9998" in visible[-2]
        assert pane.follow
        assert pane.scroll_offset.y == pane.max_scroll_y
        assert 0 < len(calls) <= 6, calls
        print(f"refresh() calls for 10 000 lines: {len(calls)}")
        screenshot = app.export_screenshot().replace("&#160;", " ")
        assert "compiling unit 9999" in screenshot


async def test_scroll_up_stops_follow_marker_counts_new_lines_end_resumes() -> None:
    app = PaneApp()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(LogPane)
        await flood(pilot, pane, total=2_000)
        assert pane.follow
        await pilot.press("up")
        assert not pane.follow
        top = pane.scroll_offset.y
        pane.add_lines(build_lines(2_000, 37))
        await settle(pilot, pane)
        assert pane.scroll_offset.y == top  # the view stays where the reader left it
        marker = rows(pane)[-1]
        assert "37 new lines ↓" in marker
        assert pane.unseen_lines == 37
        await pilot.press("end")
        await settle(pilot, pane)
        assert pane.follow
        assert rows(pane)[-1].rstrip() == "#7 20.36 compiling unit 2036"
        assert [m.follow for m in app.messages if isinstance(m, LogPane.FollowChanged)] == [
            False,
            True,
        ]


async def test_pageup_home_toggle_and_scrolling_back_down_resume_follow() -> None:
    app = PaneApp()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(LogPane)
        await flood(pilot, pane, total=1_000)
        await pilot.press("pageup")
        assert not pane.follow
        await pilot.press("pagedown")
        assert pane.follow  # reached the end again
        await pilot.press("home")
        assert not pane.follow
        assert pane.scroll_offset.y == 0
        assert rows(pane)[0].startswith("#7 0.00 compiling unit 0")
        pane.action_toggle_follow()
        await pilot.pause()
        assert pane.follow
        assert pane.scroll_offset.y == pane.max_scroll_y


async def test_mouse_wheel_up_stops_follow() -> None:
    app = PaneApp()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(LogPane)
        await flood(pilot, pane, total=1_000)
        pane.post_message(events.MouseScrollUp(pane, 5, 5, 0, -1, 0, False, False, False))
        await pilot.pause()
        assert not pane.follow
        pane.add_lines(build_lines(1_000, 5))
        await settle(pilot, pane)
        assert "new lines" in rows(pane)[-1]


async def test_search_jumps_highlights_and_counts() -> None:
    app = PaneApp()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(LogPane)
        await flood(pilot, pane)
        pane.search(r"unit 42\d\b")
        await searched(pilot, pane)
        assert pane.match_line == 420  # the search starts at the top of the view and wraps
        assert [(m.pattern, m.line, m.error) for m in app.searches_done()] == [
            (r"unit 42\d\b", 420, None)
        ]
        assert not pane.follow
        visible = rows(pane)
        assert any(row.startswith("#7 4.20 compiling unit 420") for row in visible)
        strip = pane.render_line(visible.index(next(r for r in visible if "unit 420" in r)))
        reversed_text = [seg.text for seg in strip if seg.style is not None and seg.style.reverse]
        assert reversed_text == ["unit 420"]
        assert pane.match_count == 10

        pane.action_next_match()
        await searched(pilot, pane)
        assert pane.match_line == 421
        pane.action_previous_match()
        await searched(pilot, pane)
        pane.action_previous_match()
        await searched(pilot, pane)
        assert pane.match_line == 429  # wrapped backwards
        assert any("unit 429" in row for row in rows(pane))

        pane.add_lines(["#8 1.00 compiling unit 420 again"])
        await settle(pilot, pane)
        pane.action_next_match()
        await searched(pilot, pane)
        assert pane.match_count == 11  # counted incrementally

        pane.search("unit (")
        await searched(pilot, pane)
        error = app.searches_done()[-1].error
        assert error is not None and "invalid regular expression" in error
        assert pane.search_pattern == r"unit 42\d\b"  # the old search stays
        pane.search("no such line")
        await searched(pilot, pane)
        assert pane.match_line is None and app.searches_done()[-1].line is None
        assert pane.search_pattern == "no such line" and pane.match_count == 0


async def test_first_error_jumps_and_highlights() -> None:
    app = PaneApp()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(LogPane)
        pane.add_lines(build_lines(0, 3_000))
        pane.add_lines(["#9 0.20 make: *** [all] Error 2", "#9 ERROR: process did not complete"])
        pane.add_lines(build_lines(3_000, 3_000))
        await settle(pilot, pane)
        pane.action_first_error()
        await pilot.pause()
        assert pane.highlight_line == 3_001
        assert not pane.follow
        visible = rows(pane)
        y = next(i for i, row in enumerate(visible) if row.startswith("#9 ERROR"))
        strip = pane.render_line(y)
        assert all(seg.style is not None and seg.style.reverse for seg in strip if seg.text.strip())


async def test_remote_escapes_never_reach_the_screen_and_tabs_expand() -> None:
    app = PaneApp()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(LogPane)
        # As the engine hands them on: decoded and made inert once (the pane does not redo it).
        pane.add_lines(
            decode_lines(
                b"#5 0.1 \x1b[2Jwiped?\n#5 0.2 \x1b]52;c;ZXZpbA==\x07clipboard?\n#5 0.3 a\tb"
            )
        )
        await settle(pilot, pane)
        visible = rows(pane)
        assert visible[0].rstrip() == "#5 0.1 wiped?"
        assert visible[1].rstrip() == "#5 0.2 clipboard?"
        assert visible[2].rstrip() == "#5 0.3 a" + " " * 8 + "b"  # the tab stops at column 16
        assert "\t" not in visible[2]
        screenshot = app.export_screenshot()
        assert "ZXZpbA" not in screenshot and "[2J" not in screenshot


async def test_horizontal_scrolling_of_long_lines() -> None:
    app = PaneApp()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(LogPane)
        long = "#5 0.1 " + "".join(f"{i:04d} " for i in range(600))  # 3007 characters
        pane.add_lines([long, "short"])
        await settle(pilot, pane)
        assert pane.virtual_size.width == 2000  # capped
        await pilot.press("right", "right")
        assert pane.scroll_offset.x == 8
        assert rows(pane)[0].startswith(long[8:20])
        pane.search("0300")  # at column 1507
        await searched(pilot, pane)
        assert pane.scroll_offset.x > 1400
        assert "0300" in rows(pane)[0]
        await pilot.press("home")
        assert pane.scroll_offset == (0, 0)


async def test_store_passed_in_is_shown() -> None:
    store = LogStore()
    store.append(build_lines(0, 50))
    app = PaneApp(store)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(LogPane)
        await settle(pilot, pane)
        assert pane.store is store
        assert rows(pane)[-1].rstrip() == "#7 0.49 compiling unit 49"


async def test_lines_added_before_mount_are_shown() -> None:
    pane = LogPane()
    pane.add_lines(build_lines(0, 30))

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield pane

    async with Host().run_test(size=(80, 24)) as pilot:
        await settle(pilot, pane)
        assert pane.follow
        assert rows(pane)[-1].rstrip() == "#7 0.29 compiling unit 29"


async def test_view_stays_on_its_lines_when_old_lines_are_dropped() -> None:
    """With a bounded store, dropping old chunks shifts every index: a reader scrolled up keeps
    seeing the same lines, and the search match moves with them."""
    app = PaneApp(LogStore(max_lines=2 * CHUNK_LINES))
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(LogPane)
        pane.add_lines(build_lines(0, 2 * CHUNK_LINES))
        await settle(pilot, pane)
        pane.search(r"unit 6000\b")
        await searched(pilot, pane)
        assert pane.match_line == 6000
        top = rows(pane)[0]
        pane.add_lines(build_lines(2 * CHUNK_LINES, CHUNK_LINES))
        await settle(pilot, pane)
        assert pane.store.dropped == CHUNK_LINES
        assert pane.match_line == 6000 - CHUNK_LINES
        assert rows(pane)[0] == top
        assert "new lines" in rows(pane)[-1]


async def test_a_pattern_too_slow_to_highlight_is_left_unhighlighted() -> None:
    """A pattern found at once on one line can backtrack for seconds on another visible line:
    highlighting (the one matching done on the UI thread) stops within its budget, says so,
    and the search itself stays usable; the background count gives up at its limit."""
    trap = "a" * 30 + "!"
    app = PaneApp()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(LogPane)
        pane.add_lines(["#1 0.1 x marks the spot", *[trap] * 5, "#2 0.2 end"])
        await settle(pilot, pane)
        ticks: list[float] = []
        pane.set_interval(0.01, lambda: ticks.append(time.perf_counter()))
        started = time.perf_counter()
        pane.search("x marks|(a|a)+$")
        for _ in range(1000):
            if len(app.searches_done()) >= 2:
                break
            await pilot.pause(0.01)
        done = app.searches_done()[:2]
        assert sorted((m.line, m.error is None) for m in done) == [(0, False), (0, True)]
        gave_up = next(m for m in done if m.error is not None)
        assert gave_up.error is not None
        assert "not highlighted" in gave_up.error and "simplify it" in gave_up.error
        gaps = [b - a for a, b in itertools.pairwise([started, *ticks])]
        assert max(gaps) < 0.1, f"the UI thread was held {max(gaps) * 1000:.0f} ms"
        await pilot.pause()
        for y in range(7):
            assert not [s for s in pane.render_line(y) if s.style and s.style.reverse]
        assert pane.search_pattern == "x marks|(a|a)+$" and pane.match_line == 0
        await searched(pilot, pane)  # the count, in its worker, runs out of time
        assert pane.match_count is None


async def test_a_match_near_the_view_is_found_at_once_and_a_far_one_by_the_worker() -> None:
    """``n`` and a new search look a few thousand lines around the view on the UI thread (a
    worker's answer waits behind a flood's events): the jump is done when the call returns."""
    app = PaneApp()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(LogPane)
        pane.add_lines(build_lines(0, 20_000))
        await settle(pilot, pane)
        pane.action_scroll_home()
        await pilot.pause()
        pane.search(r"unit 1\d\b")
        assert pane.match_line == 10  # the first at or below the top of the view
        assert pane.search_pattern == r"unit 1\d\b"
        pane.action_next_match()
        assert pane.match_line == 11  # no worker: already there
        await searched(pilot, pane)
        strip = pane.render_line(next(i for i, r in enumerate(rows(pane)) if "unit 11" in r))
        assert [s.text for s in strip if s.style is not None and s.style.reverse] == ["unit 11"]
        pane.search(r"unit 19999\b")  # far past the lines looked at on the UI thread
        assert pane.match_line != 19_999
        await searched(pilot, pane)
        assert pane.match_line == 19_999
        assert any("unit 19999" in row for row in rows(pane))
