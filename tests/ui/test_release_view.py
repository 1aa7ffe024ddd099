"""The dashboard's release view (a config of two images, no --image), driven under Pilot by
the engine's own runs with no rig: one offline run per image
(:func:`tests.helpers.release.offline_release`), their jobs moved through the engine's states
and fed log bytes, the release handed to the view the way ``b`` hands it on
(:func:`matui.ui.release_view.take_release`)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import textual.constants
from textual.pilot import Pilot
from textual.widgets import DataTable

from matui.engine.build.run import BuildRun
from matui.engine.records import JobState, RunState
from matui.ui.app import MatuiApp
from matui.ui.release_view import ImageState, ReleaseScreen, plan_states, take_release
from matui.ui.screens import QuitScreen
from tests.helpers.dashboard import fake_probes, panes, screen_text, settle, wait_for
from tests.helpers.release import offline_release, set_state
from tests.helpers.runs import feed

SMALL = (80, 24)


def dashboard(tmp_path: Path) -> tuple[MatuiApp, list[BuildRun]]:
    config, runs = offline_release(tmp_path)
    app = MatuiApp(
        config, probe_on_start=False, resume_on_start=False, state_root=tmp_path / "state"
    )
    return app, runs


def grid(app: MatuiApp) -> ReleaseScreen:
    screen = app.get_screen("release")
    assert isinstance(screen, ReleaseScreen)
    return screen


def cell(app: MatuiApp, image: str, column: str) -> str:
    table = grid(app).query_one(DataTable)
    return str(table.get_cell(f"127.0.0.1:9/team/{image}", column).plain)


async def started(pilot: Pilot[int], app: MatuiApp, runs: list[BuildRun]) -> None:
    assert app.release is not None
    take_release(app, app.release, "release-1", runs)
    await wait_for(pilot, lambda: all(s.run is not None for s in app.release or []), "the runs")


async def test_two_images_open_on_the_grid_with_the_plan_then_each_jobs_state(
    tmp_path: Path,
) -> None:
    app, runs = dashboard(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ReleaseScreen)
        assert app.image is None and app.release is not None
        assert [s.name.rsplit("/", 1)[1] for s in app.release] == ["api", "web"]
        # Before b: where the engine's joint plan would put each job.
        plan_states(app.release, app, fake_probes())
        app.refresh_release()
        assert cell(app, "api", "amd64") == "plan amd64-1"
        assert cell(app, "web", "arm64") == "plan arm64-1"
        assert cell(app, "web", "status") == "planned"

        await started(pilot, app, runs)
        api, web = runs
        now = time.time()
        set_state(api, "amd64", JobState.RUNNING, started=now - 83)
        set_state(api, "arm64", JobState.QUEUED, "waiting for a slot on arm64-1 (max_jobs 1)")
        set_state(web, "amd64", JobState.SUCCEEDED, started=now - 50, finished=now - 9)
        web.status["arm64"].exit_code = 3
        set_state(web, "arm64", JobState.FAILED, "step failed", started=now - 20)
        await wait_for(pilot, lambda: cell(app, "web", "arm64").startswith("✗"), "the failure")
        assert cell(app, "api", "amd64").startswith("running 1:2")
        assert cell(app, "api", "amd64").endswith(" amd64-1")
        assert cell(app, "api", "arm64") == "queued (slot)"
        assert cell(app, "web", "amd64") == "✓ 0:41 amd64-1"
        assert cell(app, "web", "arm64") == "✗ exit 3 arm64-1"
        assert cell(app, "api", "status") == "running"
        text = screen_text(app)
        assert "release of 2 images" in text and "building: " in text


async def test_enter_opens_the_images_panes_on_that_arch_with_its_lines_and_esc_returns(
    tmp_path: Path,
) -> None:
    app, runs = dashboard(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await started(pilot, app, runs)
        api, web = runs
        set_state(web, "arm64", JobState.RUNNING, started=time.time())
        feed(web, "arm64", b"#5 [2/3] RUN make web-arm64-before\n")
        feed(api, "arm64", b"#5 [2/3] RUN make api-arm64\n")
        await wait_for(pilot, lambda: "running" in cell(app, "web", "arm64"), "web arm64 runs")
        # The cursor to web (second row) on arm64 (third column), then enter.
        await pilot.press("down", "right", "enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, ReleaseScreen), "the panes")
        await settle(pilot)
        assert app.image is not None and app.image.name.endswith("/web")
        assert app.run_ is web
        shown = panes(app)
        assert set(shown) == {"amd64", "arm64"}
        assert app.focused is shown["arm64"].view
        assert shown["arm64"].state == "running"
        # The lines logged while the grid was on screen, and none of the other image's.
        arm64 = shown["arm64"].view.store
        assert [arm64.line(i) for i in range(len(arm64))] == ["#5 [2/3] RUN make web-arm64-before"]
        feed(web, "arm64", b"#5 live after opening\n")
        feed(api, "arm64", b"#6 api line while web is open\n")
        await wait_for(pilot, lambda: len(arm64) == 2, "the live line in web's pane")
        assert arm64.line(1) == "#5 live after opening"
        assert "web" in screen_text(app)

        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ReleaseScreen), "the grid again")
        assert app.release is not None
        api_store = app.release[0].stores["arm64"]
        lines = [api_store.line(i) for i in range(len(api_store))]
        assert lines == ["#5 [2/3] RUN make api-arm64", "#6 api line while web is open"]

        # o from the panes comes back too; the grid's keys that act on panes do nothing.
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, ReleaseScreen), "the panes")
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, ReleaseScreen), "o: the grid")
        assert not app.check_action("retry", ())
        assert app.check_action("build", ())


async def test_m_on_a_release_with_failed_arches_lists_each_refused_image(
    tmp_path: Path,
) -> None:
    app, runs = dashboard(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await started(pilot, app, runs)
        for run in runs:
            set_state(run, "amd64", JobState.SUCCEEDED)
            run.status["arm64"].exit_code = 3
            set_state(run, "arm64", JobState.FAILED, "step failed")
        await pilot.press("m")
        await wait_for(
            pilot, lambda: "nothing to publish" in screen_text(app), "the refusal", timeout=20
        )
        text = " ".join(screen_text(app).split())
        assert "127.0.0.1:9/team/api (run " in text and "): refused" in text
        assert "127.0.0.1:9/team/web (run " in text


async def test_after_a_restart_the_grid_opens_each_images_last_run_from_its_record(
    tmp_path: Path,
) -> None:
    config, runs = offline_release(tmp_path)
    api, web = runs
    now = time.time()
    for run in runs:
        set_state(run, "amd64", JobState.SUCCEEDED, started=now - 41, finished=now)
    set_state(api, "arm64", JobState.SUCCEEDED, started=now - 30, finished=now)
    feed(web, "arm64", b"#5 [2/3] RUN make\n#5 ERROR: exit code: 3\n")
    web.status["arm64"].exit_code = 1  # buildx's; the step's own is 3
    set_state(web, "arm64", JobState.FAILED, "step failed", started=now - 30, finished=now)
    for run in runs:
        run.record.update(
            state=RunState.SUCCEEDED if run.succeeded else RunState.FAILED, finished=now
        )
    app = MatuiApp(config, probe_on_start=False, state_root=tmp_path / "state")
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: "✗" in cell(app, "web", "arm64"), "the records opened")
        assert cell(app, "api", "status") == "built"
        assert cell(app, "web", "status") == "failed"
        assert cell(app, "api", "arm64") == "✓ 0:30 arm64-1"  # its recorded time, not growing
        assert cell(app, "web", "arm64") == "✗ exit 3 arm64-1"  # the step's exit code
        assert app.release is not None
        web_state = app.release[1]
        assert web_state.run is not None and web_state.run.id == web.id
        store = web_state.stores["arm64"]
        await wait_for(pilot, lambda: len(store) == 2, "the stored lines replayed")
        assert store.line(1) == "#5 ERROR: exit code: 3"


async def test_q_while_the_release_builds_names_every_images_running_arch(
    tmp_path: Path,
) -> None:
    app, runs = dashboard(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await started(pilot, app, runs)
        api, web = runs
        set_state(api, "arm64", JobState.RUNNING, started=time.time())
        set_state(web, "amd64", JobState.SUCCEEDED)
        set_state(web, "arm64", JobState.RUNNING, started=time.time())
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen), "the quit question")
        assert isinstance(app.screen, QuitScreen)
        assert app.screen.running == ["api amd64", "api arm64", "web arm64"]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ReleaseScreen), "the grid again")


async def test_help_lists_the_release_keys(tmp_path: Path) -> None:
    app, _ = dashboard(tmp_path)
    async with app.run_test(size=(120, 60)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        text = screen_text(app)
        assert "Back to the release grid" in text
        assert "open the image's panes on the arch under the cursor" in text


@pytest.fixture
def standard_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 16-colour terminal, whatever runs the tests: the app picks its ANSI theme."""
    monkeypatch.setenv("TEXTUAL_COLOR_SYSTEM", "standard")
    monkeypatch.setattr(textual.constants, "COLOR_SYSTEM", "standard")
    monkeypatch.setattr(textual.constants, "FILTERS", "")
    for name in ("MATUI_THEME", "NO_COLOR", "TEXTUAL_THEME"):
        monkeypatch.delenv(name, raising=False)


def test_release_grid_80x24_16_colours(
    snap_compare: object, standard_colours: None, tmp_path: Path
) -> None:
    app, runs = dashboard(tmp_path)
    api, web = runs

    async def run_before(pilot: Pilot[int]) -> None:
        assert app.release is not None
        take_release(app, app.release, "release-1", runs)
        now = time.time()
        set_state(api, "amd64", JobState.SUCCEEDED, started=now - 83, finished=now)
        set_state(api, "arm64", JobState.QUEUED, "waiting for a slot on arm64-1 (max_jobs 1)")
        set_state(web, "amd64", JobState.SUCCEEDED, started=now - 41, finished=now)
        web.status["arm64"].exit_code = 3
        set_state(web, "arm64", JobState.FAILED, "step failed", started=now - 20, finished=now)
        await wait_for(pilot, lambda: cell(app, "web", "arm64").startswith("✗"), "the grid")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SMALL, run_before=run_before)  # type: ignore[operator]


def test_image_state_cells_without_textual(tmp_path: Path) -> None:
    config, runs = offline_release(tmp_path)
    state = ImageState(config.images[0], ("1.0",))
    assert state.cell("amd64", 0.0).plain == "-" and state.verdict() == "no plan"
    state.start(runs[0])
    set_state(runs[0], "amd64", JobState.RUNNING, started=100.0)
    assert state.cell("amd64", 161.0).plain == "running 1:01 amd64-1"
    assert state.cell("arm64", 161.0).plain == "queued"
