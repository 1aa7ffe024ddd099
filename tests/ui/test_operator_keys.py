"""The keyboard as operators use it (issue 12), under Pilot, driven without a build as in
``test_dashboard_keys.py``: ``show_jobs`` makes the panes, ``handle_event`` feeds them.

- Keys that arrive in one burst after ``/`` (a paste, a laggy SSH link) all go into the search
  box: none runs as a command. ``Pilot.press`` waits for the app to go idle after every key, so
  a burst is posted here as a terminal delivers it: every key event at once.
- ``j``/``k``, ``g``/``G``, ctrl+d/ctrl+u, PgUp/PgDn in the focused log; ``1``…``9`` focus a
  pane; ``z`` gives the log the whole screen and ``esc`` leaves the zoom; ``y`` copies the
  selected line (OSC 52); ``?`` lists every key, the log pane's too.

``x`` asking before it cancels needs a running build: ``test_dashboard_rig.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from textual import events
from textual.binding import Binding
from textual.widgets import Input

from matui.engine.build.run import LinesEvent
from matui.ui.app import MatuiApp
from matui.ui.clipboard import MAX_COPY, copy_text
from matui.ui.hosts_screen import HostsScreen
from matui.ui.screens import HelpScreen
from matui.ui.widgets.log_pane import LogPane
from tests.helpers.dashboard import (
    FOUR,
    buildx_lines,
    fake_config,
    panes,
    screen_text,
    settle,
    toasts,
    wait_for,
)
from tests.ui.test_dashboard_keys import SIZE, dashboard, start

_CHARACTERS = {"slash": "/", "enter": "\r", "space": " ", "escape": "\x1b"}


def burst(app: MatuiApp, keys: Sequence[str]) -> None:
    """Post ``keys`` to the app all at once, as the terminal driver does with the bytes of one
    read: no pause between them for the app to react to the first."""
    driver = app._driver
    assert driver is not None
    for key in keys:
        driver.send_message(events.Key(key, key if len(key) == 1 else _CHARACTERS[key]))


def search_value(app: MatuiApp) -> str | None:
    return app.query_one("#search", Input).value if app.search_open else None


async def test_a_burst_after_slash_goes_into_the_search_box_and_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``/sha256``: s saves a file, h opens the hosts screen, 2 focuses pane 2. ``/error``: e
    jumps to the first error, r retries. All must be typed into the search box instead."""
    monkeypatch.chdir(tmp_path)
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await start(app, lines=300)
        lines = buildx_lines("amd64", 100, start=300)
        lines[50] = "#9 ERROR: process did not complete successfully: exit code: 3"
        app.handle_event(LinesEvent("amd64", 300, lines))
        await settle(pilot)
        amd = panes(app)["amd64"].view
        assert app.focused is amd

        burst(app, ["slash", *"sha256"])
        await wait_for(pilot, lambda: search_value(app) == "sha256", "sha256 in the search box")
        assert app.query_one("#search", Input).has_focus
        assert not list(tmp_path.iterdir())  # s saved nothing
        assert not isinstance(app.screen, HostsScreen)  # h opened nothing
        assert app.focused_pane() is panes(app)["amd64"]  # 2 focused nothing

        burst(app, ["escape", "slash", *"error"])
        await wait_for(pilot, lambda: search_value(app) == "error", "error in the search box")
        assert amd.highlight_line is None  # e did not jump
        assert not any("retry" in t for t in toasts(app))  # r did not try to retry

        # The enter of the burst runs the search, on the pane focused at the /.
        burst(app, ["escape", "slash", *"exit code: 3", "enter"])
        await wait_for(pilot, lambda: amd.match_line == 350, "the search's match")
        assert not app.search_open and app.focused is amd
        assert not list(tmp_path.iterdir()) and not toasts(app)


async def test_slash_typed_inside_the_search_box_is_a_character() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await start(app, lines=20)
        await settle(pilot)
        burst(app, ["slash", *"src", "slash", *"amd64"])
        await wait_for(pilot, lambda: search_value(app) == "src/amd64", "src/amd64 typed")


async def test_vim_and_less_keys_move_the_focused_log() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await start(app, lines=2000)
        await settle(pilot)
        view = panes(app)["amd64"].view
        height = view.scrollable_content_region.height
        bottom = view.max_scroll_y
        assert view.follow and view.scroll_offset.y == bottom

        await pilot.press("k")
        assert view.scroll_offset.y == bottom - 1 and not view.follow
        await pilot.press("j")
        assert view.scroll_offset.y == bottom and view.follow
        await pilot.press("ctrl+u")
        assert view.scroll_offset.y == bottom - height // 2 and not view.follow
        await pilot.press("ctrl+u")
        assert view.scroll_offset.y == bottom - 2 * (height // 2)
        await pilot.press("ctrl+d")
        assert view.scroll_offset.y == bottom - height // 2
        await pilot.press("pageup")
        assert view.scroll_offset.y == bottom - height // 2 - (height - 1)
        await pilot.press("pagedown")
        assert view.scroll_offset.y == bottom - height // 2
        await pilot.press("g")
        assert view.scroll_offset.y == 0 and not view.follow
        await pilot.press("j", "j", "j")
        assert view.scroll_offset.y == 3
        await pilot.press("G")
        await settle(pilot)
        assert view.follow and view.scroll_offset.y == view.max_scroll_y
        # Only the focused pane moved.
        other = panes(app)["arm64"].view
        assert other.follow and other.scroll_offset.y == other.max_scroll_y


async def test_digits_focus_panes_and_zoom_follows_them() -> None:
    app = dashboard(fake_config(FOUR))
    async with app.run_test(size=SIZE) as pilot:
        await start(app, FOUR, lines=30)
        await settle(pilot)
        by_arch = panes(app)
        for digit, arch in (("3", "ppc64le"), ("4", "s390x"), ("1", "amd64"), ("2", "arm64")):
            await pilot.press(digit)
            assert app.focused is by_arch[arch].view, digit
        await pilot.press("9")  # no pane 9: a bell, focus stays
        assert app.focused is by_arch["arm64"].view
        await pilot.press("z")
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        assert [a for a, p in panes(app).items() if p.display] == ["s390x"]
        assert app.focused is by_arch["s390x"].view


async def test_zoom_gives_the_log_the_whole_screen_and_esc_leaves_it() -> None:
    app = dashboard(fake_config(FOUR))
    async with app.run_test(size=SIZE) as pilot:
        await start(app, FOUR, lines=60)
        await settle(pilot)
        side = app.query_one("#side")
        assert side.region.area
        await pilot.press("2", "z")
        await settle(pilot)
        arm = panes(app)["arm64"]
        assert side.region.area == 0 and not side.display
        # Title row above, footer row below: the pane has every other row and every column.
        assert arm.region.width == SIZE[0]
        assert arm.region.height == SIZE[1] - 2
        text = screen_text(app)
        assert "Hosts" not in text and "amd64 · " not in text
        await pilot.press("escape")
        await settle(pilot)
        assert not app.query_one("#panes").has_class("-zoomed")
        assert side.region.area and all(p.region.area for p in panes(app).values())
        assert app.focused is arm.view
        # esc with nothing to leave is not swallowed: the pane stays as it is.
        await pilot.press("escape")
        await settle(pilot)
        assert side.region.area and app.focused is arm.view


async def test_esc_closes_the_search_before_it_leaves_the_zoom() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await start(app, lines=60)
        await settle(pilot)
        await pilot.press("z", "slash", *"unit")
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert not app.search_open
        assert app.query_one("#panes").has_class("-zoomed")
        await pilot.press("escape")
        await settle(pilot)
        assert not app.query_one("#panes").has_class("-zoomed")


async def test_y_copies_the_selected_line() -> None:
    """The selected line: the search match, else the line e jumped to, else the top line."""
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await start(app, lines=500)
        lines = buildx_lines("amd64", 100, start=500)
        lines[10] = "#9 0.1 /bin/sh: exec format error"
        lines[60] = "#9 0.2 NEEDLE here\twith a tab"
        app.handle_event(LinesEvent("amd64", 500, lines))
        await settle(pilot)
        view = panes(app)["amd64"].view

        await pilot.press("g", "j", "j", "y")
        assert app.clipboard == view.store.line(2) == buildx_lines("amd64", 3)[2]
        assert any(
            "copied line 3 " in t and "where the terminal allows it" in t for t in toasts(app)
        )

        await pilot.press("e")
        await settle(pilot)
        await pilot.press("y")
        assert app.clipboard == "#9 0.1 /bin/sh: exec format error"

        await pilot.press("slash", *"needle", "enter")
        await wait_for(pilot, lambda: view.match_line == 560, "the match")
        await pilot.press("y")
        assert app.clipboard == "#9 0.2 NEEDLE here\twith a tab"  # the line, not its rendering


async def test_copy_text_cuts_what_terminals_would_drop() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await start(app)
        sent = copy_text(app, "x" * (MAX_COPY + 10), "the failure card")
        await pilot.pause()
        assert sent == app.clipboard == "x" * MAX_COPY
        (toast,) = [t for t in toasts(app) if t.startswith("copied the failure card")]
        assert f"cut to the first {MAX_COPY:,}" in toast


async def test_help_lists_the_log_pane_keys_too() -> None:
    """The help lists the dashboard's keys and the log pane's (scrolling is the help's own
    business: its rows are checked, not the screen)."""
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        await start(app)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        rows = app.screen.rows
        for binding in [*MatuiApp.BINDINGS, *LogPane.BINDINGS]:
            assert isinstance(binding, Binding)
            key = app.get_key_display(binding)
            if key.isdigit():  # 1…9 may share a row
                assert any(k == key or k.startswith("1…") for k, _ in rows), binding.id
                continue
            assert (key, binding.tooltip or binding.description) in rows, binding.id
