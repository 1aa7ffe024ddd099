"""The failure card (key ``i``) and the failed pane's subtitle, driven without a build: the
engine's failure record of a recorded-format log (tests/helpers/dashboard.py) arrives on the
failed state event, as a run hands it over.

Pilot tests check what the card says and that it reads whole at 80x24 (it scrolls, nothing is
cut); the snapshots pin its look at 80x24 and 120x40 on a 16-colour terminal
(``TEXTUAL_COLOR_SYSTEM=standard``, where the dashboard picks its ANSI theme).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
import textual.constants
from textual.app import App
from textual.containers import VerticalScroll
from textual.pilot import Pilot

from matui.engine.build.failure import FailureRecord
from matui.engine.build.run import LinesEvent, StateEvent
from matui.engine.records import JobState
from matui.ui.app import MatuiApp
from matui.ui.failure_screen import FailureScreen
from matui.ui.resources import stylesheet
from tests.helpers.dashboard import (
    TWO,
    buildx_lines,
    failing_log,
    fake_config,
    fake_failure,
    fake_jobs,
    fake_probes,
    panes,
    press_handled,
    screen_text,
    settle,
    toasts,
    wait_for,
)

SnapCompare = Callable[..., bool]

DIGEST_AMD64 = "sha256:" + "3f1c9a7e" * 8


def dashboard() -> MatuiApp:
    return MatuiApp(fake_config(TWO), probe_on_start=False, resume_on_start=False)


async def arm64_failed(pilot: Pilot[int], failure: FailureRecord | None = None) -> None:
    """amd64 built; arm64's ``[3/4] RUN`` step failed with exit code 3 (buildx exited 1)."""
    app = pilot.app
    assert isinstance(app, MatuiApp)
    await app.show_jobs(fake_jobs(TWO))
    app.show_probes(fake_probes(TWO), [])
    app.handle_event(LinesEvent("amd64", 0, buildx_lines("amd64", 30)))
    app.handle_event(LinesEvent("arm64", 0, failing_log("arm64")))
    app.handle_event(StateEvent("amd64", JobState.SUCCEEDED, DIGEST_AMD64))
    app.handle_event(
        StateEvent(
            "arm64",
            JobState.FAILED,
            "exit 1 at #7 [3/4] RUN ./configure --enable-simd && make -j8 && ./selftest",
            failure or fake_failure("arm64"),
        )
    )
    app.set_status("failed: arm64", "bad")  # no run object: the status a failed run shows
    await settle(pilot)


async def open_card(pilot: Pilot[int]) -> None:
    """The scene, arm64's pane focused (tab), its card opened (i)."""
    await arm64_failed(pilot)
    await pilot.press("tab")
    await pilot.press("i")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, FailureScreen), "the card")
    await settle(pilot)


def card_text(app: MatuiApp) -> str:
    """What the card shows now, inside its frame, its rows joined by one space and runs of
    spaces made one: a wrapped value reads as one line again."""
    region = app.screen.query_one("#failure-card").region
    rows = screen_text(app).splitlines()[region.y : region.bottom]
    inside = [row[region.x + 1 : region.right - 1].translate(_SCROLLBAR) for row in rows]
    return _words(" ".join(inside))


_SCROLLBAR = str.maketrans(dict.fromkeys("▁▂▃▄▅▆▇█▔▏▎▍▌▋▊▉", " "))


def _words(text: str) -> str:
    return " ".join(text.split())


async def test_the_failed_pane_s_subtitle_says_the_step_s_exit_code_and_cause() -> None:
    app = dashboard()
    async with app.run_test(size=(80, 24)) as pilot:
        await arm64_failed(pilot)
        subtitle = str(panes(app)["arm64"].border_subtitle)
        assert subtitle.startswith("exit 3 at [3/4] RUN ./configure"), subtitle
        assert subtitle.endswith(" · build-error") and len(subtitle) <= 80 - 6
        assert str(panes(app)["amd64"].border_subtitle) == DIGEST_AMD64[:19]
        # A retry: the job is going again, the card and its subtitle go.
        app.handle_event(StateEvent("arm64", JobState.QUEUED, "retry"))
        assert panes(app)["arm64"].failure is None
        assert str(panes(app)["arm64"].border_subtitle) == "retry"


async def test_i_on_a_pane_that_has_not_failed_says_so() -> None:
    app = dashboard()
    async with app.run_test(size=(80, 24)) as pilot:
        await arm64_failed(pilot)
        await press_handled(pilot, app, "i", "failure_card")  # amd64 is focused first
        assert any("amd64 has not failed" in toast for toast in toasts(app)), toasts(app)
        assert not isinstance(app.screen, FailureScreen)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_i_opens_the_card_whole_and_esc_closes_it(size: tuple[int, int]) -> None:
    app = dashboard()
    failure = fake_failure("arm64")
    async with app.run_test(size=size) as pilot:
        await open_card(pilot)
        scroll = app.screen.query_one(VerticalScroll)
        assert scroll.max_scroll_x == 0  # long values and lines wrap: nothing is cut
        seen = card_text(app)
        # Down to the end (80x24 scrolls), collecting what each page shows.
        while scroll.scroll_y < scroll.max_scroll_y:
            await pilot.press("pagedown")
            await settle(pilot)
            seen += " " + card_text(app)
        assert "Why arm64 failed · arm64-1" in seen
        for label, value in failure.card():
            assert label in seen and _words(value) in seen, (label, value, seen)
        assert "exit code 3 (the step's own; buildx exited 1)" in seen
        assert "retry worth it no" in seen
        assert "arm64-1: declared arm64, native arm64, native · docker 26.1.4" in seen
        assert "the step's last 14 lines" in seen
        for line in failure.lines:  # the step's own lines, the long one wrapped whole
            assert _words(line) in seen, line
        assert not any("#12" in line for line in failure.lines)  # not the log's other steps
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, FailureScreen), "esc to close")


async def test_the_same_step_on_passing_arches_is_on_the_card_when_known() -> None:
    failure = replace(fake_failure("arm64"), elsewhere={"amd64": 1.84})
    app = dashboard()
    async with app.run_test(size=(120, 40)) as pilot:
        await arm64_failed(pilot, failure)
        await pilot.press("tab", "i")
        await wait_for(pilot, lambda: isinstance(app.screen, FailureScreen), "the card")
        await settle(pilot)
        assert "same step elsewhere amd64 1.8 s" in card_text(app)


class CardHost(App[None]):
    """The card alone over an empty screen, in the dashboard's stylesheet and the ANSI theme
    the dashboard picks on a 16-colour terminal: the snapshots pin the card's look, not the
    dashboard behind it (other screens and keys change; the card's snapshot need not)."""

    CSS_PATH = str(stylesheet())

    def on_mount(self) -> None:
        assert self.console.color_system == "standard"
        self.theme = "ansi-dark"
        self.push_screen(FailureScreen("arm64", "arm64-1", "failed", fake_failure("arm64")))


@pytest.fixture
def standard_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 16-colour terminal (TEXTUAL_COLOR_SYSTEM=standard), whatever runs the tests."""
    monkeypatch.setattr(textual.constants, "COLOR_SYSTEM", "standard")
    monkeypatch.setattr(textual.constants, "FILTERS", "")
    for name in ("MATUI_THEME", "NO_COLOR", "TEXTUAL_THEME"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("standard_colours")
def test_card_80x24(snap_compare: SnapCompare) -> None:
    """80x24, 16 colours: the card scrolls (its scrollbar shows), long values and the step's
    long line wrap, the frame says esc closes."""
    assert snap_compare(CardHost(), terminal_size=(80, 24), run_before=settle)


@pytest.mark.usefixtures("standard_colours")
def test_card_120x40(snap_compare: SnapCompare) -> None:
    """120x40, 16 colours: the whole card fits, the step's lines under the fields."""
    assert snap_compare(CardHost(), terminal_size=(120, 40), run_before=settle)
