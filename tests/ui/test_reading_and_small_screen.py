"""Reading long lines and the small screen, under Pilot with no host: ``w`` wraps (highlights,
the error jump and follow keep working on wrapped rows), right-scrolling an unwrapped line and
its edge arrow, ``p`` and the collapsed side panel's one line, the plan's panes before ``b``,
a retry's separator and ``e`` on the current attempt, the footer and title at 80 columns.
"""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets._footer import FooterKey

from matui.engine.arch import Platform
from matui.engine.build.retry import RetryOptions, attempt_marker
from matui.engine.build.run import LinesEvent, StateEvent
from matui.engine.config import Config, HostConfig, ImageConfig
from matui.engine.logstore import CHUNK_LINES, LogStore
from matui.engine.records import JobState
from matui.ui.app import MatuiApp, fit_title
from matui.ui.widgets.arch_pane import ArchPane
from matui.ui.widgets.footer import MatuiFooter
from matui.ui.widgets.log_pane import LogPane
from matui.ui.widgets.panels import PanelHint
from tests.helpers.dashboard import (
    REPO,
    TWO,
    buildx_lines,
    error_flag,
    fake_config,
    fake_jobs,
    fake_probes,
    info_flag,
    panes,
    screen_text,
    settle,
    wait_for,
)

LONG = "#7 4.2 cc " + " ".join(f"-Iinclude/part{i:03d}" for i in range(40)) + " -o END-OF-LINE"
"""A compiler command line of 800-odd characters, ending in a marker."""


def dashboard() -> MatuiApp:
    return MatuiApp(fake_config(TWO), probe_on_start=False, resume_on_start=False)


def rows(view: LogPane) -> list[str]:
    return [view.render_line(y).text for y in range(view.scrollable_content_region.height)]


async def two_panes(pilot: Pilot[int], lines: list[str]) -> ArchPane:
    """Two panes; amd64's log is ``lines``; amd64 focused."""
    app = pilot.app
    assert isinstance(app, MatuiApp)
    await app.show_jobs(fake_jobs(TWO))
    app.handle_event(LinesEvent("amd64", 0, lines))
    app.handle_event(LinesEvent("arm64", 0, buildx_lines("arm64", 20)))
    await settle(pilot)
    pane = panes(app)["amd64"]
    pane.view.focus()
    await settle(pilot)
    return pane


async def test_w_wraps_a_long_line_across_rows_with_highlights_error_jump_and_follow() -> None:
    app = dashboard()
    async with app.run_test(size=(120, 40)) as pilot:
        error = "#7 4.3 src/x.c:1:1: error: " + "no such file " * 8 + "(the end)"
        pane = await two_panes(pilot, [*buildx_lines("amd64", 10), LONG, error, "#7 DONE"])
        view = pane.view
        assert not view.wrap and rows(view)[10].endswith("→")  # cut, and says so

        await pilot.press("w")
        await settle(pilot)
        assert all(v.wrap for v in app.query(LogPane))  # one way of reading, every pane
        assert str(pane.border_subtitle).startswith("wrap")
        assert view.follow and rows(view)[-1].strip() == "#7 DONE"  # follow kept the end
        shown = rows(view)
        first = next(i for i, row in enumerate(shown) if row.startswith("#7 4.2 cc"))
        width = view.virtual_size.width
        count = -(-len(LONG) // width)
        assert count > 1 and "→" not in "".join(shown)
        assert "".join(row[:width] for row in shown[first : first + count]).rstrip() == LONG

        # A search highlight on a row of a wrapped line (its last part, END-OF-LINE).
        view.search("END-OF-LINE")
        await wait_for(pilot, lambda: not view.searching, "the search")
        await settle(pilot)
        # (It may straddle two rows: the highlight goes across with it.)
        height = view.scrollable_content_region.height
        marked = "".join(
            s.text
            for y in range(height)
            for s in view.render_line(y)
            if s.style is not None and s.style.reverse
        )
        assert marked == "END-OF-LINE"

        # e lands on the wrapped error line: its rows are all in view and highlighted.
        await pilot.press("end")
        view.scroll_to(y=0, animate=False, immediate=True)
        await pilot.press("e")
        await settle(pilot)
        assert view.highlight_line == 11
        shown = rows(view)
        start = next(i for i, row in enumerate(shown) if row.startswith("#7 4.3 src/x.c"))
        parts = -(-len(error) // width)
        assert "".join(row[:width] for row in shown[start : start + parts]).rstrip() == error
        strip = view.render_line(start)
        assert all(s.style is not None and s.style.reverse for s in strip if s.text.strip())

        await pilot.press("w")
        await settle(pilot)
        assert not view.wrap and view.virtual_size.height == 13


async def test_right_scroll_reveals_the_end_of_a_long_line_and_the_frame_says_where() -> None:
    app = dashboard()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await two_panes(pilot, [LONG, "short"])
        view = pane.view
        assert "END-OF-LINE" not in rows(view)[0] and rows(view)[0].rstrip().endswith("→")
        await pilot.press("right")
        assert view.scroll_offset.x == 4  # a few columns at a time
        for _ in range(40):  # half the pane's width at a time
            if "END-OF-LINE" in rows(view)[0]:
                break
            await pilot.press("shift+right")
        await settle(pilot)
        row = rows(view)[0]
        assert row.rstrip().endswith("END-OF-LINE") and "→" not in row  # the end: no arrow
        assert str(pane.border_subtitle).startswith(f"col {view.scroll_offset.x + 1}→")
        await pilot.press("left")
        for _ in range(40):
            if view.scroll_offset.x == 0:
                break
            await pilot.press("shift+left")
        await settle(pilot)
        assert rows(view)[0].startswith("#7 4.2 cc") and "col" not in str(pane.border_subtitle)


async def test_p_collapses_the_side_panel_and_the_panes_get_its_width() -> None:
    app = dashboard()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await two_panes(pilot, buildx_lines("amd64", 20))
        app.show_probes(fake_probes(TWO), [info_flag(), error_flag()])
        await settle(pilot)
        side = app.query_one("#side")
        hint = app.query_one(PanelHint)
        assert side.display and not hint.display
        assert side.outer_size.width <= 120 * 0.34  # a third, not 40 % as it was
        before = pane.outer_size.width
        await pilot.press("p")
        await settle(pilot)
        assert not side.display and hint.display
        assert pane.outer_size.width >= before + side.outer_size.width // 2 - 1
        assert pane.outer_size.width > before + 15
        line = screen_text(app).splitlines()[1]
        assert "hosts 2/2 ready" in line and "flags 1 error 1 info" in line
        assert "tag-overwrite 1.0" in line and line.startswith(" p hosts")
        await pilot.press("p")
        await settle(pilot)
        assert side.display and pane.outer_size.width == before


async def test_below_100_columns_the_panel_starts_collapsed_to_one_line() -> None:
    app = dashboard()
    async with app.run_test(size=(80, 24)) as pilot:
        await two_panes(pilot, buildx_lines("amd64", 20))
        app.show_probes(fake_probes(TWO), [info_flag(), error_flag()])
        await settle(pilot)
        assert not app.query_one("#side").display
        text = screen_text(app)
        assert "flags 1 error 1 info (tag-overwrite 1.0)" in text.splitlines()[1]
        # Opened with p: the flags across the whole width, their text wrapped, not cut.
        await pilot.press("p")
        await settle(pilot)
        text = " ".join(screen_text(app).split()).replace("│ │", "")
        assert "build linux/s390x again, or list it in retired_platforms" in " ".join(
            text.replace("│", " ").split()
        )


async def test_footer_keeps_help_and_quit_and_title_keeps_image_and_run_id_at_80() -> None:
    app = dashboard()
    async with app.run_test(size=(80, 24)) as pilot:
        await two_panes(pilot, buildx_lines("amd64", 20))
        footer = app.query_one(MatuiFooter)
        shown = {k.action for k in footer.query(FooterKey) if k.display}
        assert {"help", "quit_app", "build", "retry", "first_error"} <= shown
        bottom = screen_text(app).splitlines()[-1]
        assert "? Help" in bottom and "q Quit" in bottom
        # A long status and activity give way; image:tag and the run id stay whole.
        parts = [
            ("matui", "matui"),
            ("status", "failed: arm64 failed at a step with a very long name indeed"),
            ("activity", "probing hosts"),
            ("elapsed", "0:42"),
            ("image", f"{REPO}:1.0"),
            ("run", "run 20261127-083000-a1b2c3"),
        ]
        title = fit_title([(kind, Text(text)) for kind, text in parts], 78).plain
        assert len(title) <= 78
        assert f"{REPO}:1.0" in title and "run 20261127-083000-a1b2c3" in title
        assert title.startswith("failed: a") and "…" in title
        wide = fit_title([(kind, Text(text)) for kind, text in parts], 200).plain
        assert wide == "  ·  ".join(text for _, text in parts)


async def test_plan_panes_before_b_show_host_and_native_or_emulated() -> None:
    hosts = (
        HostConfig("amd64-1", "amd64", "192.0.2.10", user="build", allow_emulation=True),
        HostConfig("arm64-1", "arm64", "192.0.2.11", user="build"),
    )
    image = ImageConfig(
        REPO,
        ("1.0",),
        fake_config().images[0].context,
        tuple(Platform.parse(f"linux/{a}") for a in TWO),
    )
    app = MatuiApp(Config(None, hosts, (image,)), probe_on_start=False, resume_on_start=False)
    async with app.run_test(size=(140, 40)) as pilot:
        probes = fake_probes(TWO)
        probes[0] = replace(probes[0], emulation=("arm64",))
        probes[1] = replace(probes[1], reachable=False, native_arch=None, error="timed out")
        app.show_probes(probes, [])
        await app.show_plan()
        await settle(pilot)
        shown = panes(app)
        assert {a: p.state for a, p in shown.items()} == {"amd64": "planned", "arm64": "planned"}
        assert str(shown["amd64"].border_title) == "amd64 · native on amd64-1"
        assert str(shown["arm64"].border_title) == "arm64 · emulated on amd64-1"
        assert str(shown["arm64"].border_subtitle) == "planned, under QEMU: b builds it"
        text = screen_text(app)
        assert "amd64 · native on amd64-1" in text
        assert "arm64 · emulated on amd64-1" in text
        # A build's panes replace the plan's as before (same ids, the plan's gone first).
        jobs = fake_jobs(TWO, emulated=["arm64"], hosts={"arm64": "amd64-1"})
        await app.show_jobs(jobs)
        await settle(pilot)
        assert {a: p.state for a, p in panes(app).items()} == {
            "amd64": "queued",
            "arm64": "queued",
        }
        assert len(app.query(ArchPane)) == 2


async def test_a_retry_starts_a_separated_attempt_and_e_finds_its_error() -> None:
    """The engine opens a retried job's next attempt with a marker line in its log (live, or
    read back after a restart): the pane draws it as a separator, and e finds the error of the
    attempt after it."""
    app = dashboard()
    async with app.run_test(size=(120, 40)) as pilot:
        await app.show_jobs(fake_jobs(TWO))
        first = [*buildx_lines("arm64", 30), "#7 ERROR: first attempt broke", "tail one"]
        app.handle_event(LinesEvent("arm64", 0, first))
        app.handle_event(StateEvent("arm64", JobState.FAILED, "exit 1"))
        await settle(pilot)
        pane = panes(app)["arm64"]
        view = pane.view
        view.focus()
        await pilot.press("e")
        await settle(pilot)
        assert view.highlight_line == 30

        marker = attempt_marker(2, RetryOptions(no_cache=True), "arm64-1")
        app.handle_event(StateEvent("arm64", JobState.QUEUED, marker.removeprefix("@@matui ")))
        second = [marker, *buildx_lines("arm64", 30), "#7 ERROR: second attempt broke", "tail"]
        app.handle_event(LinesEvent("arm64", len(first), second))
        app.handle_event(StateEvent("arm64", JobState.FAILED, "exit 1"))
        await settle(pilot)
        lines = [view.store.line(i) for i in range(len(view.store))]
        sep = len(first)
        assert lines[sep] == marker and lines[:sep] == first  # the log itself is kept as is
        await pilot.press("e")
        await settle(pilot)
        assert view.highlight_line == sep + 1 + 30  # the second attempt's error
        # The marker is drawn as a separator (reversed), on screen above the error.
        shown = rows(view)
        y = next(i for i, row in enumerate(shown) if row.startswith("── attempt 2"))
        assert shown[y].startswith("── attempt 2: retry --no-cache on")
        drawn = [s for s in view.render_line(y) if s.text.strip() and s.text != "→"]
        assert drawn and all(s.style is not None and s.style.reverse for s in drawn)
        # The earlier attempt stays readable above it.
        view.scroll_to(y=0, animate=False, immediate=True)
        await settle(pilot)
        assert rows(view)[0].startswith(first[0])


class PaneApp(App[None]):
    def __init__(self, store: LogStore) -> None:
        super().__init__()
        self.store = store

    def compose(self) -> ComposeResult:
        yield LogPane(self.store, id="log")


async def test_wrapped_view_stays_on_its_lines_when_old_lines_are_dropped() -> None:
    """A bounded store drops old chunks: wrapped, the layout drops their rows too, and a
    reader scrolled up keeps seeing the same rows; new lines are laid out as they come."""
    store = LogStore(max_lines=2 * CHUNK_LINES)
    app = PaneApp(store)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(LogPane)
        width_lines = [
            f"#7 {i:05d} " + "x" * (100 if i % 3 == 0 else 20) for i in range(3 * CHUNK_LINES)
        ]
        pane.add_lines(width_lines[: 2 * CHUNK_LINES])
        await settle(pilot)
        pane.set_wrap(True)
        await settle(pilot)
        layout_width = pane.virtual_size.width
        per_long = -(-110 // layout_width)
        expected = sum(per_long if i % 3 == 0 else 1 for i in range(2 * CHUNK_LINES))
        assert pane.virtual_size.height == expected
        pane.follow = False
        pane.scroll_to(y=6000, animate=False, immediate=True)
        await settle(pilot)
        top = rows(pane)[:5]
        pane.add_lines(width_lines[2 * CHUNK_LINES : 3 * CHUNK_LINES])
        await settle(pilot)
        assert store.dropped == CHUNK_LINES
        kept = range(CHUNK_LINES, 3 * CHUNK_LINES)
        assert pane.virtual_size.height == sum(per_long if i % 3 == 0 else 1 for i in kept)
        assert rows(pane)[:5] == top
