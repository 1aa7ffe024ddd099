"""The dashboard's display keys under Pilot, driven without a build: ``show_jobs`` makes the
panes and ``handle_event(LinesEvent(...))`` feeds them, as the engine would.

Search (``/``, ``n``, ``N``), first error (``e``), follow (``f``), zoom (``z``), save (``s``),
``tab`` / ``shift+tab``, help (``?``), quit with nothing running (``q``), the keys that need a
run when there is none, and the command palette. The keys that build, publish, retry, cancel,
re-probe and quit while building run against the rig in ``test_dashboard_rig.py``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from textual.app import App
from textual.binding import Binding
from textual.command import CommandList, CommandPalette
from textual.widgets import Input

from matui.engine.build.run import LinesEvent, StateEvent
from matui.engine.config import Config
from matui.engine.records import JobState
from matui.ui.app import MatuiApp
from matui.ui.screens import HelpScreen
from matui.ui.widgets.arch_pane import ArchPane
from matui.ui.widgets.log_pane import LogPane
from tests.helpers.dashboard import (
    FOUR,
    TWO,
    buildx_lines,
    fake_config,
    fake_jobs,
    fake_probes,
    panes,
    screen_text,
    settle,
    toasts,
    wait_for,
)

SIZE = (120, 40)


def visible_rows(view: LogPane) -> list[str]:
    return [view.render_line(y).text for y in range(view.scrollable_content_region.height)]


def in_view(view: LogPane, index: int) -> bool:
    """Line ``index`` is on screen (the last row may be the new-lines marker: not counted)."""
    top = view.scroll_offset.y
    return top <= index < top + view.scrollable_content_region.height - 1


def bindings() -> list[Binding]:
    return [b for b in MatuiApp.BINDINGS if isinstance(b, Binding)]


async def start(app: MatuiApp, arches: tuple[str, ...] = TWO, lines: int = 0) -> None:
    """Panes for ``arches``, ``lines`` lines in each, the first pane focused."""
    app.show_jobs(fake_jobs(arches))
    for arch in arches:
        app.handle_event(StateEvent(arch, JobState.RUNNING, f"pid 4242 on {arch}-1"))
        if lines:
            app.handle_event(LinesEvent(arch, 0, buildx_lines(arch, lines)))


def dashboard(config: Config | None = None) -> MatuiApp:
    return MatuiApp(config or fake_config(), probe_on_start=False, resume_on_start=False)


async def test_tab_and_shift_tab_walk_the_panes_in_order_and_wrap() -> None:
    app = dashboard(fake_config(FOUR))
    async with app.run_test(size=SIZE) as pilot:
        await start(app, FOUR)
        await settle(pilot)
        order = [app.query_one(f"#pane-{arch}", ArchPane) for arch in FOUR]
        assert app.focused is order[0].view  # the first pane starts focused
        for expected in [*order[1:], order[0]]:
            await pilot.press("tab")
            assert app.focused is expected.view
            assert app.focused_pane() is expected
        for expected in [order[3], order[2], order[1], order[0]]:
            await pilot.press("shift+tab")
            assert app.focused is expected.view
        # The focused pane is the one drawn with the accent border.
        await pilot.press("tab")
        await settle(pilot)
        colours = [pane.styles.border_top[1] for pane in order]
        assert colours[1] != colours[0] and colours[0] == colours[2] == colours[3]


async def test_zoom_shows_only_the_focused_pane_and_back() -> None:
    app = dashboard(fake_config(FOUR))
    async with app.run_test(size=SIZE) as pilot:
        await start(app, FOUR, lines=50)
        await settle(pilot)
        await pilot.press("tab")  # arm64
        arm = panes(app)["arm64"]
        before = arm.region
        await pilot.press("z")
        await settle(pilot)
        assert app.query_one("#panes").has_class("-zoomed")
        for arch, pane in panes(app).items():
            assert pane.display is (arch == "arm64"), arch
            if arch != "arm64":
                assert pane.region.area == 0, arch
        assert arm.region.width > before.width and arm.region.height > before.height
        assert app.focused is arm.view
        text = screen_text(app)
        assert "arm64 · " in text
        assert not any(f"{arch} · " in text for arch in ("amd64", "ppc64le", "s390x"))
        await pilot.press("z")
        await settle(pilot)
        assert not app.query_one("#panes").has_class("-zoomed")
        assert all(p.display and p.region.area for p in panes(app).values())
        assert arm.region == before
        assert app.focused is arm.view


async def test_a_new_run_replaces_the_panes_and_ends_a_zoom() -> None:
    """What ``b`` does after a run: the previous panes (same ids) go, the new ones show."""
    app = dashboard(fake_config(FOUR))
    async with app.run_test(size=SIZE) as pilot:
        await start(app, TWO, lines=30)
        await settle(pilot)
        old = list(app.query(ArchPane))
        await pilot.press("tab", "z")
        await settle(pilot)
        await app.show_jobs(fake_jobs(FOUR))
        app.handle_event(LinesEvent("arm64", 0, ["second run"]))
        await settle(pilot)
        assert list(panes(app)) == list(FOUR)
        assert not any(pane.is_attached for pane in old)
        assert not app.query_one("#panes").has_class("-zoomed")
        assert all(pane.display and pane.region.area for pane in panes(app).values())
        assert app.focused is panes(app)["amd64"].view
        assert [panes(app)["arm64"].view.store.line(i) for i in (0, -1)] == ["second run"] * 2
        assert "s390x · " in screen_text(app)


async def test_pane_titles_keep_the_state_in_view_when_cut() -> None:
    """At 120 columns two panes are 35 wide: an emulated arch's title is cut at the end, and
    the end must not be its state."""
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        app.show_jobs(fake_jobs(emulated=["arm64"]))
        for arch in TWO:
            app.handle_event(StateEvent(arch, JobState.SUCCEEDED, "sha256:" + "ab" * 32))
        app.handle_event(StateEvent("arm64", JobState.FAILED, "exit 1 at #7 RUN make"))
        await settle(pilot)
        text = screen_text(app)
        assert "amd64 · succeeded · amd64-1" in text
        assert "arm64 · FAILED · arm64-1 (Q" in text
        app.handle_event(StateEvent("arm64", JobState.SUCCEEDED, "sha256:" + "cd" * 32))
        await settle(pilot)
        assert "arm64 · succeeded · arm64-1" in screen_text(app)


async def test_hosts_badges_are_not_cut_when_the_panel_is_full() -> None:
    app = dashboard(fake_config(FOUR))
    async with app.run_test(size=SIZE) as pilot:
        await app.show_jobs(fake_jobs(FOUR, emulated=["s390x"], hosts={"s390x": "amd64-1"}))
        probes = fake_probes(FOUR)
        probes[3] = replace(probes[3], reachable=False, native_arch=None, error="timed out")
        app.show_probes(probes, [])
        await settle(pilot)
        rows = {line.split()[1]: line for line in screen_text(app).splitlines()[2:7]}
        assert "EMULATED" in rows["amd64-1"]
        assert "UNREACHABLE" in rows["s390x-1"]


async def test_follow_off_keeps_the_view_and_marks_new_lines_then_on_catches_up() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await start(app, lines=500)
        await settle(pilot)
        view = panes(app)["amd64"].view
        assert view.follow and view.scroll_offset.y == view.max_scroll_y
        await pilot.press("f")
        assert view.follow is False
        y = view.scroll_offset.y
        app.handle_event(LinesEvent("amd64", 500, buildx_lines("amd64", 300, start=500)))
        await settle(pilot)
        assert view.scroll_offset.y == y  # the view stayed put
        assert len(view.store) == 800
        assert "300 new lines" in visible_rows(view)[-1]
        await pilot.press("f")
        await settle(pilot)
        assert view.follow is True
        assert view.scroll_offset.y == view.max_scroll_y
        last = visible_rows(view)[-1].rstrip()
        assert last.endswith("→")  # cut at the pane's edge, and marked so
        assert len(last) > 20 and view.store.line(-1).startswith(last[:-1])
        # Only the focused pane's follow changed.
        assert panes(app)["arm64"].view.follow is True


async def test_search_jumps_to_matches_and_n_and_shift_n_walk_them() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await start(app, lines=2000)
        lines = buildx_lines("amd64", 2000)
        hits = [300, 900, 1500]
        for i in hits:
            lines[i] = f"#8 {i}.000 note: NEEDLE-{i} found here"
        app.handle_event(LinesEvent("amd64", 2000, lines))  # after the first 2000
        hits = [2000 + i for i in hits]
        await settle(pilot)
        view = panes(app)["amd64"].view
        await pilot.press("slash")
        await settle(pilot)
        search = app.query_one("#search", Input)
        assert search.has_focus
        # Letters that are keys too (n, e, f, z, ...) go into the box, not to their actions.
        await pilot.press(*"needle-(9|3|15)00 ")
        await pilot.press("backspace")
        assert search.value == "needle-(9|3|15)00"
        assert view.follow and not app.query_one("#panes").has_class("-zoomed")
        await pilot.press("enter")
        await settle(pilot)
        assert not app.search_open  # the box closed
        assert app.focused is view  # back on the searched pane
        assert view.follow is False
        # From the top of the view (it was at the end, following): wraps to the first match.
        assert view.match_line == hits[0] and in_view(view, hits[0])
        assert any("NEEDLE-300" in row for row in visible_rows(view))
        for expected in (hits[1], hits[2], hits[0]):
            await pilot.press("n")
            await settle(pilot)
            assert view.match_line == expected and in_view(view, expected)
        for expected in (hits[2], hits[1]):
            await pilot.press("N")
            await settle(pilot)
            assert view.match_line == expected and in_view(view, expected)
            assert any(f"NEEDLE-{expected - 2000}" in row for row in visible_rows(view))
        assert view.search_pattern == "needle-(9|3|15)00"


async def test_search_escape_closes_the_box_and_a_miss_says_so() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await start(app, lines=200)
        await settle(pilot)
        await pilot.press("tab")  # arm64
        view = panes(app)["arm64"].view
        await pilot.press("slash", *"unit")
        await pilot.press("escape")
        await settle(pilot)
        assert not app.search_open
        assert app.focused is view
        assert view.search_pattern is None and view.follow
        await pilot.press("slash", *"zzz", "enter")
        await settle(pilot)
        assert view.match_line is None and app.focused is view
        assert "not found in arm64: zzz" in toasts(app)
        await pilot.press("slash", *"([", "enter")
        await settle(pilot)
        assert view.search_pattern == "zzz"  # a bad regex is reported; the old stays
        assert any("([" in t for t in toasts(app)) and app.focused is view


async def test_e_jumps_to_the_first_error_of_the_focused_pane() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await start(app, lines=3000)
        await settle(pilot)
        arm = panes(app)["arm64"].view
        lines = buildx_lines("arm64", 500, start=3000)
        lines[100] = "#9 12.345 /bin/sh: exec format error"
        lines[200] = "#9 ERROR: process did not complete successfully: exit code: 2"
        app.handle_event(LinesEvent("arm64", 3000, lines))
        await settle(pilot)
        await pilot.press("tab")
        await pilot.press("e")
        await settle(pilot)
        assert arm.highlight_line == 3100
        assert in_view(arm, 3100) and arm.follow is False
        assert any(row.startswith("#9 12.345 /bin/sh: exec") for row in visible_rows(arm))
        # The other pane, with no error line, did not move.
        amd = panes(app)["amd64"].view
        assert amd.highlight_line is None and amd.follow
        await pilot.press("shift+tab", "e")
        await settle(pilot)
        assert amd.highlight_line is None and amd.follow  # nothing found: a bell, no jump


async def test_s_saves_the_focused_pane_log_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await start(app, lines=1234)
        app.handle_event(LinesEvent("arm64", 1234, ["tab\there", "ünïcode ✓", ""]))
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        saved = tmp_path / "matui-no-run-amd64.log"
        assert saved.read_text() == "\n".join(buildx_lines("amd64", 1234)) + "\n"
        assert f"saved 1234 lines to {saved}" in toasts(app)
        await pilot.press("tab", "s")
        await settle(pilot)
        arm = (tmp_path / "matui-no-run-arm64.log").read_text(encoding="utf-8")
        assert arm == "\n".join([*buildx_lines("arm64", 1234), "tab\there", "ünïcode ✓", ""]) + "\n"


async def test_help_lists_every_key_and_closes_with_esc_question_mark_or_q() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await start(app)
        for close in ("escape", "question_mark", "q"):
            await pilot.press("question_mark")
            await settle(pilot)
            assert isinstance(app.screen, HelpScreen)
            text = " ".join(screen_text(app).split())
            for binding in bindings():
                key = app.get_key_display(binding)
                row = f"{key} {binding.tooltip}"
                if key.isdigit():  # the pane digits may share one row: 1…9
                    merged = f"1…9 {(binding.tooltip or '').replace(key, 'N')}"
                    assert row in text or merged in text, binding.id
                    continue
                assert row in text, binding.id
            await pilot.press(close)
            await settle(pilot)
            assert not isinstance(app.screen, HelpScreen), close
            assert app.is_running  # q closed the help, it did not quit


async def test_q_with_nothing_running_quits_at_once() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await start(app)
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running
    assert app.return_value == 0


async def test_a_title_tick_while_quitting_does_not_crash() -> None:
    """The title's 1 s timer can fire after shutdown removed the screen's widgets (seen as a
    NoMatches crash on about one exit in 20 near a tick)."""
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await app.query_one("#titlebar").remove()
        app._update_title()  # what the timer does then
        await pilot.pause()
    # An error in a handler sets return code 1; the test harness's own shutdown sets none.
    assert app.return_code is None


async def test_keys_that_need_a_run_say_so_when_there_is_none() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await start(app)
        await settle(pilot)
        for key, message in (
            ("r", "nothing to retry yet: b builds"),
            ("x", "nothing is running"),
            ("m", "nothing built yet: b builds every arch"),
        ):
            await pilot.press(key)

            def shown(message: str = message) -> bool:
                return message in toasts(app)

            await wait_for(pilot, shown, f"{key}: {message}")
            assert len(app.screen_stack) == 1
        assert app.run_ is None and app.status_text == "idle"


async def test_b_without_an_image_in_the_config_says_so() -> None:
    config = fake_config()
    app = dashboard(Config(None, config.hosts, ()))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await wait_for(pilot, lambda: "no [[images]] in the config" in toasts(app), "error")
        assert app.run_ is None and app.status_text == "idle"


async def palette_prompts(app: App[int]) -> list[str]:
    commands = app.screen.query_one(CommandList)
    return [str(commands.get_option_at_index(i).prompt) for i in range(commands.option_count)]


async def test_command_palette_lists_every_action_and_runs_it() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await start(app, lines=20)
        await settle(pilot)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await wait_for(
            pilot,
            lambda: app.screen.query_one(CommandList).option_count > len(bindings()),
            "the palette's commands",
        )
        listed = " ".join(" ".join(await palette_prompts(app)).split())
        for binding in bindings():
            key = app.get_key_display(binding)
            assert binding.description in listed, binding.id
            assert f"{binding.tooltip} (key: {key})" in listed, binding.id
        # Run one from the palette: it acts on the pane focused before the palette opened.
        await pilot.press(*"Zoom")
        await wait_for(
            pilot,
            lambda: any(p.startswith("Zoom") for p in _first_prompts(app)),
            "Zoom at the top",
        )
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, CommandPalette), "palette gone")
        await wait_for(
            pilot, lambda: app.query_one("#panes").has_class("-zoomed"), "zoom from the palette"
        )
        assert [a for a, p in panes(app).items() if p.display] == ["amd64"]


def _first_prompts(app: App[int]) -> list[str]:
    if not isinstance(app.screen, CommandPalette):
        return []
    commands = app.screen.query_one(CommandList)
    if not commands.option_count:
        return []
    return [str(commands.get_option_at_index(0).prompt)]
